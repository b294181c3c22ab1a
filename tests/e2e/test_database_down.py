"""PostgreSQL down: the service answers 503 with a message, never a 500, and recovers when it is back.

A second `bentoml serve` of the stack's bento reads its events database from a private cluster started here
(a copy of the stack's database, made with pg_dump);
the test stops that cluster (`pg_ctl -m immediate`, what a crash looks like), calls /events, /audience and
/readyz, starts it again and sends the batch once more."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
import requests

from tests.e2e.conftest import bentoml_serve
from tests.e2e.stack import CATEGORY_A, POSTGRES, pg_ctl, private_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_with_postgres_down_the_service_answers_503_with_a_message_and_recovers(stack):
    env, state = stack
    now = dt.datetime.now(dt.UTC).isoformat()
    batch = {
        "events": [{"user_id": "down1", "item_id": "1", "category_id": CATEGORY_A, "event_type": "view", "ts": now}]
    }
    with private_cluster({**env, "AIRFLOW_DATABASE": env["PGDATABASE"]}) as cluster:
        dump = subprocess.run(
            [f"{env['PGBIN']}/pg_dump", "--no-owner", env["PGDATABASE"]], env=env, capture_output=True
        )
        assert dump.returncode == 0, dump.stderr[-2000:]
        restore = subprocess.run(
            [f"{env['PGBIN']}/psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", env["PGDATABASE"]],
            input=dump.stdout,
            env=cluster,
            capture_output=True,
        )
        assert restore.returncode == 0, restore.stderr[-2000:]
        with bentoml_serve({**cluster, "SERVE_WORKERS": "1"}, state / "serve-down.log") as url:
            first = requests.post(f"{url}/events", json=batch, timeout=30)
            assert first.status_code == 200 and first.json()["accepted"] == 1, first.text
            assert requests.post(f"{url}/audience", json={"category_id": CATEGORY_A}, timeout=30).status_code == 200

            stopped = pg_ctl(cluster, "-m", "immediate", "stop")
            assert stopped.returncode == 0, stopped.stderr
            answers = {
                "events": requests.post(f"{url}/events", json={"events": batch["events"] * 2}, timeout=30),
                "audience": requests.post(f"{url}/audience", json={"category_id": CATEGORY_A}, timeout=30),
                "readyz": requests.get(f"{url}/readyz", timeout=30),
            }
            for name, answer in answers.items():
                assert answer.status_code == 503, (name, answer.status_code, answer.text)
                assert "Traceback" not in answer.text, (name, answer.text)
            for name in ("events", "audience"):
                assert "the event database is not reachable" in answers[name].text, answers[name].text

            started = subprocess.run([POSTGRES, "start"], env=cluster, capture_output=True, text=True, timeout=300)
            assert started.returncode == 0, started.stdout + started.stderr
            again = requests.post(f"{url}/events", json={"events": batch["events"] * 2}, timeout=30)
            assert again.status_code == 200 and again.json()["accepted"] == 2, again.text
            assert requests.get(f"{url}/readyz", timeout=30).status_code == 200
