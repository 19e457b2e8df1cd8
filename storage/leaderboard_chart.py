"""The leaderboard as a PNG: each model's rating with its 95% interval, best on top.

Pure CPU work with no global state (a `Figure` on its own Agg canvas, no pyplot), so callers
can run it in a worker thread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from storage.leaderboard import Row

WIDTH_IN, DPI = 12.8, 100  # 1280 px: Telegram's largest photo side
ROW_IN, CHROME_IN = 0.42, 1.9  # height per model, and for the title and the axis

DEFAULT_TITLE = "Arena leaderboard"


def render_chart(rows: Sequence[Row], *, title: str = DEFAULT_TITLE) -> bytes:
    """PNG bytes: one line per row (in the given order, normally by rating), the rating as a
    point, the 95% interval as whiskers (none when it is NaN), and the rating, interval and
    battle count written at the right."""
    if not rows:
        raise ValueError("no leaderboard rows to draw")
    n = len(rows)
    fig = Figure(figsize=(WIDTH_IN, CHROME_IN + ROW_IN * n), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    y = list(range(n))[::-1]  # first row on top
    ratings = [r.rating for r in rows]
    has_ci = [not (math.isnan(r.ci_low) or math.isnan(r.ci_high)) for r in rows]
    low = [r.ci_low if ok else r.rating for r, ok in zip(rows, has_ci, strict=True)]
    high = [r.ci_high if ok else r.rating for r, ok in zip(rows, has_ci, strict=True)]
    colours = [_colour(i, n) for i in range(n)]

    for i in range(0, n, 2):  # zebra stripes guide the eye from name to number
        ax.axhspan(y[i] - 0.5, y[i] + 0.5, color="#f2f4f7", zorder=0, lw=0)
    ax.hlines(y, low, high, colors=colours, lw=3, zorder=2)  # the interval, with end caps
    ax.scatter(low + high, y + y, marker="|", s=160, c=colours + colours, linewidths=2,
               zorder=2)
    ax.scatter(ratings, y, s=90, c=colours, zorder=3, edgecolors="white", linewidths=1.5)

    ax.set_yticks(y, [_plain(f"{r.rank}. {r.model}") for r in rows], fontsize=14)
    ax.set_ylim(-0.6, n - 0.4)
    span = max(max(high) - min(low), 50.0)
    ax.set_xlim(min(low) - 0.06 * span, max(high) + 0.06 * span)
    ax.tick_params(axis="x", labelsize=12)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="#d0d5dd", lw=0.8, zorder=1)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("rating (Bradley–Terry, Elo scale)", fontsize=12)

    # The numbers, in a column right of the plot (x in axes units, y in data units).
    column = blended_transform_factory(ax.transAxes, ax.transData)
    ax.text(1.02, n - 0.4, f"{'rating':>6}  {'95% CI':>9}  {'battles':>8}", transform=column,
            fontsize=13, va="bottom", color="#667085", family="DejaVu Sans Mono")
    for row, yy, ok in zip(rows, y, has_ci, strict=True):
        ci = f"+{row.ci_high - row.rating:.0f}/-{row.rating - row.ci_low:.0f}" if ok else "n/a"
        ax.text(1.02, yy, f"{row.rating:6.0f}  {ci:>9}  {row.battles:>8}", transform=column,
                fontsize=13, va="center", family="DejaVu Sans Mono")

    # Each battle counts for both of its models.
    battles = rows[0].battles if n == 1 else round(sum(r.battles for r in rows) / 2)
    models = "1 model" if n == 1 else f"{n} models"
    fig.suptitle(_plain(title), fontsize=18, fontweight="bold", x=0.01, ha="left")
    ax.set_title(f"{models} · {battles} battles · 95% bootstrap intervals", fontsize=12,
                 loc="left", color="#475467")

    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, facecolor="white")
    return out.getvalue()


def _plain(text: str) -> str:
    """Shown literally: a pair of `$` would otherwise start matplotlib's math mode."""
    return text.replace("$", r"\$")


def _colour(i: int, n: int) -> tuple[float, float, float]:
    """From a strong blue (first) to a light grey-blue (last)."""
    f = i / max(n - 1, 1)
    top, bottom = (0.12, 0.34, 0.85), (0.62, 0.68, 0.78)
    return (top[0] + f * (bottom[0] - top[0]), top[1] + f * (bottom[1] - top[1]),
            top[2] + f * (bottom[2] - top[2]))
