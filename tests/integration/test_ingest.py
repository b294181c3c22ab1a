"""Loading event files into PostgreSQL: idempotent, lossless, clear errors."""

import datetime as dt

import psycopg
import pytest

from interest_decay.events.ingest import ingest
from interest_decay.events.schema import EventSchemaError
from interest_decay.events.synthetic import generate, write_events
from tests.conftest import dbt, stack_env

pytestmark = pytest.mark.postgres


def count(conninfo, sql):
    with psycopg.connect(conninfo) as conn:
        return conn.execute(sql).fetchone()[0]


def test_parquet_and_csv_load_once(fresh_db, tmp_path):
    _, conninfo = fresh_db
    events = generate(3_000, seed=1, end=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    write_events(events, tmp_path / "a.parquet")
    write_events(events.head(500), tmp_path / "b.csv")
    first = ingest([tmp_path], conninfo)
    assert [(r.source, r.rows, r.skipped) for r in first] == [("a.parquet", 3_000, False), ("b.csv", 500, False)]
    again = ingest([tmp_path / "a.parquet", tmp_path / "b.csv"], conninfo)
    assert all(r.skipped for r in again)
    assert count(conninfo, "select count(*) from raw.events") == 3_500
    # Parquet timestamps arrive as ISO text in UTC, values as text, missing values as null.
    row = (
        psycopg.connect(conninfo)
        .execute("select ts, value from raw.events where load_id = %s and row_number = 1", (first[0].load_id,))
        .fetchone()
    )
    assert row[0].startswith(events.ts[0].strftime("%Y-%m-%dT%H:%M:%S")) and row[0].endswith("+0000")


def test_ragged_csv_rows_are_kept_with_the_reason(fresh_db, tmp_path):
    _, conninfo = fresh_db
    path = tmp_path / "ragged.csv"
    path.write_text(
        "user_id,item_id,category_id,event_type,ts\n"
        "u1,i1,c1,view,2026-01-01T00:00:00Z\n"
        "u1,i1,c1,view,2026-01-01,one too many\n"
        "u2,i2\n"
    )
    (result,) = ingest([path], conninfo)
    assert (result.rows, result.parse_errors) == (3, 2)
    with psycopg.connect(conninfo) as conn:
        errors = [
            r[0]
            for r in conn.execute(
                "select parse_error from raw.events where load_id = %s and parse_error is not null order by row_number",
                (result.load_id,),
            )
        ]
    assert "expected 5 fields, got 6" in errors[0] and "one too many" in errors[0]
    assert "expected 5 fields, got 2" in errors[1]


def test_missing_required_column_is_a_readable_error(fresh_db, tmp_path):
    _, conninfo = fresh_db
    path = tmp_path / "no_ts.csv"
    path.write_text("user_id,item_id,category_id,event_type\nu1,i1,c1,view\n")
    with pytest.raises(EventSchemaError, match="missing required column\\(s\\) ts"):
        ingest([path], conninfo)


def test_unknown_path_and_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        ingest([tmp_path / "nope.csv"], "dbname=unused")
    (tmp_path / "events.json").write_text("{}")
    with pytest.raises(EventSchemaError, match="not a .csv or .parquet"):
        ingest([tmp_path / "events.json"], "dbname=unused")


def test_an_event_of_no_load_fails_the_source_test(fresh_db, tmp_path):
    """raw.events has no foreign key to raw.loads (its check, a query per row, made ingest 3.4x slower): the
    loader writes a load and its events in one transaction, and dbt's source test `relationships` catches an
    event whose load is missing."""
    name, conninfo = fresh_db
    ingest([tmp_path], conninfo)  # the raw tables exist even when this test runs alone
    with psycopg.connect(conninfo) as conn:
        conn.execute("create schema if not exists analytics")  # dbt's on-run-start hooks create functions there
    env = stack_env(tmp_path / "state", name)
    source_tests = ("test", "--select", "source:behaviour.events")
    dbt(env, *source_tests)
    with psycopg.connect(conninfo) as conn:
        conn.execute("insert into raw.events (load_id, row_number, user_id) values (999999, 1, 'orphan')")
    try:
        run = dbt(env, *source_tests, check=False)
        assert run.returncode != 0 and "source_relationships_behaviour_events_load_id" in run.stdout, run.stdout[-3000:]
    finally:
        with psycopg.connect(conninfo) as conn:
            conn.execute("delete from raw.events where load_id = 999999")
