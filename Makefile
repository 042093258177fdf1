# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs; re-runs skip finished steps.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch-scatter/torch-cluster compile from source where no wheel matches (~25 min on 2 cores,
# cached by pip afterwards); --no-build-isolation builds them against the installed torch.
MAX_JOBS ?= 2
PYTEST_ARGS ?=

.PHONY: demo test docs bench venv clean

$(VENV)/.base: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install torch torchvision
	$(PIP) install -e .
	touch $@

$(VENV)/.cluster: $(VENV)/.base
	MAX_JOBS=$(MAX_JOBS) $(PIP) install --no-build-isolation "torch-scatter>=2.1" "torch-cluster>=1.6"
	touch $@

# [predict]: OpenCV for face detection and video; [test]: pytest and scikit-image (photos);
# [docs]: the tests build the documentation site (tests/test_docs.py).
# [export]: onnx, onnxscript, onnxruntime for the ONNX parity tests (tests/export/).
# [explain]: captum for PyG's CaptumExplainer on an RDGCN block (tests/explain/).
$(VENV)/.test: $(VENV)/.cluster
	$(PIP) install -e ".[test,predict,docs,export,hub,explain]"
	touch $@

$(VENV)/.docs: $(VENV)/.base
	$(PIP) install -e ".[docs]"
	touch $@

venv: $(VENV)/.base

demo: $(VENV)/.base
	$(PY) -m pyg_fer demo

test: $(VENV)/.test
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; fi; exit $$rc

# The documentation site: API reference + tutorials (run at toy size), warnings are errors,
# no network needed. Open docs/_build/html/index.html.
docs: $(VENV)/.docs
	OMP_NUM_THREADS=1 $(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

bench: $(VENV)/.cluster
	$(PY) benchmarks/graph_ops.py

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/generated
