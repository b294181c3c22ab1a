"""Offline evaluation of ad audiences (what ``/audience`` serves): for each category at a cutoff, the N users with
the highest score are the audience, and it is judged by who buys or carts in the category within the next
``window_days`` days.

Methods (a user is a candidate when the method gives them a positive score; "whole base" = every candidate):

- ``interest``: the user's decayed interest in the category, Σ 0.5^(age / h) over their events in it, the
  half-life h chosen on the validation cutoff (precision@1,000 over all categories) from ``half_lives``;
- ``recent_30d``: users who acted in the category in the last 30 days, the most recent first;
- ``most_active``: the users with the most events in the last 30 days, the same list for every category.

Metrics per category and N: precision@N (buyers in the audience / its size) and recall@N (buyers in the audience /
all buyers in the category). "Overall" pools the categories: Σ hits / Σ audience sizes, Σ hits / Σ buyers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
ACTIONS = ("purchase", "cart")  # what counts as responding to an ad
METHODS = ("interest", "recent_30d", "most_active")
RECENT_DAYS = 30


def responders(events: pd.DataFrame, cutoff: pd.Timestamp, window_days: float) -> pd.Series:
    """Per category, the set of users who bought or carted in it in [cutoff, cutoff + window)."""
    window = events[
        (events["ts"] >= cutoff) & (events["ts"] < cutoff + window_days * DAY) & events["event_type"].isin(ACTIONS)
    ]
    return window.groupby("category_id")["user_id"].agg(set)


def scores(events: pd.DataFrame, cutoff: pd.Timestamp, method: str, half_life: float = 7.0) -> pd.DataFrame:
    """Rows (category_id, user_id, score > 0) of ``method`` from the events before ``cutoff``."""
    past = events[events["ts"] < cutoff]
    age = (cutoff - past["ts"]) / DAY
    if method == "interest":
        weight = np.exp2(-age / half_life)
        out = weight.groupby([past["category_id"], past["user_id"]]).sum()
    elif method == "recent_30d":
        recent = past[age < RECENT_DAYS]
        out = -(cutoff - recent.groupby(["category_id", "user_id"])["ts"].max()) / DAY + RECENT_DAYS  # newer: higher
    elif method == "most_active":
        activity = past[age < RECENT_DAYS].groupby("user_id").size().astype(float)
        categories = past["category_id"].unique()
        out = pd.concat({c: activity for c in categories}, names=["category_id", "user_id"])
    else:
        raise ValueError(f"unknown audience method {method!r}; expected one of {', '.join(METHODS)}")
    out = out.rename("score").reset_index()
    return out[out["score"] > 0]


def audience_metrics(
    ranked: pd.DataFrame, buyers: pd.Series, sizes: Sequence[int | None]
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Per category and size (None = every candidate): audience size, hits, precision, recall; and the pooled
    (overall) precision and recall per size. Categories without a buyer are left out; ties by user id."""
    ranked = ranked.sort_values(["category_id", "score", "user_id"], ascending=[True, False, True], kind="stable")
    groups = dict(tuple(ranked.groupby("category_id")["user_id"]))
    rows = []
    for category, wanted in buyers.items():
        users = groups.get(category, pd.Series(dtype=object)).to_numpy()
        for size in sizes:
            audience = users if size is None else users[:size]
            hits = int(np.isin(audience, list(wanted)).sum())
            rows.append(
                {
                    "category_id": category,
                    "size": "all" if size is None else size,
                    "audience": len(audience),
                    "buyers": len(wanted),
                    "hits": hits,
                    "precision": hits / len(audience) if len(audience) else 0.0,
                    "recall": hits / len(wanted),
                }
            )
    table = pd.DataFrame(rows, columns=["category_id", "size", "audience", "buyers", "hits", "precision", "recall"])
    overall = {}
    for size, part in table.groupby("size", sort=False):
        overall[str(size)] = {
            "precision": float(part["hits"].sum() / max(part["audience"].sum(), 1)),
            "recall": float(part["hits"].sum() / part["buyers"].sum()),
            "audience": int(part["audience"].sum()),
        }
    return table, overall


def evaluate_audiences(
    events: pd.DataFrame,
    cutoff: pd.Timestamp,
    validation_cutoff: pd.Timestamp,
    sizes: Sequence[int | None] = (100, 1000, None),
    window_days: float = 7.0,
    half_lives: Sequence[float] = (1.0, 7.0, 30.0, 90.0),
) -> dict:
    """Every method's audiences at ``cutoff``, the interest half-life chosen at ``validation_cutoff``; returns
    {"window_days", "half_life_days", "validation", "overall": {method: {size: metrics}}, "categories": rows}."""
    tuning = {}
    validation_buyers = responders(events, validation_cutoff, window_days)
    for h in half_lives:
        _, pooled = audience_metrics(scores(events, validation_cutoff, "interest", h), validation_buyers, [1000])
        tuning[h] = pooled.get("1000", {}).get("precision", 0.0)
    best = max(tuning, key=tuning.get)
    buyers = responders(events, cutoff, window_days)
    overall, rows = {}, []
    for method in METHODS:
        table, overall[method] = audience_metrics(scores(events, cutoff, method, best), buyers, sizes)
        rows += table.assign(method=method).to_dict("records")
    return {
        "window_days": window_days,
        "half_life_days": best,
        "validation_precision@1000": tuning,
        "overall": overall,
        "categories": rows,
    }
