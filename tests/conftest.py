"""Shared fixtures: fresh PostgreSQL databases and the environment of an isolated local stack.

Tests that need PostgreSQL use the server that `make test` starts (PG* variables); each such test
module gets its own freshly created database, so no state leaks between modules or from a demo.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interest_decay import config as settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEST_PSEUDONYM_KEY = "test-pseudonym-key"
os.environ["PSEUDONYM_KEY"] = TEST_PSEUDONYM_KEY  # tests pseudonymise with a known key
os.environ.update(settings.with_pseudonym_key_option(dict(os.environ)))  # ... which dbt's sessions get too
# The event types of the dbt seed: int_interest_day_deltas has an "interest_<type>" column for each.
EVENT_TYPES = sorted(
    row["event_type"]
    for row in csv.DictReader(
        (PROJECT_ROOT / "dbt_project" / "seeds" / "event_type_weights.csv").read_text().splitlines()
    )
)
SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


def recreate_database(name: str) -> str:
    """Drop and create database ``name``; returns its libpq connection string."""
    import psycopg

    from interest_decay.config import pg_conninfo

    try:
        conn = psycopg.connect(pg_conninfo("postgres"), autocommit=True)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable ({error}); run the tests with `make test`, which starts it")
    with conn:
        for attempt in range(15):  # an autovacuum worker on the old database can hold it for a moment
            try:
                conn.execute(f'drop database if exists "{name}" with (force)')
                break
            except psycopg.errors.InsufficientPrivilege:
                if attempt == 14:
                    raise
                time.sleep(2)
        conn.execute(f'create database "{name}"')
        conn.execute(f"alter database \"{name}\" set timezone to 'UTC'")
    return pg_conninfo(name)


def stack_env(state_dir: Path, database: str, airflow_database: str | None = None) -> dict[str, str]:
    """Environment of a local stack whose state lives in ``state_dir`` and data in ``database``."""
    env = dict(os.environ)
    env.update(
        {
            "DECAY_STATE_DIR": str(state_dir),
            "PGDATABASE": database,
            "FEAST_REGISTRY_PATH": str(state_dir / "feast" / "registry.db"),
            "FEAST_ONLINE_PATH": str(state_dir / "feast" / "online.db"),
            "BENTOML_HOME": str(state_dir / "bentoml"),
            "REPORTS_DIR": str(state_dir / "reports"),
            "EVENTS_DIR": str(state_dir / "events"),
            "DBT_TARGET_PATH": str(state_dir / "dbt" / "target"),
            "DBT_LOG_PATH": str(state_dir / "dbt" / "logs"),
        }
    )
    if airflow_database:
        user = env.get("PGUSER", "decay")
        password = f":{env['PGPASSWORD']}" if env.get("PGPASSWORD") else ""
        env.update(
            {
                "AIRFLOW_HOME": str(state_dir / "airflow"),
                # Tests trigger their runs; a scheduled run (from a DAG serialized with the daily schedule)
                # would queue ahead of them (max_active_runs=1).
                "INTEREST_PIPELINE_SCHEDULE": "none",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{user}{password}@{env.get('PGHOST', '127.0.0.1')}:"
                f"{env.get('PGPORT', '55432')}/{airflow_database}",
            }
        )
    return env


DBT = [str(Path(sys.executable).parent / "dbt")]


def dbt(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``dbt *args`` in dbt_project/ with environment ``env``; with ``check`` the test fails (showing dbt's
    output) unless dbt succeeds."""
    env = settings.with_pseudonym_key_option(env)
    run = subprocess.run([*DBT, *args], cwd=PROJECT_ROOT / "dbt_project", env=env, capture_output=True, text=True)
    assert run.returncode == 0 or not check, run.stdout[-4000:]
    return run


def start_dbt(env: dict, *args: str) -> subprocess.Popen:
    """``dbt *args`` started in the background (stdout piped as text), for tests that act while it runs."""
    env = settings.with_pseudonym_key_option(env)
    return subprocess.Popen([*DBT, *args], cwd=PROJECT_ROOT / "dbt_project", env=env, stdout=subprocess.PIPE, text=True)


def wait_for_a_blocked_advisory_lock(conninfo: str, run, timeout_s: float = 120) -> bool:
    """True once a session waits for an advisory lock (a dbt run's pre-hook), False if the subprocess ``run``
    ends first."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and run.poll() is None:
        with psycopg.connect(conninfo) as conn:
            if conn.execute("select count(*) from pg_locks where locktype = 'advisory' and not granted").fetchone()[0]:
                return True
        time.sleep(0.2)
    return False


def staged_events(conninfo: str):
    """The staged events of a database (pseudonymised users) in the harness's columns, oldest first."""
    import pandas as pd
    import psycopg

    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "select user_id, item_id, category_id, event_type, event_ts from analytics.stg_behaviour__events"
        ).fetchall()
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.sort_values("ts", kind="stable", ignore_index=True)


@pytest.fixture(scope="module")
def fresh_db(request):
    """A new, empty database for this test module; yields (name, conninfo)."""
    name = "test_" + request.module.__name__.rsplit(".", 1)[-1][:40]
    return name, recreate_database(name)
