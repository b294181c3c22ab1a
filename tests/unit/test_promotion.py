"""The promotion gate of a training run (models.pipeline.train.decide_promotion): the served model is promoted only
when it beats the best baseline and the champion on the same window, and the reason says which comparison held."""

import pytest

from models.pipeline import registry
from models.pipeline.train import CHAMPION, decide_promotion

CFG = {"top_k": 10, "promotion_margin": 0.0}


def harness(served: float, champion: float | None = None, **baselines: float) -> dict:
    methods = {"served_model": {"ndcg@10": served}}
    if champion is not None:
        methods[CHAMPION] = {"ndcg@10": champion}
    methods.update({name: {"ndcg@10": value} for name, value in baselines.items()})
    methods["stan"] = {"skipped": "no user had a session"}  # a method that did not fit is no baseline
    return {"users": 100, "methods": methods}


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))


def test_the_first_model_must_beat_the_best_baseline():
    low = decide_promotion("m:1", harness(0.30, history=0.31, popular_30d=0.2), None, CFG)
    assert not low["promoted"] and low["best_baseline"] == "history" and registry.champion() is None
    assert low["reason"].startswith("ndcg@10 0.3000 < 0.3100") and "against the best baseline history" in low["reason"]
    high = decide_promotion("m:2", harness(0.32, history=0.31, popular_30d=0.2), None, CFG)
    assert high["promoted"] and registry.champion() == "m:2" == high["champion"]


def test_a_challenger_must_beat_the_champion_too():
    registry.promote("m:1", "first")
    lost = decide_promotion("m:2", harness(0.35, champion=0.36, history=0.31), "m:1", CFG)
    assert not lost["promoted"] and registry.champion() == "m:1" and lost["incumbent"] == "m:1"
    assert "ndcg@10 0.3500 >= 0.3100" in lost["reason"] and "< 0.3600" in lost["reason"]
    won = decide_promotion("m:3", harness(0.37, champion=0.36, history=0.31), "m:1", CFG)
    assert won["promoted"] and registry.champion() == "m:3"


def test_a_champion_that_could_not_be_measured_is_named_and_the_baselines_decide():
    registry.promote("old:1", "first")
    result = decide_promotion("m:2", harness(0.35, history=0.31), "old:1", CFG)
    assert result["promoted"] and "old:1 is no item ranker of these signals: not measured" in result["reason"]


def test_a_window_without_users_promotes_nothing():
    result = decide_promotion("m:1", {"users": 0, "methods": {}, "skipped": "nobody bought"}, None, CFG)
    assert not result["promoted"] and "nobody bought" in result["reason"]


def test_label_windows_left_null_span_the_test_window():
    from models.pipeline.train import load_config, ranker_config

    cfg = load_config()
    assert cfg["ranker"]["window_days"] is None and cfg["ranker"]["step_days"] is None
    resolved = ranker_config({**cfg, "eval_days": 5})
    assert resolved.window_days == resolved.step_days == 5.0 and resolved.hidden == cfg["ranker"]["hidden"]
    assert ranker_config({**cfg, "ranker": {**cfg["ranker"], "window_days": 30}}).window_days == 30
