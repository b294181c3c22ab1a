"""Loading event files into PostgreSQL: idempotent, lossless, clear errors."""

import datetime as dt
import re
import subprocess
import sys

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
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
        errors = conn.execute(
            "select parse_error, raw_line from raw.events where load_id = %s and parse_error is not null "
            "order by row_number",
            (result.load_id,),
        ).fetchall()
    # The reason quotes no field (a raw user id would reach staging's rejects); the row as given stays in raw.
    assert errors[0][0].endswith("expected 5 fields, got 6") and errors[0][1] == "u1,i1,c1,view,2026-01-01,one too many"
    assert errors[1][0].endswith("expected 5 fields, got 2")


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


HEADER = b"user_id,item_id,category_id,event_type,ts\r\n"
GOOD = b"u1,i1,c1,view,2026-01-01T00:00:00Z\r\n"


def loads(conninfo) -> int:
    return count(conninfo, "select count(*) from raw.loads")


def raw_rows(conninfo, load_id):
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "select user_id, item_id, ts, parse_error from raw.events where load_id = %s order by row_number",
            (load_id,),
        ).fetchall()


def test_a_spreadsheet_csv_with_a_byte_order_mark_and_crlf_loads_every_row(fresh_db, tmp_path):
    _, conninfo = fresh_db
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER + GOOD + b"u2,i2,c1,purchase,2026-01-02T00:00:00Z\r\n")
    (result,) = ingest([path], conninfo)
    assert (result.rows, result.parse_errors) == (2, 0)
    assert raw_rows(conninfo, result.load_id) == [
        ("u1", "i1", "2026-01-01T00:00:00Z", None),
        ("u2", "i2", "2026-01-02T00:00:00Z", None),
    ]


def test_fields_postgres_cannot_store_are_rejects_with_the_bytes_escaped_and_the_rest_loads(fresh_db, tmp_path):
    """A NUL byte, bytes that are not UTF-8 (in a well-formed row and in a ragged one): each row is kept with
    its reason, every other row loads, and staging's counts reconcile with the file's."""
    name, conninfo = fresh_db
    path = tmp_path / "bytes.csv"
    path.write_bytes(
        HEADER
        + b"b1,i1,c1,view,2026-01-03T00:00:00Z\r\n"
        + b"u2,i\x002,c1,view,2026-01-01T00:00:00Z\r\n"
        + b"u\xe93,i3,c1,view,2026-01-01T00:00:00Z\r\n"
        + b"u4,i4,c1,view,2026-01-02T00:00:00Z\r\n"
        + b"u\xe95,i5\r\n"
    )
    (result,) = ingest([path], conninfo)
    assert (result.rows, result.parse_errors) == (5, 3)
    rows = raw_rows(conninfo, result.load_id)
    assert rows[0] == ("b1", "i1", "2026-01-03T00:00:00Z", None)
    assert rows[1][1] == "i\\x002" and rows[1][3] == "item_id contains a NUL byte (shown as \\x00)"
    assert rows[2][0] == "u\\xe93" and rows[2][3] == "user_id is not valid UTF-8 (bytes shown as \\xNN)"
    assert rows[3] == ("u4", "i4", "2026-01-02T00:00:00Z", None)
    assert rows[4][3] == "line 6: expected 5 fields, got 2"
    with psycopg.connect(conninfo) as conn:
        sql = "select raw_line from raw.events where load_id = %s and raw_line is not null"
        [(line,)] = conn.execute(sql, (result.load_id,)).fetchall()
    assert line == "u\\xe95,i5"

    env = stack_env(tmp_path / "state", name)
    with psycopg.connect(conninfo) as conn:
        conn.execute("create schema if not exists analytics")
    dbt(env, "seed")
    dbt(env, "run", "--select", "+load_reconciliation", "+rejected_events")
    with psycopg.connect(conninfo) as conn:
        counts = conn.execute(
            "select file_rows, raw_rows, staged_rows, duplicate_rows, rejected_rows"
            " from analytics.load_reconciliation where load_id = %s",
            (result.load_id,),
        ).fetchone()
        reasons = [
            r[0]
            for r in conn.execute(
                "select reject_reason from analytics.rejected_events where load_id = %s order by row_number",
                (result.load_id,),
            )
        ]
    assert counts == (5, 5, 2, 0, 3)
    assert reasons == [
        "unparseable row: item_id contains a NUL byte (shown as \\x00)",
        "unparseable row: user_id is not valid UTF-8 (bytes shown as \\xNN)",
        "unparseable row: line 6: expected 5 fields, got 2",
    ]


def test_header_only_reordered_columns_and_typed_parquet(fresh_db, tmp_path):
    _, conninfo = fresh_db
    (tmp_path / "a_header.csv").write_bytes(HEADER)
    (tmp_path / "b_order.csv").write_text(
        "ts,extra,event_type,category_id,item_id,user_id,value\n2026-01-01T00:00:00Z,x,view,c1,i1,u1,3\n"
    )
    ts = pa.array([dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)] * 2, pa.timestamp("us", "UTC"))
    typed = {
        "user_id": pa.array([1, 2], pa.int64()),
        "item_id": pa.array([30, 40], pa.int64()),
        "category_id": ["c", "c"],
        "event_type": ["view", "purchase"],
        "ts": ts,
    }
    pq.write_table(pa.table(typed), tmp_path / "c_typed.parquet")
    header, order, parquet = ingest([tmp_path], conninfo)
    assert (header.rows, header.parse_errors, header.skipped) == (0, 0, False)
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "select user_id, item_id, category_id, event_type, ts, value from raw.events where load_id = %s",
            (order.load_id,),
        ).fetchone()
    assert row == ("u1", "i1", "c1", "view", "2026-01-01T00:00:00Z", "3")
    assert [r[:2] for r in raw_rows(conninfo, parquet.load_id)] == [("1", "30"), ("2", "40")]
    assert raw_rows(conninfo, parquet.load_id)[0][2].startswith("2026-01-01T12:00:00")


NOT_EVENTS = {
    "empty.csv": (b"", "the file is empty"),
    "binary.csv": (bytes(range(256)) * 4, "missing required column"),
    "no_ts.csv": (b"user_id,item_id,category_id,event_type\r\nu1,i1,c1,view\r\n", "missing required column(s) ts"),
    "truncated.parquet": (None, "not a readable Parquet file"),
}


@pytest.mark.parametrize("name", NOT_EVENTS)
def test_a_file_that_is_not_events_is_refused_in_one_sentence_before_anything_is_stored(fresh_db, tmp_path, name):
    db, conninfo = fresh_db
    content, message = NOT_EVENTS[name]
    if content is None:
        pq.write_table(pa.table({"user_id": ["u1"] * 100}), tmp_path / "whole.parquet")
        content = (tmp_path / "whole.parquet").read_bytes()[:300]
        (tmp_path / "whole.parquet").unlink()
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a_good.csv").write_bytes(HEADER + GOOD + name.encode() + b",i,c,view,2026-01-01T00:00:00Z\r\n")
    (folder / name).write_bytes(content)
    before = loads(conninfo)
    with pytest.raises(EventSchemaError, match=re.escape(message)):
        ingest([folder], conninfo)
    assert loads(conninfo) == before  # the good file before it is not stored either

    run = subprocess.run(
        [sys.executable, "-m", "interest_decay.events.ingest", str(folder)],
        env=stack_env(tmp_path / "state", db),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith(f"error: {folder / name}: "), run.stderr
    assert message in run.stderr and loads(conninfo) == before
