"""Direct vs paired latency timing on this machine: how well does each repeat itself?

    python bench/paired_timing.py [--subnets 60] [--reference smallest] [--search-space configs/spaces/tiny.yml]

Every subnet is timed twice by each protocol, in two passes over all subnets (so minutes apart):
direct (HAT's: the 10-90% mean of the runs) and paired (``measure_latency(reference=...)``: every
run followed by a run of the reference subnet, the 10-90% mean of the ratios). A protocol's
repeatability, the MAPE and Kendall tau between its two passes, is the noise floor of any latency
predictor trained on its labels. Both protocols run side by side in the same passes, so they see
the same machine.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from scipy.stats import kendalltau
from tqdm import tqdm

from bench_common import ROOT, load  # noqa: E402  (bench/ is the script's directory)

sys.path.insert(0, str(ROOT))

from fairseq_shiftadd.hardware.latency_dataset import planned_subnets  # noqa: E402
from fairseq_shiftadd.data.sized_dictionary import dictionary_of_size  # noqa: E402
from fairseq_shiftadd.hardware.costing import random_weight_model  # noqa: E402
from fairseq_shiftadd.hardware.latency import measure_latency  # noqa: E402
from fairseq_shiftadd.space import SearchSpace  # noqa: E402


def repeatability(first: np.ndarray, second: np.ndarray) -> str:
    mape = float(np.mean(np.abs(second - first) / first) * 100)
    return f"MAPE {mape:.2f}%, Kendall tau {kendalltau(first, second).statistic:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search-space", default="configs/spaces/tiny.yml")
    parser.add_argument("--subnets", type=int, default=60)
    parser.add_argument("--reference", choices=("smallest", "largest"), default="smallest")
    parser.add_argument("--vocab-size", type=int, default=120, help="the toy corpus's joined vocabulary")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    space = SearchSpace.from_file(ROOT / args.search_space)
    dictionary = dictionary_of_size(args.vocab_size)
    torch.manual_seed(1)
    subnets = planned_subnets(space, args.subnets, seed=1, include_extremes=True)
    models = [random_weight_model(subnet, dictionary) for subnet in subnets]
    reference = random_weight_model(getattr(space, args.reference)(), dictionary)
    timing = dict(warmup=args.warmup, runs=args.runs, device="cpu", threads=args.threads)
    print(f"space {space.name}, {len(models)} subnets, reference {args.reference}, {args.threads} thread(s), "
          f"warmup {args.warmup}, runs {args.runs}; {load()}", flush=True)
    direct, ratio = np.zeros((2, len(models))), np.zeros((2, len(models)))
    for rep in range(2):
        for index, model in enumerate(tqdm(models, desc=f"pass {rep + 1}/2", unit="subnet")):
            direct[rep, index] = measure_latency(model, **timing)["latency_ms"]
            ratio[rep, index] = measure_latency(model, reference=reference, reference_ms=1.0, **timing)["ratio"]
    print(f"latency {direct.min():.2f}-{direct.max():.2f} ms direct, ratio to the {args.reference} subnet "
          f"{ratio.min():.2f}-{ratio.max():.2f}; {load()}")
    print(f"direct timing repeats within: {repeatability(direct[0], direct[1])}")
    print(f"paired timing repeats within: {repeatability(ratio[0], ratio[1])}")


if __name__ == "__main__":
    main()
