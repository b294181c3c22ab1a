"""One pipeline run's parameters and windows, from the trigger's Params (the DAG's ``resolve_window`` step).

The run computes interest for ``as_of`` (midnight UTC); training labels lie in ``[train_start, test_start)``
and the test window is ``[test_start, as_of)`` (``eval_days`` and ``train_days`` of ``models/pipeline/config.yaml``).
Every later task, and every dbt task through its vars, reads these values.
"""

from __future__ import annotations

import datetime as dt
import json

from interest_decay import config as settings
from models.pipeline.train import load_config


def half_life_overrides(overrides: dict) -> dict:
    """The trigger's half-life overrides, checked: keys "category_id:event_type", values days > 0."""
    for key, days in overrides.items():
        if len(str(key).split(":")) != 2 or isinstance(days, bool) or not isinstance(days, (int, float)) or days <= 0:
            raise ValueError(
                f'half_life_overrides: each entry must be "category_id:event_type": days > 0 '
                f"('*' = any), got {key!r}: {days!r}"
            )
    return overrides


def run_window(params: dict, run_day: dt.date) -> dict:
    """The run's values: ``params["as_of"]`` (else ``run_day``, the logical date), the windows, and the
    Params each later task needs, as plain JSON values (XCom)."""
    as_of = dt.date.fromisoformat(params["as_of"]) if params.get("as_of") else run_day
    cfg = load_config()
    test_start = as_of - dt.timedelta(days=cfg["eval_days"])
    train_start = test_start - dt.timedelta(days=cfg["train_days"])
    return {
        "as_of": as_of.isoformat(),
        "mart_start": train_start.isoformat(),
        "train_start": train_start.isoformat(),
        "test_start": test_start.isoformat(),
        "half_life_days": float(params["half_life_days"]),
        "decay_family": params["decay_family"],
        "half_life_overrides": json.dumps(half_life_overrides(params.get("half_life_overrides") or {})),
        "churn_horizon_days": int(params["churn_horizon_days"]),
        "retrain": params["retrain"],
        "fit_decay": params["fit_decay"],
        "materialize_days": int(params["materialize_days"]),
        "events_path": params.get("events_path") or str(settings.events_dir()),
        "dataset": params.get("dataset") or "events",
    }
