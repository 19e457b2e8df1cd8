"""GPU bookkeeping for one host, GPU lists and free TCP ports (pure apart from a socket bind)."""

from __future__ import annotations

import socket


class GpuPool:
    """Which of a host's GPUs are free; hands out the lowest free ids first.

    On a CPU host (`device="cpu"`) the ids are server slots, not devices: a server takes one,
    and no CUDA_VISIBLE_DEVICES is set for it.
    """

    def __init__(self, gpu_ids: list[int], device: str = "cuda") -> None:
        if len(set(gpu_ids)) != len(gpu_ids):
            raise ValueError(f"duplicate GPU ids in {gpu_ids}")
        if any(not isinstance(g, int) or g < 0 for g in gpu_ids):
            raise ValueError(f"GPU ids must be non-negative integers, got {gpu_ids}")
        if device not in ("cuda", "cpu"):
            raise ValueError(f"device must be cuda or cpu, got {device!r}")
        self.gpu_ids = sorted(gpu_ids)
        self.device = device
        self._free = set(gpu_ids)

    @classmethod
    def cpu(cls, slots: int) -> GpuPool:
        """A CPU host that runs up to `slots` servers at once."""
        if slots < 1:
            raise ValueError(f"--cpu must be at least 1 server, got {slots}")
        return cls(list(range(slots)), device="cpu")

    @property
    def unit(self) -> str:
        return "GPU" if self.device == "cuda" else "CPU slot"

    @property
    def max_tensor_parallel(self) -> int:
        """The most GPUs one server may take here (1 on a CPU host)."""
        return len(self.gpu_ids) if self.device == "cuda" else 1

    @property
    def free(self) -> list[int]:
        return sorted(self._free)

    def allocate(self, n: int) -> list[int] | None:
        """Take ``n`` free GPUs, or None (taking nothing) when fewer are free."""
        if n < 1:
            raise ValueError(f"cannot allocate {n} GPUs")
        if n > len(self._free):
            return None
        ids = sorted(self._free)[:n]
        self._free.difference_update(ids)
        return ids

    def release(self, ids: list[int]) -> None:
        """Give back GPUs taken by :meth:`allocate`."""
        bad = [g for g in ids if g not in self.gpu_ids or g in self._free]
        if bad:
            raise ValueError(f"GPUs {bad} are not allocated from this pool")
        self._free.update(ids)


def parse_gpus(spec: str) -> list[int]:
    """GPU ids from ``"0,1,3"`` (ranges such as ``"0-3"`` too)."""
    ids: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"--gpus must list GPU ids like 0,1,3 or 0-3, got {spec!r}")
        ids += range(int(low), int(high or low) + 1)
    if not ids or len(set(ids)) != len(ids):
        raise ValueError(f"--gpus must list at least one GPU id, none twice, got {spec!r}")
    return ids


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it; another process may race us)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
