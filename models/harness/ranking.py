"""Offline evaluation core: the ranker interface, event cleaning, the time split, ranking and metrics.

Every method compared by ``models.harness.evaluate`` is a :class:`Ranker`: fitted on :class:`TrainData` (the
cleaned events before a cutoff), it scores every catalogue item for a batch of users. The harness then
ranks with ties broken by all-time train popularity (event count, desc), then item id (asc), keeps the
top 20 and scores HR@10, HR@20, Recall@20, NDCG@10, MRR@20 and NDCG@20 per user (``models.harness.metrics``), with a
user bootstrap for confidence intervals. The same code ranks categories: :func:`retarget` makes the
category the thing that is ranked.

Cleaning applies the rules dbt staging applies (``interest_decay.events.rules``, one definition): the first
failing rule names the reason a row is dropped, and every drop is counted by rule for the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from interest_decay.events import rules
from interest_decay.events.schema import EVENT_TYPES
from models.harness.metrics import hit_rate, mrr, ndcg, recall

METRICS = ("hr@10", "hr@20", "recall@20", "ndcg@10", "mrr@20", "ndcg@20")
TOP_N = 20  # the harness keeps this many items per user; every metric is cut at 10 or 20
SPAN_START_QUANTILE = 0.001  # the data's span starts here, not at its earliest (possibly stray) event


@dataclass
class TrainData:
    events: pd.DataFrame  # cleaned events before the cutoff: user_id, item_id, category_id, event_type, ts, value
    items: pd.Index  # the catalogue: distinct item_ids of the train events; score columns follow it
    cutoff: pd.Timestamp
    # per user, the instant a time-aware ranker predicts for when it is not ``cutoff`` (leave-one-out: each user's
    # own latest train event + 1 s, since the others' events run on to the global cutoff); None: ``cutoff``
    user_now: pd.Series | None = None


class Ranker(Protocol):
    name: str

    def fit(self, data: TrainData) -> Ranker: ...

    def score(self, user_ids: Sequence[str]) -> np.ndarray: ...  # float [len(user_ids), len(items)], higher = better


# --- reading and cleaning -------------------------------------------------------------------------------


def read_events(path: Path) -> pd.DataFrame:
    """An events file of the project schema, read as ``make ingest`` reads it (text as given, a field that
    cannot be stored as text kept escaped with a ``parse_error``)."""
    from interest_decay.events.ingest import read_events as read_file
    from interest_decay.events.ingest import storable

    table, bad_rows = read_file(Path(path))
    frame = storable(table).to_pandas()
    if bad_rows:
        frame = pd.concat([frame, pd.DataFrame({"parse_error": [row.reason for row in bad_rows]})], ignore_index=True)
    return frame


class NotEnoughEvents(ValueError):
    """Cleaning left too few events to split into train, validation and test windows."""


def require_events(events: pd.DataFrame, quality: dict, min_days: int = 3) -> None:
    """Raise NotEnoughEvents, in one sentence saying why and what to change, unless ``events`` span ``min_days``
    distinct days (what a time split needs: train, validation and test)."""
    days = events["ts"].dt.floor("D").nunique() if len(events) else 0
    if days < min_days:
        dropped = ", ".join(f"{n:,} {reason}" for reason, n in quality["dropped"].items()) or "none"
        early = quality["dropped"].get(rules.RULES[9].name, 0)
        change = (
            f"set {rules.EARLIEST_SETTING} (now {rules.earliest_day()}) to a day before the data's first"
            if early and early >= sum(quality["dropped"].values()) / 2
            else "check the file's columns and timestamps against docs/event-schema.md"
        )
        raise NotEnoughEvents(
            f"{len(events):,} events on {days} day(s) are left after cleaning {quality['rows_read']:,} rows "
            f"(dropped: {dropped}): a time split needs events on at least {min_days} days; {change}"
        )


def clean_events(
    frame: pd.DataFrame,
    extra_reasons: pd.Series | None = None,
    drop_duplicates: bool = False,
    now: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Typed, valid events sorted by ts, and a data-quality summary (drops per reason, duplicates, completeness).

    ``extra_reasons`` (aligned to ``frame``; null = keep) adds dataset rules checked after staging's.
    Duplicates (equal in every schema column) are counted; they are dropped only if ``drop_duplicates``.
    """
    now = now or pd.Timestamp.now(tz="UTC")
    typed, reasons = rules.check(frame, now)
    reason = reasons.map(rules.rule_name, na_action="ignore").astype("string")
    if extra_reasons is not None:
        reason = reason.fillna(extra_reasons.astype("string"))
    events = typed[reason.isna().to_numpy()].astype(
        {"user_id": str, "item_id": str, "category_id": str, "event_type": str}
    )
    duplicated = events.duplicated(keep="first")
    if drop_duplicates:
        events = events[~duplicated]
    # By time only, keeping the file's order within a timestamp (a basket's lines as the shop wrote
    # them): sorting baskets by item id plants an order that sequence models learn as a shortcut
    # (measured: the neural model's NDCG@10 fell from .35 to .21 on Online Retail).
    events = events.sort_values("ts", kind="stable").reset_index(drop=True)
    quality = {
        "rows_read": int(len(frame)),
        "dropped": {str(k): int(v) for k, v in reason.value_counts().sort_index().items()},
        "duplicates": int(duplicated.sum()),
        "duplicates_dropped": bool(drop_duplicates),
        "events": int(len(events)),
        **describe_events(events),
    }
    return events, quality


