"""Shoppers like this one: the item ranker's neighbour signal (user-kNN, as TIFU-KNN's neighbour part).

Each user is a vector over the catalogue: per item, their days on it decayed with a 90-day half-life (the pair
state's ``sum_item_days_90``), scaled to unit length. Every term of such a vector decays by the same factor as time
passes, so its direction, and every cosine similarity between two users, stays the same until the user's next
event: the signal needs no moving to the request time, and the online row's sums give it exactly.

The population is every user with an event before the package instant (``Neighbourhood.build``). A user's
neighbours are the ``k`` population users most similar to them (cosine, rounded to 12 decimals, ties by population
order; the user themself and users with nothing in common left out). The signal of an item is the mean over the
``k`` slots of the neighbours' unit weights on it: high when many similar shoppers chose it lately. It matters for
items new to the user, which history alone can't rank (on Online Retail it raised validation NDCG@10 by 2–3%,
``docs/models-and-evaluation.md``).

Cost: one sparse product of the user's vector with the population per user (the users who share an item with
them), a top-k over the population and a sum of ``k`` sparse rows; ~0.2 ms per request on Online Retail's 4,300
users. The package keeps the population's unit vectors (``save`` / ``load``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

WEIGHT = "sum_item_days_90"  # the pair state's column a user's vector is made of
DEFAULT_K = 200


def unit_rows(rows: np.ndarray, columns: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    """A CSR matrix of the (row, column, weight) entries, each row scaled to unit length (an all-zero row stays)."""
    matrix = sparse.csr_matrix((weights.astype(float), (rows, columns)), shape=shape)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix


@dataclass
class Neighbourhood:
    users: pd.Index  # the population's user ids, in row order
    vectors: sparse.csr_matrix  # [users, items] unit rows; columns follow ``items``
    items: pd.Index  # the item table's ids
    k: int = DEFAULT_K

    def __post_init__(self):
        self.by_item = self.vectors.T.tocsr()  # [items, users]: one user's similarities read only their items' rows
        self.item_position = {item: i for i, item in enumerate(self.items)}
        self.user_position = {user: u for u, user in enumerate(self.users)}
        self.users_of_item = np.diff(self.by_item.indptr)  # entries per row of by_item / vectors
        self.items_of_user = np.diff(self.vectors.indptr)

    @classmethod
    def build(cls, pairs: pd.DataFrame, items: pd.Index, k: int = DEFAULT_K) -> Neighbourhood:
        """The population of a pair table (``item_signals.pair_table``: user_id, item_id, ``WEIGHT``); items not
        in ``items`` left out."""
        pairs = pairs[pairs["item_id"].isin(items)]
        rows, users = pd.factorize(pairs["user_id"], sort=True)
        vectors = unit_rows(
            rows, items.get_indexer(pairs["item_id"]), pairs[WEIGHT].to_numpy(), (len(users), len(items))
        )
        return cls(pd.Index(users, name="user_id"), vectors, items, k)

    def scores(self, pairs: pd.DataFrame, candidates: pd.DataFrame) -> np.ndarray:
        """The signal of each candidate row (user_id, item_id), the users' vectors made of ``pairs`` (user_id,
        item_id, ``WEIGHT``; items outside the table left out). 0 for an item the table does not know. Each user
        goes through ``scores_one``, the path ``/recommend`` takes, so the two agree exactly."""
        out = np.zeros(len(candidates))
        pairs = pairs[pairs["item_id"].isin(self.item_position)]
        mine = {user: group for user, group in pairs.groupby("user_id", sort=False)}
        columns = self.items.get_indexer(candidates["item_id"])
        for user, rows in candidates.groupby("user_id", sort=False).indices.items():
            known = rows[columns[rows] >= 0]
            if user not in mine or not len(known):
                continue
            own = mine[user]
            out[known] = self.scores_one(
                user, self.items.get_indexer(own["item_id"]), own[WEIGHT].to_numpy(float), columns[known]
            )
        return out

    def scores_one(
        self, user_id: str | None, item_positions: np.ndarray, weights: np.ndarray, candidates: np.ndarray
    ) -> np.ndarray:
        """One user's signal for ``candidates`` (item table positions) from their items' positions and weights
        (numpy on the CSR arrays, not scipy's sparse products: those cost ~1.5 ms a user on Online Retail)."""
        norm = float(np.sqrt(np.sum(np.square(weights))))
        if norm == 0.0 or not len(candidates):
            return np.zeros(len(candidates))
        flat = _row_entries(self.by_item.indptr, item_positions)
        lengths = self.users_of_item[item_positions]
        similarity = np.bincount(
            self.by_item.indices[flat],
            weights=self.by_item.data[flat] * np.repeat(weights / norm, lengths),
            minlength=len(self.users),
        )
        similarity = np.round(similarity, 12)
        itself = self.user_position.get(user_id)
        if itself is not None:
            similarity[itself] = 0.0
        chosen = _top_k_mask(similarity[None, :], self.k)[0] & (similarity > 0)
        # The neighbours' weights on the candidates, from whichever side has fewer entries to read: the
        # neighbours' rows (all their items) or the candidates' rows (all their users, the neighbours kept).
        neighbours = np.flatnonzero(chosen)
        per_candidate = self.users_of_item[candidates]
        if per_candidate.sum() < self.items_of_user[neighbours].sum():
            flat = _row_entries(self.by_item.indptr, candidates)
            keep = chosen[self.by_item.indices[flat]]
            owner = np.repeat(np.arange(len(candidates)), per_candidate)[keep]
            return np.bincount(owner, weights=self.by_item.data[flat][keep], minlength=len(candidates)) / self.k
        flat = _row_entries(self.vectors.indptr, neighbours)
        sums = np.bincount(self.vectors.indices[flat], weights=self.vectors.data[flat], minlength=len(self.items))
        return sums[candidates] / self.k

    def save(self, directory: Path) -> None:
        sparse.save_npz(Path(directory) / "neighbours.npz", self.vectors)
        pd.DataFrame({"user_id": self.users}).to_parquet(Path(directory) / "neighbour_users.parquet")

    @classmethod
    def load(cls, directory: Path, items: pd.Index, k: int) -> Neighbourhood:
        users = pd.Index(pd.read_parquet(Path(directory) / "neighbour_users.parquet")["user_id"], name="user_id")
        return cls(users, sparse.load_npz(Path(directory) / "neighbours.npz").tocsr(), items, k)


def _row_entries(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions in a CSR matrix's ``indices`` / ``data`` of the entries of ``rows``, row after row."""
    starts, lengths = indptr[rows], indptr[np.asarray(rows) + 1] - indptr[rows]
    if not lengths.sum():
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(lengths.sum()) + offsets


def _top_k_mask(values: np.ndarray, k: int) -> np.ndarray:
    """Per row, True at its ``k`` largest values; equal values at the boundary go to the lower columns first."""
    if values.shape[1] <= k:
        return np.ones(values.shape, dtype=bool)
    threshold = -np.partition(-values, k - 1, axis=1)[:, k - 1 : k]
    mask = values > threshold
    for row, room in enumerate(k - mask.sum(axis=1)):
        mask[row, np.flatnonzero(values[row] == threshold[row, 0])[:room]] = True
    return mask
