# The vadbook's commands. Each target installs what it needs into .venv first.
#
#   make book      execute every chapter and build the HTML book into _build/html
#   make test      unit tests of vadbook + every chapter notebook under nbval
#   make unit      unit tests only            make nbval    chapter notebooks only
#   make lab       JupyterLab in the book's environment
#   make refresh   re-execute the chapters in place (updates the outputs stored in book/*.ipynb)
#   make clean     remove _build             make distclean  also remove .venv
#
# Variables: PYTHON (interpreter that creates .venv, default python3), VENV (default .venv),
# PYTEST_ARGS (extra pytest arguments), LAB_ARGS (extra jupyter lab arguments),
# NOTEBOOKS (the notebooks `make refresh` executes, default all of book/*.ipynb).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vadbook-installed
NOTEBOOKS ?= $(wildcard book/*.ipynb)
PYTEST_ARGS ?=
# Jupyter refuses to run as root unless told so (containers often run as root).
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

# Determinism: MKL_CBWR makes BLAS results independent of thread scheduling across processes;
# PYTHONHASHSEED fixes hash order. Kernels inherit both.
export MKL_CBWR := COMPATIBLE
export PYTHONHASHSEED := 0
# Progress bars are for interactive runs; executed pages would only show a frozen bar.
export VADBOOK_PROGRESS := 0
# Use the kernelspec of .venv, never one from the user's home directory.
export JUPYTER_PREFER_ENV_PATH := 1
# Quiet the debugger's frozen-modules warning that every kernel would print to stderr.
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: install book test unit nbval lab refresh clean distclean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt -e .
	@# The `python3` kernel of .venv runs .venv's interpreter (absolute path).
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)"
	@touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build . --all -W --keep-going
	@echo "The book is in _build/html/index.html"

# One pytest run over tests/ (unit) and book/ (notebooks; see testpaths in pyproject.toml).
# --nbval-lax: every cell must run without error; only cells tagged nbval-check-output are
# compared with their stored output. --nbval-current-env: the kernel is .venv's interpreter.
# pytest exits 5 when no test was collected (e.g. `make nbval` before any chapter exists):
# reported, not treated as a failure.
NBVAL_FLAGS := --nbval-lax --nbval-current-env --nbval-cell-timeout=600
PYTEST := $(BIN)/python -m pytest
NO_TESTS_OK := || { rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; else exit $$rc; fi; }

test: $(STAMP)
	$(PYTEST) $(NBVAL_FLAGS) $(PYTEST_ARGS) $(NO_TESTS_OK)

unit: $(STAMP)
	$(PYTEST) tests $(PYTEST_ARGS) $(NO_TESTS_OK)

nbval: $(STAMP)
	$(PYTEST) book $(NBVAL_FLAGS) $(PYTEST_ARGS) $(NO_TESTS_OK)

lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_ARGS)

refresh: $(STAMP)
	@for nb in $(NOTEBOOKS); do \
	  echo "executing $$nb"; \
	  $(BIN)/jupyter execute --inplace --timeout=600 --kernel_name=python3 "$$nb" || exit 1; \
	done

clean:
	rm -rf _build

distclean: clean
	rm -rf $(VENV)
