"""Champion / challenger bookkeeping: promotions are recorded, rollback restores the previous one."""

import pytest

from models.pipeline import registry


@pytest.fixture(autouse=True)
def model_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    monkeypatch.setenv("MODEL_NAME", "recommender_under_test")


def test_promotions_and_rollback():
    assert registry.champion() is None
    registry.promote("m:1", "first")
    registry.promote("m:2", "better")
    assert registry.champion() == "m:2" and [e["tag"] for e in registry.history()] == ["m:1", "m:2"]
    assert registry.rollback() == "m:1" and registry.champion() == "m:1"
    with pytest.raises(ValueError, match="no previous champion"):
        registry.rollback()
    assert registry.champion(name="another_model") is None


@pytest.mark.parametrize(
    "new, old, margin, promoted",
    [
        (0.30, 0.25, 0.0, True),
        (0.25, 0.25, 0.0, True),
        (0.26, 0.25, 0.05, False),
        (0.27, 0.25, 0.05, True),
        (0.20, 0.25, 0.0, False),
        (0.0, 0.0, 0.0, False),
    ],
)
def test_gate_needs_the_margin_over_the_incumbent(new, old, margin, promoted):
    verdict, why = registry.gate({"ndcg@10": new}, {"ndcg@10": old}, "ndcg@10", margin)
    assert verdict is promoted and "ndcg@10" in why


def test_gate_refuses_without_the_metric():
    assert registry.gate({}, {"ndcg@10": 0.2}, "ndcg@10", 0.0)[0] is False


def test_cli_rollback_without_history_exits_with_a_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        registry.main(["rollback"])
    assert exit_info.value.code == 2 and "no previous champion" in capsys.readouterr().err
