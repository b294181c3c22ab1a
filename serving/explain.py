"""What /recommend does besides the model: which items may be shown, the ranking of one user from their online row,
and why each item is recommended.

Pure functions of the model's package and the user's online features (no store, no database);
``tests/unit/test_explain.py`` checks them without a server.
"""

from __future__ import annotations

import datetime as dt

from bentoml.exceptions import BadInput

from interest_decay import decay
from serving.deployment import LoadedRecommender
from serving.schemas import RecommendedItem


def ago(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"


def utc(value) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def allowed_items(deployed: LoadedRecommender, category_id: str | None, bought: list[str] | None):
    """Which items may be shown, as a predicate on item ids (None: every item); ``bought``: items to leave out."""
    if category_id is None and bought is None:
        return None
    vocab = deployed.vocab
    if category_id is not None and category_id not in vocab.category_index:
        raise BadInput(
            f"unknown category_id {category_id!r}: the model knows "
            f"{len(vocab.categories)} categories, e.g. {', '.join(vocab.categories[:5])}"
        )
    left_out = set(bought or ())
    categories = vocab.item_category

    def allowed(item: str) -> bool:
        return item not in left_out and (category_id is None or categories.get(item) == category_id)

    return allowed


def rank_user(package, row: dict, now: dt.datetime, k: int, allowed) -> list:
    """The user's top ``k`` (``served_ranker.Ranked``, with state values) from their online row at ``now``: what the
    DAG's evaluation computes with ``rank``, on the row of the Feast view ``user_item_signals_fv`` (``rank_row``)."""
    import pandas as pd

    return package.rank_row(row, pd.Timestamp(now), k, allowed)


def half_lives(row: dict) -> dict[str, float]:
    """Half-life of each category's strongest exponential kind (for explanations)."""
    best: dict[str, tuple[float, float]] = {}
    for category, score, half_life in zip(
        row.get("kind_category_ids") or [], row.get("kind_scores") or [], row.get("kind_half_lives") or []
    ):
        if half_life == half_life and (category not in best or score > best[category][0]):
            best[category] = (score, half_life)
    return {category: half_life for category, (_, half_life) in best.items()}


def _days(n: float) -> str:
    return f"{n:g} day" + ("" if n == 1 else "s")


def item_reason(state, now: dt.datetime) -> str:
    """What drove a candidate, from its state row (``served_ranker.Ranked.state``): the user's own history with it
    (purchase days, usual gap, how long ago) or, for an item new to them, similar shoppers' choice of it
    (``models.pipeline.neighbours``) and its recent buyers."""
    if state is None:
        return "popular recently"
    if state["in_history"]:
        if state["target_days"]:
            reason = f"bought on {_days(state['target_days'])}"
            if state["gap_known"]:
                reason += f", usually every {state['gap_median']:.0f} days"
            return reason + f", last {ago(now - utc(state['target_last_ts']))} ago"
        return f"seen on {_days(state['item_days'])}, last {ago(now - utc(state['last_ts']))} ago"
    popular = f"popular: {state['sum_pop_30']:.0f} users lately (each weighted by 0.5^(days ago / 30))"
    if state.get("neighbours", 0.0) > 0:
        return (
            f"new to the user: shoppers with baskets like theirs chose it lately (neighbour signal "
            f"{state['neighbours']:.3g}); {popular}"
        )
    return f"new to the user, {popular}"


def category_interest_now(row: dict, now: dt.datetime) -> dict[str, float]:
    """The user's interest per category at ``now`` from the stored kinds of ``user_interest_fv``: each kind's score
    times 0.5^(elapsed / its half-life), NaN half-lives held (the on-demand view ``user_interest_now``'s rule,
    computed here so /recommend reads no on-demand view: 0.8 ms a request, docs/benchmarks.md)."""
    stored = utc(row.get("scores_as_of"))
    elapsed = (now - stored).total_seconds() / 86400.0 if stored else 0.0  # exact both ways (realtime.fold_instant)
    totals: dict[str, float] = {}
    for category, score, half_life in zip(
        row.get("kind_category_ids") or [], row.get("kind_scores") or [], row.get("kind_half_lives") or []
    ):
        factor = 1.0 if half_life is None or half_life != half_life else 0.5 ** (elapsed / half_life)
        totals[category] = totals.get(category, 0.0) + score * factor
    return totals


def explained_items(ranked: list, row: dict, now: dt.datetime) -> list[RecommendedItem]:
    """The ranked items with their scores, each explained by the signals that drove it (``item_reason``) and the
    user's interest in its category now, with the category's fitted half-life."""
    lives = half_lives(row)
    interest = category_interest_now(row, now)
    total = sum(interest.values())
    items = []
    for entry in ranked:
        reason = item_reason(entry.state, now)
        category = entry.category_id
        if category in interest:
            half_life = lives.get(category)
            reason += (
                f"; category {category}: interest {interest[category]:.2f} "
                f"({interest[category] / total if total else 0.0:.0%} of the user's)"
                + (f", {decay.describe_half_life(half_life)}" if half_life else "")
            )
        items.append(
            RecommendedItem(item_id=entry.item_id, category_id=category, score=entry.score, explanation=reason)
        )
    return items
