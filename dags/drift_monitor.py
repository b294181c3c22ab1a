"""
### drift_monitor: watch the interest features for drift whenever they change

Runs when `interest_pipeline` updates the Asset `interest_features` (data-aware scheduling), or by hand.
Compares the latest day of `user_interest_features` with the `reference_days` before it (Evidently
data drift), writes `drift.html` / `drift.json` under `$REPORTS_DIR/monitor/<day>/` and one summary
row per day in PostgreSQL `monitoring.drift_runs` (check `monitor`; re-running a day replaces it).
A drifted day is logged as a warning; `interest_pipeline` with `retrain` = `on_drift` retrains on it.

**Prediction drift**: what the server answered (`monitoring.served_predictions`, written by the serving
process) on the run's day against the `reference_days` before it, for `/recommend` (top and mean
score, fallback share, top category) and `/churn_risk` (probabilities): `prediction_drift_<endpoint>.html`
/ `.json` in the same folder, checks `predictions:<endpoint>` in `monitoring.drift_runs`. Days with too
few served predictions are skipped, and the task says so.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, dag, task

INTEREST_FEATURES = Asset("interest_features")  # the online interest features (feast_materialize updates them)


@dag(
    dag_id="drift_monitor",
    schedule=[INTEREST_FEATURES],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interest-decay", "monitoring"],
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=20)},
    params={
        "reference_days": Param(
            7, type="integer", minimum=1, description="Days before the latest feature day that form the reference."
        )
    },
)
def drift_monitor():
    @task
    def latest_day() -> str:
        """The latest as_of day of the feature mart."""
        import psycopg

        from interest_decay import config as settings

        with psycopg.connect(settings.pg_conninfo()) as conn:
            day = conn.execute(
                f"select max(as_of)::date from {settings.dbt_schema()}.user_interest_features"
            ).fetchone()[0]
        if day is None:
            raise ValueError("user_interest_features is empty: run interest_pipeline first")
        return day.isoformat()

    @task
    def check(day: str, params: dict | None = None) -> dict:
        """Drift of the latest day against the days before it; summary row in monitoring.drift_runs."""
        import logging

        from interest_decay import config as settings
        from interest_decay.monitoring.drift import run

        as_of = dt.date.fromisoformat(day)
        summary = run(
            as_of,
            as_of - dt.timedelta(days=int(params["reference_days"])),
            as_of,
            out_dir=settings.reports_dir() / "monitor" / day,
            check_name="monitor",
        )
        if summary["dataset_drift"]:
            logging.getLogger(__name__).warning(
                "features of %s drifted: %d columns (share %.2f)",
                day,
                summary["drifted_columns"],
                summary["drifted_share"],
            )
        return {key: value for key, value in summary.items() if key != "columns"}

    @task
    def predictions(params: dict | None = None, dag_run=None) -> dict:
        """Prediction drift of the served scores: the run's day (UTC) against the days before it."""
        import logging

        from interest_decay.monitoring.drift import prediction_drift

        day = dag_run.run_after.date()
        results = {}
        for endpoint in ("recommend", "churn_risk"):
            summary = prediction_drift(day, int(params["reference_days"]), endpoint)
            results[endpoint] = {key: value for key, value in summary.items() if key != "columns"}
            if summary.get("skipped"):
                logging.getLogger(__name__).info("%s: %s", endpoint, summary["skipped"])
            elif summary["dataset_drift"]:
                logging.getLogger(__name__).warning(
                    "predictions of %s drifted on %s: %d columns (share %.2f)",
                    endpoint,
                    day,
                    summary["drifted_columns"],
                    summary["drifted_share"],
                )
        return results

    check(latest_day())
    predictions()


drift_monitor()
