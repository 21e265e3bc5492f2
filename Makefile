# Two commands for a newcomer: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test bench-cpu clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The main job on a small embedded default, CPU, a few minutes.
demo: install
	$(PY) -m rwjax.demo --workdir=out/demo

# Two pytest-xdist workers (CI has 2 cores; more: make test TEST_WORKERS=N); each test module
# runs on one worker (--dist loadscope), so its module fixtures run once, in the order of
# tests/conftest.py (longest first).
TEST_WORKERS ?= 2

test: install
	XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu $(PY) -m pytest -q \
	  -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder tests

clean:
	rm -rf $(VENV) out
