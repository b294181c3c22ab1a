"""dbt on PostgreSQL: every raw row is staged, a counted duplicate, or rejected with a reason,
and the decayed-interest mart holds the values worked out by hand."""

import math
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from interest_decay.events.ingest import ingest
from interest_decay.events.pseudonym import pseudonymise
from tests.conftest import PROJECT_ROOT, TEST_PSEUDONYM_KEY, stack_env

U1 = pseudonymise("u1")

pytestmark = pytest.mark.postgres

ROWS = """user_id,item_id,category_id,event_type,ts,value
u1,i1,c1,view,2026-01-08T00:00:00Z,
u1,i2,c1,purchase,2026-01-01T00:00:00Z,2
u1,i2,c1,purchase,2026-01-01T00:00:00Z,2
u1,i3,c2,VIEW,2026-01-14 00:00:00,
,i1,c1,view,2026-01-01T00:00:00Z,
u2,,c1,view,2026-01-01T00:00:00Z,
u2,i1,,view,2026-01-01T00:00:00Z,
u2,i1,c1,teleport,2026-01-01T00:00:00Z,
u2,i1,c1,view,,
u2,i1,c1,view,yesterday,
u2,i1,c1,view,1989-12-31T23:59:59Z,
u2,i1,c1,view,2999-01-01T00:00:00Z,
u2,i1,c1,purchase,2026-01-01T00:00:00Z,lots
u2,i1,c1,purchase,2026-01-01T00:00:00Z,-3
u2,i1,c1,view,2026-01-01T00:00:00Z,,extra
"""


@pytest.fixture(scope="module")
def built(fresh_db, tmp_path_factory):
    name, conninfo = fresh_db
    folder = tmp_path_factory.mktemp("events")
    (folder / "events.csv").write_text(ROWS)
    ingest([folder], conninfo)
    env = stack_env(tmp_path_factory.mktemp("state"), name)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "build",
            "--vars",
            '{as_of: "2026-01-15", as_of_start: "2026-01-14", half_life_days: 7}',
        ],
        cwd=PROJECT_ROOT / "dbt_project",
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    TARGETS[conninfo] = env["DBT_TARGET_PATH"]
    return conninfo


TARGETS: dict[str, str] = {}  # the dbt target folder of each built database


def query(conninfo, sql):
    with psycopg.connect(conninfo) as conn:
        return conn.execute(sql).fetchall()


def test_counts_reconcile(built):
    [(file_rows, raw, staged, duplicates, rejected)] = query(
        built,
        "select file_rows, raw_rows, staged_rows, duplicate_rows, rejected_rows from analytics.load_reconciliation",
    )
    assert (file_rows, raw, staged, duplicates, rejected) == (15, 15, 3, 1, 11)


def test_every_rejected_row_says_why(built):
    reasons = [r[0] for r in query(built, "select reject_reason from analytics.rejected_events order by row_number")]
    assert reasons[:10] == [
        "missing user_id",
        "missing item_id",
        "missing category_id",
        'unknown event_type "teleport"',
        "missing ts",
        'unparseable timestamp "yesterday"',
        "timestamp before EVENTS_EARLIEST_DAY (1990-01-01)",
        "timestamp in the future (after load time + 1 day)",
        'non-numeric value "lots"',
        "negative value",
    ]
    assert reasons[10].startswith("unparseable row: ") and "expected 6 fields, got 7" in reasons[10]


def test_decayed_interest_matches_hand_values(built):
    rows = query(
        built,
        "select as_of::date::text, category_id, interest, event_count from analytics.user_category_interest "
        f"where user_id = '{U1}' order by as_of, category_id",
    )
    # as_of 2026-01-14: view 6 d old (0.5^(6/7)) + purchase 13 d old (5 * 0.5^(13/7)); the c2 view is not before as_of.
    # as_of 2026-01-15: 0.5 + 5 * 0.25 = 1.75; the c2 view (naive ts read as UTC) is 1 day old.
    expected = [
        ("2026-01-14", "c1", 0.5 ** (6 / 7) + 5 * 0.5 ** (13 / 7), 2),
        ("2026-01-15", "c1", 1.75, 2),
        ("2026-01-15", "c2", 0.5 ** (1 / 7), 1),
    ]
    assert [(d, c, n) for d, c, _, n in rows] == [(d, c, n) for d, c, _, n in expected]
    for (_, _, got, _), (_, _, want, _) in zip(rows, expected):
        assert math.isclose(got, want, rel_tol=1e-12)


