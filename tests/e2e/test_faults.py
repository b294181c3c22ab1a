"""Faults: PostgreSQL dies during a pipeline run and comes back; the run completes on retry.

The behaviour data lives on a second, private PostgreSQL cluster started here (Airflow's metadata stays
on the stack's cluster, as a production metadata database would outlive a data-warehouse outage).
`airflow dags test interest_pipeline` runs in the background; once the ingest task has succeeded, the
data cluster is stopped with `pg_ctl -m immediate` (no shutdown checkpoint: what a crash looks like),
kept down until a task has failed for it, then started again. The run must end in success, with at
least one task on its second try.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from interest_decay.events.synthetic import generate, write_events
from tests.conftest import recreate_database, stack_env
from tests.e2e.stack import BIN, POSTGRES, pg_ctl, private_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
AS_OF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def task_states(airflow_conninfo: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(airflow_conninfo) as conn:
        return conn.execute(
            "select task_id, coalesce(state, ''), try_number from task_instance where dag_id = 'interest_pipeline'"
        ).fetchall()


@pytest.fixture()
def data_cluster(tmp_path):
    """A private PostgreSQL cluster for the behaviour data; Airflow's metadata stays on the stack's cluster."""
    env = stack_env(tmp_path / "state", "faults_data", "faults_airflow")
    env.update({"AIRFLOW_DATABASE": "faults_data", "INTEREST_PIPELINE_SCHEDULE": "none"})
    with private_cluster(env) as env:
        yield env


def test_the_run_completes_on_retry_after_postgres_dies_and_comes_back(data_cluster, tmp_path):
    env = data_cluster
    recreate_database("faults_airflow")
    airflow_conninfo = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")
    events = Path(env["EVENTS_DIR"])
    write_events(generate(20_000, n_users=200, end=AS_OF, seed=11), events / "synthetic.parquet")
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    conf = json.dumps({"as_of": f"{AS_OF:%Y-%m-%d}", "events_path": str(events)})
    log_path = tmp_path / "dag-test.log"
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [str(BIN / "airflow"), "dags", "test", "interest_pipeline", f"{AS_OF:%Y-%m-%d}", "-c", conf],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while ("ingest", "success") not in {(t, s) for t, s, _ in task_states(airflow_conninfo)}:
            assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()[-4000:]
            time.sleep(0.5)
        stopped = pg_ctl(env, "-m", "immediate", "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        deadline = time.monotonic() + 300
        while not any(s == "up_for_retry" for _, s, _ in task_states(airflow_conninfo)):
            assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()[-4000:]
            time.sleep(0.5)
        restarted = subprocess.run([POSTGRES, "start"], env=env, capture_output=True, text=True, timeout=300)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert run.wait(timeout=1500) == 0, log_path.read_text()[-6000:]
    finally:
        if run.poll() is None:
            run.kill()
    assert "state=success" in log_path.read_text()
    retried = [(task, tries) for task, state, tries in task_states(airflow_conninfo) if tries >= 2]
    assert retried and all(state == "success" or state == "skipped" for _, state, _ in task_states(airflow_conninfo)), (
        task_states(airflow_conninfo)
    )
