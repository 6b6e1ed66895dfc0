"""fairseq-shiftadd: ShiftAddNAS for machine translation as a fairseq plugin."""
from setuptools import find_packages, setup

setup(
    name="fairseq-shiftadd",
    version="0.1.0",
    description="ShiftAddNAS (ICML 2022) hybrid shift/add/multiplication Transformers as a fairseq plugin",
    packages=find_packages(include=["fairseq_shiftadd", "fairseq_shiftadd.*"]),
    package_data={"fairseq_shiftadd": ["configs/**/*.yml"]},
    python_requires=">=3.10",
    install_requires=["torch>=2.6", "fairseq-fixed==0.12.3.1", "pyyaml", "sacrebleu", "tqdm"],
    # Triton kernels of the add operators on CUDA (fairseq_shiftadd/modules/triton_add.py); tested with 3.9.0.
    extras_require={"gpu": ["triton>=3.0"]},
    entry_points={
        "console_scripts": [
            "shiftadd-cost=fairseq_shiftadd.cli.cost:main",
            "shiftadd-measure-latency=fairseq_shiftadd.cli.measure_latency:main",
            "shiftadd-search=fairseq_shiftadd.cli.search:main",
            "shiftadd-export-subnet=fairseq_shiftadd.cli.export_subnet:main",
        ]
    },
)
