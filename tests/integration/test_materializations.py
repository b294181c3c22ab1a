"""The project's dbt materializations on PostgreSQL (dbt_project/macros/materializations.sql): an
incremental `append` run inserts straight from the model's query (no temp table) while the columns match
and leaves schema changes to dbt's own materialization; a view whose SQL is unchanged is left as it is.
And int_interest_day_deltas, which plans its days when it compiles: a run that another run overtook between its
plan and its lock stops with nothing written."""

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest

from interest_decay.events.ingest import ingest
from interest_decay.events.synthetic import generate, write_events
from tests.conftest import dbt, stack_env, start_dbt, wait_for_a_blocked_advisory_lock

pytestmark = pytest.mark.postgres
END = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
DAY, NEXT_DAY = f"{END:%Y-%m-%d}", f"{END + dt.timedelta(days=1):%Y-%m-%d}"
VIEW_SQL = (
    "select c.oid, obj_description(c.oid, 'pg_class') from pg_class c "
    "where c.oid = to_regclass('analytics.user_category_interest')"
)
INTEREST_SQL = (
    "select user_id, category_id, interest from analytics.user_category_interest where as_of = %s order by 1, 2"
)


def run_day(env, day, *flags, select="+user_category_interest", check=True):
    return dbt(
        env, "run", *flags, "--select", select, "--vars", f'{{as_of: "{day}", as_of_start: "{day}"}}', check=check
    )


