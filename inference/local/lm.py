"""What the decoding loop needs of a causal LM: a per-sequence KV cache it can extend and crop.

`HFLanguageModel` adapts a transformers causal LM with a `DynamicCache`. Tests may pass any
other object with the same two small protocols.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import torch


class LMSession(Protocol):
    """The cached state of one sequence."""

    @property
    def length(self) -> int:
        """How many tokens are in the cache."""
        ...

    def extend(self, ids: list[int], keep: int) -> torch.Tensor:
        """Append `ids` to the cache; return float32 logits of the last `keep` positions."""
        ...

    def truncate(self, length: int) -> None:
        """Drop cached tokens beyond `length`."""
        ...


class LanguageModel(Protocol):
    vocab_size: int  # width of the logits

    def session(self, *, croppable: bool) -> LMSession: ...


class HFLanguageModel:
    """A transformers `*ForCausalLM` seen through `LanguageModel`."""

    def __init__(self, model: Any) -> None:
        self.model = model
        head = model.get_output_embeddings()
        weight = getattr(head, "weight", None)
        if weight is not None:
            self.vocab_size = int(weight.shape[0])
        else:
            self.vocab_size = int(model.config.get_text_config().vocab_size)
        self.device = next(model.parameters()).device
        takes = inspect.signature(model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in takes
        # transformers 5 calls it `cache` (the old name goes in 5.40, into **kwargs unseen).
        self._cache_arg = "cache" if "cache" in takes else "past_key_values"

    def session(self, *, croppable: bool) -> HFSession:
        return HFSession(self, croppable=croppable)


class HFSession:
    def __init__(self, lm: HFLanguageModel, *, croppable: bool) -> None:
        from transformers import DynamicCache

        self._lm = lm
        try:
            self.cache = DynamicCache(config=lm.model.config)
        except TypeError:  # transformers < 4.56 builds its layers lazily
            self.cache = DynamicCache()
        if croppable and not getattr(self.cache, "is_croppable", True):
            name = type(lm.model).__name__
            raise ValueError(f"{name}'s cache cannot be cropped, so it cannot verify drafts")
        self._length = 0

    @property
    def length(self) -> int:
        return self._length

    def extend(self, ids: list[int], keep: int) -> torch.Tensor:
        lm = self._lm
        kwargs: dict[str, Any] = {"logits_to_keep": keep} if lm._logits_to_keep else {}
        input_ids = torch.tensor([ids], dtype=torch.long, device=lm.device)
        kwargs[lm._cache_arg] = self.cache
        out = lm.model(input_ids=input_ids, use_cache=True, **kwargs)
        self._length += len(ids)
        return out.logits[0, -keep:].float()

    def truncate(self, length: int) -> None:
        excess = self._length - length
        if excess > 0:
            self.cache.crop(-excess)  # a negative argument removes that many tokens
            self._length = length


def as_language_model(model: Any) -> LanguageModel:
    """`model` itself if it already is a `LanguageModel`, else wrapped as a transformers model."""
    if hasattr(model, "session") and hasattr(model, "vocab_size"):
        return model
    return HFLanguageModel(model)
