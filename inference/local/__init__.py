"""The in-process transformers engine (`backend: hf`) with our own speculative decoding.

Importing this package does not import torch: the decoding loop and the loaders live in
submodules that are imported when a model is first loaded (`pip install 'chatmux[local]'`).

- `inference.local.speculative`: `SpeculativeDecoder`, the synchronous decoding loop (plain
  and assisted) [torch]; `inference.local.sampling`: `SamplingParams`, temperature/top-p and
  the verification rules [torch]; `inference.local.lm`: the KV-cache adapter [torch].
- `inference.local.loading`: `load_model`, `load_tokenizer` from local directories [torch,
  imported when called].
- `inference.local.engine`: `LocalEngine`, one generation at a time in a worker thread;
  `inference.local.detokenize`: streaming text from token ids.
- `inference.local.backend`: `HFBackend`, the `ChatBackend` over a `LocalEngine`.
"""

from __future__ import annotations

from inference.local.backend import HFBackend, engine_installed
from inference.local.engine import LocalEngine
from inference.local.errors import INSTALL_HINT, LocalEngineUnavailable, ModelLoadError

__all__ = [
    "INSTALL_HINT",
    "HFBackend",
    "LocalEngine",
    "LocalEngineUnavailable",
    "ModelLoadError",
    "engine_installed",
]
