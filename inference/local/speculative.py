"""The decoding loop: plain target decoding, or assisted by a draft model (speculative decoding).

One verification step: the draft proposes k tokens one at a time; the target runs one forward
pass over its pending token (the last accepted one, not yet in its cache) and the k drafted
tokens, which gives k + 1 distributions; the longest acceptable prefix is kept and the target
adds one token of its own (the correction at the first rejection, or a bonus token after all
k). Without a draft, k = 0 and each step is an ordinary one-token decoding step, through the
same code and caches.

Counting (see `DecodingStats`):
- The prompt prefill is one target pass over all prompt tokens but the last, which stays
  pending, so the first generated token comes from the first verification step. It is
  counted in `target_passes` and not in `verify_steps`: `target_passes == verify_steps + 1`
  (or `verify_steps` for a one-token prompt, which needs no prefill).
- Near the end, a step drafts at most `remaining − 1` tokens, so it never produces more than
  `max_new_tokens`; `drafted_tokens` counts what was actually drafted.
- A step adds `n` tokens to the answer (fewer than the target allowed only when an eos token
  ends it early); it counts `n − 1` accepted tokens, the last one standing for the target's own.
  Hence always `generated_tokens == verify_steps + accepted_tokens` and
  `mean_acceptance_length == generated_tokens / verify_steps`. A step cut by eos thus counts
  the drafted eos (if accepted) as the target's token, not as accepted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from inference.local.lm import LanguageModel, LMSession, as_language_model
from inference.local.sampling import (
    SamplingParams,
    penalize,
    probabilities,
    sample,
    verify_greedy,
    verify_sampled,
)
from inference.protocol import DecodingStats

FinishReason = Literal["stop", "length", "cancelled"]
Cancel = threading.Event | Callable[[], bool] | None


@dataclass(slots=True)
class GenerationResult:
    token_ids: list[int]  # the generated tokens (an eos that ended the answer included)
    finish_reason: FinishReason
    stats: DecodingStats
    # (drafted, accepted by the target) for each verification step, for analyses beyond
    # `stats` (a step cut by eos counts its full acceptance here).
    steps: list[tuple[int, int]] = field(default_factory=list)


def _cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class SpeculativeDecoder:
    """Decodes with `target`, assisted by `draft` if given. Not thread-safe: one call at a time.

    Models are transformers causal LMs (or `LanguageModel`s) sharing one tokenizer: the draft's
    logits may not be wider than the target's. Each call starts fresh caches.
    """

    def __init__(self, target: Any, draft: Any = None, *, num_speculative_tokens: int = 4) -> None:
        self.target: LanguageModel = as_language_model(target)
        self.draft: LanguageModel | None = None if draft is None else as_language_model(draft)
        if num_speculative_tokens < 1:
            raise ValueError(f"num_speculative_tokens must be >= 1, not {num_speculative_tokens}")
        self.k = num_speculative_tokens if self.draft is not None else 0
        if self.draft is not None and self.draft.vocab_size > self.target.vocab_size:
            raise ValueError(
                f"the draft's vocabulary ({self.draft.vocab_size} tokens) is larger than the "
                f"target's ({self.target.vocab_size}): they must share one tokenizer"
            )

    def generate(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        *,
        generator: torch.Generator | None = None,
        cancel: Cancel = None,
        on_tokens: Callable[[list[int]], None] | None = None,
    ) -> GenerationResult:
        """Decode to the end; `on_tokens` gets each step's new tokens as soon as it is done."""
        steps = self.steps(prompt_ids, params, generator=generator, cancel=cancel)
        while True:
            try:
                tokens = next(steps)
            except StopIteration as stop:
                return stop.value
            if on_tokens is not None:
                on_tokens(tokens)

    def steps(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        *,
        generator: torch.Generator | None = None,
        cancel: Cancel = None,
    ) -> Generator[list[int], None, GenerationResult]:
        """Yield each verification step's new tokens; return the `GenerationResult`.

        `cancel` (an Event or a callable) is checked before every step.
        """
        if not prompt_ids:
            raise ValueError("the prompt must hold at least one token")
        return (yield from self._decode(list(prompt_ids), params, generator, cancel))

    def _decode(
        self,
        ids: list[int],
        params: SamplingParams,
        generator: torch.Generator | None,
        cancel: Cancel,
    ) -> Generator[list[int], None, GenerationResult]:
        started = time.perf_counter()
        stats = DecodingStats()
        history: list[tuple[int, int]] = []
        prompt_length = len(ids)
        assisted = self.draft is not None
        target = self.target.session(croppable=assisted)
        draft = self.draft.session(croppable=True) if self.draft is not None else None
        if prompt_length > 1 and params.max_new_tokens > 0:
            with torch.inference_mode():
                target.extend(ids[:-1], keep=1)
            stats.target_passes += 1

        # Tokens in the sequence so far, for the repetition penalty (None: no penalty).
        seen: torch.Tensor | None = None
        if params.repetition_penalty != 1:
            seen = torch.zeros(self.target.vocab_size, dtype=torch.bool)
            seen[[t for t in ids if t < self.target.vocab_size]] = True

        finish: FinishReason = "length"
        while True:
            remaining = params.max_new_tokens - (len(ids) - prompt_length)
            if remaining <= 0:
                break
            if _cancelled(cancel):
                finish = "cancelled"
                break
            k = min(self.k, remaining - 1)
            # Inference mode per step, not across the yield: the consumer's code between
            # steps keeps its own autograd state.
            with torch.inference_mode():
                drafted, accepted, own = self._step(
                    target, draft, ids, k, params, generator, seen)
            new = [*drafted[:accepted], own]
            stop_at = next((i for i, t in enumerate(new) if t in params.eos_token_ids), None)
            if stop_at is not None:
                new = new[: stop_at + 1]
            new = new[:remaining]
            ids.extend(new)
            if seen is not None:
                seen[[t for t in new if t < len(seen)]] = True
            stats.target_passes += 1
            stats.verify_steps += 1
            stats.drafted_tokens += k
            stats.accepted_tokens += len(new) - 1
            stats.generated_tokens += len(new)
            history.append((k, accepted))
            stats.seconds = time.perf_counter() - started
            yield new
            if stop_at is not None:
                finish = "stop"
                break

        stats.seconds = time.perf_counter() - started
        return GenerationResult(ids[prompt_length:], finish, stats, history)

    def _step(
        self,
        target: LMSession,
        draft: LMSession | None,
        ids: list[int],
        k: int,
        params: SamplingParams,
        generator: torch.Generator | None,
        seen: torch.Tensor | None = None,
    ) -> tuple[list[int], int, int]:
        """One verification step: (drafted tokens, how many the target accepted, its own).
        `seen` marks the tokens of `ids` for the repetition penalty (None: no penalty)."""
        drafted, draft_probs = self._propose(draft, ids, k, params, generator, seen)
        logits = target.extend(ids[target.length :] + drafted, keep=k + 1)
        if seen is not None:  # row i follows drafted[:i] too
            logits = penalize(logits, seen.to(logits.device), drafted,
                              params.repetition_penalty)
        if params.greedy:
            accepted, own = verify_greedy(drafted, logits)
        else:
            target_probs = probabilities(logits, params.temperature, params.top_p,
                                         params.top_k)
            assert draft_probs is not None
            draft_probs = draft_probs.to(target_probs.device)
            accepted, own = verify_sampled(drafted, draft_probs, target_probs, generator)
        # The target keeps the accepted drafts in its cache (its own token stays pending,
        # to be fed with the next drafts); the draft keeps what it has seen of them.
        target.truncate(len(ids) + accepted)
        if draft is not None:
            draft.truncate(min(draft.length, len(ids) + accepted))
        return drafted, accepted, own

    def _propose(
        self,
        draft: LMSession | None,
        ids: list[int],
        k: int,
        params: SamplingParams,
        generator: torch.Generator | None,
        seen: torch.Tensor | None = None,
    ) -> tuple[list[int], torch.Tensor | None]:
        """k tokens from the draft, and (when sampling) the k distributions they came from.
        The draft's logits are processed like the target's (repetition penalty included)."""
        if draft is None or k == 0:
            return [], None if params.greedy else torch.empty(0)
        assert self.draft is not None
        limit = self.draft.vocab_size - 1
        narrower = self.draft.vocab_size < self.target.vocab_size
        feed = ids[draft.length :]
        if narrower:  # the draft sees a stand-in for target-only tokens (agreement suffers only)
            feed = [min(t, limit) for t in feed]
        drafted: list[int] = []
        rows: list[torch.Tensor] = []
        context = None if seen is None else seen.clone()  # ids, then the drafts so far
        for i in range(k):
            logits = draft.extend(feed, keep=1)
            if context is not None:
                logits = penalize(logits, context.to(logits.device), [],
                                  params.repetition_penalty)
            logits = logits[0]
            if params.greedy:
                token = int(torch.argmax(logits).item())
            else:
                q = probabilities(logits, params.temperature, params.top_p, params.top_k)
                token = sample(q, generator)
                rows.append(q)
            drafted.append(token)
            if context is not None and token < len(context):
                context[token] = True
            if i < k - 1:
                feed = [token]
        if params.greedy:
            return drafted, None
        probs = torch.stack(rows)
        if narrower:
            probs = torch.nn.functional.pad(probs, (0, self.target.vocab_size - probs.shape[-1]))
        return drafted, probs


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on `device`, seeded with `seed` or, if None, from the OS."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
