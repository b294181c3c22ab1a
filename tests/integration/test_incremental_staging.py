"""Staging is incremental: a run checks and stages only the loads after the latest one, and the staged
events (duplicates across loads included) are those a full build gives; a changed PSEUDONYM_KEY stops
the run with advice instead of mixing pseudonyms; a load still being written when a later one is
staged is not skipped (the load-order lock); the list of event kinds is kept from the new loads too."""

import time

import psycopg
import pytest

from interest_decay.events.ingest import LOAD_ORDER_LOCK, hold_load_order_lock, ingest
from interest_decay.online.realtime import accept_batch
from tests.conftest import dbt, stack_env, start_dbt, wait_for_a_blocked_advisory_lock

pytestmark = pytest.mark.postgres

HEADER = "user_id,item_id,category_id,event_type,ts,value\n"
FIRST = (
    HEADER
    + """u1,i1,c1,view,2026-01-08T00:00:00Z,
u1,i2,c1,purchase,2026-01-01T00:00:00Z,2
u1,i2,c1,purchase,2026-01-01T00:00:00Z,2
u2,i1,c1,teleport,2026-01-01T00:00:00Z,
"""
)
# a copy of a first-load event (value written differently: the same number), a new event sent twice,
# a new event of another user, a rejected row
SECOND = (
    HEADER
    + """u1,i2,c1,purchase,2026-01-01T00:00:00Z,2.0
u2,i3,c2,cart,2026-01-09T10:00:00+02:00,
u2,i3,c2,cart,2026-01-09T08:00:00Z,
u3,i1,c1,view,2026-01-10T00:00:00Z,
u3,,c1,view,2026-01-10T00:00:00Z,
"""
)
STAGING = ("stg_behaviour__events_checked", "stg_behaviour__events", "load_reconciliation", "int_event_kinds")
STAGED_SQL = (
    "select load_id, row_number, user_id, item_id, category_id, event_type, event_ts, value "
    "from analytics.stg_behaviour__events order by load_id, row_number"
)
KINDS_SQL = "select category_id, event_type, staged_through_load_id from analytics.int_event_kinds order by 1, 2"
RECONCILIATION_SQL = (
    "select load_id, raw_rows, staged_rows, duplicate_rows, rejected_rows "
    "from analytics.load_reconciliation order by load_id"
)


def rows(conninfo, sql):
    with psycopg.connect(conninfo) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def staged_twice(fresh_db, tmp_path_factory):
    name, conninfo = fresh_db
    folder = tmp_path_factory.mktemp("events")
    env = stack_env(tmp_path_factory.mktemp("state"), name)
    dbt(env, "seed")
    for i, text in enumerate((FIRST, SECOND)):
        (folder / f"load{i}.csv").write_text(text)
        ingest([folder / f"load{i}.csv"], conninfo)
        dbt(env, "run", "--select", *STAGING)
    return conninfo, env, folder


def test_a_run_checks_only_the_new_load(staged_twice):
    conninfo, *_ = staged_twice
    [(raw,)] = rows(conninfo, "select count(*) from raw.events")
    [(checked, distinct)] = rows(
        conninfo, "select count(*), count(distinct (load_id, row_number)) from analytics.stg_behaviour__events_checked"
    )
    assert raw == checked == distinct == 9


def test_duplicates_across_loads_stay_out_and_counts_reconcile(staged_twice):
    conninfo, *_ = staged_twice
    assert rows(conninfo, RECONCILIATION_SQL) == [(1, 4, 2, 1, 1), (2, 5, 2, 2, 1)]
    staged = rows(conninfo, STAGED_SQL)
    assert [(r[0], r[1]) for r in staged] == [(1, 1), (1, 2), (2, 2), (2, 4)]


def test_incremental_staging_equals_a_full_build(staged_twice):
    conninfo, env, _ = staged_twice
    incremental = rows(conninfo, STAGED_SQL)
    dbt(env, "run", "--full-refresh", "--select", *STAGING)
    assert rows(conninfo, STAGED_SQL) == incremental
    assert rows(conninfo, RECONCILIATION_SQL) == [(1, 4, 2, 1, 1), (2, 5, 2, 2, 1)]


