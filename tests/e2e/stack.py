"""What the end-to-end tests share: the stack's data (planted probes, known half-lives), and helpers to call
the served model and read the marts. The fixtures that start the stack are in ``conftest.py``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import requests

from interest_decay.config import pg_conninfo
from tests.conftest import EVENT_TYPES, PROJECT_ROOT

AS_OF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
ITEMS_PER_CATEGORY = 50
CATEGORIES, MAX_HALF_LIFE = 4, 2.0  # the generator's categories "1".."4", half-lives 0.5 .. 2 days
CATEGORY_A, CATEGORY_B = "3", "4"
BIN = Path(sys.executable).parent


def items_of(category: str) -> list[str]:
    first = (int(category) - 1) * ITEMS_PER_CATEGORY + 1
    return [str(first + i) for i in range(5)]


def probe_events() -> pd.DataFrame:
    rows = []
    for i in range(12):  # probe_recent: 12 views of A-items in the last 3 days
        rows.append(("probe_recent", items_of(CATEGORY_A)[i % 5], CATEGORY_A, AS_OF - dt.timedelta(hours=3 + 6 * i)))
    for i in range(30):  # probe_shift: 30 old A-views (35-40 days back) ...
        rows.append(
            ("probe_shift", items_of(CATEGORY_A)[i % 5], CATEGORY_A, AS_OF - dt.timedelta(days=35, hours=4 * i))
        )
    for i in range(5):  # ... and 5 recent B-views
        rows.append(("probe_shift", items_of(CATEGORY_B)[i % 5], CATEGORY_B, AS_OF - dt.timedelta(hours=5 + 8 * i)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "ts"])
    frame.insert(3, "event_type", "view")
    frame["value"] = float("nan")
    return frame


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_password(env: dict) -> str:
    """The password Airflow's simple auth manager generated for admin."""
    return json.loads((Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated").read_text())["admin"]


def airflow_api(env: dict, url: str) -> requests.Session:
    """A session on Airflow's REST API at ``url``, logged in as admin with the generated password."""
    token = requests.post(
        f"{url}/auth/token", json={"username": "admin", "password": admin_password(env)}, timeout=30
    ).json()["access_token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    return api


def wait_for_run(api: requests.Session, url: str, dag_id: str, run_id: str, log: str, timeout: float = 900) -> None:
    """Wait until the run ends; assert it succeeded (``log``: where to look when it did not)."""
    deadline = time.monotonic() + timeout
    state = "queued"
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(5)
        state = api.get(f"{url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=30).json()["state"]
    assert state == "success", f"{dag_id} run {run_id} ended {state}; see {log}"


def recommend(url: str, **body) -> dict:
    import bentoml

    with bentoml.SyncHTTPClient(url) as client:
        result = client.recommend(**body)
    return result if isinstance(result, dict) else result.model_dump(mode="json")


def call(url: str, endpoint: str, **body) -> dict:
    import bentoml

    with bentoml.SyncHTTPClient(url) as client:
        result = getattr(client, endpoint)(**body)
    return result if isinstance(result, dict) else result.model_dump(mode="json")


def fitted_half_lives(env: dict) -> dict[tuple[str, str], float]:
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:
        return dict(
            ((c, t), h)
            for c, t, h in conn.execute(
                "select category_id, event_type, half_life_days from params.decay_parameters_fitted"
            )
        )


INTEREST_TABLES = {  # keys first, the float interest last
    "int_interest_day_deltas": [
        "as_of",
        "user_id",
        "category_id",
        "recomputed",
        "event_count",
        "last_event_ts",
        " + ".join(f"coalesce(interest_{t}, 0)" for t in EVENT_TYPES),
    ],
    "user_category_interest": ["as_of", "user_id", "category_id", "event_count", "last_event_ts", "interest"],
    "user_interest_features": ["as_of", "user_id", "category_ids", "event_count", "total_interest"],
    "user_item_repeat_interest": [
        "as_of",
        "user_id",
        "item_id",
        "purchase_days",
        "last_purchase_ts",
        "repeat_interest",
    ],
}


def interest_tables(database: str, schema: str = "analytics") -> dict[str, list[tuple]]:
    """The interest tables of ``schema``, sorted by key; the last column is the float interest."""
    with psycopg.connect(pg_conninfo(database)) as conn:
        return {
            table: conn.execute(
                f"select {', '.join(columns)} from {schema}.{table} order by "
                + ", ".join(str(i) for i in range(1, len(columns)))
            ).fetchall()
            for table, columns in INTEREST_TABLES.items()
        }


# The models behind INTEREST_TABLES and their parents: what a full refresh to compare with rebuilds.
INTEREST_MODELS = [f"+{table}" for table in INTEREST_TABLES]


def assert_same_tables(got: dict, want: dict, rel: float = 1e-12) -> None:
    """Same rows and keys; interest equal up to float rounding (a re-run may reach a day from the day
    before, S(t1) * 0.5^(dt / h), instead of summing every event again)."""
    for table in want:
        assert len(got[table]) == len(want[table]) > 0, table
        for new, old in zip(got[table], want[table]):
            assert new[:-1] == old[:-1], table
            assert new[-1] == pytest.approx(old[-1], rel=rel), table


POSTGRES = str(PROJECT_ROOT / "infra" / "postgres.sh")


def pg_ctl(env: dict, *args: str) -> subprocess.CompletedProcess:
    """``pg_ctl`` on the cluster of ``env`` (PGBIN, PGDATA), as the postgres user when run as root."""
    command = [f"{env['PGBIN']}/pg_ctl", "-D", env["PGDATA"], *args]
    if os.getuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def private_cluster(env: dict):
    """A second private PostgreSQL cluster for ``env`` (its PGDATABASE and AIRFLOW_DATABASE created there, outside
    the pytest folder: the postgres user must reach it), as ``make postgres`` starts one; yields ``env`` pointed
    at it; removed afterwards."""
    root = Path(f"/var/tmp/interest-decay-cluster-{uuid.uuid4().hex[:8]}")
    env = {**env, "PGDATA": str(root / "pgdata"), "PGPORT": str(free_port())}
    started = subprocess.run([POSTGRES, "start"], env=env, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield env
    finally:
        pg_ctl(env, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
