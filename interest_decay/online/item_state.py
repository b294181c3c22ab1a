"""The item ranker's user-side state as one online row per user, and live events folded into it.

The row is the dbt mart ``user_item_signal_state`` (Feast view ``user_item_signals_fv``): the user's active days,
last active day and distinct items; per item of their history (arrays in the order of ``item_ids``) and per
category they acted in (arrays in the order of ``user_category_ids``) the counts, instants (epoch seconds, NaN: none)
and decayed sums at the row's ``state_as_of``. ``models.pipeline.item_signals`` turns it into tables
(``tables_from_rows``) and those into the ranker's signals at the request time.

``fold_item_events`` is the ``/events`` path: the row moved to ``now`` (decayed sums times 0.5^(elapsed / h)) with
the new events counted the way the mart counts them (a day counts from its first event, UTC days). It is exact for
events after the row's instant, in time order, which is what live events are; an older event (a late one) is
counted as a new day unless it falls on the day of the latest stored one, until the next materialization
recounts it from the mart.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

FEATURE_VIEW = "user_item_signals_fv"
PUSH_SOURCE = "user_item_signals_push"
USER_FIELDS = ("user_days", "user_last_ts", "user_items")
PAIR_FIELDS = (
    "item_days",
    "item_events",
    "target_days",
    "last_ts",
    "first_ts",
    "target_last_ts",
    "sum_item_days_30",
    "sum_item_days_90",
)
CATEGORY_FIELDS = ("category_days", "category_last_ts", "sum_category_days_30")
INSTANTS = frozenset({"user_last_ts", "last_ts", "first_ts", "target_last_ts", "category_last_ts"})
HALF_LIVES = {"sum_item_days_30": 30.0, "sum_item_days_90": 90.0, "sum_category_days_30": 30.0}
ROW_FIELDS = (*USER_FIELDS, "item_ids", *PAIR_FIELDS, "user_category_ids", *CATEGORY_FIELDS, "state_as_of")
DAY_S = 86400.0


def _seconds(value) -> float:
    if value is None:
        return math.nan
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, pd.Timestamp):
        return value.timestamp()
    return float(value)


def _instant(seconds: np.ndarray) -> pd.Series:
    """Epoch seconds (NaN: none) as UTC timestamps (NaT), microsecond precision as PostgreSQL keeps them."""
    micros = np.round(np.asarray(seconds, dtype=float) * 1e6)
    return pd.to_datetime(pd.Series(micros), unit="us", utc=True)


def tables_from_rows(rows: Mapping[str, Mapping]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(pairs, users, categories) in the columns of ``models.pipeline.item_signals`` from online rows by user id
    (rows without a state, e.g. an unknown user, are left out)."""
    pairs, users, categories = [], [], []
    for user, row in rows.items():
        if not row or row.get("item_ids") is None:
            continue
        n, m = len(row["item_ids"]), len(row["user_category_ids"] or [])
        pairs.append(
            pd.DataFrame(
                {"user_id": [user] * n, "item_id": list(row["item_ids"]), **{f: list(row[f]) for f in PAIR_FIELDS}}
            )
        )
        categories.append(
            pd.DataFrame(
                {
                    "user_id": [user] * m,
                    "category_id": list(row["user_category_ids"] or []),
                    **{f: list(row[f] or []) for f in CATEGORY_FIELDS},
                }
            )
        )
        users.append({"user_id": user, **{f: row[f] for f in USER_FIELDS}})
    pair_frame = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame(columns=["user_id", "item_id"])
    category_frame = (
        pd.concat(categories, ignore_index=True) if categories else pd.DataFrame(columns=["user_id", "category_id"])
    )
    user_frame = pd.DataFrame(users, columns=["user_id", *USER_FIELDS]).set_index("user_id")
    for frame in (pair_frame, category_frame, user_frame):
        for column in frame.columns:
            if column in INSTANTS:
                frame[column] = _instant(frame[column].to_numpy(dtype=float)).set_axis(frame.index)
            elif column not in ("user_id", "item_id", "category_id"):
                frame[column] = frame[column].astype(float)
    return pair_frame, user_frame, category_frame


