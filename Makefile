# Two commands from a fresh clone:
#   make study   set up .venv and run the main job
#   make test    set up .venv and run the tests (fast ones, then the slow ones on the real backbone)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup study test test-fast test-slow clean

# torch first, pinned: its CPU wheel is on this kind of machine's disk, and an unpinned torch pulls a multi-GB
# CUDA build. Everything after it accepts the installed torch.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,bench,build-data]"
	touch $(STAMP)

setup: $(STAMP)

study: setup
	$(BIN)/poolattn study --config configs/demo.yaml

test-fast: setup
	$(BIN)/ruff check --select F,E9 src tests benchmarks scripts
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: setup
	$(BIN)/python -m pytest -m slow -q

test: test-fast test-slow

clean:
	rm -rf $(VENV) outputs .pytest_cache
