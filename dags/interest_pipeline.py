"""
### interest_pipeline: behaviour events to a served recommender

Runs the whole chain for one day (`as_of`, midnight UTC):

1. **ingest**: load the event files under `events_path` into PostgreSQL `raw` (idempotent by file hash);
   with `dataset` = online-retail or taobao they are converted to the event schema first.
2. **dbt_staging**: staging (typed, deduplicated, rejects with reasons), each model followed by its dbt tests
   (astronomer-cosmos); then **fit_decay**: each (category, event type)'s decay family, half-life and 95%
   interval fitted from the staged events before the test window into `params.decay_parameters_fitted`
   ("no decay" where the data say so; `fit_decay` = always, weekly or never; a failed fit keeps the stored
   parameters), reported in `decay.md` with a curve per kind; then **dbt**: the decayed-interest marts for
   the training and test windows, with those parameters.
3. **feast_materialize**: `feast apply`, then the marts' rows of the run's data interval (`materialize_days`
   up to as_of: interest, the item ranker's user state, churn inputs, item and category popularity) into the
   online store, then the live
   events pushed since as_of folded back in; updates the Asset `interest_features` (the `drift_monitor` DAG
   runs on it).
4. **drift_check**: Evidently data drift of today's features against the training window (report +
   a summary row in `monitoring.drift_runs`); **should_retrain**: with `retrain` = `on_drift` the run
   stops here (training and deploy skipped) unless the features drifted.
5. **train**: fit the item ranker (PyTorch, item-level signals; the code `make evaluate` runs) on the staged
   events before the last `eval_days`, measure it on them in the harness protocol against most-popular,
   history, history + ties, STAN and the champion, register it in the BentoML model store with the item side
   of its state, and promote it to champion only if it beats both the best baseline and the champion there.
6. **evaluate**: write the evaluation report (model vs baseline) next to the metrics.
   **train_churn** (beside 5-6): the churn-risk model on the staged events, compared with a
   recency-frequency logistic regression (`churn.json`, `churn.png`), registered as `churn_model`.
7. **build_bento**: package the service with the champion (`bentoml build`, offline): a model that
   failed the gate is not deployed, and `evaluation.md` says why.
8. **deploy**: a running server follows the registry's champion and swaps models without downtime
   (`serving/deployment.py`); with `SERVE_URL` set this task waits until it (every replica behind
   nginx) serves the champion and fails (the previous model still serving) when one could not load it.

Trigger with a config form (as_of, events_path, dataset, half_life_days, half_life_overrides, decay_family,
fit_decay, churn_horizon_days, materialize_days, retrain). Reports land in
`$REPORTS_DIR/<as_of>/`. Runs daily; `INTEREST_PIPELINE_SCHEDULE` (a cron or preset, `none` for
manual runs only) changes that.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from airflow.sdk import Asset, Param, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig

from interest_decay import config as settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT = PROJECT_ROOT / "dbt_project"
# dbt's SQL reads the pseudonym key from a session setting that PGOPTIONS hands every PostgreSQL session: set in
# the environment of the process that runs the task (and so of dbt), never as an operator argument, which Airflow
# would show as a rendered template.
os.environ.update(settings.with_pseudonym_key_option(dict(os.environ)))
SCHEDULE = settings.get().interest_pipeline_schedule
INTEREST_FEATURES = Asset("interest_features")  # the online interest features (feast_materialize updates them)


# dbt var -> the key of resolve_window's result it takes, templated into every dbt task of the run.
DBT_VARS = {
    "as_of": "as_of",
    "as_of_start": "mart_start",
    "half_life_days": "half_life_days",
    "decay_family": "decay_family",
    "half_life_overrides": "half_life_overrides",
    "churn_horizon_days": "churn_horizon_days",
}


def window_value(key: str) -> str:
    """The Jinja template of ``resolve_window``'s ``key`` (rendered when a task runs)."""
    return "{{ ti.xcom_pull(task_ids='resolve_window')['" + key + "'] }}"


