# fairseq-shiftadd: two entry points, `make demo` and `make test`.
# Each creates .venv/ on first use and installs the pinned stack there.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all venv bench clean-demo

venv: $(STAMP)

# Runtime and test dependencies, from pyproject.toml, less the two installed by hand above them.
DEPS := $(PY) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	print(*[d for d in p['dependencies'] + p['optional-dependencies']['test'] if not d.startswith(('torch', 'fairseq-fixed'))], sep='\n')"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	# torch first (CPU wheel), then numpy and cython so fairseq-fixed builds without isolation.
	$(PY) -m pip install -q torch==2.13.0 numpy cython
	$(DEPS) > $(VENV)/requirements.txt
	$(PY) -m pip install -q -r $(VENV)/requirements.txt
	# triton (the gpu extra) declares no dependencies, so torch stays the CPU wheel; its
	# interpreter runs the GPU kernels' tests on CPU tensors.
	$(PY) -m pip install -q triton==3.9.0
	# fairseq-fixed declares torchaudio (which would pull another torch): installed without deps, and
	# after every install that checks dependencies, so pip's resolver never reports torchaudio missing.
	$(PY) -m pip install -q --no-deps --no-build-isolation fairseq-fixed==0.12.3.1
	# the package itself (console scripts included), without re-resolving fairseq-fixed's declared deps
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

test-all: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(VENV)/bin/shiftadd-demo --out demo-out

bench: $(STAMP)
	$(PY) bench/ops.py

clean-demo:
	rm -rf demo-out
