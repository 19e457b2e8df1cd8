#!/usr/bin/env bash
# Launch one vLLM OpenAI-compatible server: a target model with a separate draft model
# for speculative decoding. Run it on the GPU host, inside an environment where
# `vllm` is installed (pip install vllm). All settings come from the environment:
#
#   TARGET        target model (HF id or path)        default Qwen/Qwen2.5-7B-Instruct
#   DRAFT         draft model, same tokenizer          default Qwen/Qwen2.5-0.5B-Instruct
#   K             num_speculative_tokens               default 4
#   PORT          HTTP port                            default 8000
#   SERVED_NAME   name clients send as `model`         default qwen2.5-7b
#   TP            --tensor-parallel-size (target)      default 1
#   MAX_QUEUED    --max-num-queued-reqs: beyond this   default 64
#                 many waiting+running requests vLLM answers a fast HTTP 503,
#                 which chatmux treats as "try another backend"
#   HETERO_VOCAB  1/0/auto: add "use_heterogeneous_vocab": true   default auto
#                 (auto compares vocab_size in both config.json files; Qwen2.5-7B
#                 pads to 152064 and Qwen2.5-0.5B to 151936, which vLLM's
#                 draft_model check otherwise rejects; greedy drafts only)
#   DRY_RUN       1: print the command and exit        default 0
#
# Any extra arguments are passed to `vllm serve` unchanged, e.g.
#   TP=2 MAX_QUEUED=128 deploy/vllm/launch.sh --max-model-len 16384 --gpu-memory-utilization 0.9
#
# Speculative decoding pays off at low concurrency and can slow a busy server down;
# keep a plain replica for peak load. Check acceptance on /metrics
# (vllm:spec_decode_num_accepted_tokens_total / vllm:spec_decode_num_draft_tokens_total).
# Register the server in chatmux's models.yaml with base_url http://<host>:$PORT/v1
# and model $SERVED_NAME.
set -euo pipefail

TARGET=${TARGET:-Qwen/Qwen2.5-7B-Instruct}
DRAFT=${DRAFT:-Qwen/Qwen2.5-0.5B-Instruct}
K=${K:-4}
PORT=${PORT:-8000}
SERVED_NAME=${SERVED_NAME:-qwen2.5-7b}
TP=${TP:-1}
MAX_QUEUED=${MAX_QUEUED:-64}
HETERO_VOCAB=${HETERO_VOCAB:-auto}
DRY_RUN=${DRY_RUN:-0}

for var in K PORT TP MAX_QUEUED; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || { echo "launch.sh: $var must be a positive integer" >&2; exit 2; }
done

# Prints "1" when the two models' config.json disagree on vocab_size, "0" when they
# agree, nothing when it cannot tell (no huggingface_hub, no network, no access).
vocab_differs() {
    python3 - "$TARGET" "$DRAFT" 2>/dev/null <<'PY' || true
import json, os, sys

def vocab_size(name):
    path = os.path.join(name, "config.json")
    if not os.path.isfile(path):
        from huggingface_hub import hf_hub_download
        path = hf_hub_download(name, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    return cfg.get("vocab_size") or cfg.get("text_config", {}).get("vocab_size")

t, d = (vocab_size(n) for n in sys.argv[1:3])
if t and d:
    print(int(t != d))
PY
}

case $HETERO_VOCAB in
    auto)
        differs=$(vocab_differs)
        if [[ $differs == 1 ]]; then
            HETERO_VOCAB=1
            echo "launch.sh: target and draft vocab_size differ; using use_heterogeneous_vocab" >&2
        else
            [[ -n $differs ]] || echo "launch.sh: could not compare vocab sizes; set HETERO_VOCAB=1 if vLLM rejects the pair" >&2
            HETERO_VOCAB=0
        fi
        ;;
    0 | 1) ;;
    *) echo "launch.sh: HETERO_VOCAB must be 0, 1 or auto" >&2; exit 2 ;;
esac

# Model ids contain only [A-Za-z0-9._/-]; escape backslashes and quotes anyway for paths.
json_str() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }

SPEC_CONFIG="{\"method\": \"draft_model\", \"model\": $(json_str "$DRAFT"), \"num_speculative_tokens\": $K"
if [[ $HETERO_VOCAB == 1 ]]; then
    SPEC_CONFIG+=", \"use_heterogeneous_vocab\": true"
fi
SPEC_CONFIG+="}"

cmd=(
    vllm serve "$TARGET"
    --served-model-name "$SERVED_NAME"
    --speculative-config "$SPEC_CONFIG"
    --tensor-parallel-size "$TP"
    --max-num-queued-reqs "$MAX_QUEUED"
    --port "$PORT"
    "$@"
)

# Print the command shell-quoted (single quotes, so the JSON stays readable).
printf '+'
for arg in "${cmd[@]}"; do
    if [[ $arg =~ ^[A-Za-z0-9._/:=@+-]+$ ]]; then
        printf ' %s' "$arg"
    else
        printf " '%s'" "${arg//\'/\'\\\'\'}"
    fi
done
printf '\n'
if [[ $DRY_RUN == 1 ]]; then exit 0; fi
exec "${cmd[@]}"