def describe_events(events: pd.DataFrame) -> dict:
    """Size, span, completeness and anomaly indicators of cleaned events, for the data-quality table."""
    per_user = events.groupby("user_id").size()
    per_day = events.groupby(events["ts"].dt.floor("D")).size()
    categories_per_item = events.groupby("item_id")["category_id"].nunique()
    return {
        "users": int(events["user_id"].nunique()),
        "items": int(events["item_id"].nunique()),
        "categories": int(events["category_id"].nunique()),
        "event_types": {str(k): int(v) for k, v in events["event_type"].value_counts().items()},
        "first_ts": str(events["ts"].min()),
        "events_before_span_start": int(
            (events["ts"] < events["ts"].quantile(SPAN_START_QUANTILE) - pd.Timedelta(days=1)).sum()
        )
        if len(events)
        else 0,
        "last_ts": str(events["ts"].max()),
        "value_present_share": float(events["value"].notna().mean()) if len(events) else 0.0,
        "max_events_per_user": int(per_user.max()) if len(per_user) else 0,
        "top_user_share": float(per_user.max() / len(events)) if len(events) else 0.0,
        "max_day_over_median_day": float(per_day.max() / per_day.median()) if len(per_day) else 0.0,
        "items_with_several_categories": int((categories_per_item > 1).sum()),
    }


# --- tasks and the time split ------------------------------------------------------------------------


def retarget(events: pd.DataFrame, target: str) -> pd.DataFrame:
    """Events whose ``item_id`` is ``target`` (e.g. ``category_id``), so categories rank like items."""
    if target == "item_id":
        return events
    return events.assign(item_id=events[target])


def item_categories(events: pd.DataFrame, items: pd.Index) -> np.ndarray:
    """Category of each catalogue item: the category of its latest event (descriptions can change)."""
    latest = events.drop_duplicates("item_id", keep="last").set_index("item_id")["category_id"]
    return latest.reindex(items).to_numpy()


def train_data(events: pd.DataFrame, cutoff: pd.Timestamp) -> TrainData:
    """Events before ``cutoff`` and their catalogue (sorted item ids)."""
    before = events[events["ts"] < cutoff].reset_index(drop=True)
    return TrainData(before, pd.Index(np.sort(before["item_id"].unique())), cutoff)


def target_types(events: pd.DataFrame) -> list[str]:
    """Event types that count as the thing to predict: purchases when the file has any, else every type."""
    return ["purchase"] if (events["event_type"] == "purchase").any() else list(EVENT_TYPES)


@dataclass
class Split:
    train: TrainData
    users: np.ndarray  # evaluated users: >= 1 train event and >= 1 target event in the window
    relevant: list[set]  # per user: distinct target ids of the window
    window: tuple[pd.Timestamp, pd.Timestamp]  # [start, end) of the window

    def describe(self) -> dict:
        sizes = [len(r) for r in self.relevant]
        return {
            "train_events": int(len(self.train.events)),
            "catalogue": int(len(self.train.items)),
            "window": [str(self.window[0]), str(self.window[1])],
            "users": int(len(self.users)),
            "mean_relevant": float(np.mean(sizes)) if sizes else 0.0,
        }


def make_split(events: pd.DataFrame, cutoff: pd.Timestamp, end: pd.Timestamp, types: list[str]) -> Split:
    """Train before ``cutoff``; relevant = each user's distinct targets of ``types`` in [cutoff, end)."""
    train = train_data(events, cutoff)
    window = events[(events["ts"] >= cutoff) & (events["ts"] < end) & events["event_type"].isin(types)]
    window = window[window["user_id"].isin(set(train.events["user_id"]))]
    relevant = window.groupby("user_id")["item_id"].agg(set).sort_index()
    return Split(train, relevant.index.to_numpy(), relevant.tolist(), (cutoff, end))


PROTOCOLS = ("time", "next-basket", "loo")


