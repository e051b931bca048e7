# tdeploy: `make export MODEL=vit` and `make test` create the environment on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tdeploy-installed
MODEL  ?= vit
OUT    ?= artifacts
PYTEST_ARGS ?=
# Two workers: the CI machine has two cores.
WORKERS ?= 2

.PHONY: install export test test-all bench accuracy gpu-check lint format clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first, from this machine's disk; the constraints keep it.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# make export MODEL=swinir [CHECKPOINT=file.pth] [ARGS="--static"]
export: $(STAMP)
	$(BIN)/deploy export $(MODEL) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.cpu_bench

accuracy: $(STAMP)
	$(BIN)/python -m benchmarks.accuracy

# On a machine with an NVIDIA GPU: Triton kernels vs references and baselines.
gpu-check:
	PYTHONPATH=$(CURDIR) $(PYTHON) -m benchmarks.gpu_check

lint: $(STAMP)
	$(BIN)/ruff check tdeploy tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format tdeploy tests benchmarks

clean:
	rm -rf $(OUT) build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