def _day(seconds: float) -> float:
    return math.floor(seconds / DAY_S) if seconds == seconds else math.nan


def fold_item_events(
    row: Mapping | None,
    events: Iterable[tuple[str, str, str, dt.datetime]],
    now: dt.datetime,
    target_types: Sequence[str] = ("purchase",),
) -> dict:
    """A user's row at ``now``: the stored ``row`` (None: a user without one) moved to ``now``, plus ``events``
    ((item_id, category_id, event_type, ts) tuples); see the module docstring."""
    now_s = now.timestamp()
    state = {f: float(row[f]) if row and row.get(f) is not None else math.nan for f in USER_FIELDS}
    if not row or row.get("item_ids") is None:
        state.update(user_days=0.0, user_items=0.0)
        pairs: dict[str, dict] = {}
        categories: dict[str, dict] = {}
        elapsed = 0.0
    else:
        elapsed = (now_s - _seconds(row["state_as_of"])) / DAY_S  # exact both ways (realtime.fold_instant)
        pairs = {item: {f: float(row[f][i]) for f in PAIR_FIELDS} for i, item in enumerate(row["item_ids"])}
        categories = {
            category: {f: float(row[f][i]) for f in CATEGORY_FIELDS}
            for i, category in enumerate(row["user_category_ids"] or [])
        }
        for entries in (pairs.values(), categories.values()):
            for entry in entries:
                for name, half_life in HALF_LIVES.items():
                    if name in entry:
                        entry[name] *= 0.5 ** (elapsed / half_life)
    for item, category, event_type, ts in sorted(events, key=lambda e: e[3]):
        ts_s = ts.timestamp()
        day = _day(ts_s)
        weight = {h: 0.5 ** ((now_s - ts_s) / DAY_S / h) for h in (30.0, 90.0)}
        if day != _day(state["user_last_ts"]):
            state["user_days"] += 1
            if not ts_s < state["user_last_ts"]:
                state["user_last_ts"] = ts_s
        pair = pairs.get(item)
        if pair is None:
            pair = pairs[item] = {f: 0.0 for f in PAIR_FIELDS} | {
                "last_ts": math.nan,
                "first_ts": ts_s,
                "target_last_ts": math.nan,
            }
            state["user_items"] += 1
        pair["item_events"] += 1
        if day != _day(pair["last_ts"]):
            pair["item_days"] += 1
            pair["sum_item_days_30"] += weight[30.0]
            pair["sum_item_days_90"] += weight[90.0]
            if not ts_s < pair["last_ts"]:
                pair["last_ts"] = ts_s
            pair["first_ts"] = min(pair["first_ts"], ts_s)
        if event_type in target_types and day != _day(pair["target_last_ts"]):
            pair["target_days"] += 1
            if not ts_s < pair["target_last_ts"]:
                pair["target_last_ts"] = ts_s
        entry = categories.get(category)
        if entry is None:
            entry = categories[category] = {f: 0.0 for f in CATEGORY_FIELDS} | {"category_last_ts": math.nan}
        if day != _day(entry["category_last_ts"]):
            entry["category_days"] += 1
            entry["sum_category_days_30"] += weight[30.0]
            if not ts_s < entry["category_last_ts"]:
                entry["category_last_ts"] = ts_s
    items, kinds = sorted(pairs), sorted(categories)
    return {
        **state,
        "item_ids": items,
        **{f: [pairs[i][f] for i in items] for f in PAIR_FIELDS},
        "user_category_ids": kinds,
        **{f: [categories[c][f] for c in kinds] for f in CATEGORY_FIELDS},
        "state_as_of": dt.datetime.fromtimestamp(now_s, dt.UTC),
    }
