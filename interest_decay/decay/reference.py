"""Python reference of the dbt interest marts: the same numbers, computed event by event.

Used by the tests to check the SQL (they must agree to 1e-9 relative) and by anyone who wants to
know what a mart row means without reading SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd

from interest_decay.decay import multiplier

PARAMETER_COLUMNS = ("family", "half_life_days", "logistic_k", "logistic_l", "period_days", "period_weights")


def resolve_parameters(parameters: pd.DataFrame, category_id: str, event_type: str) -> dict:
    """The most specific parameters row: (category, type) > (category, *) > (*, type) > (*, *)."""
    for category, kind in ((category_id, event_type), (category_id, "*"), ("*", event_type), ("*", "*")):
        match = parameters[(parameters.category_id == category) & (parameters.event_type == kind)]
        if len(match):
            row = match.iloc[0]
            return {column: row[column] for column in PARAMETER_COLUMNS}
    raise KeyError(f"no decay parameters for category {category_id!r}, event type {event_type!r}")


def event_interest(
    events: pd.DataFrame, parameters: pd.DataFrame, weights: dict[str, float], as_of: dt.datetime
) -> pd.Series:
    """Each event's interest at ``as_of`` (0 for events at or after it)."""
    ages = (pd.Timestamp(as_of) - events["event_ts"]).dt.total_seconds() / 86400.0
    values = []
    for age, category, kind in zip(ages, events["category_id"], events["event_type"]):
        if age <= 0:
            values.append(0.0)
            continue
        p = resolve_parameters(parameters, category, kind)
        values.append(weights[kind] * float(multiplier(p["family"], age, **parameter_kwargs(p))))
    return pd.Series(values, index=events.index)


def interest(
    events: pd.DataFrame,
    parameters: pd.DataFrame,
    weights: dict[str, float],
    as_of_days: Iterable[dt.datetime],
    by: tuple[str, ...] = ("user_id", "category_id"),
) -> pd.DataFrame:
    """Interest per ``by`` key and as_of day, like ``user_category_interest`` (only keys with events before as_of)."""
    frames = []
    for as_of in as_of_days:
        before = events[events["event_ts"] < pd.Timestamp(as_of)]
        if before.empty:
            continue
        scored = before.assign(interest=event_interest(before, parameters, weights, as_of))
        grouped = (
            scored.groupby(list(by))
            .agg(interest=("interest", "sum"), event_count=("interest", "size"), last_event_ts=("event_ts", "max"))
            .reset_index()
        )
        frames.append(grouped.assign(as_of=pd.Timestamp(as_of)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def parameter_kwargs(parameters: dict) -> dict:
    """The keyword arguments of ``decay.multiplier`` in a resolved parameters row (unset ones left out)."""
    return {k: v for k, v in parameters.items() if k != "family" and v is not None and not _is_nan(v)}


def _is_nan(value) -> bool:
    return isinstance(value, float) and value != value
