"""Incremental maintenance of the interest snapshots is exact: eight daily runs, each loading that
day's file (with late events of earlier days and re-sent duplicates), end in the same table as one
full refresh over all files, to 1e-9 relative; re-running the last day changes nothing."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from interest_decay.ingest import ingest
from interest_decay.synthetic import generate, write_events
from tests.conftest import PROJECT_ROOT, recreate_database, stack_env

pytestmark = pytest.mark.postgres
START = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
DAYS = 8
FITTED = [("2", "*", "logistic", None, 0.5, 0.3, None, None),
          ("3", "purchase", "exponential", 0.5, None, None, None, None),
          ("4", "*", "period", None, None, None, 1.0, "1;0.7;0.2")]
SNAPSHOT_SQL = ("select as_of, user_id, category_id, event_type, interest, event_count, last_event_ts "
                "from analytics.interest_snapshots where as_of = %s order by 2, 3, 4")


def day(i: int) -> str:
    return f"{START + dt.timedelta(days=i):%Y-%m-%d}"


def daily_files(folder: Path) -> list[Path]:
    """One file per day; 15% of each day's events arrive two days late; some events are sent twice."""
    events = generate(4_000, n_users=30, n_categories=6, days=DAYS, end=START + dt.timedelta(days=DAYS), seed=4)
    rng = np.random.default_rng(4)
    arrival = ((events.ts - START).dt.total_seconds() // 86400).astype(int)
    late = rng.random(len(events)) < 0.15
    arrival[late] = np.minimum(arrival[late] + 2, DAYS - 1)
    files = []
    for i in range(DAYS):
        batch = events[arrival == i]
        if i > 0:  # re-sent duplicates of earlier-arrived events
            batch = pd.concat([batch, events[arrival < i].sample(20, random_state=i)])
        files.append(write_events(batch, folder / f"day{i}.csv"))
    return files


def dbt(env, *args):
    run = subprocess.run([str(Path(sys.executable).parent / "dbt"), *args], cwd=PROJECT_ROOT / "dbt_project",
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:]


def prepare(name, tmp_path):
    conninfo = recreate_database(name)
    env = stack_env(tmp_path / name, name)
    dbt(env, "seed")
    dbt(env, "run", "--select", "int_decay_parameters")
    with psycopg.connect(conninfo) as conn:
        conn.cursor().executemany(
            "insert into params.decay_parameters_fitted (category_id, event_type, family, half_life_days, "
            "logistic_k, logistic_l, period_days, period_weights) values (%s, %s, %s, %s, %s, %s, %s, %s)", FITTED)
    return conninfo, env


def snapshot(conninfo, as_of):
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(SNAPSHOT_SQL, (dt.datetime.fromisoformat(as_of).replace(tzinfo=dt.timezone.utc),)).fetchall()
    return pd.DataFrame(rows, columns=["as_of", "user_id", "category_id", "event_type", "interest", "event_count",
                                       "last_event_ts"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("incremental")
    files = daily_files(tmp / "files")
    incremental, inc_env = prepare("test_incremental_daily", tmp)
    for i, path in enumerate(files):
        ingest([path], incremental)
        dbt(inc_env, "run", "--select", "+user_category_interest", "--vars",
            f'{{as_of: "{day(i + 1)}", as_of_start: "{day(i + 1)}"}}')
    compiled = Path(inc_env["DBT_TARGET_PATH"]) / "compiled/interest_decay/models/intermediate/interest_snapshots.sql"
    last_daily_sql = compiled.read_text()
    full, full_env = prepare("test_incremental_full", tmp)
    ingest(files, full)
    dbt(full_env, "run", "--full-refresh", "--select", "+user_category_interest", "--vars",
        f'{{as_of: "{day(DAYS)}", as_of_start: "{day(DAYS)}"}}')
    return incremental, inc_env, full, last_daily_sql


def assert_same(got: pd.DataFrame, want: pd.DataFrame):
    keys = ["as_of", "user_id", "category_id", "event_type", "event_count", "last_event_ts"]
    assert len(got) == len(want) > 100
    assert got[keys].equals(want[keys])
    np.testing.assert_allclose(got.interest, want.interest, rtol=1e-9, atol=1e-280)


def test_daily_runs_kept_one_snapshot_per_day_with_growing_watermarks(runs):
    incremental, _, _, last_daily_sql = runs
    # The last daily run started from the previous day's snapshot and read only uncounted events.
    assert f"where base.as_of = (date '{day(DAYS - 1)}'" in last_daily_sql
    assert "where load_id > 7" in last_daily_sql
    with psycopg.connect(incremental) as conn:
        marks = conn.execute("select as_of::date, max(watermark_load_id) from analytics.interest_snapshots "
                             "group by 1 order by 1").fetchall()
    assert [str(d) for d, _ in marks] == [day(i + 1) for i in range(DAYS)]
    assert [w for _, w in marks] == list(range(1, DAYS + 1))


def test_incremental_equals_full_refresh(runs):
    incremental, _, full, _ = runs
    assert_same(snapshot(incremental, day(DAYS)), snapshot(full, day(DAYS)))


def test_rerunning_the_last_day_changes_nothing(runs):
    incremental, env, _, _ = runs
    before = snapshot(incremental, day(DAYS))
    dbt(env, "run", "--select", "+user_category_interest", "--vars", f'{{as_of: "{day(DAYS)}", as_of_start: "{day(DAYS)}"}}')
    assert_same(snapshot(incremental, day(DAYS)), before)
