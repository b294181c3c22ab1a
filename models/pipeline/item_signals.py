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
  between a user's target days on it; 400 when no user bought it twice) and ``gap_known``;
- shoppers like the user: ``neighbours`` (the mean weight of the item in the vectors of the user's 200 most
  similar shoppers, ``models.pipeline.neighbours``; it does not change with the clock).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from interest_decay.online import item_state
from models.pipeline.neighbours import DEFAULT_K, Neighbourhood

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
NEIGHBOUR_SIGNALS = ("neighbours",)
SIGNALS = PAIR_SIGNALS + USER_SIGNALS + CATEGORY_SIGNALS + ITEM_SIGNALS + NEIGHBOUR_SIGNALS
LOG_SIGNALS = frozenset(
    {"item_days", "item_events", "target_days", "item_days_30", "item_days_90", "age_last", "age_first", "overdue"}
    | set(USER_SIGNALS)
    | {"item_age_last_sale", "gap_median", "category_days", "category_days_30", "category_age_last"}
    | {f"pop_{d}" for d in POPULARITY_WINDOWS}
)


def _ages(ts: pd.Series, cutoff: pd.Timestamp) -> pd.Series:
    return (cutoff - ts) / DAY


# The state behind the signals: counts, the instants of last / first events, and decayed sums ("sum_<signal>")
# at the instant of their side: the user side (pairs, the user, the user's categories) at ``as_of``, the item side
# at ``items_as_of``. Online the two differ: a user's row moves with their live events, the item table is the
# model package's (see ``docs/models.md``). ``signals_at`` moves both to any later instant exactly: ages grow with
# the clock, a sum decayed with half-life h is multiplied by 0.5^(elapsed / h).
USER_SUMS = {  # state column -> (signal, half-life in days)
    "sum_item_days_30": ("item_days_30", 30.0),
    "sum_item_days_90": ("item_days_90", 90.0),
    "sum_category_days_30": ("category_days_30", 30.0),
}
ITEM_SUMS = {f"sum_pop_{d}": (f"pop_{d}", float(d)) for d in POPULARITY_WINDOWS}
AGES = {  # state column (an instant) -> signal (days since it)
    "last_ts": "age_last",
    "first_ts": "age_first",
    "target_last_ts": "target_age_last",
    "user_last_ts": "user_age_last",
    "category_last_ts": "category_age_last",
    "item_last_ts": "item_age_last_sale",
}
# The user side's columns: the online row's fields (interest_decay.online.item_state), the same names.
PAIR_STATE = item_state.PAIR_FIELDS
USER_STATE = item_state.USER_FIELDS
CATEGORY_STATE = item_state.CATEGORY_FIELDS
ITEM_STATE = ("category_id", "item_last_ts", *ITEM_SUMS, "gap_median", "gap_known")


def _decayed(ages: pd.Series, half_life: float) -> pd.Series:
    return np.exp2(-ages / half_life)


