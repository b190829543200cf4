# Two entry points do all the set-up on a fresh clone:
#   make repro   create .venv, install, run `dvc repro` on params.yaml
#   make test    create .venv, install, run ruff, mypy and pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export MUJOCO_GL ?= egl
export PYTHONPATH := $(CURDIR)
# dvc.yaml's stage commands say `python`: it must be the venv's, as after `. .venv/bin/activate`.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install repro test lint unit slow bench report clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,s3]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

repro: install
	$(BIN)/dvc repro
	$(BIN)/dvc metrics show

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy analysis datagen offline_rl pipelines benchmarks tests

unit: install
	$(BIN)/python -m pytest -q

test: lint unit

slow: install
	$(BIN)/python -m pytest -q -m slow

report: install
	$(BIN)/python -m pipelines.report

bench: install
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
