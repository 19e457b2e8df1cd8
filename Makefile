# chatmux developer tasks. CI overrides PYTHON (see .ci/run).
PYTHON ?= .venv/bin/python
VENV_PY ?= python3.11

.PHONY: install test test-vllm vllm-env vllm-cpu lint run

install:
	test -x .venv/bin/python || $(VENV_PY) -m venv .venv
	.venv/bin/python -m pip install -q torch==2.13.0 && .venv/bin/python -m pip install -q -e '.[dev,local]'

test:
	$(PYTHON) -m pytest -q

# The real-vLLM tier alone (tests/vllm_real: vLLM's CPU build in its own virtualenv).
test-vllm: vllm-env
	$(PYTHON) -m pytest -q -m vllm

# The vLLM CPU virtualenv (created once, cached under ~/.cache/chatmux).
vllm-env:
	deploy/vllm/cpu-env.sh >/dev/null

# Real vLLM on this CPU with a draft model, for `MODELS_FILE=deploy/vllm/models.cpu.yaml`.
vllm-cpu:
	deploy/vllm/cpu-serve.sh

lint:
	$(PYTHON) -m ruff check .

run:
	.venv/bin/chatmux run
