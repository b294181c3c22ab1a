"""Data for the recommender: events from the staged table, features point-in-time from Feast.

Time windows of a run with ``as_of`` A (UTC midnight):
train labels in [A - eval_days - train_days, A - eval_days), test window [A - eval_days, A).
A label's features are the latest feature row at or before the label's timestamp, so no
information from after the label leaks in (the mart only counts events before its as_of), decayed
to the label's timestamp by the on-demand view ``user_interest_now`` -- the same view the service
reads at request time, so training and serving see interest computed the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FEATURE_SERVICE = "recommender_v1"


@dataclass(frozen=True)
class Windows:
    as_of: dt.datetime
    test_start: dt.datetime
    train_start: dt.datetime
    popular_start: dt.datetime

    @classmethod
    def from_config(cls, as_of: dt.datetime, cfg: dict) -> Windows:
        test_start = as_of - dt.timedelta(days=cfg["eval_days"])
        return cls(
            as_of,
            test_start,
            test_start - dt.timedelta(days=cfg["train_days"]),
            test_start - dt.timedelta(days=cfg["popular_window_days"]),
        )


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

    def interest_shares(self, category_ids, interest_scores) -> np.ndarray:
        """One user's interest share per category ``[C]`` (zeros when the user has no interest)."""
        x = np.zeros(len(self.categories), dtype=np.float32)
        if category_ids is None or interest_scores is None:
            return x
        for category, score in zip(category_ids, interest_scores):
            index = self.category_index.get(category)
            if index is not None and score is not None and score > 0:
                x[index] += score
        total = x.sum()
        return x / total if total > 0 else x


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


def point_in_time_features(store, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Feast training set: ``entity_df`` (user_id, event_timestamp, ...) joined with the feature service,
    interest decayed to each row's event_timestamp."""
    entity_df = entity_df.assign(request_ts=entity_df["event_timestamp"])
    return store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(FEATURE_SERVICE)
    ).to_df()


def most_popular(events: pd.DataFrame, n: int = 1000) -> list[str]:
    """The ``n`` items with the most events, ties by item id."""
    counts = events.groupby("item_id").size().reset_index(name="events")
    return counts.sort_values(["events", "item_id"], ascending=[False, True])["item_id"].head(n).tolist()


def build_vocabulary(history: pd.DataFrame, popular: pd.DataFrame) -> Vocabulary:
    """Items and categories seen in ``history``; the most popular items of ``popular``."""
    item_category = (history.drop_duplicates("item_id", keep="last").set_index("item_id")["category_id"]).to_dict()
    return Vocabulary(
        sorted(item_category), sorted(history["category_id"].unique()), item_category, most_popular(popular)
    )


def feature_matrix(vocab: Vocabulary, features: pd.DataFrame) -> np.ndarray:
    """Interest shares ``[N, C]`` at request time for the rows of a Feast training set."""
    pairs = zip(features["category_ids_now"], features["interest_scores_now"])
    return (
        np.stack([vocab.interest_shares(c, s) for c, s in pairs])
        if len(features)
        else np.zeros((0, len(vocab.categories)), dtype=np.float32)
    )
