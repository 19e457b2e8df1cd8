"""Bradley–Terry leaderboard math for arena battles: pure functions, no I/O.

Follows FastChat's `compute_bt` / `compute_bootstrap_bt`: P(a ≻ b) = σ(ln10 · (θa − θb)),
maximum likelihood over battles compressed to unique (a, b, outcome) rows with counts,
L-BFGS-B with the analytic gradient, ratings 400·θ + 1000 shifted so an anchor model has a
fixed score, and a multinomial bootstrap over the compressed rows for 95% intervals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import expit

ALPHA = math.log(10.0)
SCALE, BASE = 400.0, 1000.0
# Outcome for model_a per stored winner: ties and "both bad" are half a win each.
OUTCOMES: dict[str, float] = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Battle:
    """One judged pair; `winner` is "a", "b", "tie" or "both_bad" (storage spelling)."""

    model_a: str
    model_b: str
    winner: str


@dataclass(frozen=True, slots=True)
class Row:
    """One leaderboard line; `win_rate` counts ties and "both bad" as half a win."""

    rank: int
    model: str
    rating: float
    ci_low: float
    ci_high: float
    battles: int
    win_rate: float


@dataclass(frozen=True, slots=True)
class Compressed:
    """Battles as unique (a, b, outcome) rows with counts; `models` is sorted by name."""

    models: list[str]
    a: IntArray
    b: IntArray
    outcome: FloatArray
    weight: FloatArray


def compress(battles: Iterable[Battle]) -> Compressed:
    """Index models alphabetically and collapse battles to unique rows with counts."""
    rows = list(battles)
    for battle in rows:
        if battle.winner not in OUTCOMES:
            raise ValueError(f"unknown winner {battle.winner!r}")
        if battle.model_a == battle.model_b:
            raise ValueError(f"model {battle.model_a!r} cannot battle itself")
    names = np.array([r.model_a for r in rows] + [r.model_b for r in rows], dtype=object)
    models, idx = np.unique(names, return_inverse=True) if rows else (np.array([]), np.array([]))
    half = np.array([2 * OUTCOMES[r.winner] for r in rows], dtype=np.int64)
    keys = np.stack([idx[: len(rows)], idx[len(rows) :], half], axis=1).astype(np.int64)
    keys, counts = np.unique(keys.reshape(-1, 3), axis=0, return_counts=True)
    return Compressed(
        [str(m) for m in models], keys[:, 0], keys[:, 1], keys[:, 2] / 2.0, counts.astype(float)
    )


def _loss_and_grad(
    theta: FloatArray, a: IntArray, b: IntArray, y: FloatArray, w: FloatArray, l2: float
) -> tuple[float, FloatArray]:
    """Negative log-likelihood plus `l2`·Σθ², both divided by Σw, and its gradient."""
    total = w.sum()
    z = ALPHA * (theta[a] - theta[b])
    # y·softplus(−z) + (1 − y)·softplus(z) is −[y·log p + (1 − y)·log(1 − p)], overflow-free.
    nll = w @ (y * np.logaddexp(0.0, -z) + (1.0 - y) * np.logaddexp(0.0, z))
    r = ALPHA * w * (expit(z) - y)
    n = theta.size
    grad = np.bincount(a, r, n) - np.bincount(b, r, n) + 2.0 * l2 * theta
    return float(nll + l2 * theta @ theta) / total, grad / total


def fit_bt(
    model_a_idx: ArrayLike,
    model_b_idx: ArrayLike,
    outcome: ArrayLike,
    weights: ArrayLike,
    n_models: int,
    *,
    l2: float = 0.1,
    x0: FloatArray | None = None,
) -> FloatArray:
    """Maximum-likelihood θ with P(a ≻ b) = σ(ln10 · (θa − θb)); outcome 1, 0.5 or 0 for a.

    Rows are weighted by `weights` (counts of compressed battles). The penalty `l2`·Σθ²
    (a weak Gaussian prior: σ ≈ 2.2, about 900 rating points, for l2 = 0.1) pins the free
    constant, so θ is centred near 0, and keeps a model that only ever won or only ever lost
    finite: it lands some hundreds of points beyond its opponents, growing only
    logarithmically with its record, instead of diverging to ±∞. With tens of battles per
    model the prior's pull on the other ratings is negligible.
    """
    a = np.asarray(model_a_idx, dtype=np.int64)
    b = np.asarray(model_b_idx, dtype=np.int64)
    y = np.asarray(outcome, dtype=float)
    w = np.asarray(weights, dtype=float)
    start = np.zeros(n_models) if x0 is None else np.asarray(x0, dtype=float)
    if n_models == 0 or w.sum() <= 0:
        return start
    result = minimize(
        _loss_and_grad,
        start,
        args=(a, b, y, w, l2),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 500, "gtol": 1e-9, "ftol": 1e-14},
    )
    return np.asarray(result.x, dtype=float)


def ratings(theta: ArrayLike, *, anchor: int | None = 0,
            anchor_rating: float = BASE) -> FloatArray:
    """Elo-like scale 400·θ + 1000, shifted so model index `anchor` gets `anchor_rating`
    (with no anchor, so the models' mean rating is `anchor_rating`).

    Works on one θ vector or a stack of them (one per row, e.g. bootstrap rounds).
    """
    r = SCALE * np.asarray(theta, dtype=float) + BASE
    if anchor is None:
        return r - r.mean(axis=-1, keepdims=True) + anchor_rating
    return r - r[..., anchor : anchor + 1] + anchor_rating


def bootstrap(
    model_a_idx: ArrayLike,
    model_b_idx: ArrayLike,
    outcome: ArrayLike,
    weights: ArrayLike,
    n_models: int,
    *,
    rounds: int = 1000,
    rng: np.random.Generator | None = None,
    anchor: int | None = 0,
    anchor_rating: float = BASE,
    theta0: FloatArray | None = None,
    l2: float = 0.1,
) -> tuple[FloatArray, FloatArray]:
    """Per-model 2.5% and 97.5% rating quantiles over `rounds` bootstrap refits.

    Each round redraws the battle counts with `rng.multinomial(Σw, w/Σw)` over the
    compressed rows and refits, warm-started from `theta0` (the point estimate if omitted).
    Every round is anchored, so the anchor's interval has zero width (with no anchor every
    round is centred on the mean, and every model has an interval).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    w = np.asarray(weights, dtype=float)
    if theta0 is None:
        theta0 = fit_bt(model_a_idx, model_b_idx, outcome, w, n_models, l2=l2)
    draws = rng.multinomial(round(float(w.sum())), w / w.sum(), size=rounds).astype(float)
    thetas = np.array(
        [fit_bt(model_a_idx, model_b_idx, outcome, d, n_models, l2=l2, x0=theta0) for d in draws]
    )
    r = ratings(thetas, anchor=anchor, anchor_rating=anchor_rating)
    low, high = np.quantile(r, [0.025, 0.975], axis=0)
    return low, high


