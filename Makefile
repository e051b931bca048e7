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

.PHONY: install qdp-wheels cpp export test test-all tensorrt-matrix bench accuracy gpu-check lint format clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first, from this machine's disk; the constraints keep it.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# TensorRT's pure-Python plugin code of every supported release, for the QDP plugin check
# (tests/plugins/test_qdp.py). Downloaded, never installed: the wheels' tensorrt.so needs libnvinfer.
QDP_VERSIONS := 10.9.0.34 10.13.3.9 10.16.1.11 11.0.0.114 11.4.0.106
QDP_WHEELS := $(VENV)/qdp-wheels
$(QDP_WHEELS)/.downloaded: $(STAMP)
	for v in $(QDP_VERSIONS); do \
	  $(BIN)/pip download --quiet --no-deps -d $(QDP_WHEELS) tensorrt-cu12-bindings==$$v || exit 1; done
	touch $@

qdp-wheels: $(QDP_WHEELS)/.downloaded

# The C++ plugin library and runner (cpp/README.md): build/cpp/libtdeploy_plugins.so, build/cpp/tdeploy_run.
# With TENSORRT_ROOT (an SDK: include/ + lib/) or TENSORRT_INCLUDE, against that TensorRT; otherwise
# against headers from PyPI, never installed: TensorRT 10.14.1's (the kernel-lens wheel, Apache-2.0)
# and CUDA's (nvidia-cuda-runtime-cu12, whose libcudart links the GPU harness, and nvidia-cuda-crt).
CPP_BUILD := build/cpp
CPP_DEPS := $(CPP_BUILD)/deps
HEADER_WHEELS := kernel-lens==2.0.1 nvidia-cuda-runtime-cu12==12.9.79 nvidia-cuda-crt==13.5.37
ifeq ($(TENSORRT_ROOT)$(TENSORRT_INCLUDE),)
CPP_HEADERS := $(CPP_DEPS)/.unpacked
CMAKE_HEADERS := -DTENSORRT_INCLUDE=$(CURDIR)/$(CPP_DEPS)/kernel_lens/include/tensorrt \
	"-DCUDA_INCLUDE=$(CURDIR)/$(CPP_DEPS)/nvidia/cuda_runtime/include;$(CURDIR)/$(CPP_DEPS)/nvidia/cu13/include" \
	-DCUDA_LIBRARY_DIRS=$(CURDIR)/$(CPP_DEPS)/nvidia/cuda_runtime/lib
else
CPP_HEADERS :=
CMAKE_HEADERS := $(if $(TENSORRT_ROOT),-DTENSORRT_ROOT=$(TENSORRT_ROOT)) $(if $(TENSORRT_INCLUDE),-DTENSORRT_INCLUDE=$(TENSORRT_INCLUDE))
endif

$(CPP_DEPS)/.unpacked:
	mkdir -p $(CPP_DEPS)/wheels
	$(PYTHON) -m pip download --quiet --no-deps -d $(CPP_DEPS)/wheels $(HEADER_WHEELS)
	for w in $(CPP_DEPS)/wheels/*.whl; do $(PYTHON) -m zipfile -e $$w $(CPP_DEPS) || exit 1; done
	touch $@

cpp: $(CPP_HEADERS)
	cmake -S cpp -B $(CPP_BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_HEADERS) \
	  $(if $(TENSORRT_LIBRARY),-DTENSORRT_LIBRARY=$(TENSORRT_LIBRARY)) > $(CPP_BUILD).log || { cat $(CPP_BUILD).log; exit 1; }
	cmake --build $(CPP_BUILD) -j $(WORKERS)

# make export MODEL=swinir [CHECKPOINT=file.pth] [ARGS="--static"]
export: $(STAMP)
	$(BIN)/deploy export $(MODEL) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(ARGS)

test: $(STAMP) qdp-wheels cpp
	$(BIN)/python -m pytest -n $(WORKERS) -m "not slow" $(PYTEST_ARGS)

# Everything, then every family's smallest variant x fp32 / --no-plugins / fp16 / int8 through
# TensorRT-RTX (writes docs/tensorrt.md; fails when a build does).
test-all: $(STAMP) qdp-wheels cpp
	$(BIN)/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)
	$(MAKE) tensorrt-matrix

tensorrt-matrix: $(STAMP)
	$(BIN)/python -m benchmarks.tensorrt_matrix

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
