"""Data drift of the interest features: the current day against the training window (Evidently).

Compares per-user feature rows of ``user_interest_features`` (columns that do not grow by
construction with the length of the history) as of ``as_of`` (current) with the rows
of the training window (reference), column by column (Evidently's DataDriftPreset: K-S for numbers,
chi-squared/Z for categories). Saves ``drift.html`` (self-contained) and ``drift.json``, and one
summary row per (as_of, check) in PostgreSQL ``monitoring.drift_runs`` (re-running a day replaces it).
The dataset counts as drifted when at least ``DRIFT_SHARE_THRESHOLD`` (default 0.5) of the columns drift.

CLI: ``python -m interest_decay.monitoring.drift --as-of 2026-11-28 --reference-start 2026-10-24
--reference-end 2026-11-21``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pandas as pd

from interest_decay import config as settings
from interest_decay.monitoring.tables import create_table

SUMMARY_DDL = """
create schema if not exists monitoring;
create table if not exists monitoring.drift_runs (
    as_of date not null,
    check_name text not null,
    reference_start date not null,
    reference_end date not null,
    reference_rows bigint not null,
    current_rows bigint not null,
    drifted_columns int not null,
    drifted_share float8 not null,
    drift_share_threshold float8 not null,
    dataset_drift boolean not null,
    report_path text not null,
    computed_at timestamptz not null default now(),
    primary key (as_of, check_name)
)
"""


def drift_share_threshold() -> float:
    return settings.get().drift_share_threshold


def retrain_decision(retrain: str, drift: dict) -> bool:
    """The pipeline's should_retrain gate: train and deploy when ``retrain`` is "always", or when it is
    "on_drift" and ``drift`` (:func:`run`'s summary) found the dataset drifted. The reason goes to the log."""
    import logging

    go = retrain == "always" or bool(drift["dataset_drift"])
    logging.getLogger(__name__).info(
        "retrain=%s, drifted share %.2f (threshold %.2f): %s",
        retrain,
        drift["drifted_share"],
        drift["drift_share_threshold"],
        "training" if go else "no drift, keeping the champion",
    )
    return go


def record_summary(
    conn,
    summary: dict,
    as_of: dt.date,
    check_name: str,
    reference_start: dt.date,
    reference_end: dt.date,
    report_path: Path,
) -> None:
    """Upsert the summary row of one drift check (idempotent per as_of and check)."""
    with conn.transaction(), conn.cursor() as cur:
        create_table(cur, SUMMARY_DDL)
        cur.execute("delete from monitoring.drift_runs where as_of = %s and check_name = %s", (as_of, check_name))
        cur.execute(
            "insert into monitoring.drift_runs (as_of, check_name, reference_start, reference_end, reference_rows, "
            "current_rows, drifted_columns, drifted_share, drift_share_threshold, dataset_drift, report_path) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                as_of,
                check_name,
                reference_start,
                reference_end,
                summary["reference_rows"],
                summary["current_rows"],
                summary["drifted_columns"],
                summary["drifted_share"],
                summary["drift_share_threshold"],
                summary["dataset_drift"],
                str(report_path),
            ),
        )


FEATURE_QUERY = """
select
    total_interest,
    category_count,
    interest_scores[1] / nullif(total_interest, 0) as top_category_share,
    category_ids[1] as top_category,
    extract(epoch from as_of - last_event_ts)::float8 / 86400 as days_since_last_event
from {schema}.user_interest_features
where as_of >= %(start)s and as_of < %(end)s
order by md5(user_id || as_of::text)
limit %(limit)s
"""


