"""The Serve application of one model, built from `/addmodel` arguments (pure, no I/O).

The options are the stream agent's closed set (:class:`inference.pool.argv.LaunchRequest`)
plus the replica count: there is no way to hand Ray or vLLM an option this module does not
write itself. Local paths must lie under POOL_MODELS_DIR, a directory every Ray node mounts
at the same place (checked by name only: the bot cannot see the nodes' disks).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from inference.pool.argv import LaunchRequest, is_local_path

IMPORT_PATH = "ray.serve.llm:build_openai_app"
MAX_REPLICAS = 64


@dataclass(frozen=True, slots=True)
class Replicas:
    """`replicas=N` (a fixed count) or `replicas=MIN-MAX` (Serve autoscales between them)."""

    low: int = 1
    high: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high <= MAX_REPLICAS:
            raise ValueError(f"replicas must be N or MIN-MAX with 1 ≤ MIN ≤ MAX ≤ {MAX_REPLICAS}")

    @classmethod
    def parse(cls, text: str) -> Replicas:
        low, sep, high = text.partition("-")
        if not (low.isascii() and low.isdigit() and len(low) <= 3
                and (not sep or (high.isascii() and high.isdigit() and len(high) <= 3))):
            raise ValueError(f"replicas= must be N or MIN-MAX, got {text[:20]!r}")
        return cls(int(low), int(high) if sep else int(low))

    def deployment_config(self) -> dict[str, Any]:
        if self.low == self.high:
            return {"num_replicas": self.low}
        return {"autoscaling_config": {"min_replicas": self.low, "max_replicas": self.high}}


def path_problem(request: LaunchRequest, models_dir: str | None) -> str | None:
    """Why a local model path may not be sent to Ray (None if every reference may)."""
    for ref in request.models:
        if not is_local_path(ref):
            continue
        if models_dir is None:
            return (f"{ref} is a local path; set POOL_MODELS_DIR (a directory every Ray node "
                    "mounts) to allow local models")
        root = posixpath.normpath(models_dir).rstrip("/") + "/"
        if not posixpath.normpath(ref).startswith(root):
            return f"{ref} is not under POOL_MODELS_DIR ({models_dir})"
    return None


def route_prefix(app: str) -> str:
    return f"/{app}"


def serve_app(request: LaunchRequest, replicas: Replicas, accelerator: str) -> dict[str, Any]:
    """One entry of `applications` for `PUT /api/serve/applications/`: the model's own app,
    named and routed by its id, serving it under its served name.

    `accelerator`: "gpu" (Ray places the engine on any GPU), "cpu" (vLLM's CPU build) or a
    Ray accelerator type (A10G, L4, H100…) the engine's nodes must have.
    """
    engine: dict[str, Any] = {"tensor_parallel_size": request.gpus}
    if request.max_model_len is not None:
        engine["max_model_len"] = request.max_model_len
    if request.dtype != "auto":
        engine["dtype"] = request.dtype
    if request.trust_remote_code:
        engine["trust_remote_code"] = True
    if request.speculative_config is not None:
        engine["speculative_config"] = request.speculative_config
    llm: dict[str, Any] = {
        "model_loading_config": {"model_id": request.served_name,
                                 "model_source": request.target},
        "engine_kwargs": engine,
        "deployment_config": {**replicas.deployment_config(),
                              # Overload is a fast 503 the bot routes around, not a queue.
                              **({"max_queued_requests": request.max_queued}
                                 if request.max_queued is not None else {})},
        "log_engine_metrics": True,
    }
    args: dict[str, Any] = {"llm_configs": [llm]}
    if accelerator == "cpu":
        llm["accelerator_config"] = {"kind": "cpu"}
        # The ingress takes no CPU: on a small CPU host the engine needs every core it has.
        args["ingress_deployment_config"] = {"ray_actor_options": {"num_cpus": 0}}
    elif accelerator != "gpu":
        llm["accelerator_type"] = accelerator
    return {"name": request.model_id, "route_prefix": route_prefix(request.model_id),
            "import_path": IMPORT_PATH, "args": args}
