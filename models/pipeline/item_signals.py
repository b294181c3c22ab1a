"""Item-level signals of a user at a cutoff: what the item ranker (``models.pipeline.item_ranker``) scores.

One row per candidate (user, item): the items the user had any event on before the cutoff, and the ``candidates``
items most popular in the last 30 days (what a user may buy for the first time). Every signal is computed from the
events before the cutoff only, so the same function builds training rows (at an earlier cutoff, labelled with the
window after it) and the rows the model ranks at serving time.

Every signal is a count, an age or an exponentially decayed sum, so each can be kept exactly as time passes and
events arrive (an age grows with the clock, a decayed sum S(t) = S(t0) · 0.5^((t − t0) / h) plus the new terms):
what an online store needs to serve them at request time. The item's repurchase gap is a fitted per-item value.

Signals (``SIGNALS``, in model input order; counts, ages and sums enter as log1p, ages in days, a "day" is the
first event of a UTC day, 0.5^(age / h) its decayed weight):

- the user and the item: ``item_days`` (distinct days with any event on it), ``item_events``, ``target_days``
  (days with a target event: a purchase where the data has purchases), ``item_days_30`` / ``item_days_90`` (its days
  decayed with half-lives of 30 / 90 days: recency, which the model weighs against frequency), ``age_last`` /
  ``age_first`` (days since the last / first event on it; 1000 when none), ``share`` (its days / the user's active
  days), ``overdue`` (days since the last target event / the item's median repurchase gap; 0 when either is
  unknown), ``in_history``;
- the user: ``user_days`` (active days), ``user_age_last`` (days since the last event), ``user_items``;
- the user and the item's category (its latest event's): ``category_days`` (the user's days with an event in it),
  ``category_days_30`` (decayed, half-life 30 days), ``category_share`` (its days / the user's active days),
  ``category_age_last`` (days since the user's last event in it; 1000 when none);
- the item: ``item_age_last_sale`` (days since its last event by anyone), ``pop_7`` / ``pop_30`` / ``pop_90`` /
  ``pop_365`` (its users, each weighing 0.5^(age of their last event on it / h) for h = 7, 30, 90, 365 days: a
  decayed count of distinct users), ``trend`` ((pop_30 + 1) / (pop_90 + 3)), ``gap_median`` (median days
  between a user's target days on it; 400 when no user bought it twice) and ``gap_known``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
NO_EVENT_DAYS = 1000.0  # the age of an event that never happened
UNKNOWN_GAP_DAYS = 400.0  # the repurchase gap of an item nobody bought twice
POPULARITY_WINDOWS = (7, 30, 90, 365)
CANDIDATE_POPULARITY_DAYS = 30

PAIR_SIGNALS = (
    "item_days",
    "item_events",
    "target_days",
    "item_days_30",
    "item_days_90",
    "age_last",
    "age_first",
    "share",
    "overdue",
    "in_history",
)
USER_SIGNALS = ("user_days", "user_age_last", "user_items")
CATEGORY_SIGNALS = ("category_days", "category_days_30", "category_share", "category_age_last")
ITEM_SIGNALS = ("item_age_last_sale", *(f"pop_{d}" for d in POPULARITY_WINDOWS), "trend", "gap_median", "gap_known")
SIGNALS = PAIR_SIGNALS + USER_SIGNALS + CATEGORY_SIGNALS + ITEM_SIGNALS
LOG_SIGNALS = frozenset(
    {"item_days", "item_events", "target_days", "item_days_30", "item_days_90", "age_last", "age_first", "overdue"}
    | set(USER_SIGNALS)
    | {"item_age_last_sale", "gap_median", "category_days", "category_days_30", "category_age_last"}
    | {f"pop_{d}" for d in POPULARITY_WINDOWS}
)


def _ages(ts: pd.Series, cutoff: pd.Timestamp) -> pd.Series:
    return (cutoff - ts) / DAY


def item_table(events: pd.DataFrame, cutoff: pd.Timestamp, target_types: Sequence[str]) -> pd.DataFrame:
    """Per item of ``events`` (all before ``cutoff``): the item signals, raw (not log-transformed)."""
    age = _ages(events["ts"], cutoff)
    table = pd.DataFrame({"item_age_last_sale": age.groupby(events["item_id"]).min()})
    last = age.groupby([events["user_id"], events["item_id"]]).min()  # each buyer's last event on the item
    for days in POPULARITY_WINDOWS:
        table[f"pop_{days}"] = np.exp2(-last / days).groupby(level="item_id").sum()
    table["trend"] = (table["pop_30"] + 1) / (table["pop_90"] + 3)
    targets = events[events["event_type"].isin(target_types)]
    days = targets.assign(day=targets["ts"].dt.floor("D")).drop_duplicates(["user_id", "item_id", "day"])
    days = days.sort_values(["user_id", "item_id", "day"])
    gaps = (days["day"] - days.groupby(["user_id", "item_id"])["day"].shift()) / DAY
    median = gaps.groupby(days["item_id"]).median()
    table["gap_median"] = median.reindex(table.index)
    table["gap_known"] = table["gap_median"].notna().astype(float)
    table["gap_median"] = table["gap_median"].fillna(UNKNOWN_GAP_DAYS)
    return table


def history_table(events: pd.DataFrame, cutoff: pd.Timestamp, target_types: Sequence[str]) -> pd.DataFrame:
    """Per (user, item) with an event before ``cutoff``: the pair signals and the user signals, raw."""
    events = events.sort_values("ts", kind="stable")
    day = events["ts"].dt.floor("D")
    dated = events.assign(day=day, age=_ages(events["ts"], cutoff))
    daily = dated.drop_duplicates(["user_id", "item_id", "day"])
    pair = daily.groupby(["user_id", "item_id"])
    table = pd.DataFrame({"item_days": pair.size(), "age_last": pair["age"].min(), "age_first": pair["age"].max()})
    table["item_events"] = dated.groupby(["user_id", "item_id"]).size()
    for days in (30, 90):
        table[f"item_days_{days}"] = np.exp2(-daily["age"] / days).groupby([daily["user_id"], daily["item_id"]]).sum()
    targets = daily[daily["event_type"].isin(target_types)]
    target_pair = targets.drop_duplicates(["user_id", "item_id", "day"]).groupby(["user_id", "item_id"])
    table["target_days"] = target_pair.size()
    table["target_age_last"] = target_pair["age"].min()
    table = table.fillna({"item_days_30": 0.0, "item_days_90": 0.0, "target_days": 0.0}).reset_index()
    active = dated.drop_duplicates(["user_id", "day"]).groupby("user_id")
    users = pd.DataFrame(
        {
            "user_days": active.size(),
            "user_age_last": active["age"].min(),
            "user_items": daily.groupby("user_id")["item_id"].nunique(),
        }
    )
    table = table.merge(users, left_on="user_id", right_index=True)
    table["share"] = table["item_days"] / table["user_days"]
    table["in_history"] = 1.0
    return table


def category_table(events: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Per (user, category) with an event before ``cutoff``: the user's days in it (all, last 30), last age, raw."""
    events = events.sort_values("ts", kind="stable")
    dated = events.assign(day=events["ts"].dt.floor("D"), age=_ages(events["ts"], cutoff))
    daily = dated.drop_duplicates(["user_id", "category_id", "day"])
    group = daily.groupby(["user_id", "category_id"])
    table = pd.DataFrame({"category_days": group.size(), "category_age_last": group["age"].min()})
    table["category_days_30"] = np.exp2(-daily["age"] / 30).groupby([daily["user_id"], daily["category_id"]]).sum()
    return table.fillna({"category_days_30": 0.0}).reset_index()