def feature_rows(conn, start: dt.datetime, end: dt.datetime, limit: int = 20_000) -> pd.DataFrame:
    """Per-user drift columns for feature rows with ``start <= as_of < end`` (a stable sample of ``limit``)."""
    with conn.cursor() as cur:
        cur.execute(FEATURE_QUERY.format(schema=settings.dbt_schema()), {"start": start, "end": end, "limit": limit})
        columns = [c.name for c in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, out_dir: Path, drift_share: float | None = None, name: str = "drift"
) -> dict:
    """Run Evidently's data-drift preset, save ``<name>.html`` + ``<name>.json`` into ``out_dir``.

    Returns the summary."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    drift_share = drift_share_threshold() if drift_share is None else drift_share
    if reference.empty or current.empty:
        raise ValueError(f"drift needs rows on both sides: reference {len(reference)}, current {len(current)}")
    snapshot = Report([DataDriftPreset(drift_share=drift_share)]).run(current_data=current, reference_data=reference)
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out_dir / f"{name}.html"))
    result = snapshot.dict()
    columns = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "method": config["method"],
                "threshold": config["threshold"],
                "score": metric["value"],
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            drifted = metric["value"]
    summary = {
        "reference_rows": len(reference),
        "current_rows": len(current),
        "drifted_columns": int(drifted["count"]),
        "drifted_share": float(drifted["share"]),
        "dataset_drift": float(drifted["share"]) >= drift_share,
        "drift_share_threshold": drift_share,
        "columns": columns,
    }
    (out_dir / f"{name}.json").write_text(json.dumps({"summary": summary, "evidently": result}, indent=2, default=str))
    return summary


def run(
    as_of: dt.date,
    reference_start: dt.date,
    reference_end: dt.date,
    out_dir: Path | None = None,
    check_name: str = "pipeline",
) -> dict:
    """Drift of the features as of ``as_of`` against those of [reference_start, reference_end);
    the report goes to ``out_dir`` (default ``$REPORTS_DIR/<as_of>``), the summary row to PostgreSQL."""
    import psycopg

    def utc(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), dt.UTC)

    out_dir = out_dir or settings.reports_dir() / str(as_of)
    with psycopg.connect(settings.pg_conninfo()) as conn:
        reference = feature_rows(conn, utc(reference_start), utc(reference_end))
        current = feature_rows(conn, utc(as_of), utc(as_of) + dt.timedelta(days=1))
        summary = drift_report(reference, current, out_dir)
        record_summary(conn, summary, as_of, check_name, reference_start, reference_end, out_dir / "drift.html")
    return summary


PREDICTION_COLUMNS = {  # what is compared per endpoint (interest_decay.monitoring.prediction_log)
    "recommend": "top_score, mean_score, fallback::int as fallback, top_category",
    "churn_risk": "top_score as probability",
}


def prediction_rows(conn, endpoint: str, start: dt.datetime, end: dt.datetime, limit: int = 20_000) -> pd.DataFrame:
    """Served predictions of ``endpoint`` with ``start <= served_at < end`` (a stable sample of ``limit``)."""
    with conn.cursor() as cur:
        cur.execute(
            f"select {PREDICTION_COLUMNS[endpoint]} from monitoring.served_predictions "
            "where endpoint = %(endpoint)s and served_at >= %(start)s and served_at < %(end)s "
            "order by md5(user_id || served_at::text) limit %(limit)s",
            {"endpoint": endpoint, "start": start, "end": end, "limit": limit},
        )
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def prediction_drift(
    day: dt.date, reference_days: int = 7, endpoint: str = "recommend", out_dir: Path | None = None, min_rows: int = 30
) -> dict:
    """Prediction drift: what ``endpoint`` served on ``day`` against the ``reference_days`` before it
    (Evidently data drift of the served scores, fallback share and top category). Report
    ``prediction_drift_<endpoint>.html/.json`` in ``out_dir`` (default ``$REPORTS_DIR/monitor/<day>``), summary
    row (check ``predictions:<endpoint>``) in ``monitoring.drift_runs``. Under ``min_rows`` on either side
    nothing is compared: the answer says so (``skipped``)."""
    import psycopg

    from interest_decay.monitoring.prediction_log import DDL

    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    reference_start = start - dt.timedelta(days=reference_days)
    out_dir = out_dir or settings.reports_dir() / "monitor" / str(day)
    with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
        with conn.transaction():
            create_table(conn, DDL)
        reference = prediction_rows(conn, endpoint, reference_start, start)
        current = prediction_rows(conn, endpoint, start, start + dt.timedelta(days=1))
        if min(len(reference), len(current)) < min_rows:
            return {
                "skipped": f"too few served predictions to compare: {len(reference)} in the reference days, "
                f"{len(current)} on {day} (at least {min_rows} each)",
                "reference_rows": len(reference),
                "current_rows": len(current),
            }
        summary = drift_report(reference, current, out_dir, name=f"prediction_drift_{endpoint}")
        record_summary(
            conn,
            summary,
            day,
            f"predictions:{endpoint}",
            reference_start.date(),
            day,
            out_dir / f"prediction_drift_{endpoint}.html",
        )
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m interest_decay.monitoring.drift", description=__doc__.split("\n")[0]
    )
    day = dt.date.fromisoformat
    parser.add_argument("--as-of", type=day, required=True, help="current day, YYYY-MM-DD")
    parser.add_argument("--reference-start", type=day, required=True, help="first day of the reference window")
    parser.add_argument("--reference-end", type=day, required=True, help="day after the reference window")
    args = parser.parse_args(argv)
    summary = run(args.as_of, args.reference_start, args.reference_end)
    print(json.dumps({k: v for k, v in summary.items() if k != "columns"}, indent=2))


if __name__ == "__main__":
    main()
