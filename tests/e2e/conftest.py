"""The end-to-end stack, started once for this folder (package scope) and shared by its modules (in the
order pytest collects them: test_pipeline, test_serving, then test_trigger_via_rest_api, which re-runs the
DAG with changed parameters): the DAG under `airflow dags test`, the built bento under `bentoml serve`,
and `airflow standalone` for the REST API."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from interest_decay.events.synthetic import generate, write_events
from tests.conftest import PROJECT_ROOT, recreate_database, stack_env
from tests.e2e.stack import AS_OF, BIN, CATEGORIES, ITEMS_PER_CATEGORY, MAX_HALF_LIFE, free_port, probe_events


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("stack")
    recreate_database("e2e_interest")
    recreate_database("e2e_airflow")
    env = stack_env(state, "e2e_interest", "e2e_airflow")
    events_dir = Path(env["EVENTS_DIR"])
    write_events(
        generate(
            200_000,
            n_users=2_000,
            n_categories=CATEGORIES,
            items_per_category=ITEMS_PER_CATEGORY,
            max_half_life=MAX_HALF_LIFE,
            end=AS_OF,
            seed=5,
        ),
        events_dir / "synthetic.parquet",
    )
    write_events(probe_events(), events_dir / "probes.csv")
    server_log = Path(os.environ.get("PGDATA", "/nonexistent")) / "server.log"
    (state / "server-log-offset").write_text(str(server_log.stat().st_size if server_log.exists() else 0))
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    conf = json.dumps({"as_of": f"{AS_OF:%Y-%m-%d}", "events_path": str(events_dir)})
    run = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "interest_pipeline", f"{AS_OF:%Y-%m-%d}", "-c", conf],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    log = run.stdout + run.stderr
    (state / "dag-test.log").write_text(log)
    assert run.returncode == 0 and "state=success" in log, log[-6000:]
    return env, state


@contextlib.contextmanager
def bentoml_serve(env: dict, log_path: Path):
    """``bentoml serve interest_service:latest`` on a free port with ``env``, yielded (its URL) once /readyz
    answers 200; stopped afterwards."""
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "bentoml"), "serve", "interest_service:latest", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()[-4000:]
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        else:
            pytest.fail("bentoml serve did not become ready:\n" + log_path.read_text()[-4000:])
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="package")
def served(stack):
    env, state = stack
    # One worker, so that every call sees the same deploy state (each worker follows the champion alone).
    serve_env = {**env, "MODEL_RELOAD_SECONDS": "1", "PREDICTION_LOG_SECONDS": "1", "SERVE_WORKERS": "1"}
    with bentoml_serve(serve_env, state / "serve.log") as url:
        yield url


@pytest.fixture(scope="package")
def airflow_ui(stack, served):
    """`airflow standalone` (UI, API, scheduler, LocalExecutor) over the same stack, started as `make airflow` does;
    its deploy task checks the running server."""
    env, _ = stack
    port = free_port()
    env = {
        **env,
        "AIRFLOW__API__PORT": str(port),
        "INTEREST_PIPELINE_SCHEDULE": "none",
        "SERVE_URL": served,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
    }
    services = str(PROJECT_ROOT / "infra" / "services.sh")
    started = subprocess.run([services, "airflow"], env=env, capture_output=True, text=True, timeout=400)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield env, f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    finally:
        subprocess.run([services, "stop", "airflow"], env=env, capture_output=True, timeout=120)
