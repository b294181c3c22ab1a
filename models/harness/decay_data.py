"""The parametric decay model's training data: target baskets and the histories before them.

- ``Histories``: flat (query, event) pairs with the event's age at the query time, plus the popularity shares
  the model's base term needs, for a batch of queries (a target basket, or a user at the cutoff).
- ``EventIndex``: the train events indexed by user and time, so histories at any query time are a lookup.
- ``Baskets`` / ``target_baskets``: the training targets, one user's target events at one timestamp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import sparse

from models.harness.ranking import TrainData, item_categories, target_types

DAY_S = 86400.0


@dataclass
class Histories:
    """History pairs of ``n_rows`` queries (a target basket, or a user at the cutoff), flat over pairs."""

    row: torch.Tensor  # [P] query of each pair
    item: torch.Tensor  # [P] catalogue index of the event's item
    category: torch.Tensor  # [P] category index of the event
    event_type: torch.Tensor  # [P] event type index
    age: torch.Tensor  # [P] days between the event and the query time
    shares: torch.Tensor  # [B, 2, I] item shares of the events before the query: all time, recent window
    category_share: torch.Tensor  # [B, I] item's share of its category's all-time events before the query
    n_rows: int


def unix_seconds(ts: pd.Series) -> np.ndarray:
    """Whole Unix seconds of UTC timestamps, int64."""
    return ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


class EventIndex:
    """Train events indexed by user and time, for building :class:`Histories` at any query time."""

    def __init__(self, data: TrainData, recent_days: float, max_history: int):
        events = data.events
        self.items, self.recent_days, self.max_history = data.items, recent_days, max_history
        self.categories = pd.Index(np.sort(events["category_id"].unique()))
        self.types = pd.Index(np.sort(events["event_type"].unique()))
        self.users = pd.Index(np.sort(events["user_id"].unique()))
        seconds = unix_seconds(events["ts"])
        user = self.users.get_indexer(events["user_id"])
        order = np.lexsort((seconds, user))
        self.key = user[order].astype(np.int64) * 10**10 + seconds[order]  # sorted by user, then time
        self.user_start = np.searchsorted(self.key, np.arange(len(self.users)) * 10**10)
        self.item = self.items.get_indexer(events["item_id"])[order]
        self.category = self.categories.get_indexer(events["category_id"])[order]
        self.event_type = self.types.get_indexer(events["event_type"])[order]
        self.event_seconds = seconds[order]
        self.day0 = int(seconds.min() // DAY_S) if len(seconds) else 0
        day = seconds // int(DAY_S) - self.day0
        daily = np.zeros((int(day.max()) + 2 if len(day) else 1, len(self.items)), dtype=np.float32)
        np.add.at(daily, (day + 1, self.items.get_indexer(events["item_id"])), 1.0)
        self.before_day = daily.cumsum(0) + 1.0  # [D, I]: events before the start of each day, plus one
        self.item_category = self.categories.get_indexer(item_categories(events, self.items))
        self.category_items = sparse.csr_matrix(
            (np.ones(len(self.items), dtype=np.float32), (self.item_category, np.arange(len(self.items)))),
            shape=(len(self.categories), len(self.items)),
        )  # [C, I] 0/1

    def histories(self, users: np.ndarray, seconds: np.ndarray) -> Histories:
        """Histories of users (indices, -1 unknown) at query times (Unix seconds), last ``max_history`` events;
        popularity counts the events before the query's UTC day (day granularity keeps it a table lookup)."""
        known = users >= 0
        end = np.where(known, np.searchsorted(self.key, np.maximum(users, 0) * 10**10 + seconds), 0)
        start = np.where(known, np.maximum(self.user_start[np.maximum(users, 0)], end - self.max_history), 0)
        lengths = end - start
        row = np.repeat(np.arange(len(users)), lengths)
        index = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(start, lengths)
        age = (seconds[row] - self.event_seconds[index]) / DAY_S
        day = np.clip(seconds // int(DAY_S) - self.day0, 0, len(self.before_day) - 1)
        recent = np.clip(day - int(math.ceil(self.recent_days)), 0, None)
        all_time = self.before_day[day]  # [B, I]
        shares = np.stack([all_time, all_time - self.before_day[recent] + 1.0], axis=1)
        shares /= shares.sum(-1, keepdims=True)
        category_total = np.asarray(self.category_items @ all_time.T).T  # [B, C]
        category_share = all_time / category_total[:, self.item_category]
        return Histories(
            *(
                torch.from_numpy(a.astype(np.int64))
                for a in (row, self.item[index], self.category[index], self.event_type[index])
            ),
            torch.from_numpy(age.astype(np.float32)),
            torch.from_numpy(shares),
            torch.from_numpy(category_share),
            len(users),
        )


@dataclass
class Baskets:
    """Training targets: a basket is one user's target events at one timestamp, in random order."""

    user: np.ndarray  # [N] user index of each basket (EventIndex.users)
    seconds: np.ndarray  # [N] Unix time of each basket
    target_basket: np.ndarray  # [T] basket of each (basket, item) target pair, ascending
    target_item: np.ndarray  # [T] catalogue index of the target item

    def targets(self, start: int, stop: int, n_items: int) -> torch.Tensor:
        """0/1 ``[stop - start, I]`` target items of baskets ``start .. stop - 1``."""
        lo, hi = np.searchsorted(self.target_basket, [start, stop])
        target = torch.zeros(stop - start, n_items)
        target[torch.from_numpy(self.target_basket[lo:hi] - start), torch.from_numpy(self.target_item[lo:hi])] = 1.0
        return target


def target_baskets(data: TrainData, index: EventIndex, window_days: float, max_baskets: int, seed: int) -> Baskets:
    """Target events of the last ``window_days`` before the cutoff grouped into baskets by (user, ts), shuffled
    with ``seed``; at most ``max_baskets`` of them."""
    events = data.events
    targets = events[
        events["event_type"].isin(target_types(events)) & (events["ts"] >= data.cutoff - pd.Timedelta(days=window_days))
    ]
    codes, keys = pd.MultiIndex.from_frame(targets[["user_id", "ts"]]).factorize()
    order = np.random.default_rng(seed).permutation(len(keys))[:max_baskets]
    position = np.full(len(keys), -1)
    position[order] = np.arange(len(order))
    pairs = pd.DataFrame({"basket": position[codes], "item": index.items.get_indexer(targets["item_id"])})
    pairs = pairs[pairs["basket"] >= 0].drop_duplicates().sort_values("basket", kind="stable")
    chosen = keys[order]
    return Baskets(
        index.users.get_indexer(chosen.get_level_values(0)),
        unix_seconds(pd.Series(chosen.get_level_values(1))),
        pairs["basket"].to_numpy(),
        pairs["item"].to_numpy(),
    )
