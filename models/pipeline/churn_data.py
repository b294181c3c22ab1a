"""Churn risk's data: staging's cleaning, the user features at a cutoff and the churn labels after it.

The semantics (label, features, cleaning) are documented in ``models/pipeline/churn.py``; the dbt mart
``user_activity`` computes the same features in SQL (a parity test holds them equal).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from interest_decay.decay import exponential_half_life
from interest_decay.events.schema import EVENT_TYPES

DAY = pd.Timedelta(days=1)


def clean_events(events: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Events staging would keep (typed: ``ts`` UTC, lower-case ``event_type``; the rules of
    ``interest_decay.events.rules``), without exact duplicates, and how many rows each rule dropped."""
    from models.harness.ranking import clean_events as clean

    kept, quality = clean(events, drop_duplicates=True)
    return kept, {**quality["dropped"], "duplicate": quality["duplicates"]}


def decayed_counts(past: pd.DataFrame, age_days: pd.Series, half_lives_days: list[float]) -> pd.DataFrame:
    """``decayed_<type>_h<h>`` = sum over the user's events of that type of ``0.5^(age / h)``, per user."""
    tables = []
    for h in half_lives_days:
        weight = pd.Series(exponential_half_life(age_days.to_numpy(), h), index=past.index)
        table = weight.groupby([past["user_id"], past["event_type"]]).sum().unstack(fill_value=0.0)
        table = table.reindex(columns=list(EVENT_TYPES), fill_value=0.0)
        tables.append(table.set_axis([f"decayed_{kind}_h{h:g}" for kind in EVENT_TYPES], axis=1))
    return pd.concat(tables, axis=1)


def purchase_gaps(purchases: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (days) of the gaps between a user's distinct purchase instants."""
    occasions = purchases[["user_id", "ts"]].drop_duplicates().sort_values(["user_id", "ts"])
    gap = occasions.groupby("user_id")["ts"].diff().dt.total_seconds() / 86400.0
    stats = gap.groupby(occasions["user_id"]).agg(["mean", "std"])
    return stats.set_axis(["purchase_gap_mean_days", "purchase_gap_std_days"], axis=1)


def user_features(events: pd.DataFrame, cutoff: pd.Timestamp, half_lives_days: list[float]) -> pd.DataFrame:
    """One row per user with an event before ``cutoff`` (index ``user_id``, sorted), from those events only.

    ``events`` must be clean (``clean_events``). A user without a purchase gets the tenure as purchase
    recency (nothing bought in all the time we know them); under two purchase occasions give the tenure
    as mean gap, under three (a single gap) give 0 as the gaps' deviation.
    """
    past = events[events["ts"] < cutoff]
    age = (cutoff - past["ts"]).dt.total_seconds() / 86400.0
    by_user = age.groupby(past["user_id"])
    purchases = past[past["event_type"] == "purchase"]
    purchase_age = age[purchases.index].groupby(purchases["user_id"])
    frame = pd.DataFrame(
        {
            "recency_days": by_user.min(),
            "purchase_recency_days": purchase_age.min(),
            "tenure_days": by_user.max(),
            "event_count": by_user.size().astype(float),
            "purchase_count": purchase_age.size().astype(float),
            "purchase_occasions": purchases.groupby("user_id")["ts"].nunique().astype(float),
            "monetary": purchases["value"].fillna(0.0).groupby(purchases["user_id"]).sum(),
            "distinct_items": past.groupby("user_id")["item_id"].nunique().astype(float),
            "distinct_categories": past.groupby("user_id")["category_id"].nunique().astype(float),
        }
    ).join(purchase_gaps(purchases))
    tenure = frame["tenure_days"]
    frame = frame.fillna(
        {"purchase_count": 0.0, "purchase_occasions": 0.0, "monetary": 0.0, "purchase_gap_std_days": 0.0}
    )
    for column in ("purchase_recency_days", "purchase_gap_mean_days"):
        frame[column] = frame[column].fillna(tenure)
    frame = frame.join(decayed_counts(past, age, half_lives_days)).fillna(0.0)
    frame.index.name = "user_id"
    return frame.sort_index()


def churn_labels(
    events: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: float, observed_until: pd.Timestamp | None = None
) -> pd.Series:
    """``churned`` per user with an event before ``cutoff``: no purchase in [cutoff, cutoff + horizon).

    ``observed_until``: the instant up to which ``events`` are complete (default: the last event);
    a label whose window ends after it is not known yet and raises."""
    end = cutoff + horizon_days * DAY
    observed_until = events["ts"].max() if observed_until is None else observed_until
    if end > observed_until:
        raise ValueError(f"the churn label at {cutoff} needs events up to {end}; the data ends at {observed_until}")
    users = np.sort(events.loc[events["ts"] < cutoff, "user_id"].unique())
    window = events[(events["event_type"] == "purchase") & (events["ts"] >= cutoff) & (events["ts"] < end)]
    return pd.Series(~np.isin(users, window["user_id"].unique()), index=pd.Index(users, name="user_id"), name="churned")


def churn_dataset(
    events: pd.DataFrame,
    cutoff: pd.Timestamp,
    horizon_days: float,
    half_lives_days: list[float],
    observed_until: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """Features before ``cutoff`` and labels after it, for the same users in the same order."""
    labels = churn_labels(events, cutoff, horizon_days, observed_until)
    return user_features(events, cutoff, half_lives_days).loc[labels.index], labels


STAGED_EVENT_COLUMNS = ("user_id", "item_id", "category_id", "event_type", "event_ts", "value")


def staged_events(before: dt.datetime) -> pd.DataFrame:
    """All staged events before ``before`` in the columns of the churn model (``ts``, ``value``)."""
    import psycopg

    from interest_decay import config as settings

    with psycopg.connect(settings.pg_conninfo()) as conn, conn.cursor() as cur:
        cur.execute(
            f"select {', '.join(STAGED_EVENT_COLUMNS)} "
            f"from {settings.dbt_schema()}.stg_behaviour__events where event_ts < %s",
            (before,),
        )
        return staged_frame(cur.fetchall())


def staged_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of ``STAGED_EVENT_COLUMNS`` as the event frame the churn model reads, sorted by ``ts``."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type", "ts", "value"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["value"] = frame["value"].astype(float)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)
