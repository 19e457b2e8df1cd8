"""Bradley–Terry leaderboard: recovery of known ratings, bootstrap coverage, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from storage.leaderboard import (
    Battle,
    Row,
    bootstrap,
    compress,
    fit_bt,
    format_table,
    leaderboard,
    ratings,
)

TRUE = {
    "alpha": 1000.0,
    "bravo": 1120.0,
    "charlie": 920.0,
    "delta": 1200.0,
    "echo": 1040.0,
    "foxtrot": 840.0,
}


def synthetic(true: dict[str, float], n: int, rng: np.random.Generator) -> list[Battle]:
    """Battles whose expected outcome is exactly the BT probability, with ties.

    A tie has probability 4·0.3·p(1 − p) and takes half of its mass from each side, so
    E[outcome] = p, the model the fit assumes (ties as half a win).
    """
    names = sorted(true)
    theta = np.array([true[m] for m in names]) / 400.0
    k = len(names)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    p = 1.0 / (1.0 + 10.0 ** (theta[b] - theta[a]))
    tie = 1.2 * p * (1.0 - p)
    u = rng.random(n)
    winner = np.where(u < p - tie / 2, "a", np.where(u < p + tie / 2, "tie", "b")).astype(object)
    winner[(winner == "tie") & (rng.random(n) < 0.5)] = "both_bad"
    return [Battle(names[i], names[j], str(w)) for i, j, w in zip(a, b, winner, strict=True)]


def test_recovers_true_order_and_values() -> None:
    battles = synthetic(TRUE, 20_000, np.random.default_rng(1))
    rows = leaderboard(battles, anchor="alpha", rounds=0)
    assert [r.model for r in rows] == sorted(TRUE, key=TRUE.__getitem__, reverse=True)
    for row in rows:
        assert row.rating == pytest.approx(TRUE[row.model], abs=20)
    assert [r.rank for r in rows] == list(range(1, len(TRUE) + 1))
    assert sum(r.battles for r in rows) == 2 * len(battles)


def test_bootstrap_intervals_cover_true_ratings() -> None:
    covered = total = 0
    # Without an anchor the ratings average 1000: compare with the truth in that gauge.
    mean = sum(TRUE.values()) / len(TRUE)
    truth = {m: r - mean + 1000.0 for m, r in TRUE.items()}
    for seed in range(40):
        battles = synthetic(TRUE, 2_000, np.random.default_rng(100 + seed))
        for row in leaderboard(battles, rounds=200, seed=seed):
            assert row.ci_low < row.rating < row.ci_high
            total += 1
            covered += row.ci_low <= truth[row.model] <= row.ci_high
    assert 0.85 <= covered / total <= 1.0


def test_an_anchor_has_a_zero_width_interval() -> None:
    battles = synthetic(TRUE, 2_000, np.random.default_rng(7))
    rows = {r.model: r for r in leaderboard(battles, anchor="alpha", rounds=50)}
    assert rows["alpha"].ci_low == rows["alpha"].ci_high == rows["alpha"].rating == 1000.0
    assert all(r.ci_low < r.ci_high for m, r in rows.items() if m != "alpha")


def test_anchor_gets_exactly_its_rating() -> None:
    battles = synthetic(TRUE, 3_000, np.random.default_rng(2))
    rows = {r.model: r for r in leaderboard(battles, anchor="delta", rounds=20)}
    assert rows["delta"].rating == 1000.0
    rows = leaderboard(battles, anchor="echo", anchor_rating=1114.0, rounds=0)
    assert next(r.rating for r in rows if r.model == "echo") == 1114.0
    # No anchor: the ratings average 1000.
    default = [r.rating for r in leaderboard(battles, rounds=0)]
    assert sum(default) / len(default) == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="anchor"):
        leaderboard(battles, anchor="zulu", rounds=0)


def test_ratings_scale_and_shift() -> None:
    out = ratings(np.array([0.5, 0.0, -0.25]), anchor=1, anchor_rating=1100.0)
    assert out.tolist() == [1300.0, 1100.0, 1000.0]
    stacked = ratings(np.array([[0.0, 1.0], [1.0, 1.0]]))
    assert stacked.tolist() == [[1000.0, 1400.0], [1000.0, 1000.0]]


def test_win_rate_counts_ties_as_half() -> None:
    battles = [
        Battle("x", "y", "a"),
        Battle("x", "y", "a"),
        Battle("y", "x", "tie"),
        Battle("x", "y", "both_bad"),
        Battle("y", "x", "a"),
        Battle("x", "z", "b"),
    ]
    rows = {r.model: r for r in leaderboard(battles, rounds=0)}
    assert rows["x"].battles == 6 and rows["y"].battles == 5 and rows["z"].battles == 1
    assert rows["x"].win_rate == pytest.approx((2 + 0.5 + 0.5) / 6)
    assert rows["y"].win_rate == pytest.approx((1 + 0.5 + 0.5) / 5)
    assert rows["z"].win_rate == 1.0


def test_ties_are_half_a_win_in_the_fit() -> None:
    data = compress([Battle("p", "q", "tie"), Battle("q", "p", "both_bad")] * 5)
    assert data.models == ["p", "q"]
    assert sorted(data.outcome.tolist()) == [0.5, 0.5]
    theta = fit_bt(data.a, data.b, data.outcome, data.weight, 2)
    assert theta[0] == pytest.approx(theta[1], abs=1e-6)
    # One win and one loss each way plus ties: still equal.
    more = compress([Battle("p", "q", "a"), Battle("p", "q", "b"), Battle("p", "q", "tie")])
    theta = fit_bt(more.a, more.b, more.outcome, more.weight, 2)
    assert theta[0] == pytest.approx(theta[1], abs=1e-6)


def test_undefeated_and_winless_models_stay_finite() -> None:
    rng = np.random.default_rng(3)
    battles = synthetic({"m1": 1000.0, "m2": 1100.0, "m3": 950.0}, 600, rng)
    battles += [Battle("champ", "m1", "a")] * 30 + [Battle("m2", "champ", "b")] * 30
    battles += [Battle("dud", "m3", "b")] * 20 + [Battle("m1", "dud", "a")] * 20
    rows = {r.model: r for r in leaderboard(battles, anchor="m1", rounds=50)}
    for row in rows.values():
        assert all(math.isfinite(v) for v in (row.rating, row.ci_low, row.ci_high))
    assert rows["champ"].rank == 1 and rows["dud"].rank == len(rows)
    # Beyond its opponents, but within a few hundred points, not off towards ±∞.
    assert rows["m2"].rating + 100 < rows["champ"].rating < rows["m2"].rating + 1500
    assert rows["m3"].rating - 1500 < rows["dud"].rating < rows["m3"].rating - 100
    assert rows["champ"].win_rate == 1.0 and rows["dud"].win_rate == 0.0


def test_bootstrap_is_seeded() -> None:
    data = compress(synthetic(TRUE, 1_000, np.random.default_rng(4)))
    args = (data.a, data.b, data.outcome, data.weight, len(data.models))
    first = bootstrap(*args, rounds=30, rng=np.random.default_rng(7))
    second = bootstrap(*args, rounds=30, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert np.all(first[0] <= first[1])


def test_invalid_battles_are_rejected() -> None:
    with pytest.raises(ValueError, match="winner"):
        compress([Battle("x", "y", "draw")])
    with pytest.raises(ValueError, match="itself"):
        compress([Battle("x", "x", "a")])
    assert leaderboard([]) == []


def test_format_table_has_header_and_one_line_per_model() -> None:
    rows = [
        Row(1, "gpt-long-model-name", 1123.4, 1110.0, 1140.0, 1200, 0.6125),
        Row(2, "small", 1000.0, 1000.0, 1000.0, 980, 0.5),
        Row(3, "new", 950.0, math.nan, math.nan, 3, 0.0),
    ]
    text = format_table(rows)
    lines = text.splitlines()
    assert len(lines) == 1 + len(rows)
    for word in ("rank", "model", "rating", "95% CI", "battles", "win rate"):
        assert word in lines[0]
    assert "gpt-long-model-name" in lines[1] and "1123" in lines[1] and "+17/-13" in lines[1]
    assert "61.3%" in lines[1] and "n/a" in lines[3]
    # Columns are aligned: the model column starts at the same offset on every line.
    assert (
        len(
            {
                line.index(name)
                for line, name in zip(
                    lines, ["model", "gpt-long-model-name", "small", "new"], strict=True
                )
            }
        )
        == 1
    )
