"""Baseline rankers for the offline comparison (each a ``models.harness.ranking.Ranker``).

- ``PopularRecent`` / ``PopularAllTime``: the same list for everybody, by event count.
- ``UserHistory``: the user's own events per item, each worth ``0.5 ** (age / half_life)`` (inf: a count).
- ``HistoryRecentTies``: history count, ties broken by the item's last-30-day popularity.
- ``ItemKNN``: cosine between items over the binary user×item matrix, applied to the user's decayed history.
- ``STAN``: sequence- and time-aware user kNN after Garg et al. (SIGIR 2019), adapted from sessions to users.

Ages are measured from the train cutoff in days; a user unknown to the train events gets a zero row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from interest_decay.decay import exponential_half_life
from models.harness.ranking import TrainData

DAY = pd.Timedelta(days=1)


def ages_days(events: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    """Age of every event at ``cutoff``, in days."""
    return ((cutoff - events["ts"]) / DAY).to_numpy(dtype=float)


def user_item_matrix(events: pd.DataFrame, users: pd.Index, items: pd.Index, weights=None) -> sparse.csr_matrix:
    """Sparse [users, items] sum of ``weights`` (1 per event when None) over the events."""
    rows, cols = users.get_indexer(events["user_id"]), items.get_indexer(events["item_id"])
    data = np.ones(len(events)) if weights is None else np.asarray(weights, dtype=float)
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(users), len(items)))


def popularity(data: TrainData, days: float | None = None) -> np.ndarray:
    """Event count per catalogue item, over the last ``days`` before the cutoff (None: all time)."""
    events = data.events if days is None else data.events[data.events["ts"] >= data.cutoff - days * DAY]
    return events["item_id"].value_counts().reindex(data.items, fill_value=0).to_numpy(dtype=float)


class _PerUser:
    """Scores kept as a sparse [train users, items] matrix; ``score`` looks rows up."""

    matrix: sparse.csr_matrix
    users: pd.Index

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        rows = self.users.get_indexer(list(user_ids))
        out = np.zeros((len(rows), self.matrix.shape[1]))
        known = rows >= 0
        out[known] = self.matrix[rows[known]].toarray()
        return out


class PopularRecent:
    """Most events in the last ``days`` before the cutoff, for everybody."""

    def __init__(self, days: float = 30.0):
        self.days, self.name = days, f"popular, last {days:g} days"

    def fit(self, data: TrainData) -> PopularRecent:
        self.counts = popularity(data, self.days)
        return self

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        return np.tile(self.counts, (len(user_ids), 1))


class PopularAllTime(PopularRecent):
    """Most events before the cutoff, for everybody."""

    def __init__(self):
        self.days, self.name = None, "popular, all time"


class UserHistory(_PerUser):
    """Sum over the user's events on an item of ``0.5 ** (age / half_life_days)``; inf gives a plain count."""

    def __init__(self, half_life_days: float = float("inf")):
        self.half_life_days = float(half_life_days)
        self.name = (
            "user history count, no decay"
            if np.isinf(self.half_life_days)
            else f"user history, exponential decay (h = {self.half_life_days:g} d)"
        )

    def fit(self, data: TrainData) -> UserHistory:
        self.users = pd.Index(data.events["user_id"].unique())
        weights = exponential_half_life(ages_days(data.events, data.cutoff), self.half_life_days)
        self.matrix = user_item_matrix(data.events, self.users, data.items, weights)
        return self


class HistoryRecentTies(UserHistory):
    """History count plus ``epsilon`` × the item's recent popularity / the top one (< 1: breaks ties only)."""

    def __init__(self, days: float = 30.0, epsilon: float = 1e-3):
        super().__init__(float("inf"))
        self.days, self.epsilon = days, epsilon
        self.name = f"history no decay, ties by {days:g}-day popularity"

    def fit(self, data: TrainData) -> HistoryRecentTies:
        super().fit(data)
        self.recent = popularity(data, self.days)
        self.recent = self.epsilon * self.recent / max(self.recent.max(), 1.0)
        return self

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        return super().score(user_ids) + self.recent