@dag(
    dag_id="interest_pipeline",
    schedule=None if SCHEDULE == "none" else SCHEDULE,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["interest-decay", "pipeline"],
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=20)},
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Day to compute interest for (YYYY-MM-DD, midnight UTC). Empty: the run's date.",
        ),
        "events_path": Param(
            None,  # null, not "": the trigger form keeps Trigger disabled while a string Param is ""
            type=["null", "string"],
            description="Event file or folder (CSV/Parquet in the event schema, or files of "
            "`dataset`). Empty: $EVENTS_DIR.",
        ),
        "dataset": Param(
            "events",
            type="string",
            enum=["events", "online-retail", "taobao"],
            description="Format of events_path: events (the project's schema), online-retail (UCI "
            "Online Retail parquet) or taobao (UserBehavior CSV), converted on ingest.",
        ),
        "half_life_days": Param(
            7.0, type="number", exclusiveMinimum=0, description="Half-life of the exponential interest decay, in days."
        ),
        "half_life_overrides": Param(
            {},
            type="object",
            additionalProperties={"type": "number", "exclusiveMinimum": 0},
            description="Half-lives (days) that replace the parameters table's, per "
            "\"category_id:event_type\" ('*' = any), e.g. "
            '{"3:*": 2.5, "*:purchase": 30}; exponential decay.',
        ),
        "decay_family": Param(
            "table",
            type="string",
            enum=["table", "exponential", "logistic", "period"],
            description="table: each (category, event type) decays with the family of the "
            "parameters table (fitted or default); exponential, logistic or "
            "period: every kind with that family, its half-life kept.",
        ),
        "churn_horizon_days": Param(
            settings.dbt_vars()["churn_horizon_days"],
            type="integer",
            minimum=1,
            description="A user churns when they buy nothing within this many days.",
        ),
        "materialize_days": Param(
            1,
            type="integer",
            minimum=1,
            maximum=366,
            description="Days of mart rows up to as_of written to the online store (1: the "
            "run's own day; more to backfill, in chunks of "
            "FEAST_MATERIALIZE_CHUNK_DAYS).",
        ),
        "fit_decay": Param(
            "always",
            type="string",
            enum=["always", "weekly", "never"],
            description="always: fit every kind's decay from the staged events before the test "
            "window on every run; weekly: when the stored fit is 7 or more days "
            "older; never: keep the stored parameters (or the defaults).",
        ),
        "retrain": Param(
            "always",
            type="string",
            enum=["always", "on_drift"],
            description="always: train, gate and deploy every run; on_drift: only when today's "
            "features drifted from the training window.",
        ),
    },
)
def interest_pipeline():
    @task
    def resolve_window(params: dict | None = None, dag_run=None, logical_date=None) -> dict:
        """The run's as_of day and the windows derived from it (mart days cover training and test)."""
        from models.pipeline.run_window import run_window

        return run_window(params, (logical_date or dag_run.run_after).date())

    @task
    def ingest(window: dict) -> list[dict]:
        """Load the run's event files into raw tables; files loaded before are skipped."""
        from interest_decay.events.ingest import ingest_run

        return ingest_run(window["events_path"], window["dataset"], settings.state_dir() / "converted")

    def dbt_group(group_id: str, **selection) -> DbtTaskGroup:
        """A task group of the dbt project's nodes that ``selection`` (cosmos RenderConfig select/exclude) picks."""
        return DbtTaskGroup(
            group_id=group_id,
            project_config=ProjectConfig(DBT_PROJECT),
            profile_config=ProfileConfig(
                profile_name="interest_decay", target_name="local", profiles_yml_filepath=DBT_PROJECT / "profiles.yml"
            ),
            execution_config=ExecutionConfig(dbt_executable_path=str(Path(sys.executable).parent / "dbt")),
            # A test with two parents (a relationship between a model and a seed) gets its own task after both,
            # instead of riding on one parent's test task and running before the other parent exists.
            render_config=RenderConfig(should_detach_multiple_parents_tests=True, **selection),
            operator_args={
                "vars": {var: window_value(key) for var, key in DBT_VARS.items()},
                "install_deps": False,
            },
            default_args={"retries": 2},
        )

    # Staging (and the event types it checks against) first, then the decay fit, then everything it feeds.
    staging_nodes = ["+stg_behaviour__events", "event_type_weights"]
    dbt_staging = dbt_group("dbt_staging", select=staging_nodes)
    dbt = dbt_group("dbt", exclude=staging_nodes)

    @task
    def fit_decay(window: dict) -> dict:
        """Fit each (category, event type)'s decay on the staged events before the test window into
        params.decay_parameters_fitted (Param fit_decay: always, weekly or never); a fit that fails keeps the
        stored parameters and the run goes on. Report: decay.md, decay.json, decay_curves/."""
        from models.fitting.fit_decay import run

        cutoff = dt.datetime.fromisoformat(window["test_start"]).replace(tzinfo=dt.UTC)
        return run(dt.date.fromisoformat(window["as_of"]), cutoff, window["fit_decay"])

    @task(outlets=[INTEREST_FEATURES])
    def feast_materialize(window: dict) -> dict:
        """Register the feature definitions, write the run's data interval of the marts into the online
        store (in bounded chunks), then fold back the live events pushed since as_of."""
        from interest_decay.online.materialization import materialize_run

        as_of = dt.datetime.fromisoformat(window["as_of"]).replace(tzinfo=dt.UTC)
        return materialize_run(as_of, window["materialize_days"])

    @task
    def train(window: dict) -> dict:
        """Fit the item ranker before the test window, measure it there against the baselines and the champion,
        register it, promote it when it beats both (models.pipeline.train)."""
        from models.pipeline.train import run

        summary = run(dt.date.fromisoformat(window["as_of"]))
        return {key: summary[key] for key in ("model_tag", "metrics", "promotion", "harness")}

    @task
    def train_churn(window: dict) -> dict:
        """Churn-risk model vs the recency-frequency baseline; the refit model goes to the model store."""
        from models.pipeline.churn import train_churn as fit

        return fit(dt.date.fromisoformat(window["as_of"]), window["churn_horizon_days"])

    @task
    def evaluate(window: dict, trained: dict) -> dict:
        """Write the model-vs-baseline report; the comparison is returned for the logs and later gates."""
        from models.pipeline.report import write_evaluation_report

        path = write_evaluation_report(
            window["as_of"], trained["model_tag"], trained["metrics"], trained["promotion"], trained["harness"]
        )
        return {"report": str(path), **trained}

    @task
    def drift_check(window: dict) -> dict:
        """Evidently data drift of today's features against the training window."""
        from interest_decay.monitoring.drift import run

        return run(
            dt.date.fromisoformat(window["as_of"]),
            dt.date.fromisoformat(window["train_start"]),
            dt.date.fromisoformat(window["test_start"]),
        )

    @task.short_circuit
    def should_retrain(window: dict, drift: dict) -> bool:
        """Go on to training and deploy unless retrain = on_drift and the features did not drift."""
        from interest_decay.monitoring.drift import retrain_decision

        return retrain_decision(window["retrain"], drift)

    @task
    def build_bento(evaluated: dict, churn: dict) -> str:
        """Package the service with the champion (this run's model if none); returns the bento tag."""
        from serving.release import build_bento

        return build_bento(evaluated["promotion"]["champion"] or evaluated["model_tag"], churn["model_tag"])

    @task
    def deploy(evaluated: dict, bento: str) -> dict:
        """Check that the running server (``SERVE_URL``) now serves the champion: it follows the registry
        and swaps models without downtime; a model it cannot load fails this task and the previous one
        keeps serving. Without SERVE_URL there is nothing running to check (``make serve`` starts the champion)."""
        from serving.release import check_serving

        return check_serving(evaluated["promotion"]["champion"] or evaluated["model_tag"], bento)

    window = resolve_window()
    loads = ingest(window)
    materialized = feast_materialize(window)
    loads >> dbt_staging >> fit_decay(window) >> dbt >> materialized
    drift = drift_check(window)
    materialized >> drift
    trained = train(window)
    should_retrain(window, drift) >> trained
    evaluated = evaluate(window, trained)
    churn = train_churn(window)
    dbt >> churn
    deploy(evaluated, build_bento(evaluated, churn))


interest_pipeline()