def test_the_kinds_are_listed_from_the_new_loads_only(staged_twice):
    """int_event_kinds after the second load holds the kinds of both loads (c2/cart came with the second)
    and equals a full listing; an incremental run reads only the loads after its watermark: a kind slipped
    into an already listed load is not seen until --full-refresh lists every load again."""
    conninfo, env, _ = staged_twice
    incremental = rows(conninfo, KINDS_SQL)
    assert incremental == [("c1", "purchase", 2), ("c1", "view", 2), ("c2", "cart", 2)]
    dbt(env, "run", "--full-refresh", "--select", "int_event_kinds")
    assert rows(conninfo, KINDS_SQL) == incremental
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "insert into analytics.stg_behaviour__events (load_id, row_number, user_id, item_id, category_id, "
            "event_type, event_ts) values (1, 99, 'x', 'i9', 'c9', 'fav', '2026-01-02T00:00:00Z')"
        )
    try:
        dbt(env, "run", "--select", "int_event_kinds")
        assert rows(conninfo, KINDS_SQL) == incremental
        dbt(env, "run", "--full-refresh", "--select", "int_event_kinds")
        assert ("c9", "fav", 2) in rows(conninfo, KINDS_SQL)
    finally:
        with psycopg.connect(conninfo) as conn:
            conn.execute("delete from analytics.stg_behaviour__events where row_number = 99 and load_id = 1")
        dbt(env, "run", "--full-refresh", "--select", "int_event_kinds")
    assert rows(conninfo, KINDS_SQL) == incremental


def test_another_pseudonym_key_stops_the_run_with_advice(staged_twice):
    conninfo, env, _ = staged_twice
    before = rows(conninfo, STAGED_SQL)
    run = dbt({**env, "PSEUDONYM_KEY": "another-key"}, "run", "--select", "+stg_behaviour__events", check=False)
    assert run.returncode != 0
    assert "pseudonymised with another PSEUDONYM_KEY" in run.stdout and "--full-refresh" in run.stdout
    assert rows(conninfo, STAGED_SQL) == before


def test_a_loader_with_a_lock_timeout_gives_up_and_stores_nothing(staged_twice):
    """/events waits at most its lock timeout while staging holds new loads back, then stores nothing."""
    conninfo, *_ = staged_twice
    before = rows(conninfo, "select count(*) from raw.loads")
    event = {
        "user_id": "u7",
        "item_id": "i7",
        "category_id": "c7",
        "event_type": "view",
        "ts": "2026-01-12T00:00:00Z",
        "value": None,
    }
    with psycopg.connect(conninfo) as staging:  # what the staging pre-hook holds
        staging.execute("select pg_advisory_xact_lock(hashtext(%s))", (LOAD_ORDER_LOCK,))
        with psycopg.connect(conninfo, autocommit=True) as api:
            start = time.monotonic()
            with pytest.raises(psycopg.errors.LockNotAvailable):
                accept_batch(api, None, [event], "key", lock_timeout_s=0.5)
            assert time.monotonic() - start < 5
    assert rows(conninfo, "select count(*) from raw.loads") == before


def test_a_load_in_flight_is_waited_for_not_skipped(staged_twice):
    """Load A draws its load_id, then load B is stored and committed while A is still being written.
    Staging must not take B and leave A below its watermark: it waits until A commits, then stages both.
    (Runs last: it adds loads 3 and 4.)"""
    conninfo, env, folder = staged_twice
    with psycopg.connect(conninfo) as slow:
        with slow.cursor() as cur:  # what load_table does, stopped before its commit
            hold_load_order_lock(cur)
            cur.execute(
                "insert into raw.loads (file_sha256, source, row_count) "
                "values ('in-flight', 'test', 1) returning load_id"
            )
            slow_load = cur.fetchone()[0]
            cur.execute(
                "insert into raw.events (load_id, row_number, user_id, item_id, category_id, event_type, ts) "
                "values (%s, 1, 'u9', 'i9', 'c9', 'view', '2026-01-11T00:00:00Z')",
                (slow_load,),
            )
        (folder / "later.csv").write_text(HEADER + "u8,i8,c8,view,2026-01-11T00:00:00Z,\n")
        [later] = ingest([folder / "later.csv"], conninfo)
        assert later.load_id > slow_load
        run = start_dbt(env, "run", "--select", *STAGING)
        waited = wait_for_a_blocked_advisory_lock(conninfo, run)
        slow.commit()
        output, _ = run.communicate(timeout=300)
    assert waited, "staging did not wait for the load in flight:\n" + output[-3000:]
    assert run.returncode == 0, output[-4000:]
    staged = {load for (load,) in rows(conninfo, "select distinct load_id from analytics.stg_behaviour__events")}
    assert {slow_load, later.load_id} <= staged
