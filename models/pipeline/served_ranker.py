"""The item ranker as the platform serves it: the model and the item side of its state, one package.

A user's side of the state (their items, categories and activity) comes from wherever the caller has it: the
staged events offline (``models.pipeline.item_signals`` tables), the Feast view ``user_item_signals_fv`` online
(``interest_decay.online.item_state.tables_from_rows``). The item side (each item's popularity, last sale,
repurchase gap and category, and the popular items every user gets as candidates) is computed when the model is
packaged and moves to the request time exactly (ages grow, decayed sums decay); it sees new events at the next run.
``rank`` is the one function both the DAG's evaluation and ``/recommend`` call, so what is measured offline is what
is served (``tests/e2e/test_serving.py`` compares the two over HTTP).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from interest_decay.online import item_state
from interest_decay.online.bounded_cache import BoundedCache
from models.harness import ranking
from models.pipeline.item_ranker import ItemRanker, RankerConfig, fit_item_ranker
from models.pipeline.item_signals import (
    AGES,
    ITEM_SUMS,
    LOG_SIGNALS,
    NO_EVENT_DAYS,
    SIGNALS,
    USER_SUMS,
    assemble_state,
    category_table,
    item_table,
    pair_table,
    popular_items,
    signals_at,
    user_table,
)
from models.pipeline.neighbours import WEIGHT, Neighbourhood

DAY = pd.Timedelta(days=1)
KIND = "item_ranker"


@dataclass(frozen=True)
class Ranked:
    """One recommended item: its score, and its state row when it was a candidate (None: filled by popularity)."""

    item_id: str
    category_id: str | None
    score: float
    state: Mapping | None


@dataclass
class RankerPackage:
    model: ItemRanker
    items: pd.DataFrame  # item_signals.item_table at items_as_of (index item_id)
    items_as_of: pd.Timestamp
    popular: list[str]  # the candidates every user gets besides their own items
    fallback: pd.Series  # recent popularity share in [0, 1] per item, highest first: the order of non-candidates
    target_types: list[str]
    neighbourhood: Neighbourhood  # every user's vector at items_as_of: the population of the neighbour signal

    @classmethod
    def build(cls, model: ItemRanker, events: pd.DataFrame, as_of: pd.Timestamp, cfg: RankerConfig, target_types):
        """The package of ``model`` with the item side computed from ``events`` before ``as_of``."""
        events = events[events["ts"] < as_of]
        items = item_table(events, as_of, target_types)
        recent = events[events["ts"] >= as_of - cfg.popularity_days * DAY]["item_id"].value_counts()
        counts = recent.reindex(items.index, fill_value=0).astype(float)
        fallback = (counts / max(counts.max(), 1.0)).sort_values(ascending=False, kind="stable")
        population = Neighbourhood.build(pair_table(events, as_of, target_types), items.index, cfg.neighbours)
        popular = list(popular_items(items, cfg.candidates))
        return cls(model, items, as_of, popular, fallback, list(target_types), population)

    def user_tables(self, events: pd.DataFrame, as_of: pd.Timestamp, users=None):
        """(pairs, users, categories) of ``users`` (default all) from ``events`` before ``as_of`` (offline)."""
        if users is not None:
            events = events[events["user_id"].isin(set(users))]
        return (
            pair_table(events, as_of, self.target_types),
            user_table(events, as_of),
            category_table(events, as_of),
        )

    def rank(
        self,
        pairs: pd.DataFrame,
        users: pd.DataFrame,
        categories: pd.DataFrame,
        as_of: pd.Timestamp,
        t: pd.Timestamp,
        n: int,
        allowed: Callable[[str], bool] | None = None,
        explain: bool = False,
    ) -> dict[str, list[Ranked]]:
        """The top ``n`` items of each user of ``users`` at instant ``t`` (user-side tables at ``as_of`` <= t):
        candidates by the model's score (ties by recent popularity), then the other items by recent popularity.
        ``allowed`` (item id -> bool) leaves items out; ``explain`` keeps each candidate's state row. Users without a
        state get nothing here (the caller's fallback)."""
        state = assemble_state(
            pairs, users, categories, self.items, self.popular, as_of, self.items_as_of, self.neighbourhood
        )
        if allowed is not None:
            state = state[[allowed(item) for item in state["item_id"]]]
        rows = signals_at(state, t)
        with torch.no_grad():
            scores = self.model.predict(torch.as_tensor(rows[list(SIGNALS)].to_numpy(np.float32))).numpy()
        scores = scores.astype(float) + 1e-6 * self.fallback.reindex(rows["item_id"]).to_numpy()
        state = state.assign(score=scores)
        state = state.sort_values(["user_id", "score", "item_id"], ascending=[True, False, True], kind="stable")
        out = {}
        for user, group in state.groupby("user_id", sort=False):
            group = group.iloc[:n]
            records = group.to_dict("records") if explain else [None] * len(group)
            top = [
                Ranked(item, self.items.at[item, "category_id"], float(score), record)
                for item, score, record in zip(group["item_id"], group["score"], records)
            ]
            if len(top) < n:
                taken = set(state.loc[state["user_id"] == user, "item_id"])
                for item in self.fallback.index:
                    if len(top) == n:
                        break
                    if item not in taken and (allowed is None or allowed(item)):
                        top.append(Ranked(item, self.items.at[item, "category_id"], 0.0, None))
            out[user] = top
        return out

    def rank_row(
        self, row: Mapping, t: pd.Timestamp, n: int, allowed: Callable[[str], bool] | None = None
    ) -> list[Ranked]:
        """One user's top ``n`` at ``t`` from their online row (``interest_decay.online.item_state``): what ``rank``
        gives for the tables of that row, computed with numpy on the row's arrays (~20x faster for one user;
        ``tests/unit/test_served_ranker.py`` proves the two equal). A row without state gets the popular fallback."""
        if row.get("item_ids") is None or row.get("state_as_of") is None:
            return self.popular_fallback(n, allowed)
        fast = self._fast()
        t_s, user_s = t.timestamp(), pd.Timestamp(row["state_as_of"]).timestamp()
        position = np.array([fast["index"].get(i, -1) for i in row["item_ids"]], dtype=np.int64)
        mine = position >= 0
        history = position[mine]
        owned = np.zeros(len(fast["ids"]), dtype=bool)
        owned[history] = True
        fresh = fast["popular"][~owned[fast["popular"]]]
        candidates = np.concatenate([history, fresh])
        n_fresh = len(fresh)

        def pair(field: str, missing: float) -> np.ndarray:
            values = np.asarray(row[field], dtype=float)[mine]
            return np.concatenate([values, np.full(n_fresh, missing)])

        state = {f: pair(f, np.nan if f in item_state.INSTANTS else 0.0) for f in item_state.PAIR_FIELDS}
        state["in_history"] = np.concatenate([np.ones(len(history)), np.zeros(n_fresh)])
        state["neighbours"] = self._neighbour_signal(row, history, mine, candidates)
        if allowed is not None:
            keep = np.array([allowed(fast["ids"][c]) for c in candidates], dtype=bool)
            candidates, state = candidates[keep], {f: v[keep] for f, v in state.items()}
        where = {c: j for j, c in enumerate(row["user_category_ids"] or [])}
        slot = np.array([where.get(c, -1) for c in fast["category"][candidates]], dtype=np.int64)
        known = slot >= 0
        for field in item_state.CATEGORY_FIELDS:
            values = np.asarray(row[field], dtype=float)
            missing = np.nan if field in item_state.INSTANTS else 0.0
            state[field] = np.where(known, values[np.where(known, slot, 0)] if len(values) else missing, missing)
        for field in item_state.USER_FIELDS:
            state[field] = np.full(len(candidates), float(row[field]))
        for field in ("item_last_ts", "gap_median", "gap_known", *ITEM_SUMS):
            state[field] = fast[field][candidates]
        signals = {}
        for column, signal in AGES.items():
            ages = (t_s - state[column]) / 86400.0
            signals[signal] = np.where(np.isnan(ages), NO_EVENT_DAYS, ages)
        for sums, clock in ((USER_SUMS, user_s), (ITEM_SUMS, fast["items_as_of"])):
            for column, (signal, half_life) in sums.items():
                signals[signal] = state[column] * np.exp2(-((t_s - clock) / 86400.0) / half_life)
        for field in ("item_days", "item_events", "target_days", "user_days", "user_items", "category_days"):
            signals[field] = state[field]
        for field in ("in_history", "gap_median", "gap_known", "neighbours"):
            signals[field] = state[field]
        signals["share"] = signals["item_days"] / signals["user_days"]
        signals["category_share"] = signals["category_days"] / signals["user_days"]
        signals["trend"] = (signals["pop_30"] + 1) / (signals["pop_90"] + 3)
        due = (state["gap_known"] > 0) & ~np.isnan(state["target_last_ts"])
        signals["overdue"] = np.where(due, signals["target_age_last"] / state["gap_median"], 0.0)
        for name in LOG_SIGNALS:
            signals[name] = np.log1p(np.maximum(signals[name], 0.0))  # np.clip's wrapper costs 3x
        x = torch.as_tensor(np.stack([signals[s] for s in SIGNALS], axis=1).astype(np.float32))
        with torch.no_grad():
            scores = self.model.predict(x).numpy().astype(float) + 1e-6 * fast["fallback"][candidates]
        order = np.lexsort((fast["id_rank"][candidates], -scores))[:n]
        top = [
            Ranked(
                fast["ids"][candidates[j]],
                fast["category"][candidates[j]],
                float(scores[j]),
                {
                    **{
                        f: float(state[f][j])
                        for f in ("in_history", "item_days", "target_days", "gap_known", "neighbours")
                    },
                    "gap_median": float(state["gap_median"][j]),
                    "last_ts": float(state["last_ts"][j]),  # epoch seconds (NaN: none)
                    "target_last_ts": float(state["target_last_ts"][j]),
                    "sum_pop_30": float(state["sum_pop_30"][j]),
                },
            )
            for j in order
        ]
        if len(top) < n:
            taken = set(candidates.tolist())
            for position in fast["fallback_order"]:
                if len(top) == n:
                    break
                item = fast["ids"][position]
                if position not in taken and (allowed is None or allowed(item)):
                    top.append(Ranked(item, fast["category"][position], 0.0, None))
        return top

    NEIGHBOUR_CACHE_ROWS = 100_000  # user states whose neighbour signal is kept (~2 KB each)

    def _neighbour_signal(self, row: Mapping, history: np.ndarray, mine: np.ndarray, candidates: np.ndarray):
        """The neighbour signal of a row's candidates. A user's state is immutable for its ``state_as_of`` (a live
        event moves that instant), so the value is kept per (user, state_as_of) for this package: a user's next
        request reads it back (most users have no live event between two runs); the first one computes it."""
        user = row.get("user_id")
        cache = self.__dict__.setdefault("_neighbour_cache", BoundedCache(self.NEIGHBOUR_CACHE_ROWS))
        values = cache.get((user, row["state_as_of"])) if user is not None else None
        if values is None or len(values) != len(candidates):
            weights = np.asarray(row[WEIGHT], dtype=float)[mine]
            values = self.neighbourhood.scores_one(user, history, weights, candidates)
            if user is not None:  # a row without its user id (none the service reads) is computed every time
                cache.put((user, row["state_as_of"]), values)  # least recently used dropped beyond the bound
        return values

    def _fast(self) -> dict:
        """The item side as numpy arrays by item position (built once per package)."""
        if getattr(self, "_arrays", None) is None:
            items = self.items
            ids = items.index.to_numpy(dtype=object)
            arrays = {
                "ids": ids,
                "index": {item: i for i, item in enumerate(ids)},
                "id_rank": np.argsort(np.argsort(ids.astype(str), kind="stable"), kind="stable"),
                "category": items["category_id"].to_numpy(dtype=object),
                "item_last_ts": (items["item_last_ts"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(),
                "gap_median": items["gap_median"].to_numpy(dtype=float),
                "gap_known": items["gap_known"].to_numpy(dtype=float),
                **{column: items[column].to_numpy(dtype=float) for column in ITEM_SUMS},
                "items_as_of": self.items_as_of.timestamp(),
                "fallback": self.fallback.reindex(items.index).fillna(0.0).to_numpy(dtype=float),
            }
            arrays["popular"] = np.array([arrays["index"][i] for i in self.popular], dtype=np.int64)
            arrays["fallback_order"] = items.index.get_indexer(self.fallback.index)
            self._arrays = arrays
        return self._arrays

    def popular_fallback(self, n: int, allowed: Callable[[str], bool] | None = None) -> list[Ranked]:
        """The ``n`` most popular items recently (what a user without a state gets)."""
        items = [i for i in self.fallback.index[: n * 50] if allowed is None or allowed(i)][:n]
        return [Ranked(i, self.items.at[i, "category_id"], 0.0, None) for i in items]

    def top_items(self, events: pd.DataFrame, at: pd.Timestamp, n: int = 20) -> Callable[[list[str]], list]:
        """For the harness: the top ``n`` item ids of users at ``at`` from the events before it (the popular
        fallback for a user without events), as ``/recommend`` answers."""

        def top(users: list[str]) -> list[list[str]]:
            ranked = self.rank(*self.user_tables(events, at, users), at, at, n)
            popular = [r.item_id for r in self.popular_fallback(n)]
            return [[r.item_id for r in ranked[u]] if u in ranked else popular for u in users]

        return top

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self.model.save(directory)
        self.items.to_parquet(directory / "items.parquet")
        self.neighbourhood.save(directory)
        meta = {
            "kind": KIND,
            "items_as_of": self.items_as_of.isoformat(),
            "popular": self.popular,
            "fallback": {"items": self.fallback.index.tolist(), "share": self.fallback.tolist()},
            "target_types": self.target_types,
            "neighbours": self.neighbourhood.k,
        }
        (directory / "ranker.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> RankerPackage:
        directory = Path(directory)
        meta = json.loads((directory / "ranker.json").read_text())
        items = pd.read_parquet(directory / "items.parquet")
        fallback = pd.Series(meta["fallback"]["share"], index=pd.Index(meta["fallback"]["items"], name="item_id"))
        return cls(
            ItemRanker.load(directory),
            items,
            pd.Timestamp(meta["items_as_of"]),
            meta["popular"],
            fallback,
            meta["target_types"],
            Neighbourhood.load(directory, items.index, meta["neighbours"]),
        )

    @staticmethod
    def is_package(directory: Path) -> bool:
        return (Path(directory) / "ranker.json").exists()


def train_package(events: pd.DataFrame, cutoff: pd.Timestamp, as_of: pd.Timestamp, cfg: RankerConfig, target_types):
    """An ItemRanker trained on the label windows before ``cutoff``, packaged with the item side at ``as_of``."""
    return RankerPackage.build(fit_item_ranker(events, cutoff, cfg), events, as_of, cfg, target_types)


class ItemRankerMethod:
    """The item ranker in the offline harness (``ranking.Ranker``): trained on the label windows before the
    split's cutoff and packaged at the cutoff, it ranks each user's top ``ranking.TOP_N`` with ``rank``, the
    function ``/recommend`` calls; a user without events gets the popular fallback."""

    def __init__(self, **config):
        self.cfg = RankerConfig(**config)
        self.name = "item ranker (signals → MLP, listwise)"

    def fit(self, data: ranking.TrainData) -> ItemRankerMethod:
        types = ranking.target_types(data.events)
        self.package = train_package(data.events, data.cutoff, data.cutoff, self.cfg, types)
        self.items = data.items
        self.top = self.package.top_items(data.events, data.cutoff, ranking.TOP_N)
        return self

    def score(self, user_ids) -> np.ndarray:
        """Scores ``[users, catalogue]``: TOP_N down to 1 along each user's list, 0 elsewhere."""
        out = np.zeros((len(user_ids), len(self.items)))
        for row, items in enumerate(self.top(list(user_ids))):
            columns = self.items.get_indexer(items)
            keep = columns >= 0
            out[row, columns[keep]] = (len(items) - np.arange(len(items)))[keep]
        return out
