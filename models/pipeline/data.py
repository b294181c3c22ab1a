"""Data of a training run: its time windows, the staged events, and the vocabulary the service filters with.

Time windows of a run with ``as_of`` A (UTC midnight): the test window [A - eval_days, A); the model trains on the
events before it (``models.pipeline.item_ranker``: label windows, each with signals from the events before it, so
nothing after a label leaks in); [A - eval_days - train_days, A - eval_days) is the drift check's reference.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Windows:
    as_of: dt.datetime
    test_start: dt.datetime
    train_start: dt.datetime

    @classmethod
    def from_config(cls, as_of: dt.datetime, cfg: dict) -> Windows:
        test_start = as_of - dt.timedelta(days=cfg["eval_days"])
        return cls(as_of, test_start, test_start - dt.timedelta(days=cfg["train_days"]))


@dataclass
class Vocabulary:
    """Item and category indices of a trained model, and what the service needs beside it."""

    items: list[str]
    categories: list[str]
    item_category: dict[str, str]
    popular_items: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.item_index = {item: i for i, item in enumerate(self.items)}
        self.category_index = {c: i for i, c in enumerate(self.categories)}

    def to_json(self) -> dict:
        return {
            "items": self.items,
            "categories": self.categories,
            "item_category": self.item_category,
            "popular_items": self.popular_items,
        }

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        return cls(data["items"], data["categories"], data["item_category"], data["popular_items"])


def load_events(conn, schema: str, start: dt.datetime | None, end: dt.datetime) -> pd.DataFrame:
    """Staged events with ``start <= event_ts < end`` (``start`` None: from the beginning)."""
    query = (
        f"select user_id, item_id, category_id, event_type, event_ts from {schema}.stg_behaviour__events "
        "where event_ts < %(end)s"
        + (" and event_ts >= %(start)s" if start else "")
        + " order by event_ts, user_id, item_id"
    )
    with conn.cursor() as cur:
        cur.execute(query, {"start": start, "end": end})
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type", "event_ts"])
