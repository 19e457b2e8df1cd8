"""Turning logits into the distribution tokens are drawn from, and the verification rules.

The order is transformers' and vLLM's: repetition penalty, then temperature, top-k, top-p.
Both the target and the draft go through `penalize` and `probabilities` with the same
settings, so the speculative sampling rule is exact for the processed target distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick tokens. `temperature` 0 means greedy (argmax); `eos_token_ids` stop.

    `repetition_penalty` (1 = none) divides the positive logits and multiplies the negative
    ones of every token already in the sequence, prompt included, greedy or not; `top_k`
    (0 = all) keeps the k most likely tokens when sampling."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    eos_token_ids: frozenset[int] = frozenset()
    top_k: int = 0
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, not {self.top_k}")
        if self.repetition_penalty <= 0:
            raise ValueError(
                f"repetition_penalty must be > 0, not {self.repetition_penalty}")
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, not {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def penalize(logits: torch.Tensor, seen: torch.Tensor, extra: list[int],
             penalty: float) -> torch.Tensor:
    """`logits` (rows × V) with the repetition penalty on the tokens of each row's sequence:
    `seen` (a boolean mask over V) for every row, and row i also `extra[:i]` (the drafted
    tokens before it). Ids beyond V (a narrower draft's) are ignored."""
    if penalty == 1:
        return logits
    rows, width = logits.shape
    mask = seen[:width].expand(rows, width).clone()
    for i in range(1, rows):
        if (token := extra[i - 1]) < width:
            mask[i:, token] = True
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(mask, penalized, logits)


def probabilities(logits: torch.Tensor, temperature: float, top_p: float = 1.0,
                  top_k: int = 0) -> torch.Tensor:
    """Softmax of `logits / temperature` over the last axis, cut to the `top_k` most likely
    tokens (0: all), then to the top-p nucleus.

    The nucleus is the smallest set of most likely tokens whose mass reaches `top_p` (the most
    likely token is always kept); the rest get probability 0 and the nucleus is renormalised.
    """
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p >= 1:
        return probs
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    sorted_probs = torch.where(mass_before < top_p, sorted_probs, torch.zeros_like(sorted_probs))
    kept = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One token id drawn from a 1-D distribution."""
    return int(torch.multinomial(probs, 1, generator=generator).item())


def verify_greedy(drafted: list[int], target_logits: torch.Tensor) -> tuple[int, int]:
    """Accept drafted tokens while they equal the target's argmax.

    `target_logits` has one row per drafted token plus one. Returns (number accepted, the
    target's own token: the correction at the first mismatch, or the bonus after all k).
    """
    choice = torch.argmax(target_logits, dim=-1).tolist()
    accepted = 0
    while accepted < len(drafted) and drafted[accepted] == choice[accepted]:
        accepted += 1
    return accepted, choice[accepted]


def verify_sampled(
    drafted: list[int],
    draft_probs: torch.Tensor,
    target_probs: torch.Tensor,
    generator: torch.Generator | None,
) -> tuple[int, int]:
    """Speculative sampling: keep drafted token x with probability min(1, p(x) / q(x)).

    `draft_probs` (k × V) are the distributions the drafted tokens were drawn from, and
    `target_probs` ((k + 1) × V) the target's, both processed alike. At the first rejection
    the target's token is drawn from norm(max(0, p − q)); if all k are kept, a bonus token is
    drawn from the last row of p. The output is distributed exactly as sampling from p.
    """
    k = len(drafted)
    uniforms = torch.rand(k, generator=generator, device=target_probs.device).tolist()
    for i, token in enumerate(drafted):
        p, q = float(target_probs[i, token]), float(draft_probs[i, token])
        if uniforms[i] * q < p:  # u < p / q, written without the division (q > 0 here)
            continue
        residual = torch.clamp(target_probs[i] - draft_probs[i], min=0)
        if float(residual.sum()) <= 0:  # p == q up to rounding: rejection was a rounding event
            residual = target_probs[i]
        return i, sample(residual, generator)
    return k, sample(target_probs[k], generator)
