"""Item-level signals of a user at a cutoff: what the item ranker (``models.pipeline.item_ranker``) scores.

One row per candidate (user, item): the items the user had any event on before the cutoff, and the ``candidates``
items most popular in the last 30 days (what a user may buy for the first time). Every signal is computed from the
events before the cutoff only, so the same function builds training rows (at an earlier cutoff, labelled with the
window after it) and the rows the model ranks at serving time.

Every signal is a count, an age or an exponentially decayed sum, so each can be kept exactly as time passes and
events arrive (an age grows with the clock, a decayed sum S(t) = S(t0) · 0.5^((t − t0) / h) plus the new terms):
what an online store needs to serve them at request time. The item's repurchase gap is a fitted per-item value.
``signal_state`` keeps that state at an instant, ``signals_at`` moves it to a later one (exact: a unit test
compares it with the signals computed there), and ``candidate_signals`` is the two at the same instant.

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


# The state behind the signals at an instant ``as_of``: counts, the instants of last / first events, and the
# decayed sums at ``as_of`` (columns "sum_<h>_..."). ``signals_at`` moves it to any later instant exactly: ages grow
# with the clock, a sum decayed with half-life h is multiplied by 0.5^(elapsed / h).
DECAYED_SUMS = {  # state column -> (signal, half-life in days)
    "sum_item_days_30": ("item_days_30", 30.0),
    "sum_item_days_90": ("item_days_90", 30.0 * 3),
    "sum_category_days_30": ("category_days_30", 30.0),
    **{f"sum_pop_{d}": (f"pop_{d}", float(d)) for d in POPULARITY_WINDOWS},
}
AGES = {  # state column (an instant) -> signal (days since it)
    "last_ts": "age_last",
    "first_ts": "age_first",
    "target_last_ts": "target_age_last",
    "user_last_ts": "user_age_last",
    "category_last_ts": "category_age_last",
    "item_last_ts": "item_age_last_sale",
}


def _decayed(ages: pd.Series, half_life: float) -> pd.Series:
    return np.exp2(-ages / half_life)


def item_table(events: pd.DataFrame, as_of: pd.Timestamp, target_types: Sequence[str]) -> pd.DataFrame:
    """Per item of ``events`` (all before ``as_of``): its state (last event, decayed distinct buyers, gap)."""
    age = _ages(events["ts"], as_of)
    table = pd.DataFrame({"item_last_ts": events["ts"].groupby(events["item_id"]).max()})
    last = age.groupby([events["user_id"], events["item_id"]]).min()  # each buyer's last event on the item
    for days in POPULARITY_WINDOWS:
        table[f"sum_pop_{days}"] = _decayed(last, days).groupby(level="item_id").sum()
    targets = events[events["event_type"].isin(target_types)]
    days = targets.assign(day=targets["ts"].dt.floor("D")).drop_duplicates(["user_id", "item_id", "day"])
    days = days.sort_values(["user_id", "item_id", "day"])
    gaps = (days["day"] - days.groupby(["user_id", "item_id"])["day"].shift()) / DAY
    median = gaps.groupby(days["item_id"]).median()
    table["gap_median"] = median.reindex(table.index)
    table["gap_known"] = table["gap_median"].notna().astype(float)
    table["gap_median"] = table["gap_median"].fillna(UNKNOWN_GAP_DAYS)
    return table


def history_table(events: pd.DataFrame, as_of: pd.Timestamp, target_types: Sequence[str]) -> pd.DataFrame:
    """Per (user, item) with an event before ``as_of``: the pair's and the user's state."""
    events = events.sort_values("ts", kind="stable")
    dated = events.assign(day=events["ts"].dt.floor("D"), age=_ages(events["ts"], as_of))
    daily = dated.drop_duplicates(["user_id", "item_id", "day"])
    pair = daily.groupby(["user_id", "item_id"])
    table = pd.DataFrame({"item_days": pair.size(), "last_ts": pair["ts"].max(), "first_ts": pair["ts"].min()})
    table["item_events"] = dated.groupby(["user_id", "item_id"]).size()
    for days in (30, 90):
        table[f"sum_item_days_{days}"] = (
            _decayed(daily["age"], days).groupby([daily["user_id"], daily["item_id"]]).sum()
        )
    targets = daily[daily["event_type"].isin(target_types)].groupby(["user_id", "item_id"])
    table["target_days"] = targets.size()
    table["target_last_ts"] = targets["ts"].max()
    table = table.fillna({"target_days": 0.0}).reset_index()
    active = dated.drop_duplicates(["user_id", "day"]).groupby("user_id")
    users = pd.DataFrame(
        {
            "user_days": active.size(),
            "user_last_ts": active["ts"].max(),
            "user_items": daily.groupby("user_id")["item_id"].nunique(),
        }
    )
    table = table.merge(users, left_on="user_id", right_index=True)
    table["in_history"] = 1.0
    return table


def category_table(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per (user, category) with an event before ``as_of``: the user's days in it, decayed days, last event."""
    events = events.sort_values("ts", kind="stable")
    dated = events.assign(day=events["ts"].dt.floor("D"), age=_ages(events["ts"], as_of))
    daily = dated.drop_duplicates(["user_id", "category_id", "day"])
    group = daily.groupby(["user_id", "category_id"])
    table = pd.DataFrame({"category_days": group.size(), "category_last_ts": group["ts"].max()})
    table["sum_category_days_30"] = _decayed(daily["age"], 30).groupby([daily["user_id"], daily["category_id"]]).sum()
    return table.reset_index()