def leaderboard(
    battles: Iterable[Battle],
    *,
    anchor: str | None = None,
    anchor_rating: float = BASE,
    rounds: int = 1000,
    seed: int = 0,
) -> list[Row]:
    """Rows sorted by rating; with no `anchor` the ratings average `anchor_rating`.

    With `rounds=0` no bootstrap is run and the intervals are NaN.
    """
    data = compress(battles)
    n = len(data.models)
    if n == 0:
        return []
    if anchor is not None and anchor not in data.models:
        raise ValueError(f"anchor {anchor!r} has no battles")
    k = None if anchor is None else data.models.index(anchor)
    args = (data.a, data.b, data.outcome, data.weight, n)
    theta = fit_bt(*args)
    rating = ratings(theta, anchor=k, anchor_rating=anchor_rating)
    if rounds > 0:
        low, high = bootstrap(
            *args,
            rounds=rounds,
            rng=np.random.default_rng(seed),
            anchor=k,
            anchor_rating=anchor_rating,
            theta0=theta,
        )
    else:
        low = high = np.full(n, np.nan)
    played = np.bincount(data.a, data.weight, n) + np.bincount(data.b, data.weight, n)
    won = np.bincount(data.a, data.weight * data.outcome, n)
    won += np.bincount(data.b, data.weight * (1.0 - data.outcome), n)
    order = sorted(range(n), key=lambda i: (-rating[i], data.models[i]))
    return [
        Row(
            rank,
            data.models[i],
            float(rating[i]),
            float(low[i]),
            float(high[i]),
            int(played[i]),
            float(won[i] / played[i]),
        )
        for rank, i in enumerate(order, start=1)
    ]


def format_table(rows: Sequence[Row]) -> str:
    """Plain-text table: rank, model, rating, 95% CI, battles, win rate."""
    header = ("rank", "model", "rating", "95% CI", "battles", "win rate")

    def ci(row: Row) -> str:
        if math.isnan(row.ci_low):
            return "n/a"
        return f"+{row.ci_high - row.rating:.0f}/-{row.rating - row.ci_low:.0f}"

    body = [
        (str(r.rank), r.model, f"{r.rating:.0f}", ci(r), str(r.battles), f"{100 * r.win_rate:.1f}%")
        for r in rows
    ]
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]
    left = {1}  # the model name is left-aligned, numbers are right-aligned
    lines = [
        "  ".join(
            cell.ljust(wd) if c in left else cell.rjust(wd)
            for c, (cell, wd) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [header, *body]
    ]
    return "\n".join(lines)