def candidate_signals(
    events: pd.DataFrame,
    cutoff: pd.Timestamp,
    users: Sequence[str] | None = None,
    candidates: int = 50,
    target_types: Sequence[str] = ("purchase",),
) -> pd.DataFrame:
    """Rows (user_id, item_id, *SIGNALS) for ``users`` (default: every user of ``events``) at ``cutoff``, from the
    events before it: each user's history items plus the ``candidates`` items most popular in the last 30 days.
    Signals are log1p-transformed where ``LOG_SIGNALS`` says so; none is NaN."""
    events = events[events["ts"] < cutoff]
    items = item_table(events, cutoff, target_types)
    history = history_table(events, cutoff, target_types)
    if users is not None:
        history = history[history["user_id"].isin(set(users))]
    popular = items.sort_values([f"pop_{CANDIDATE_POPULARITY_DAYS}", "pop_365"], ascending=False, kind="stable")
    popular = popular.index[:candidates]
    user_rows = history.drop_duplicates("user_id").set_index("user_id")[list(USER_SIGNALS)]
    fresh = pd.MultiIndex.from_product([user_rows.index, popular], names=["user_id", "item_id"])
    fresh = fresh[~fresh.isin(pd.MultiIndex.from_frame(history[["user_id", "item_id"]]))].to_frame(index=False)
    fresh = fresh.merge(user_rows, left_on="user_id", right_index=True)
    rows = pd.concat([history, fresh], ignore_index=True).merge(items, left_on="item_id", right_index=True)
    latest = events.drop_duplicates("item_id", keep="last").set_index("item_id")["category_id"]
    rows["category_id"] = rows["item_id"].map(latest)
    rows = rows.merge(category_table(events, cutoff), on=["user_id", "category_id"], how="left")
    rows = rows.fillna({"category_days": 0.0, "category_days_30": 0.0, "category_age_last": NO_EVENT_DAYS})
    rows["category_share"] = rows["category_days"] / rows["user_days"]
    rows = rows.fillna(
        {
            "item_days": 0.0,
            "item_events": 0.0,
            "target_days": 0.0,
            "item_days_30": 0.0,
            "item_days_90": 0.0,
            "age_last": NO_EVENT_DAYS,
            "age_first": NO_EVENT_DAYS,
            "share": 0.0,
            "in_history": 0.0,
        }
    )
    rows["overdue"] = (rows["target_age_last"] / rows["gap_median"]).where(rows["gap_known"] > 0).fillna(0.0)
    for name in LOG_SIGNALS:
        rows[name] = np.log1p(rows[name].clip(lower=0))
    rows = rows.sort_values(["user_id", "item_id"], kind="stable").reset_index(drop=True)
    return rows[["user_id", "item_id", *SIGNALS]]
