# Set-up and checks. `make test` and `make demo` work on a fresh machine (they create .venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test test-slow demo lint bench clean

$(STAMP): pyproject.toml extensions/ndx-lrnn/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# pinned: an unpinned torch pulls a multi-GB CUDA build; the package itself needs torch>=2.2
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# the NWB extension is its own package; nwb_lrnn depends on it
	$(BIN)/python -m pip install --quiet ./extensions/ndx-lrnn
	$(BIN)/python -m pip install --quiet -e ".[test,ray,edf,pynapple]"
	touch $(STAMP)

install: $(STAMP)

test: install  ## lint + fast test suite (what CI runs)
	$(BIN)/ruff check nwb_lrnn tests benchmarks docs extensions
	$(BIN)/python -m pytest -q

test-slow: install  ## long statistical tests only
	$(BIN)/python -m pytest -q -m slow

demo: install  ## the main job: real EEG -> fit -> NWB results + report in ./nwb_lrnn_demo
	$(BIN)/nwb-lrnn demo --out-dir nwb_lrnn_demo

lint: install
	$(BIN)/ruff check nwb_lrnn tests benchmarks docs extensions

bench: install  ## speed and memory figures (by hand, not in CI)
	$(BIN)/python benchmarks/bench_step.py

clean:
	rm -rf $(VENV) build dist *.egg-info
