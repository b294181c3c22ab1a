"""End to end: the Airflow DAG under `airflow dags test` on a small synthetic dataset (the stack of
``conftest.py``): its reports, its registered model, its decay fit and the drift monitor.

Two probe users are planted in the data: one whose recent events are all in category A, and one
whose many A-events are old while a few B-events are recent. The served model must put A-items
first for the first and B-items first for the second.

The generated events decay with known half-lives per category (0.5 to 2 days): the run's fit_decay task
must find each of them within 10%, and the explanations must show the fitted values.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from interest_decay.config import pg_conninfo
from interest_decay.events.synthetic import half_lives
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.e2e.stack import AS_OF, BIN, CATEGORIES, CATEGORY_A, MAX_HALF_LIFE, fitted_half_lives

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_dag_run_leaves_reports_and_a_registered_model(stack):
    env, _ = stack
    reports = Path(env["REPORTS_DIR"]) / f"{AS_OF:%Y-%m-%d}"
    for name in (
        "metrics.json",
        "evaluation.md",
        "training_curve.png",
        "drift.html",
        "drift.json",
        "churn.png",
        "quality.html",
        "quality.json",
    ):
        assert (reports / name).stat().st_size > 0, name
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["model_kind"] == "item_ranker" and metrics["train_examples"] > 1_000
    for method in ("model", "most_popular"):
        assert metrics["metrics"][method]["users"] > 20
        assert 0.0 <= metrics["metrics"][method]["ndcg@10"] <= 1.0
    # the test window in the harness protocol: the served model and the baselines on the same users
    harness = metrics["harness"]
    assert harness["users"] > 20 and harness["catalogue"] > 100
    for method in ("served_model", "popular_30d", "history", "history_ties_30d", "stan"):
        assert 0.0 <= harness["methods"][method]["ndcg@10"] <= 1.0, method
        assert harness["methods"][method]["ndcg@10_over_history_ties_30d"]["ratio"] > 0.0
    assert metrics["metrics"]["model"]["ndcg@10"] == pytest.approx(harness["methods"]["served_model"]["ndcg@10"])
    # the gate: promoted exactly when the served model beats the best baseline (no champion before this run)
    promotion, served = metrics["promotion"], harness["methods"]["served_model"]["ndcg@10"]
    baselines = {n: v["ndcg@10"] for n, v in harness["methods"].items() if n != "served_model"}
    assert promotion["best_baseline"] == max(baselines, key=baselines.get) == promotion["incumbent"]
    assert promotion["promoted"] == (served >= max(baselines.values()))
    assert promotion["reason"].startswith("ndcg@10") and "against the best baseline" in promotion["reason"]
    assert promotion["champion"] == (metrics["model_tag"] if promotion["promoted"] else None)
    report = (reports / "evaluation.md").read_text()
    assert "Promotion gate on the same test window" in report and "| served_model |" in report
    drift = json.loads((reports / "drift.json").read_text())["summary"]
    assert drift["current_rows"] > 0 and drift["reference_rows"] > 0
    # Evidently's recsys metrics on the same test lists agree with the project's own (same definitions)
    quality, model = metrics["quality"], metrics["metrics"]["model"]
    assert quality["users"] == model["users"] and quality["k"] == 10
    assert quality["ndcg"] == pytest.approx(model["ndcg@10"], rel=1e-9)
    assert quality["hit_rate"] == pytest.approx(model["hr@10"], rel=1e-9)
    assert 0.0 <= quality["personalization"] <= 1.0 and 0.0 < quality["coverage"] <= 1.0
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:
        row = conn.execute(
            "select users, ndcg from monitoring.quality_runs where as_of = %s and model = %s",
            (AS_OF.date(), metrics["model_tag"]),
        ).fetchone()
    assert row == (quality["users"], pytest.approx(quality["ndcg"], rel=1e-12))


def test_the_pseudonym_key_is_in_no_metadata_table_compiled_sql_log_or_server_log(stack):
    """dbt's SQL reads the key from the session setting PGOPTIONS gives (interest_decay.config): Airflow's
    metadata (rendered templates: cosmos keeps the compiled SQL), dbt's target and logs, the tasks' logs and
    PostgreSQL's log hold no trace of it."""
    env, state = stack
    key = env["PSEUDONYM_KEY"]
    assert key == TEST_PSEUDONYM_KEY
    with psycopg.connect(pg_conninfo(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit("/", 1)[1])) as conn:
        tables = [t for (t,) in conn.execute("select tablename from pg_tables where schemaname = 'public'")]
        assert "rendered_task_instance_fields" in tables
        rendered = conn.execute("select count(*) from rendered_task_instance_fields").fetchone()[0]
        assert rendered > 0  # the search below looks at the fields the UI shows
        hits = [
            t
            for t in tables
            if conn.execute(f'select exists (select from "{t}" as r where r::text like %s)', (f"%{key}%",)).fetchone()[
                0
            ]
        ]
    assert hits == []
    folders = [Path(env["DBT_TARGET_PATH"]), Path(env["DBT_LOG_PATH"]), Path(env["AIRFLOW_HOME"]) / "logs"]
    files = [f for folder in folders if folder.exists() for f in folder.rglob("*") if f.is_file()]
    assert any(f.suffix == ".sql" for f in files)
    assert [str(f) for f in files if key.encode() in f.read_bytes()] == []
    server_log = Path(os.environ.get("PGDATA", "/nonexistent")) / "server.log"
    if server_log.exists():  # the private cluster's log since the stack started
        with server_log.open("rb") as log:
            log.seek(int((state / "server-log-offset").read_text()))
            assert key.encode() not in log.read()


def test_the_run_fits_every_categorys_half_life_within_ten_percent_of_the_generators(stack):
    env, _ = stack
    fitted = fitted_half_lives(env)
    for category, truth in zip(map(str, range(1, CATEGORIES + 1)), half_lives(CATEGORIES, 0.5, MAX_HALF_LIFE)):
        assert fitted[(category, "*")] == pytest.approx(truth, rel=0.10), category
    report = (Path(env["REPORTS_DIR"]) / f"{AS_OF:%Y-%m-%d}" / "decay.md").read_text()
    assert "| category | event type | family | half-life (days) [95% CI] |" in report
    assert (Path(env["REPORTS_DIR"]) / f"{AS_OF:%Y-%m-%d}" / "decay_curves" / f"{CATEGORY_A}__view.png").stat().st_size
    assert "## Repeat-purchase family" in report
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:  # the repeat fit reached its mart
        (fitted_items,) = conn.execute(
            "select count(*) from params.repeat_parameters_fitted where origin = 'item'"
        ).fetchone()
        (scored,) = conn.execute(
            "select count(*) from analytics.user_item_repeat_interest where as_of = %s", (AS_OF,)
        ).fetchone()
    assert fitted_items > 0 and scored > 1_000


def test_drift_summaries_land_in_postgres_and_the_monitor_dag_runs(stack):
    env, state = stack
    run = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "drift_monitor"], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0 and "state=success" in run.stdout + run.stderr, (run.stdout + run.stderr)[-4000:]
    with psycopg.connect(pg_conninfo(env["PGDATABASE"])) as conn:
        rows = dict(
            conn.execute(
                "select check_name, current_rows from monitoring.drift_runs where as_of = %s", (AS_OF.date(),)
            ).fetchall()
        )
    assert set(rows) == {"pipeline", "monitor"} and min(rows.values()) > 0
    assert (Path(env["REPORTS_DIR"]) / "monitor" / f"{AS_OF:%Y-%m-%d}" / "drift.html").stat().st_size > 0
