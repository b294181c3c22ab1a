"""DAG integrity: every DAG imports, is documented, tagged and retried, and chains its steps in order."""

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "interest_pipeline" in dagbag.dags


def test_every_dag_is_documented_tagged_and_retried(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_interest_pipeline_runs_its_steps_in_order(dagbag):
    dag = dagbag.dags["interest_pipeline"]
    ids = {t.task_id for t in dag.tasks}
    assert {
        "resolve_window",
        "ingest",
        "feast_materialize",
        "train",
        "evaluate",
        "drift_check",
        "build_bento",
        "deploy",
    } <= ids
    assert {
        "dbt_staging.stg_behaviour__events.run",
        "fit_decay",
        "dbt.user_category_interest.run",
        "dbt.user_category_interest.test",
        "dbt.user_interest_features.run",
    } <= ids

    def upstream(task_id):
        seen, todo = set(), [task_id]
        while todo:
            for parent in dag.get_task(todo.pop()).upstream_task_ids:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    assert "ingest" in upstream("dbt_staging.stg_behaviour__events_checked.run")
    # the decay is fitted on the staged events, and every model that decays interest runs after the fit
    assert "dbt_staging.stg_behaviour__events.test" in upstream("fit_decay")
    for model in (
        "int_decay_parameters",
        "int_event_kind_parameters",
        "int_interest_day_deltas",
        "user_interest_features",
    ):
        assert "fit_decay" in upstream(f"dbt.{model}.run"), model
    assert not any(task.startswith("dbt.") for task in upstream("fit_decay"))
    assert {"dbt.user_interest_features.run", "dbt.user_category_interest.test"} <= upstream("feast_materialize")
    assert {"feast_materialize", "drift_check", "should_retrain"} <= upstream("train")
    assert {"train", "evaluate", "should_retrain", "train_churn"} <= upstream("build_bento")
    assert "build_bento" in upstream("deploy")
    assert "dbt.user_activity.run" in upstream("train_churn")


def test_trigger_form_params_have_defaults_and_descriptions(dagbag):
    params = dagbag.dags["interest_pipeline"].params
    assert set(params.keys()) >= {
        "as_of",
        "events_path",
        "dataset",
        "half_life_days",
        "half_life_overrides",
        "decay_family",
        "fit_decay",
        "churn_horizon_days",
        "materialize_days",
        "retrain",
    }
    for key in params.keys():
        assert params.get_param(key).description
    assert params["half_life_days"] == 7.0
    assert params["fit_decay"] == "always"


def test_fit_decay_accepts_only_its_modes(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    param = dagbag.dags["interest_pipeline"].params.get_param("fit_decay")
    for mode in ("always", "weekly", "never"):
        assert param.resolve(mode) == mode
    with pytest.raises(ParamValidationError):
        param.resolve("daily")


def test_drift_monitor_runs_when_the_pipeline_updates_the_features(dagbag):
    pipeline, monitor = dagbag.dags["interest_pipeline"], dagbag.dags["drift_monitor"]
    outlets = {asset.name for asset in pipeline.get_task("feast_materialize").outlets}
    assert outlets == {"interest_features"}
    assert {asset.name for asset in monitor.timetable.asset_condition.objects} == outlets


def test_half_life_overrides_are_checked_before_anything_runs(dagbag):
    import pytest
    from airflow.sdk.exceptions import ParamValidationError

    from models.pipeline.run_window import half_life_overrides

    assert half_life_overrides({"3:*": 2.5, "*:purchase": 30}) == {"3:*": 2.5, "*:purchase": 30}
    for bad in ({"3": 2.5}, {"3:*": 0}, {"3:*": "soon"}, {"a:b:c": 1}, {"3:*": True}):
        with pytest.raises(ValueError, match="category_id:event_type"):
            half_life_overrides(bad)
    param = dagbag.dags["interest_pipeline"].params.get_param("half_life_overrides")
    assert param.resolve({"3:*": 2.5}) == {"3:*": 2.5}
    with pytest.raises(ParamValidationError):
        param.resolve({"3:*": -1})


def test_every_trigger_form_can_be_submitted_with_its_defaults(dagbag):
    """Each Param's default validates against its own schema, and no Param defaults to an empty string: the
    Airflow 3 trigger form treats "" as a missing required value and keeps Trigger disabled (an optional
    text is null by default, type ["null", "string"])."""
    for dag_id, dag in dagbag.dags.items():
        for key in dag.params.keys():
            param = dag.params.get_param(key)
            assert param.value != "", f"{dag_id}.{key}: default '' keeps the trigger form from submitting"
            param.resolve(param.value)  # raises ParamValidationError when the default breaks the schema
        dag.params.validate()
