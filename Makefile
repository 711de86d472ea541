# Every target that needs Python depends on the venv, so on a fresh clone
# `make test` or `make demo` alone does all the set-up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install test test-fast lint demo fuzz chaos bench gpu-check pictures clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,export]'
	touch $(STAMP)

test: $(STAMP)
	CNNKIT_DATA_DIR=$${CNNKIT_DATA_DIR:-$(DATA_DIR)} $(BIN)/pytest -q -rs

# The edit loop: everything but the tests that train for real or need ../shared/data (well under a minute).
test-fast: $(STAMP)
	$(BIN)/pytest -q -rs -m "not slow and not data"

# ruff (lint + format check) and the import contract in pyproject.toml (the TensorFlow line).
lint: $(STAMP)
	$(BIN)/ruff check cnnkit tests bench
	$(BIN)/ruff format --check cnnkit tests bench
	$(BIN)/lint-imports

# The same runs/latest as every README command; the last line says what to try next.
demo: $(STAMP)
	$(BIN)/cnnkit train configs/digits.yaml
	$(BIN)/cnnkit evaluate runs/latest
	@echo "Next: source .venv/bin/activate, then: cnnkit plot feature-maps runs/latest --index 3"

fuzz: $(STAMP)
	CNNKIT_FUZZ_EXAMPLES=20000 $(BIN)/pytest -q tests/test_fuzz.py -p no:cacheprovider -s

# SIGKILL `cnnkit train` at 50 seeded random moments (CNNKIT_CHAOS_KILLS, CNNKIT_CHAOS_SEED), resuming each time;
# every run must end completed with weights bit-identical to an uninterrupted run. `make test` runs 5, one per phase.
chaos: $(STAMP)
	CNNKIT_CHAOS_KILLS=$${CNNKIT_CHAOS_KILLS:-50} $(BIN)/pytest -q -rA tests/test_chaos.py -p no:cacheprovider

bench: $(STAMP)
	CNNKIT_DATA_DIR=$${CNNKIT_DATA_DIR:-$(DATA_DIR)} $(BIN)/python bench/run_all.py

# On a machine with a GPU: the notes' MNIST net with train.precision=mixed_float16, on one GPU and mirrored over all,
# each >= 99% test accuracy, samples/s against the notes' script on the same GPU; into bench/results.json
# (benchmarks.gpu_check) and the README's table. Without a GPU it prints `skipped: no GPU` and exits 0.
gpu-check: $(STAMP)
	CNNKIT_DATA_DIR=$${CNNKIT_DATA_DIR:-$(DATA_DIR)} $(BIN)/python bench/gpu_check.py

# The README's pictures, from a real run of the notes' MNIST net (2 epochs on ../shared/data).
pictures: $(STAMP)
	rm -rf runs/pictures
	CNNKIT_DATA_DIR=$${CNNKIT_DATA_DIR:-$(DATA_DIR)} $(BIN)/cnnkit train configs/mnist.yaml --epochs 2 --out runs/pictures
	cp runs/pictures/latest/plots/*.png docs/img/
	$(BIN)/cnnkit plot kernels docs/img/digit.png --kernel sobel_x --kernel sobel_y --kernel sharpen --kernel laplacian --out docs/img/kernels.png
	$(BIN)/python tests/chromium.py runs/pictures/latest/report.html docs/img/report.png 1280 1500

clean:
	rm -rf $(VENV) runs build *.egg-info
