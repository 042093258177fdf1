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

.PHONY: demo test bench venv clean

$(VENV)/.base: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install torch torchvision
	$(PIP) install -e .
	touch $@

$(VENV)/.cluster: $(VENV)/.base
	MAX_JOBS=$(MAX_JOBS) $(PIP) install --no-build-isolation "torch-scatter>=2.1" "torch-cluster>=1.6"
	touch $@

# [predict]: OpenCV for face detection and video; [test]: pytest and scikit-image (photos).
$(VENV)/.test: $(VENV)/.cluster
	$(PIP) install -e ".[test,predict]"
	touch $@

venv: $(VENV)/.base

demo: $(VENV)/.base
	$(PY) -m pyg_fer demo

test: $(VENV)/.test
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; fi; exit $$rc

bench: $(VENV)/.cluster
	$(PY) benchmarks/graph_ops.py

clean:
	rm -rf $(VENV) build *.egg-info
