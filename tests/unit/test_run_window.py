"""The pipeline's small steps that need no services: the run's window, the retrain gate, ingest's checks."""

import datetime as dt
import json

import pytest

from interest_decay.events.ingest import ingest_run
from interest_decay.monitoring.drift import retrain_decision
from models.pipeline.run_window import run_window
from models.pipeline.train import load_config

PARAMS = {
    "as_of": None,
    "half_life_days": 7,
    "decay_family": None,
    "half_life_overrides": {"3:*": 2.5},
    "churn_horizon_days": 14,
    "retrain": "always",
    "fit_decay": "weekly",
    "materialize_days": 1,
    "events_path": "/data/events",
    "dataset": None,
}


def test_the_window_follows_as_of_or_else_the_logical_day():
    cfg = load_config()
    window = run_window({**PARAMS, "as_of": "2026-12-06"}, dt.date(2020, 1, 1))
    assert window["as_of"] == "2026-12-06"
    test_start = dt.date(2026, 12, 6) - dt.timedelta(days=cfg["eval_days"])
    assert window["test_start"] == test_start.isoformat()
    assert window["train_start"] == window["mart_start"] == (test_start - dt.timedelta(cfg["train_days"])).isoformat()
    assert run_window(PARAMS, dt.date(2026, 1, 2))["as_of"] == "2026-01-02"


def test_params_arrive_as_plain_values_the_dbt_vars_can_take():
    window = run_window(PARAMS, dt.date(2026, 1, 2))
    assert json.loads(window["half_life_overrides"]) == {"3:*": 2.5}
    assert window["half_life_days"] == 7.0 and isinstance(window["half_life_days"], float)
    assert (window["dataset"], window["events_path"], window["fit_decay"]) == ("events", "/data/events", "weekly")
    json.dumps(window)  # XCom: JSON only


@pytest.mark.parametrize("bad", [{"3": 2}, {"3:*": 0}, {"3:*": True}, {"a:b:c": 1}])
def test_bad_half_life_overrides_stop_the_run_with_the_rule(bad):
    with pytest.raises(ValueError, match='"category_id:event_type": days > 0'):
        run_window({**PARAMS, "half_life_overrides": bad}, dt.date(2026, 1, 2))


def test_retrain_gate_trains_always_or_on_drift_only():
    drift = {"dataset_drift": False, "drifted_share": 0.1, "drift_share_threshold": 0.5}
    assert retrain_decision("always", drift) is True
    assert retrain_decision("on_drift", drift) is False
    assert retrain_decision("on_drift", {**drift, "dataset_drift": True, "drifted_share": 0.7}) is True


def test_ingest_without_a_path_says_so(tmp_path):
    with pytest.raises(ValueError, match="no events_path given"):
        ingest_run("", "events", tmp_path)