def statuses(env) -> dict[str, str]:
    results = json.loads((Path(env["DBT_TARGET_PATH"]) / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[-1]: r["adapter_response"].get("_message", "") for r in results}


def one(conninfo, sql, *params):
    with psycopg.connect(conninfo) as conn:
        return conn.execute(sql, params).fetchone()


@pytest.fixture(scope="module")
def stack(fresh_db, tmp_path_factory):
    name, conninfo = fresh_db
    folder = tmp_path_factory.mktemp("events")
    events = generate(3_000, n_users=40, n_categories=5, days=10, end=END, seed=7)
    ingest([write_events(events, folder / "events.csv")], conninfo)
    env = stack_env(tmp_path_factory.mktemp("state"), name)
    dbt(env, "seed")
    run_day(env, DAY)
    return conninfo, env


def test_daily_run_inserts_straight_from_the_query(stack):
    conninfo, env = stack
    later = generate(200, n_users=40, n_categories=5, days=1, end=END + dt.timedelta(days=1), seed=8)
    ingest([write_events(later, Path(env["DECAY_STATE_DIR"]) / "later.csv")], conninfo)
    run_day(env, NEXT_DAY)
    executed = (
        Path(env["DBT_TARGET_PATH"]) / "run/interest_decay/models/intermediate/int_interest_day_deltas.sql"
    ).read_text()
    assert "insert into" in executed and "__dbt_tmp" not in executed
    staged = (Path(env["DBT_TARGET_PATH"]) / "run/interest_decay/models/staging/stg_behaviour__events.sql").read_text()
    assert "__dbt_tmp" not in staged
    assert statuses(env)["int_interest_day_deltas"].startswith("INSERT 0 ")
    # the new day holds one marker row and the (user, category) keys of the 200 new events
    (days, markers, keys) = one(
        conninfo,
        "select count(distinct as_of), count(*) filter (where user_id is null), "
        "count(*) filter (where user_id is not null) from analytics.int_interest_day_deltas "
        "where as_of = %s",
        dt.datetime.fromisoformat(NEXT_DAY).replace(tzinfo=dt.UTC),
    )
    (touched,) = one(
        conninfo,
        "select count(distinct (user_id, category_id)) from analytics.stg_behaviour__events "
        "where load_id = (select max(load_id) from analytics.stg_behaviour__events)",
    )
    assert (days, markers) == (1, 1) and 0 < keys == touched


def test_unchanged_view_is_left_alone(stack):
    conninfo, env = stack
    oid, stamp = one(conninfo, VIEW_SQL)
    assert stamp.startswith("dbt sql md5 ")
    run_day(env, NEXT_DAY, select="user_category_interest")
    assert one(conninfo, VIEW_SQL) == (oid, stamp)
    assert statuses(env)["user_category_interest"] == "UNCHANGED"


def test_view_whose_sql_changed_is_recreated(stack):
    conninfo, env = stack
    oid, stamp = one(conninfo, VIEW_SQL)
    with psycopg.connect(conninfo) as conn:  # as if the view had been created from other SQL
        conn.execute("comment on view analytics.user_category_interest is 'dbt sql md5 0'")
    run_day(env, NEXT_DAY, select="user_category_interest")
    new_oid, new_stamp = one(conninfo, VIEW_SQL)
    assert new_oid != oid and new_stamp == stamp
    run_day(env, NEXT_DAY, "--full-refresh", select="user_category_interest")
    refreshed_oid, refreshed_stamp = one(conninfo, VIEW_SQL)
    assert refreshed_oid != new_oid and refreshed_stamp == stamp  # re-created, and stamped for the next run


def test_a_run_overtaken_after_its_plan_stops_and_writes_nothing(stack):
    """The run compiles (plans its base day and window from the stored days), then waits for the lock; another
    writer commits meanwhile (here: a marker row rewritten, as any run does). The run must not write rows
    planned from the old state."""
    conninfo, env = stack
    stored = "select count(*), sum(event_count) from analytics.int_interest_day_deltas"
    before = one(conninfo, stored)
    with psycopg.connect(conninfo) as other:  # what another int_interest_day_deltas run holds until it commits
        other.execute("select pg_advisory_xact_lock(hashtext('interest_decay.int_interest_day_deltas'))")
        run = start_dbt(
            env,
            "run",
            "--select",
            "int_interest_day_deltas",
            "--vars",
            f'{{as_of: "{NEXT_DAY}", as_of_start: "{NEXT_DAY}"}}',
        )
        assert wait_for_a_blocked_advisory_lock(conninfo, run), run.communicate()[0][-4000:]
        other.execute(
            "update analytics.int_interest_day_deltas set watermark_load_id = watermark_load_id "
            "where user_id is null and as_of = (select max(as_of) from analytics.int_interest_day_deltas)"
        )
    output = run.communicate(timeout=120)[0]
    assert run.returncode != 0 and "changed after this run planned its days" in output
    assert one(conninfo, stored) == before
    run_day(env, NEXT_DAY, select="int_interest_day_deltas")  # planned again, it runs
    assert one(conninfo, stored) == before  # the same day again: replaced, not added


def test_new_event_type_adds_its_column_through_dbts_materialization(stack):
    """A new type in the weights: its column is added (on_schema_change, dbt's own path: the columns
    differ), the changed weights reset the stored days, and the interest is what it was (no event has
    the new type)."""
    conninfo, env = stack
    day = dt.datetime.fromisoformat(NEXT_DAY).replace(tzinfo=dt.UTC)
    with psycopg.connect(conninfo) as conn:
        before = conn.execute(INTEREST_SQL, (day,)).fetchall()
        conn.execute("insert into analytics.event_type_weights (event_type, weight) values ('share', 1.5)")
    try:
        run_day(env, NEXT_DAY)
        executed = (
            Path(env["DBT_TARGET_PATH"]) / "run/interest_decay/models/intermediate/int_interest_day_deltas.sql"
        ).read_text()
        assert "__dbt_tmp" in executed  # dbt's materialization handled the schema change
        with psycopg.connect(conninfo) as conn:
            columns = [
                c
                for (c,) in conn.execute(
                    "select column_name from information_schema.columns where table_schema = 'analytics' "
                    "and table_name = 'int_interest_day_deltas'"
                )
            ]
            assert "interest_share" in columns
            after = conn.execute(INTEREST_SQL, (day,)).fetchall()
        assert [row[:2] for row in after] == [row[:2] for row in before] and len(before) > 50
        assert [row[2] for row in after] == pytest.approx([row[2] for row in before], rel=1e-9)
    finally:
        with psycopg.connect(conninfo) as conn:
            conn.execute("delete from analytics.event_type_weights where event_type = 'share'")


def test_kind_parameters_older_than_the_weights_stop_the_run(stack):
    """int_interest_day_deltas filters on int_event_kind_parameters.type_position: built before the event types
    changed, the positions would put interest into the wrong columns, so the run stops and says what to run."""
    conninfo, env = stack
    with psycopg.connect(conninfo) as conn:
        conn.execute("insert into analytics.event_type_weights (event_type, weight) values ('aaa', 1.0)")
    try:
        run = run_day(env, NEXT_DAY, select="int_interest_day_deltas", check=False)
        assert run.returncode != 0
        assert "int_event_kind_parameters was built before event_type_weights changed" in run.stdout
    finally:
        with psycopg.connect(conninfo) as conn:
            conn.execute("delete from analytics.event_type_weights where event_type = 'aaa'")
