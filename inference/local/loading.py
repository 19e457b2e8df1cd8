"""Loading a causal LM and its tokenizer from a local directory (offline, no hub access)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from inference.local.errors import LocalEngineUnavailable, ModelLoadError

DTYPES = ("auto", "float32", "float16", "bfloat16")


def require_local_engine() -> None:
    """Raise `LocalEngineUnavailable` unless torch and transformers can be imported."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise LocalEngineUnavailable() from exc


def _transformers() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    require_local_engine()
    import transformers

    return transformers


def resolve_device(device: str = "auto") -> Any:
    """`auto`: the first CUDA device if there is one, else the CPU."""
    require_local_engine()
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: Any) -> Any:
    """`auto`: float32 on CPU; bfloat16 on GPUs that support it, else float16."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cpu":
        return torch.float32
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _directory(path: str | os.PathLike[str], what: str) -> Path:
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ModelLoadError(f"{what} directory not found: {directory}")
    return directory


def load_model(path: str | os.PathLike[str], device: str = "auto", dtype: str = "auto") -> Any:
    """A `*ForCausalLM` from `path` in eval mode, on `device` with `dtype`."""
    transformers = _transformers()
    directory = _directory(path, "model")
    target_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target_device)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            directory, local_files_only=True, dtype=torch_dtype,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load a model from {directory}: {exc}") from exc
    return model.to(target_device).eval()


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """The tokenizer saved in `path`."""
    transformers = _transformers()
    directory = _directory(path, "tokenizer")
    try:
        return transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"cannot load a tokenizer from {directory}: {exc}") from exc