def test_user_ids_are_pseudonymised_at_staging(built):
    staged = {r[0] for r in query(built, "select distinct user_id from analytics.stg_behaviour__events")}
    assert staged == {U1}
    assert pseudonymise("u1", key="another key") != U1
    raw = {r[0] for r in query(built, "select distinct user_id from raw.events where user_id <> ''")}
    assert raw == {"u1", "u2"}
    # Every relation of the dbt schema with a user_id column, staging's checked rows and the rejects included.
    relations = [r[0] for r in query(built, USER_ID_RELATIONS)]
    assert {"stg_behaviour__events_checked", "rejected_events", "user_category_interest"} <= set(relations)
    for relation in relations:
        ids = {
            r[0] for r in query(built, f"select distinct user_id from analytics.{relation} where user_id is not null")
        }
        assert not ids & raw, relation
    # No reason quotes a raw field that holds a user id; the unsplittable row as given stays in raw.
    reasons = " ".join(r[0] for r in query(built, "select reject_reason from analytics.rejected_events"))
    assert "u2" not in reasons
    [(line,)] = query(built, "select raw_line from raw.events where parse_error is not null")
    assert line == "u2,i1,c1,view,2026-01-01T00:00:00Z,,extra"


USER_ID_RELATIONS = """
select c.table_name from information_schema.columns as c
where c.table_schema = 'analytics' and c.column_name = 'user_id' order by 1
"""


def test_the_pseudonym_key_is_in_no_compiled_sql(built):
    """dbt reads the key from the session setting PGOPTIONS gives, so its compiled SQL does not hold it; a
    connection without it stops with a sentence saying so."""
    target = Path(TARGETS[built])
    compiled = [f for f in target.rglob("*.sql") if "pseudonym_key()" in f.read_text()]
    assert compiled  # the models that pseudonymise were compiled here
    assert [str(f) for f in target.rglob("*") if f.is_file() and TEST_PSEUDONYM_KEY.encode() in f.read_bytes()] == []
    with psycopg.connect(built, options="") as conn, pytest.raises(psycopg.errors.RaiseException) as error:
        conn.execute("select analytics.pseudonym_key()")
    assert "PSEUDONYM_KEY is not set for this connection" in str(error.value)


def test_feature_rows_rank_categories_by_interest(built):
    [(categories, scores, total)] = query(
        built,
        "select category_ids, interest_scores, total_interest from analytics.user_interest_features "
        f"where user_id = '{U1}' and as_of = '2026-01-15'",
    )
    assert categories == ["c1", "c2"]
    assert scores == sorted(scores, reverse=True)
    assert math.isclose(total, sum(scores), rel_tol=1e-12)


def test_rerunning_a_day_gives_the_same_table(built, fresh_db, tmp_path_factory):
    name, _ = fresh_db
    sql = (
        "select md5(string_agg(user_id || category_id || as_of::text || interest::text, ',' order by 1)) "
        "from analytics.user_category_interest"
    )
    before = query(built, sql)
    env = stack_env(tmp_path_factory.mktemp("state2"), name)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "run",
            "--select",
            "user_category_interest",
            "--vars",
            '{as_of: "2026-01-15", as_of_start: "2026-01-14", half_life_days: 7}',
        ],
        cwd=PROJECT_ROOT / "dbt_project",
        env=env,
        check=True,
        capture_output=True,
    )
    assert query(built, sql) == before


def test_docs_generate_and_every_model_is_described(built, fresh_db, tmp_path_factory):
    import json

    name, _ = fresh_db
    env = stack_env(tmp_path_factory.mktemp("docs"), name)
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "docs", "generate"],
        cwd=PROJECT_ROOT / "dbt_project",
        env=env,
        check=True,
        capture_output=True,
    )
    target = Path(env["DBT_TARGET_PATH"])
    catalog = json.loads((target / "catalog.json").read_text())
    assert "model.interest_decay.user_category_interest" in catalog["nodes"]
    manifest = json.loads((target / "manifest.json").read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    assert len(models) >= 15
    undescribed = [k for k, v in models.items() if len(v["description"]) < 40]
    assert undescribed == []
