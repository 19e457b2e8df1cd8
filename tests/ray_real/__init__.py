"""The real-Ray tier: a real local Ray head running Ray Serve LLM on vLLM's CPU build, driven by
the bot with POOL=ray. Run it alone with `pytest -m ray`; it needs the virtualenv that
`deploy/ray/cpu-env.sh` makes (CHATMUX_VLLM_PYTHON points at another one) and installs
nothing itself."""
