"""The repeat-purchase family's report: the fit as JSON, as markdown, and its kernels as a PNG.

Used by the pipeline's ``fit_decay`` step (``decay.json``, ``decay.md``, ``repeat_kernels.png``) and by
``make evaluate``'s report. The fit itself lives in ``models/fitting/repeat_decay.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from interest_decay import decay
from models.fitting.repeat_decay import RepeatParameters


def _days(h: float) -> float | str:
    return "inf" if math.isinf(h) else h


def as_json(params: RepeatParameters, scores: list[dict]) -> dict:
    """The fit for decay.json (an infinite half-life as the string "inf")."""
    return {
        "half_life_days": _days(params.half_life_days),
        "bump_weight": params.bump_weight,
        "window_days": params.window_days,
        "max_purchases": params.max_purchases,
        "shop_bump_days": list(params.shop_bump),
        "items": len(params.bumps),
        "origins": {k: int(n) for k, n in params.bumps["origin"].value_counts().items()},
        "grid": [{**s, "half_life_days": _days(s["half_life_days"])} for s in scores],
    }


def render(params: RepeatParameters, scores: list[dict], top: int = 10) -> str:
    """Markdown: the choice of π and h (with the grid's held-out scores, if given), where the bumps come from, the
    items with the most repurchase gaps."""
    grid = ["| h (days) | π | held-out NDCG@10 |", "|---|---|---|"] if scores else []
    grid += [f"| {s['half_life_days']:g} | {s['bump_weight']:g} | {s['ndcg@10']:.4f} |" for s in scores]
    origins = ", ".join(f"{n:,} {k}" for k, n in params.bumps["origin"].value_counts().items())
    chosen = (
        "no fade and no bump: the count of purchase days ranks best"
        if params.bump_weight == 0 and math.isinf(params.half_life_days)
        else f"π = {params.bump_weight:g}, h = {params.half_life_days:g} days"
    )
    busiest = params.bumps.nlargest(top, "gaps")
    items = ["| item | category | usual repurchase (days) | spread (days) | gaps | from |", "|---|---|---|---|---|---|"]
    items += [
        f"| {i} | {r['category_id']} | {r['bump_mean_days']:.1f} | {r['bump_sd_days']:.1f} | {int(r['gaps'])} | "
        f"{r['origin']} |"
        for i, r in busiest.iterrows()
    ]
    return "\n".join(
        [
            "## Repeat-purchase family",
            "",
            f"Chosen on held-out purchases: {chosen}. Items: {len(params.bumps):,} ({origins}); the shop's "
            f"repurchase interval {params.shop_bump[0]:.1f} ± {params.shop_bump[1]:.1f} days. Kept per "
            f"user × item: the latest {params.max_purchases} purchase days within {params.window_days:g} days.",
            "",
            *grid,
            "",
            *items,
            "",
            "Kernels: `repeat_kernels.png`",
            "",
        ]
    )


def plot_kernels(params: RepeatParameters, path: Path, top: int = 6) -> Path:
    """PNG of the fitted kernel of the ``top`` items with the most repurchase gaps, over the window (a year at most)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ages = np.linspace(0.0, min(params.window_days, 365.0), 300)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for item, row in params.bumps.nlargest(top, "gaps").iterrows():
        ax.plot(
            ages,
            decay.repeat(ages, params.half_life_days, params.bump_weight, row["bump_mean_days"], row["bump_sd_days"]),
            label=str(item)[:24],
        )
    ax.set(
        xlabel="days since the purchase",
        ylabel="repeat interest",
        ylim=(0, 1.05),
        title=f"Repeat-purchase kernel (π = {params.bump_weight:g}, h = {params.half_life_days:g} d)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
