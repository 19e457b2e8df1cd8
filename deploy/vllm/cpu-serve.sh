#!/usr/bin/env bash
# Real vLLM on this machine's CPU, a target verified by a draft model (speculative decoding):
# no GPU needed. Creates the vLLM CPU virtualenv on first use (deploy/vllm/cpu-env.sh).
#
# Usage: deploy/vllm/cpu-serve.sh [TARGET] [DRAFT]
#   TARGET, DRAFT   Hugging Face repo ids or local directories sharing one tokenizer
#                   default HuggingFaceTB/SmolLM2-360M-Instruct + SmolLM2-135M-Instruct
#   PORT=8000  SERVED_NAME=smollm2  K=3  MAX_MODEL_LEN=4096  KV_GIB=2
#   CORES      cores vLLM's threads may use (VLLM_CPU_OMP_THREADS_BIND), default: all but
#              one, so the bot beside it keeps a core
# Point models.yaml at it with deploy/vllm/models.cpu.yaml.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target="${1:-HuggingFaceTB/SmolLM2-360M-Instruct}"
draft="${2:-HuggingFaceTB/SmolLM2-135M-Instruct}"
cores="$(nproc)"
default_bind="0"
if [ "$cores" -gt 1 ]; then default_bind="0-$((cores - 2))"; fi

py="$("$here/cpu-env.sh")"
export VLLM_CPU_KVCACHE_SPACE="${KV_GIB:-2}"
export VLLM_CPU_OMP_THREADS_BIND="${CORES:-$default_bind}"
spec="{\"method\": \"draft_model\", \"model\": \"$draft\", \"num_speculative_tokens\": ${K:-3}}"
set -x
exec "$py" -m vllm.entrypoints.openai.api_server --model "$target" \
    --served-model-name "${SERVED_NAME:-smollm2}" --host 127.0.0.1 --port "${PORT:-8000}" \
    --dtype float32 --max-model-len "${MAX_MODEL_LEN:-4096}" --speculative-config "$spec"
