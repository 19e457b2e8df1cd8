"""Launch requests and the `vllm serve` argv built from them (pure, no I/O)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

REPO_RE = re.compile(r"^[\w.\-/]+$")
MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")  # as the catalogue's ids
MAX_K = 32
# Flags the agent sets itself; extra_args may not override them.
MANAGED_FLAGS = frozenset({
    "--served-model-name", "--port", "--host", "--tensor-parallel-size",
    "--max-num-queued-reqs", "--speculative-config",
})


def _check_repo(name: str, value: object) -> None:
    if not isinstance(value, str) or not REPO_RE.match(value) or value.startswith("-"):
        raise ValueError(
            f"{name} must be a Hugging Face repo or a path (letters, digits, _ . - /, "
            f"not starting with -), got {value!r}"
        )


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value > high):  # type: ignore[operator]
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")


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
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.model_id, str) or not MODEL_ID_RE.match(self.model_id):
            raise ValueError(
                "model_id must be 1-40 letters, digits, '.', '_' or '-' starting with a letter "
                f"or digit, got {self.model_id!r}"
            )
        if not self.served_name:
            self.served_name = self.model_id
        _check_repo("target", self.target)
        _check_repo("served_name", self.served_name)
        if self.draft is not None:
            _check_repo("draft", self.draft)
        _check_int("k", self.k, 1, MAX_K)
        _check_int("gpus", self.gpus, 1)
        if self.max_queued is not None:
            _check_int("max_queued", self.max_queued, 1)
        if not isinstance(self.extra_args, list) or not all(
            isinstance(a, str) and "\0" not in a for a in self.extra_args
        ):
            raise ValueError("extra_args must be a list of strings")
        for arg in self.extra_args:
            if arg.split("=", 1)[0] in MANAGED_FLAGS:
                raise ValueError(f"extra_args may not set {arg.split('=', 1)[0]}: the agent does")

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
        """Build from a command payload; keys that are not fields (op, host, …) are ignored."""
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:  # a required field is missing
            raise ValueError(f"bad launch request: {exc}") from None


def vllm_argv(vllm_bin: str, req: LaunchRequest, port: int, host: str = "127.0.0.1") -> list[str]:
    """The argv (for exec, never a shell) of `vllm serve` for ``req`` on ``host:port``."""
    _check_int("port", port, 1, 65535)
    argv = [
        vllm_bin, "serve", req.target,
        "--served-model-name", str(req.served_name),
        "--port", str(port),
        "--host", host,
        "--tensor-parallel-size", str(req.gpus),
    ]
    if req.max_queued is not None:
        # Overload becomes a fast 503 the router can take elsewhere, not an unbounded queue.
        argv += ["--max-num-queued-reqs", str(req.max_queued)]
    if req.speculative_config is not None:
        argv += ["--speculative-config", json.dumps(req.speculative_config)]
    return argv + list(req.extra_args)
