"""End to end: `airflow standalone` over the stack of ``conftest.py``; a run triggered through the REST API
with changed decay parameters leaves the tables a full refresh with those parameters gives."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import psycopg
import pytest
import requests

from interest_decay.config import pg_conninfo
from models.pipeline.train import load_config
from tests.conftest import dbt
from tests.e2e.stack import AS_OF, INTEREST_MODELS, airflow_api, assert_same_tables, interest_tables, wait_for_run

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def trigger_and_wait(env: dict, url: str, conf: dict) -> tuple[requests.Session, str]:
    """Trigger interest_pipeline through the REST API with ``conf``; wait for success. Returns the session
    and the run id."""
    api = airflow_api(env, url)
    deadline = time.monotonic() + 180
    while api.get(f"{url}/api/v2/dags/interest_pipeline", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the DAG processor did not register interest_pipeline"
        time.sleep(3)
    assert api.patch(f"{url}/api/v2/dags/interest_pipeline", json={"is_paused": False}, timeout=30).ok
    created = api.post(
        f"{url}/api/v2/dags/interest_pipeline/dagRuns", json={"logical_date": None, "conf": conf}, timeout=30
    )
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]
    wait_for_run(api, url, "interest_pipeline", run_id, f"{env['DECAY_STATE_DIR']}/logs/airflow.log")
    return api, run_id


def markers(database: str) -> list[tuple]:
    """int_interest_day_deltas' day markers: (as_of, parameters fingerprint), by day."""
    with psycopg.connect(pg_conninfo(database)) as conn:
        return conn.execute(
            "select as_of, parameters_fingerprint from analytics.int_interest_day_deltas where user_id is null order by 1"
        ).fetchall()


def test_a_refit_run_through_the_rest_api_equals_a_full_refresh_with_its_parameters(stack, airflow_ui):
    """The first run fitted every kind's decay. Re-run the same day through the REST API with one fitted
    kind's half-life tripled by an override: the parameters' fingerprint changes, the run deletes the
    stored days and recomputes its window, and every interest table equals a full refresh (a fresh schema,
    dbt --full-refresh) under the same parameters."""
    env, url = airflow_ui
    database = env["PGDATABASE"]
    with psycopg.connect(pg_conninfo(database)) as conn:
        category, event_type, fitted = conn.execute(
            "select category_id, event_type, half_life_days from params.decay_parameters_fitted "
            "where family = 'exponential' and category_id <> '*' and event_type <> '*' order by 1, 2 limit 1"
        ).fetchone()
    before = markers(database)
    overrides = {f"{category}:{event_type}": round(3 * fitted, 6)}
    conf = {
        "as_of": f"{AS_OF:%Y-%m-%d}",
        "events_path": env["EVENTS_DIR"],
        "half_life_days": 7,
        "retrain": "on_drift",
        "half_life_overrides": overrides,
        "decay_family": "table",
    }
    api, run_id = trigger_and_wait(env, url, conf)

    # the Param reached dbt: the override is the kind's parameter, and the stored days were recomputed with it
    with psycopg.connect(pg_conninfo(database)) as conn:
        assert conn.execute(
            "select half_life_days from analytics.int_event_kind_parameters where category_id = %s and event_type = %s",
            (category, event_type),
        ).fetchone() == (pytest.approx(3 * fitted, rel=1e-6),)
    after = markers(database)
    assert [day for day, _ in after] == [day for day, _ in before]
    assert {fp for _, fp in after} != {fp for _, fp in before} and len({fp for _, fp in after}) == 1

    # a full refresh with the run's parameters, in a schema of its own over the same raw loads
    cfg = load_config()  # the run's window: as resolve_window derives it from as_of
    mart_start = AS_OF.date() - dt.timedelta(days=cfg["eval_days"] + cfg["train_days"])
    full_env = {**env, "DBT_SCHEMA": "refit_full", "DBT_TARGET_PATH": str(Path(env["DBT_TARGET_PATH"]) / "refit")}
    dbt_vars = json.dumps(
        {
            "as_of": f"{AS_OF:%Y-%m-%d}",
            "as_of_start": mart_start.isoformat(),
            "half_life_days": 7.0,
            "decay_family": "table",
            "half_life_overrides": json.dumps(overrides),
        }
    )
    dbt(full_env, "seed", "--full-refresh")
    dbt(full_env, "run", "--full-refresh", "--select", *INTEREST_MODELS, "--vars", dbt_vars)
    assert_same_tables(interest_tables(database), interest_tables(database, schema="refit_full"), rel=1e-9)

    # retrain = on_drift: training ran exactly when the drift check (same day) found drift
    with psycopg.connect(pg_conninfo(database)) as conn:
        drifted = conn.execute(
            "select dataset_drift from monitoring.drift_runs where as_of = %s and check_name = 'pipeline'",
            (AS_OF.date(),),
        ).fetchone()[0]
    train_state = api.get(
        f"{url}/api/v2/dags/interest_pipeline/dagRuns/{run_id}/taskInstances/train", timeout=30
    ).json()["state"]
    assert train_state == ("success" if drifted else "skipped")


def test_the_airflow_ui_listens_on_loopback_and_its_password_file_is_private(airflow_ui):
    """`make airflow` binds the UI and API to 127.0.0.1 (AIRFLOW__API__HOST; Airflow's own default is every
    interface) and leaves the generated admin password readable by its owner only."""
    import psutil

    env, url = airflow_ui
    port = int(url.rsplit(":", 1)[1])
    listening = {
        c.laddr.ip for c in psutil.net_connections(kind="inet") if c.status == "LISTEN" and c.laddr.port == port
    }
    assert listening == {"127.0.0.1"}
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    assert passwords.stat().st_mode & 0o777 == 0o600