def first_baskets(split: Split, events: pd.DataFrame, types: list[str]) -> Split:
    """The next-basket protocol on a time split: each user's relevant set becomes their first basket in the window
    (the target events sharing the user's earliest window timestamp: Online Retail's invoice lines share one)."""
    start, end = split.window
    window = events[(events["ts"] >= start) & (events["ts"] < end) & events["event_type"].isin(types)]
    window = window[window["user_id"].isin(set(split.users))]
    first = window[window["ts"] == window.groupby("user_id")["ts"].transform("min")]
    relevant = first.groupby("user_id")["item_id"].agg(set).reindex(split.users)
    return Split(split.train, split.users, relevant.tolist(), split.window)


def leave_one_out(events: pd.DataFrame, types: list[str], min_interactions: int) -> tuple[Split, Split]:
    """(validation, test) of the leave-one-out protocol by time, as RecBole's ``LS`` split with ``order: TO``.

    A user's interactions are their target events in time order (events of one timestamp in file order). Users
    with fewer than ``min_interactions`` are left out (RecBole's ``user_inter_num_interval``). The last interaction
    is the test target, the one before it the validation target. Test trains on every event before each user's
    test target (their other events of its timestamp included, in file order), validation on the events before
    the validation target. Other users' events count up to their own targets, so a user's later history is
    never read, but other users' may be (as in RecBole). The train cutoff (what "recent" means to a ranker) is
    the latest train event + 1 s; a time-aware sequence model predicts for each user at their own latest train
    event + 1 s (``TrainData.user_now``), not months after it. Relevant: the target item alone; ranking is over
    the whole train catalogue."""
    events = events.reset_index(drop=True)
    targets = events[events["event_type"].isin(types)]
    counts = targets.groupby("user_id").size()
    users = counts.index[counts >= max(min_interactions, 3)]
    targets = targets[targets["user_id"].isin(set(users))]
    order = targets.groupby("user_id").cumcount(ascending=False)  # 0: the last interaction
    held = {0: targets[order == 0], 1: targets[order == 1]}

    def split(held_out: pd.DataFrame) -> Split:
        stop = held_out.set_index("user_id")["ts"], pd.Series(held_out.index, index=held_out["user_id"].to_numpy())
        limit_ts = events["user_id"].map(stop[0])
        limit_row = events["user_id"].map(stop[1])
        before = (events["ts"] < limit_ts) | ((events["ts"] == limit_ts) & (events.index < limit_row))
        keep = before | limit_ts.isna()  # users outside the protocol keep every event
        train = events[keep.to_numpy()].reset_index(drop=True)
        cutoff = train["ts"].max() + pd.Timedelta(seconds=1)
        own = train[train["user_id"].isin(set(held_out["user_id"]))]
        user_now = own.groupby("user_id")["ts"].max() + pd.Timedelta(seconds=1)
        data = TrainData(train, pd.Index(np.sort(train["item_id"].unique())), cutoff, user_now)
        ordered = held_out.sort_values("user_id")
        return Split(data, ordered["user_id"].to_numpy(), [{i} for i in ordered["item_id"]], (cutoff, cutoff))

    return split(held[1]), split(held[0])


