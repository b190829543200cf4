# Two entry points do all the set-up on a fresh clone:
#   make repro   create .venv, install, run `dvc repro` on params.yaml
#   make test    create .venv, install, run ruff, mypy and pytest
# Any Python of pyproject's requires-python (3.11-3.13): `make install PYTHON=python3.13`; a venv
# of another Python than PYTHON is made anew.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Every package the install resolves, direct or not, at the version CI last passed with: a fresh
# clone installs that set, not whatever the registry holds that day. `make lock` refreshes it.
CONSTRAINTS := constraints.txt
# What `make install` installs and `make lock` resolves (tests/test_install.py reads it too).
PROJECT := .[dev,s3]
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
STAMP := $(VENV)/.installed-$(shell { cat pyproject.toml $(CONSTRAINTS); echo $(PYTHON_VERSION); } | sha1sum | cut -c1-12)
export MUJOCO_GL ?= egl
export PYTHONPATH := $(CURDIR)
# dvc.yaml's stage commands say `python`: it must be the venv's, as after `. .venv/bin/activate`.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install repro test lint unit slow bench report fidelity lock clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -n "$(PYTHON_VERSION)" || { echo "error: PYTHON=$(PYTHON) does not run" >&2; exit 2; }
	test "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$(PYTHON_VERSION)" \
	  || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '$(PROJECT)'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

repro: install
	$(BIN)/dvc repro
	$(BIN)/dvc metrics show

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy analysis core datagen offline_rl pipelines transitions benchmarks tests

unit: install
	$(BIN)/python -m pytest -q

test: lint unit

slow: install
	$(BIN)/python -m pytest -q -m slow

report: install
	$(BIN)/python -m pipelines.report

# The Hopper fidelity run (docs/fidelity.md): hours of CPU. It rewrites params.yaml with the
# preset: run it in a clone of its own.
fidelity: install
	$(BIN)/python -m pipelines.fidelity all

bench: install
	$(BIN)/python -m benchmarks.run_all

# Resolve pyproject.toml afresh in a scratch venv (no constraints: newest compatible releases)
# and pin the result, without local version labels (torch 2.13.0+cpu pins 2.13.0, so a CUDA
# build of the same release satisfies it too); then run `make test` and commit both files.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '$(PROJECT)'
	{ echo '# pip constraints: written by `make lock` from pyproject.toml ($(PROJECT)); do not edit.'; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable --exclude offline-rl-pipeline | sed -E 's/\+[A-Za-z0-9.]+$$//'; \
	} > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS) && rm -rf .venv-lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