def signal_state(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    users: Sequence[str] | None = None,
    candidates: int = 50,
    target_types: Sequence[str] = ("purchase",),
) -> pd.DataFrame:
    """The state of each candidate (user, item) at ``as_of`` from the events before it, for ``users`` (default:
    every user of ``events``): each user's history items plus the ``candidates`` items most popular (decayed
    distinct buyers, 30-day half-life) at ``as_of``. ``signals_at`` turns it into the signals at any later instant
    (popularity decays alike for every item, so the candidates stay the same)."""
    events = events[events["ts"] < as_of]
    items = item_table(events, as_of, target_types)
    history = history_table(events, as_of, target_types)
    if users is not None:
        history = history[history["user_id"].isin(set(users))]
    popular = items.sort_values(
        [f"sum_pop_{CANDIDATE_POPULARITY_DAYS}", "sum_pop_365"], ascending=False, kind="stable"
    ).index[:candidates]
    user_rows = history.drop_duplicates("user_id").set_index("user_id")[["user_days", "user_last_ts", "user_items"]]
    fresh = pd.MultiIndex.from_product([user_rows.index, popular], names=["user_id", "item_id"])
    fresh = fresh[~fresh.isin(pd.MultiIndex.from_frame(history[["user_id", "item_id"]]))].to_frame(index=False)
    fresh = fresh.merge(user_rows, left_on="user_id", right_index=True)
    rows = pd.concat([history, fresh], ignore_index=True).merge(items, left_on="item_id", right_index=True)
    latest = events.drop_duplicates("item_id", keep="last").set_index("item_id")["category_id"]
    rows["category_id"] = rows["item_id"].map(latest)
    rows = rows.merge(category_table(events, as_of), on=["user_id", "category_id"], how="left")
    rows = rows.fillna(
        {
            "item_days": 0.0,
            "item_events": 0.0,
            "target_days": 0.0,
            "sum_item_days_30": 0.0,
            "sum_item_days_90": 0.0,
            "category_days": 0.0,
            "sum_category_days_30": 0.0,
            "in_history": 0.0,
        }
    )
    rows["as_of"] = as_of
    return rows.sort_values(["user_id", "item_id"], kind="stable").reset_index(drop=True)


def signals_at(state: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """Rows (user_id, item_id, *SIGNALS) at instant ``t`` (at or after the state's ``as_of``, no event between):
    ages from the stored instants (1000 days where there is none), decayed sums moved on from ``as_of``.
    Signals are log1p-transformed where ``LOG_SIGNALS`` says so; none is NaN."""
    rows = state[["user_id", "item_id"]].copy()
    elapsed = _ages(state["as_of"], t)
    for column, signal in AGES.items():
        rows[signal] = _ages(state[column], t).fillna(NO_EVENT_DAYS)
    for column, (signal, half_life) in DECAYED_SUMS.items():
        rows[signal] = state[column] * _decayed(elapsed, half_life)
    for column in ("item_days", "item_events", "target_days", "user_days", "user_items", "category_days"):
        rows[column] = state[column]
    rows["in_history"], rows["gap_median"], rows["gap_known"] = (
        state["in_history"],
        state["gap_median"],
        state["gap_known"],
    )
    rows["share"] = rows["item_days"] / rows["user_days"]
    rows["category_share"] = rows["category_days"] / rows["user_days"]
    rows["trend"] = (rows["pop_30"] + 1) / (rows["pop_90"] + 3)
    overdue = rows["target_age_last"] / rows["gap_median"]
    rows["overdue"] = overdue.where((rows["gap_known"] > 0) & state["target_last_ts"].notna()).fillna(0.0)
    for name in LOG_SIGNALS:
        rows[name] = np.log1p(rows[name].clip(lower=0))
    return rows[["user_id", "item_id", *SIGNALS]]


def candidate_signals(
    events: pd.DataFrame,
    cutoff: pd.Timestamp,
    users: Sequence[str] | None = None,
    candidates: int = 50,
    target_types: Sequence[str] = ("purchase",),
) -> pd.DataFrame:
    """The signals of each candidate at ``cutoff`` from the events before it (``signal_state`` at ``cutoff``)."""
    return signals_at(signal_state(events, cutoff, users, candidates, target_types), cutoff)
