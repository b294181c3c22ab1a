"""Served predictions reach PostgreSQL, and prediction drift (Evidently) separates a shifted day from a
day like the ones before it."""

import datetime as dt

import numpy as np
import psycopg
import pytest

from interest_decay.monitoring.prediction_log import PredictionLog, ServedPrediction
from tests.conftest import stack_env

pytestmark = pytest.mark.postgres
DAY = dt.date(2026, 11, 20)


@pytest.fixture()
def monitoring_db(fresh_db, tmp_path, monkeypatch):
    name, conninfo = fresh_db
    for key, value in stack_env(tmp_path, name).items():
        if key in ("PGDATABASE", "REPORTS_DIR", "DECAY_STATE_DIR"):
            monkeypatch.setenv(key, value)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("drop schema if exists monitoring cascade")
    return conninfo, tmp_path


def served(day: dt.date, n: int, mean: float, seed: int, fallback_share: float = 0.1) -> list[ServedPrediction]:
    rng = np.random.default_rng(seed)
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return [
        ServedPrediction(
            start + dt.timedelta(seconds=int(s)),
            "recommend",
            "m:1",
            f"u{seed}_{i}",
            bool(f < fallback_share),
            float(score),
            float(score) / 2,
            f"c{int(c)}",
            10,
        )
        for i, (s, score, f, c) in enumerate(
            zip(rng.uniform(0, 86_399, n), rng.normal(mean, 1.0, n), rng.uniform(0, 1, n), rng.integers(0, 5, n))
        )
    ]


def write(conninfo, rows) -> PredictionLog:
    log = PredictionLog(lambda: psycopg.connect(conninfo))
    for r in rows:
        log.add(r)
    assert log.flush() == len(rows) and log.buffered() == 0
    return log


def test_served_predictions_are_written_as_they_were_served(monitoring_db):
    conninfo, _ = monitoring_db
    rows = served(DAY, 50, 0.0, seed=1)
    write(conninfo, rows)
    with psycopg.connect(conninfo) as conn:
        stored = conn.execute(
            "select served_at, user_id, fallback, top_score, top_category "
            "from monitoring.served_predictions order by served_at"
        ).fetchall()
    want = sorted((r.served_at, r.user_id, r.fallback, r.top_score, r.top_category) for r in rows)
    assert stored == want


def test_prediction_drift_flags_a_shifted_day_and_not_a_similar_one(monitoring_db):
    from interest_decay.monitoring.drift import prediction_drift

    conninfo, tmp = monitoring_db
    reference = [r for d in range(1, 8) for r in served(DAY - dt.timedelta(days=d), 300, 0.0, seed=d)]
    write(conninfo, reference + served(DAY, 300, 0.0, seed=100))
    similar = prediction_drift(DAY, reference_days=7, out_dir=tmp / "similar")
    assert similar["dataset_drift"] is False and similar["current_rows"] == 300
    assert (tmp / "similar" / "prediction_drift_recommend.html").stat().st_size > 10_000
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("delete from monitoring.served_predictions where user_id like 'u100!_%' escape '!'")
    write(conninfo, served(DAY, 300, 3.0, seed=101, fallback_share=0.6))  # scores shifted, more fallbacks
    shifted = prediction_drift(DAY, reference_days=7, out_dir=tmp / "shifted")
    assert shifted["dataset_drift"] is True
    columns = shifted["columns"]  # distances here (Wasserstein, Jensen-Shannon): drift above the threshold
    assert {name for name, c in columns.items() if c["score"] > c["threshold"]} == {
        "top_score",
        "mean_score",
        "fallback",
    }
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "select check_name, dataset_drift from monitoring.drift_runs where as_of = %s", (DAY,)
        ).fetchall()
    assert rows == [("predictions:recommend", True)]  # re-running the day replaced the first row


def test_too_few_served_predictions_are_not_compared(monitoring_db):
    from interest_decay.monitoring.drift import prediction_drift

    conninfo, tmp = monitoring_db
    write(conninfo, served(DAY, 5, 0.0, seed=3))
    result = prediction_drift(DAY, out_dir=tmp, endpoint="recommend")
    assert "too few served predictions" in result["skipped"] and result["current_rows"] == 5
    assert prediction_drift(DAY, endpoint="churn_risk", out_dir=tmp)["current_rows"] == 0
