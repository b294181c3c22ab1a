"""What /recommend shows besides the ranking: which items may be shown, and why each is recommended.

Pure functions of the model's vocabulary and the user's online features (no store, no database);
``tests/unit/test_explain.py`` checks them without a server.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
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
    """Boolean mask over the model's items (None: every item may be shown); ``bought``: items to leave out."""
    if category_id is None and bought is None:
        return None
    vocab = deployed.vocab
    allowed = np.ones(len(vocab.items), dtype=bool)
    if category_id is not None:
        if category_id not in vocab.category_index:
            raise BadInput(
                f"unknown category_id {category_id!r}: the model knows "
                f"{len(vocab.categories)} categories, e.g. {', '.join(vocab.categories[:5])}"
            )
        allowed &= deployed.item_categories == category_id
    for item in bought or ():
        if item in vocab.item_index:
            allowed[vocab.item_index[item]] = False
    return allowed


def half_lives(row: dict) -> dict[str, float]:
    """Half-life of each category's strongest exponential kind (for explanations)."""
    best: dict[str, tuple[float, float]] = {}
    for category, score, half_life in zip(
        row.get("kind_category_ids") or [], row.get("kind_scores") or [], row.get("kind_half_lives") or []
    ):
        if half_life == half_life and (category not in best or score > best[category][0]):
            best[category] = (score, half_life)
    return {category: half_life for category, (_, half_life) in best.items()}


def explained_items(
    vocab, order: np.ndarray, logits: np.ndarray, shares: np.ndarray, interest: dict, row: dict, now: dt.datetime
) -> list[RecommendedItem]:
    """The items at ``order`` with their scores, each explained by its category's interest (and share ``shares``
    of the user's), the category's fitted half-life and the time since the user's last event; items left out by
    a filter (score -inf) end the list."""
    lives = half_lives(row)
    last_event = utc(row.get("last_event_ts"))
    seen = f", last event {ago(now - last_event)} ago" if last_event else ""
    reasons: dict[str | None, str] = {}  # items of one category share their explanation
    items = []
    for index, score in zip(order.tolist(), logits[order].tolist()):  # Python ints and floats, not numpy scalars
        if not math.isfinite(score):  # -inf: left out by category_id / exclude_purchased
            break
        item = vocab.items[index]
        category = vocab.item_category.get(item)
        reason = reasons.get(category)
        if reason is None:
            share = shares[vocab.category_index[category]] if category in vocab.category_index else 0.0
            half_life = lives.get(category)
            reason = reasons[category] = (
                f"category {category}: interest {interest.get(category, 0.0):.2f} ({share:.0%} of the user's)"
                + (f", {decay.describe_half_life(half_life)}" if half_life else "")
                + seen
            )
        items.append(RecommendedItem(item_id=item, category_id=category, score=score, explanation=reason))
    return items
