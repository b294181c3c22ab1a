"""Batch materialization of the marts into the Feast online store (the DAG's ``feast_materialize`` task).

``materialize`` writes the mart rows of a data interval in bounded chunks; ``materialize_and_replay`` then folds
the live events since ``as_of`` (``live_events_since``) back into the online rows with the same exact update as
``/events`` (``interest_decay.online.realtime``), so a nightly run does not undo what was pushed after midnight.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from interest_decay.events import rules
from interest_decay.events.ingest import ensure_raw_schema
from interest_decay.events.schema import EVENT_COLUMNS
from interest_decay.online import item_state
from interest_decay.online.realtime import ONLINE_FEATURES, OnlineUpdater


def materialize(store, as_of: dt.datetime, days: int = 1, chunk_days: int = 7) -> int:
    """Write the mart rows of the data interval ``(as_of - days, as_of]`` of every online feature view into
    the online store, in chunks of ``chunk_days`` (oldest first, so later rows win): memory stays bounded
    however long a backfill. Each mart day holds every user's full row, so a daily run needs one day.
    Re-running writes the same rows (idempotent). Returns the number of chunks."""
    start, end = as_of - dt.timedelta(days=days), as_of + dt.timedelta(seconds=1)
    chunks = 0
    while start < end:
        store.materialize(start_date=start, end_date=min(start + dt.timedelta(days=chunk_days), end))
        start, chunks = start + dt.timedelta(days=chunk_days), chunks + 1
    return chunks


def live_events_since(conn, schema: str, as_of: dt.datetime, pseudonym_key: str) -> pd.DataFrame:
    """Accepted events at or after ``as_of`` (the mart as of ``as_of`` does not hold them): the staged
    ones, plus the rows of raw loads after the latest staged one, checked with the staging rules (a load
    checked but not staged, when the staging run stopped between its two models, counts too).
    Columns user_id (pseudonymised), item_id, category_id, event_type, ts; one row per distinct event."""
    from interest_decay.events.pseudonym import pseudonymise

    columns = ["user_id", "item_id", "category_id", "event_type", "ts", "value"]
    staged = conn.execute(
        f"select user_id, item_id, category_id, event_type, event_ts, value::float8 "
        f"from {schema}.stg_behaviour__events where event_ts >= %s",
        (as_of,),
    ).fetchall()
    unstaged = conn.execute(
        f"select {', '.join('e.' + c for c in EVENT_COLUMNS)}, l.loaded_at from raw.events e "
        f"join raw.loads l using (load_id) where e.parse_error is null and e.load_id > "
        f"(select coalesce(max(load_id), 0) from {schema}.stg_behaviour__events)"
    ).fetchall()
    rows = list(staged)
    if unstaged:
        raw = pd.DataFrame(unstaged, columns=[*EVENT_COLUMNS, "loaded_at"])
        typed, reasons = rules.check(raw, raw["loaded_at"])
        typed = typed[reasons.isna().to_numpy() & (typed["ts"] >= as_of).to_numpy()]
        rows += zip(
            [pseudonymise(u, pseudonym_key) for u in typed["user_id"]],
            typed["item_id"],
            typed["category_id"],
            typed["event_type"],
            typed["ts"],
            typed["value"],
        )
    frame = pd.DataFrame(rows, columns=columns).drop_duplicates()
    return frame[["user_id", "item_id", "category_id", "event_type", "ts"]].reset_index(drop=True)


def materialize_and_replay(
    store,
    conn,
    schema: str,
    as_of: dt.datetime,
    pseudonym_key: str,
    days: int = 1,
    chunk_days: int = 7,
    now: dt.datetime | None = None,
) -> dict:
    """Materialize the data interval ending at ``as_of``, then fold the live events since ``as_of`` back
    in: a nightly materialization must not undo what ``/events`` pushed after midnight. A push that lands
    from another process between the two steps is counted in the mart of the next day (until then the
    online row misses it)."""
    now = now or dt.datetime.now(dt.UTC)
    chunks = materialize(store, as_of, days, chunk_days)
    events = live_events_since(conn, schema, as_of, pseudonym_key)
    # Fold into the mart rows, not the online ones: an online store may have kept a newer pushed row
    # (Redis never lets an older row overwrite a newer one), and folding into that would count twice.
    base = conn.execute(
        f"select user_id, {', '.join(ONLINE_FEATURES)} from {schema}.user_interest_features "
        f"where as_of = %s and user_id = any(%s)",
        (as_of, list(events["user_id"].unique())),
    )
    base_rows = {user: dict(zip(ONLINE_FEATURES, values)) for user, *values in base.fetchall()}
    base = conn.execute(
        f"select user_id, {', '.join(item_state.ROW_FIELDS)} from "
        f"(select *, as_of as state_as_of from {schema}.user_item_signal_state) as state "
        f"where as_of = %s and user_id = any(%s)",
        (as_of, list(events["user_id"].unique())),
    )
    base_item_rows = {user: dict(zip(item_state.ROW_FIELDS, values)) for user, *values in base.fetchall()}
    updated = OnlineUpdater.from_database(store, conn, schema).apply(events, now, base_rows, base_item_rows)
    # Keys of live events that staging now holds: stg_behaviour__events answers for those (realtime.new_events).
    ensure_raw_schema(conn)  # a database from before raw.live_event_keys gets it here
    conn.execute(
        f"delete from raw.live_event_keys where load_id <= "
        f"(select coalesce(max(load_id), 0) from {schema}.stg_behaviour__events)"
    )
    return {"chunks": chunks, "replayed_events": len(events), "replayed_users": updated}


def materialize_run(as_of: dt.datetime, days: int) -> dict:
    """The pipeline's feast_materialize step: ``feast apply`` (the feature definitions), then the marts'
    ``days`` up to ``as_of`` into the online store in chunks, then the live events pushed since as_of
    folded back in (:func:`materialize_and_replay`)."""
    import subprocess
    import sys
    from pathlib import Path

    import psycopg
    from feast import FeatureStore

    from interest_decay import config as settings
    from interest_decay.events.pseudonym import pseudonym_key

    repo = settings.feast_repo_path()
    settings.feast_registry_path().parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(Path(sys.executable).parent / "feast"), "-c", str(repo), "apply"], check=True)
    with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
        result = materialize_and_replay(
            FeatureStore(repo_path=str(repo)),
            conn,
            settings.dbt_schema(),
            as_of,
            pseudonym_key(),
            days=days,
            chunk_days=settings.get().feast_materialize_chunk_days,
        )
    return {"start": (as_of - dt.timedelta(days=days)).isoformat(), "end": as_of.isoformat(), **result}