class ItemKNN(_PerUser):
    """Item-to-item cosine over the binary user×item matrix; a user's profile is the decayed history.

    score(u, j) = Σ_i profile(u, i) · cos(i, j) with the diagonal (i = j) left out, so the ranker
    recommends what buyers of the user's items also bought rather than the history itself.
    """

    def __init__(self, half_life_days: float = 30.0):
        self.half_life_days = float(half_life_days)
        self.name = f"item-kNN (cosine, binary user×item), decayed weights h = {self.half_life_days:g} d"

    def fit(self, data: TrainData) -> ItemKNN:
        self.users = pd.Index(data.events["user_id"].unique())
        binary = user_item_matrix(data.events, self.users, data.items)
        binary.data[:] = 1.0
        norms = np.sqrt(np.asarray(binary.sum(axis=0))).ravel()
        scaled = binary @ sparse.diags(1.0 / np.maximum(norms, 1e-12))
        similarity = (scaled.T @ scaled).tocsr()
        similarity.setdiag(0.0)
        similarity.eliminate_zeros()
        weights = exponential_half_life(ages_days(data.events, data.cutoff), self.half_life_days)
        profile = user_item_matrix(data.events, self.users, data.items, weights)
        self.matrix = (profile @ similarity).tocsr()
        return self


class STAN(_PerUser):
    """Sequence- and time-aware user kNN (STAN, Garg et al. 2019), with a user's history as the session.

    - position decay in the user's own sequence: the item last touched ``r`` distinct items ago weighs
      ``exp(-r / position_decay)`` in the user's profile (STAN's λ1);
    - similarity to a neighbour = profile · neighbour's binary items / sqrt(|u| · |v|), times the
      neighbour's recency ``exp(-age of its last event / neighbour_decay_days)`` (λ2); the ``neighbours``
      most similar users are kept (the user itself is not a neighbour);
    - a neighbour's item counts with ``exp(-age of its last event on the item / item_decay_days)`` (λ3;
      STAN measures this by position around the shared item, here by time, which vectorises).
    """

    def __init__(
        self,
        neighbours: int = 100,
        position_decay: float = 20.0,
        neighbour_decay_days: float = 30.0,
        item_decay_days: float = 30.0,
    ):
        self.neighbours, self.position_decay = int(neighbours), float(position_decay)
        self.neighbour_decay_days, self.item_decay_days = float(neighbour_decay_days), float(item_decay_days)
        self.name = (
            f"STAN user kNN (k = {self.neighbours}, λ1 = {self.position_decay:g}, "
            f"λ2 = {self.neighbour_decay_days:g} d, λ3 = {self.item_decay_days:g} d)"
        )

    def fit(self, data: TrainData) -> STAN:
        last = data.events.drop_duplicates(["user_id", "item_id"], keep="last")
        self.users = pd.Index(last["user_id"].unique())
        age = ages_days(last, data.cutoff)
        recency_rank = last.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
        self._profile = user_item_matrix(last, self.users, data.items, np.exp(-recency_rank / self.position_decay))
        binary = user_item_matrix(last, self.users, data.items)
        self._lengths = np.asarray(binary.sum(axis=1)).ravel()
        self._items = user_item_matrix(last, self.users, data.items, np.exp(-age / self.item_decay_days))
        self._binary_t = binary.T.tocsr()
        last_seen = pd.Series(age).groupby(last["user_id"].to_numpy()).min().reindex(self.users).to_numpy()
        self._neighbour_weight = np.exp(-last_seen / self.neighbour_decay_days)
        return self

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        rows = self.users.get_indexer(list(user_ids))
        out = np.zeros((len(rows), self._items.shape[1]))
        known = np.flatnonzero(rows >= 0)
        if not len(known):
            return out
        r = rows[known]
        similarity = np.asarray((self._profile[r] @ self._binary_t).todense())  # [B, users]
        similarity /= np.sqrt(np.outer(self._lengths[r], self._lengths))
        similarity *= self._neighbour_weight
        similarity[np.arange(len(r)), r] = 0.0
        k = min(self.neighbours, similarity.shape[1] - 1)
        if k < 1:
            return out
        kth = np.take_along_axis(similarity, np.argpartition(-similarity, k - 1, axis=1)[:, k - 1 : k], axis=1)
        similarity[similarity < kth] = 0.0  # keep the k most similar (and any tied with the k-th)
        out[known] = (sparse.csr_matrix(similarity) @ self._items).toarray()
        return out