def _dated(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    events = events[events["ts"] < as_of].sort_values("ts", kind="stable")
    return events.assign(day=events["ts"].dt.floor("D"), age=_ages(events["ts"], as_of))


def item_table(events: pd.DataFrame, as_of: pd.Timestamp, target_types: Sequence[str]) -> pd.DataFrame:
    """Per item with an event before ``as_of`` (index item_id): ``ITEM_STATE``, its category being its latest
    event's, its popularity sums decayed to ``as_of``."""
    dated = _dated(events, as_of)
    table = pd.DataFrame({"category_id": dated.groupby("item_id")["category_id"].last()})
    table["item_last_ts"] = dated.groupby("item_id")["ts"].max()
    last = dated["age"].groupby([dated["user_id"], dated["item_id"]]).min()  # each buyer's last event on the item
    for days in POPULARITY_WINDOWS:
        table[f"sum_pop_{days}"] = _decayed(last, days).groupby(level="item_id").sum()
    targets = dated[dated["event_type"].isin(target_types)]
    days = targets.drop_duplicates(["user_id", "item_id", "day"]).sort_values(["user_id", "item_id", "day"])
    gaps = (days["day"] - days.groupby(["user_id", "item_id"])["day"].shift()) / DAY
    table["gap_median"] = gaps.groupby(days["item_id"]).median().reindex(table.index)
    table["gap_known"] = table["gap_median"].notna().astype(float)
    table["gap_median"] = table["gap_median"].fillna(UNKNOWN_GAP_DAYS)
    table.index.name = "item_id"
    return table[list(ITEM_STATE)]


def popular_items(items: pd.DataFrame, n: int) -> pd.Index:
    """The ``n`` items of an item table with the most decayed distinct buyers (30-day half-life; 365 breaks ties)."""
    order = items.sort_values([f"sum_pop_{CANDIDATE_POPULARITY_DAYS}", "sum_pop_365"], ascending=False, kind="stable")
    return order.index[:n]


def pair_table(events: pd.DataFrame, as_of: pd.Timestamp, target_types: Sequence[str]) -> pd.DataFrame:
    """Per (user, item) with an event before ``as_of``: ``PAIR_STATE``. A day counts from its first event (UTC
    days): ``last_ts`` is the first event of the last day, a target day's instant its first target event."""
    dated = _dated(events, as_of)
    daily = dated.drop_duplicates(["user_id", "item_id", "day"])
    pair = daily.groupby(["user_id", "item_id"])
    table = pd.DataFrame({"item_days": pair.size(), "last_ts": pair["ts"].max(), "first_ts": pair["ts"].min()})
    table["item_events"] = dated.groupby(["user_id", "item_id"]).size()
    for days in (30, 90):
        table[f"sum_item_days_{days}"] = (
            _decayed(daily["age"], days).groupby([daily["user_id"], daily["item_id"]]).sum()
        )
    target = dated[dated["event_type"].isin(target_types)].drop_duplicates(["user_id", "item_id", "day"])
    target = target.groupby(["user_id", "item_id"])
    table["target_days"] = target.size()
    table["target_last_ts"] = target["ts"].max()
    table = table.fillna({"target_days": 0.0}).astype({"item_days": float, "item_events": float})
    return table.reset_index()[["user_id", "item_id", *PAIR_STATE]]


def user_table(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per user with an event before ``as_of`` (index user_id): active days, last event, distinct items."""
    dated = _dated(events, as_of)
    active = dated.drop_duplicates(["user_id", "day"]).groupby("user_id")
    return pd.DataFrame(
        {
            "user_days": active.size().astype(float),
            "user_last_ts": active["ts"].max(),  # the first event of the user's last active day
            "user_items": dated.groupby("user_id")["item_id"].nunique().astype(float),
        }
    )


def category_table(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per (user, category) with an event before ``as_of`` (the events' own category): ``CATEGORY_STATE``."""
    dated = _dated(events, as_of)
    daily = dated.drop_duplicates(["user_id", "category_id", "day"])
    group = daily.groupby(["user_id", "category_id"])
    table = pd.DataFrame({"category_days": group.size().astype(float), "category_last_ts": group["ts"].max()})
    table["sum_category_days_30"] = _decayed(daily["age"], 30).groupby([daily["user_id"], daily["category_id"]]).sum()
    return table.reset_index()[["user_id", "category_id", *CATEGORY_STATE]]


def assemble_state(
    pairs: pd.DataFrame,
    users: pd.DataFrame,
    categories: pd.DataFrame,
    items: pd.DataFrame,
    popular: Sequence[str],
    as_of: pd.Timestamp,
    items_as_of: pd.Timestamp,
    neighbourhood: Neighbourhood,
) -> pd.DataFrame:
    """The state of each candidate (user, item): the user's items of ``pairs`` the item table knows, then the
    ``popular`` items they have no event on; the user-side tables hold at ``as_of``, ``items`` and the
    ``neighbourhood``'s population at ``items_as_of``. Offline (``signal_state``) and online
    (``models.pipeline.served_ranker``) both build the rows here."""
    pairs = pairs[pairs["item_id"].isin(items.index)].assign(in_history=1.0)
    known = users.index[users.index.isin(pairs["user_id"].unique())]
    fresh = pd.MultiIndex.from_product([known, pd.Index(popular)], names=["user_id", "item_id"])
    fresh = fresh[~fresh.isin(pd.MultiIndex.from_frame(pairs[["user_id", "item_id"]]))].to_frame(index=False)
    rows = pd.concat([pairs, fresh.assign(in_history=0.0)], ignore_index=True)
    rows = rows.merge(users, left_on="user_id", right_index=True).merge(items, left_on="item_id", right_index=True)
    rows = rows.merge(categories, on=["user_id", "category_id"], how="left")
    zeros = ("item_days", "item_events", "target_days", "sum_item_days_30", "sum_item_days_90", "category_days")
    rows = rows.fillna({name: 0.0 for name in (*zeros, "sum_category_days_30")})
    rows["as_of"], rows["items_as_of"] = as_of, items_as_of
    rows = rows.sort_values(["user_id", "item_id"], kind="stable").reset_index(drop=True)
    rows["neighbours"] = neighbourhood.scores(pairs, rows)
    return rows


def signal_state(
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    users: Sequence[str] | None = None,
    candidates: int = 50,
    target_types: Sequence[str] = ("purchase",),
    neighbours: int = DEFAULT_K,
) -> pd.DataFrame:
    """The state of each candidate (user, item) at ``as_of`` from the events before it, for ``users`` (default:
    every user of ``events``): each user's history items plus the ``candidates`` items most popular (decayed
    distinct buyers, 30-day half-life) at ``as_of``, their ``neighbours`` most similar shoppers among every user
    of ``events``. ``signals_at`` turns it into the signals at any later instant (popularity decays alike for
    every item, so the candidates stay the same)."""
    items = item_table(events, as_of, target_types)
    everyone = pair_table(events, as_of, target_types)
    if users is None:
        mine, pairs = events, everyone
    else:
        wanted = set(users)
        mine, pairs = events[events["user_id"].isin(wanted)], everyone[everyone["user_id"].isin(wanted)]
    return assemble_state(
        pairs,
        user_table(mine, as_of),
        category_table(mine, as_of),
        items,
        popular_items(items, candidates),
        as_of,
        as_of,
        Neighbourhood.build(everyone, items.index, neighbours),
    )


def signals_at(state: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """Rows (user_id, item_id, *SIGNALS) at instant ``t`` (at or after the state's ``as_of`` and ``items_as_of``,
    no event between): ages from the stored instants (1000 days where there is none), decayed sums moved on.
    Signals are log1p-transformed where ``LOG_SIGNALS`` says so; none is NaN."""
    rows = state[["user_id", "item_id"]].copy()
    for column, signal in AGES.items():
        rows[signal] = _ages(state[column], t).fillna(NO_EVENT_DAYS)
    for sums, clock in ((USER_SUMS, "as_of"), (ITEM_SUMS, "items_as_of")):
        elapsed = _ages(state[clock], t)
        for column, (signal, half_life) in sums.items():
            rows[signal] = state[column] * _decayed(elapsed, half_life)
    for column in ("item_days", "item_events", "target_days", "user_days", "user_items", "category_days"):
        rows[column] = state[column]
    for column in ("in_history", "gap_median", "gap_known", "neighbours"):
        rows[column] = state[column]
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
    neighbours: int = DEFAULT_K,
) -> pd.DataFrame:
    """The signals of each candidate at ``cutoff`` from the events before it (``signal_state`` at ``cutoff``)."""
    return signals_at(signal_state(events, cutoff, users, candidates, target_types, neighbours), cutoff)
