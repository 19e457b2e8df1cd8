"""Leaderboard benchmark: Bradley–Terry fit plus bootstrap on synthetic arena battles.

Usage:
    python -m benchmarks.leaderboard [--battles 100000] [--models 20] [--rounds 1000] [--seed 0]

Draws `--battles` battles among `--models` models with known ratings (spread 800–1200, ties
with probability 0.3·4p(1 − p), half of them "both_bad"), then times `leaderboard()`:
compression, the point fit and `--rounds` bootstrap refits. Prints the wall time of each
stage, the largest error against the true ratings and the table. Goal: under 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from storage.leaderboard import Battle, compress, fit_bt, format_table, leaderboard


def synthetic_battles(n: int, k: int, rng: np.random.Generator) -> tuple[list[Battle], dict]:
    """`n` battles among `k` models whose expected outcome is the BT probability."""
    names = [f"model-{i:02d}" for i in range(k)]
    true = rng.uniform(800.0, 1200.0, k)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    p = 1.0 / (1.0 + 10.0 ** ((true[b] - true[a]) / 400.0))
    tie = 1.2 * p * (1.0 - p)
    u = rng.random(n)
    winner = np.where(u < p - tie / 2, "a", np.where(u < p + tie / 2, "tie", "b")).astype(object)
    winner[(winner == "tie") & (rng.random(n) < 0.5)] = "both_bad"
    battles = [Battle(names[i], names[j], w) for i, j, w in zip(a, b, winner, strict=True)]
    return battles, dict(zip(names, true, strict=True))


def bench_leaderboard(n: int, k: int, rounds: int, seed: int) -> float:
    """Run the benchmark, print the results and return the total wall time in seconds."""
    battles, true = synthetic_battles(n, k, np.random.default_rng(seed))
    t0 = time.perf_counter()
    data = compress(battles)
    t1 = time.perf_counter()
    fit_bt(data.a, data.b, data.outcome, data.weight, len(data.models))
    t2 = time.perf_counter()
    rows = leaderboard(battles, rounds=rounds, seed=seed)
    t3 = time.perf_counter()
    mean = sum(true.values()) / len(true)  # no anchor: the ratings average 1000
    error = max(abs(r.rating - (true[r.model] - mean + 1000.0)) for r in rows)
    print(format_table(rows))
    print(
        f"\n{n} battles, {k} models, {len(data.weight)} compressed rows, {rounds} rounds\n"
        f"compress {t1 - t0:.3f} s, fit {t2 - t1:.3f} s, "
        f"leaderboard (compress + fit + bootstrap) {t3 - t2:.2f} s\n"
        f"max |rating − true| = {error:.1f}"
    )
    return t3 - t2


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bench_leaderboard(args.battles, args.models, args.rounds, args.seed)
