#!/usr/bin/env python3
"""A stand-in for `vllm serve` in tests: serves the fake OpenAI-compatible server (its vLLM
flavour, with the given --max-model-len and the draft's num_speculative_tokens).

Usage: fake_vllm.py serve MODEL --served-model-name X --port P --host H
           --tensor-parallel-size N --max-num-queued-reqs Q [--speculative-config JSON]
           [--max-model-len N] [--dtype D] [--trust-remote-code]
Unknown arguments are an error, as in vLLM. On start it prints {"argv",
"cuda_visible_devices", "cwd", "env"} as JSON (env: the names of its environment variables).
Environment:
  FAKE_VLLM_STARTUP_DELAY  seconds before it listens (default 0.5)
  FAKE_VLLM_RECORD         a file to append the same JSON line to
  FAKE_VLLM_FAIL_START=1   exit at once with code 1 and an error (like a bad model name)
  FAKE_VLLM_CRASH_AFTER    exit with code 1 this many seconds after it starts serving
  FAKE_VLLM_CRASH_ONCE     a marker path: only a server that finds it missing (and creates it)
                           crashes, so a restarted one stays up
  FAKE_VLLM_IGNORE_SIGTERM=1  ignore SIGTERM (only SIGKILL stops it)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
try:
    from tests.fakes.openai_api import FakeModelServer
except ImportError:  # started by the system python: use the project's virtualenv instead
    venv = ROOT / ".venv" / "bin" / "python"
    if not venv.exists() or Path(sys.executable) == venv:
        raise
    os.execv(venv, [str(venv), __file__, *sys.argv[1:]])


def _fail(message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return 1


async def serve(args: argparse.Namespace, crash_after: float | None) -> int:
    """Serve the fake model until SIGTERM/SIGINT (or crash after ``crash_after`` seconds)."""
    await asyncio.sleep(float(os.environ.get("FAKE_VLLM_STARTUP_DELAY", "0.5")))
    spec = args.speculative_config or {}
    server = FakeModelServer({args.served_model_name or args.model: args.max_model_len or 4096},
                             num_speculative_tokens=spec.get("num_speculative_tokens"))
    await server.start(host=args.host, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    ignore_term = os.environ.get("FAKE_VLLM_IGNORE_SIGTERM") == "1"
    loop.add_signal_handler(signal.SIGTERM, (lambda: None) if ignore_term else stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), crash_after)
    except TimeoutError:
        print("vllm.v1.engine.exceptions.EngineDeadError: simulated crash", flush=True)
        os._exit(1)
    await server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="vllm", allow_abbrev=False)
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--served-model-name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--max-num-queued-reqs", type=int)
    parser.add_argument("--speculative-config", type=json.loads)
    parser.add_argument("--max-model-len", type=int)
    parser.add_argument("--dtype", choices=["auto", "float16", "bfloat16", "float32"])
    parser.add_argument("--trust-remote-code", action="store_true")
    args = parser.parse_args()
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    line = json.dumps({"argv": sys.argv[1:], "cuda_visible_devices": devices,
                       "cwd": os.getcwd(), "env": sorted(os.environ)})
    print(line, flush=True)
    if record := os.environ.get("FAKE_VLLM_RECORD"):
        with open(record, "a") as out:
            out.write(line + "\n")
    if os.environ.get("FAKE_VLLM_FAIL_START") == "1":
        return _fail(f"OSError: {args.model} is not a local folder and is not a valid model "
                     "identifier listed on 'https://huggingface.co/models'")
    if devices is not None and args.tensor_parallel_size > len(devices.split(",")):
        return _fail(f"ValueError: tensor_parallel_size={args.tensor_parallel_size} needs more "
                     f"GPUs than CUDA_VISIBLE_DEVICES={devices}")
    spec = args.speculative_config
    if spec is not None and not (isinstance(spec, dict) and spec.get("num_speculative_tokens")):
        return _fail(f"ValueError: bad --speculative-config {spec!r}")
    crash_after = os.environ.get("FAKE_VLLM_CRASH_AFTER")
    marker = os.environ.get("FAKE_VLLM_CRASH_ONCE")
    crash = crash_after is not None and (marker is None or not Path(marker).exists())
    if crash and marker:
        Path(marker).touch()
    return asyncio.run(serve(args, float(crash_after) if crash and crash_after else None))


if __name__ == "__main__":
    sys.exit(main())