def default_cutoffs(
    events: pd.DataFrame, test_fraction: float, max_test_days: float, max_validation_days: float
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Test cutoff T and validation cutoff V when none are given.

    T is the midnight nearest to ``last − min(max_test_days, test_fraction · span)`` (Online Retail:
    2011-11-01, as in the reference protocol); V = T − the test window's length in whole days, at least 1
    and at most ``max_validation_days`` (Online Retail: 2011-10-01). The span starts at the 0.1% quantile
    of the timestamps, so a few stray early events (the Taobao slices have some) do not stretch it.
    """
    first, last = events["ts"].quantile(SPAN_START_QUANTILE), events["ts"].max()
    test_days = min(max_test_days, test_fraction * (last - first) / pd.Timedelta(days=1))
    cutoff = (last - pd.Timedelta(days=test_days)).round("D")
    window_days = int(np.clip(round((last - cutoff) / pd.Timedelta(days=1)), 1, max_validation_days))
    return cutoff, cutoff - pd.Timedelta(days=window_days)


# --- ranking and metrics -----------------------------------------------------------------------------


def tie_order(train: TrainData) -> np.ndarray:
    """Catalogue positions from most to least popular (event count desc, then item id asc)."""
    counts = train.events["item_id"].value_counts().reindex(train.items).to_numpy()
    return np.lexsort((train.items.to_numpy(), -counts))


def top_items(scores: np.ndarray, order: np.ndarray, n: int = TOP_N) -> np.ndarray:
    """Catalogue positions of the ``n`` best items per row; equal scores keep the tie ``order``."""
    by_tie = np.argsort(-scores[:, order], axis=1, kind="stable")[:, :n]
    return order[by_tie]


def user_metrics(ranked: Sequence, relevant: set) -> list[float]:
    """One user's HR@10, HR@20, Recall@20, NDCG@10, MRR@20, NDCG@20 (the order of ``METRICS``)."""
    return [
        hit_rate(ranked, relevant, 10),
        hit_rate(ranked, relevant, 20),
        recall(ranked, relevant, 20),
        ndcg(ranked, relevant, 10),
        mrr(ranked, relevant, 20),
        ndcg(ranked, relevant, 20),
    ]


@dataclass
class Result:
    per_user: np.ndarray  # [U, len(METRICS)]
    top: np.ndarray  # [U, TOP_N] catalogue positions

    def mean(self, metric: str = "ndcg@10") -> float:
        return float(self.per_user[:, METRICS.index(metric)].mean()) if len(self.per_user) else 0.0


def repeat_rate(events: pd.DataFrame, types: list[str]) -> float:
    """Share of target interactions (distinct user, item, day) on an item the user had a target event on an
    earlier day: how much of what users do is doing it again (Online Retail ~.4, a ratings log 0)."""
    targets = events[events["event_type"].isin(types)]
    days = targets.assign(day=targets["ts"].dt.floor("D")).drop_duplicates(["user_id", "item_id", "day"])
    return float(days.duplicated(["user_id", "item_id"]).mean()) if len(days) else 0.0


def seen_positions(train: TrainData, users: Sequence[str]) -> list[np.ndarray]:
    """Per user, the catalogue positions of the items they have any train event on."""
    mine = train.events[train.events["user_id"].isin(set(users))]
    positions = train.items.get_indexer(mine["item_id"])
    grouped = {u: np.unique(positions[rows]) for u, rows in mine.groupby("user_id").indices.items()}
    return [grouped.get(u, np.zeros(0, dtype=np.int64)) for u in users]


def evaluate(ranker: Ranker, split: Split, batch_size: int = 1024, exclude_seen: bool = False) -> Result:
    """Rank the whole catalogue for every split user with a fitted ``ranker`` and score the top 20;
    ``exclude_seen`` leaves out the items each user has a train event on (for data without repeats)."""
    order = tie_order(split.train)
    items = split.train.items.to_numpy()
    tops = []
    for start in range(0, len(split.users), batch_size):
        users = list(split.users[start : start + batch_size])
        scores = np.asarray(ranker.score(users), dtype=float)
        if exclude_seen:
            for row, seen in enumerate(seen_positions(split.train, users)):
                scores[row, seen] = -np.inf
        tops.append(top_items(scores, order))
    top = np.concatenate(tops) if tops else np.zeros((0, TOP_N), dtype=int)
    per_user = np.array([user_metrics(items[row].tolist(), relevant) for row, relevant in zip(top, split.relevant)])
    return Result(per_user.reshape(len(top), len(METRICS)), top)


def coverage(result: Result, n_items: int, k: int = 10) -> float:
    """Share of the catalogue shown in anybody's top ``k``."""
    return len(np.unique(result.top[:, :k])) / n_items if n_items else 0.0


def category_diversity(result: Result, categories: np.ndarray, k: int = 10) -> float:
    """Mean over users of distinct categories in the top ``k`` divided by ``k``."""
    if not len(result.top):
        return 0.0
    return float(np.mean([len(set(categories[row[:k]])) / k for row in result.top]))


def exposure_gini(result: Result, n_items: int, k: int = 10) -> float:
    """Gini of how often each catalogue item appears in the top ``k`` lists (0 even, 1 one item for all)."""
    counts = np.sort(np.bincount(result.top[:, :k].ravel(), minlength=n_items)).astype(float)
    if counts.sum() == 0:
        return 0.0
    cumulative = np.cumsum(counts)
    return float((n_items + 1 - 2 * (cumulative / cumulative[-1]).sum()) / n_items)


def bootstrap_indices(n_users: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """[n_resamples, n_users] user indices drawn with replacement; shared by all methods (paired)."""
    return np.random.default_rng(seed).integers(0, n_users, (n_resamples, n_users))


def confidence_interval(values: np.ndarray, indices: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the mean of per-user ``values`` over the bootstrap ``indices``."""
    means = values[indices].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def relative_gain(a: np.ndarray, b: np.ndarray, indices: np.ndarray) -> tuple[float, float, float]:
    """Relative gain mean(a)/mean(b) − 1 of paired per-user values, with its 95% paired-bootstrap interval."""
    ratio = a[indices].mean(axis=1) / np.maximum(b[indices].mean(axis=1), 1e-12)
    low, high = np.percentile(ratio - 1.0, [2.5, 97.5])
    return float(a.mean() / max(b.mean(), 1e-12) - 1.0), float(low), float(high)
