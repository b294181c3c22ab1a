"""Churn model: features and labels worked out by hand, no leakage across the cutoff, the model
contract, a known-answer test on generated users, and the comparison / CLI outputs."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from interest_decay.events.synthetic import generate, write_events
from models.pipeline import churn

CUTOFF = pd.Timestamp("2026-03-01", tz="UTC")
DAY = pd.Timedelta(days=1)


def events_frame(rows: list[tuple]) -> pd.DataFrame:
    """Events from (user, item, category, event_type, days after CUTOFF, value) tuples."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type", "days", "value"])
    frame["ts"] = CUTOFF + frame.pop("days") * DAY
    return frame[["user_id", "item_id", "category_id", "event_type", "ts", "value"]]


def test_features_equal_the_formulas_by_hand():
    events = events_frame(
        [
            ("a", "i1", "c1", "view", -1, np.nan),
            ("a", "i2", "c1", "cart", -3, np.nan),
            ("a", "i2", "c1", "purchase", -7, 2.0),
            ("a", "i3", "c2", "purchase", -21, 3.0),
            ("a", "i3", "c2", "purchase", 0, 5.0),  # at the cutoff: not before it
            ("b", "i1", "c1", "view", -10, np.nan),
        ]
    )
    features = churn.user_features(events, CUTOFF, [7, 30])
    a, b = features.loc["a"], features.loc["b"]
    assert features.index.tolist() == ["a", "b"]
    assert a["decayed_purchase_h7"] == pytest.approx(0.5 ** (7 / 7) + 0.5 ** (21 / 7))
    assert a["decayed_purchase_h30"] == pytest.approx(0.5 ** (7 / 30) + 0.5 ** (21 / 30))
    assert a["decayed_view_h30"] == pytest.approx(0.5 ** (1 / 30))
    assert a["decayed_cart_h7"] == pytest.approx(0.5 ** (3 / 7))
    assert a["decayed_fav_h7"] == a["decayed_rating_h30"] == 0.0
    assert (a["recency_days"], a["purchase_recency_days"], a["tenure_days"]) == (1, 7, 21)
    assert (a["event_count"], a["purchase_count"], a["purchase_occasions"], a["monetary"]) == (4, 2, 2, 5.0)
    assert (a["distinct_items"], a["distinct_categories"]) == (3, 2)
    assert (a["purchase_gap_mean_days"], a["purchase_gap_std_days"]) == (14, 0)
    # b never bought: purchase recency and mean gap fall back to b's tenure, money and gap spread to 0
    assert (b["recency_days"], b["purchase_recency_days"], b["purchase_gap_mean_days"]) == (10, 10, 10)
    assert (b["purchase_count"], b["monetary"], b["purchase_gap_std_days"], b["decayed_purchase_h7"]) == (0, 0, 0, 0)


def test_labels_by_hand():
    events = events_frame(
        [
            ("returns", "i1", "c1", "purchase", -40, 1.0),
            ("returns", "i1", "c1", "purchase", 5, 1.0),  # buys on day cutoff + 5: not churned
            ("lapsed", "i1", "c1", "purchase", -2, 1.0),  # bought only before: churned
            ("browses", "i1", "c1", "view", -3, np.nan),
            ("browses", "i1", "c1", "view", 4, np.nan),  # comes back without buying: churned
            ("too_late", "i1", "c1", "view", -1, np.nan),
            ("too_late", "i1", "c1", "purchase", 30, 1.0),  # horizon end is exclusive, as in user_activity
            ("newcomer", "i1", "c1", "purchase", 3, 1.0),  # only after the cutoff: not in the population
            ("newcomer", "i1", "c1", "view", 31, np.nan),
        ]
    )
    labels = churn.churn_labels(events, CUTOFF, 30)
    assert labels.to_dict() == {"browses": True, "lapsed": True, "returns": False, "too_late": True}
    features, aligned = churn.churn_dataset(events, CUTOFF, 30, [7])
    assert features.index.equals(aligned.index)
    with pytest.raises(ValueError, match="data ends"):
        churn.churn_labels(events, CUTOFF, 32)  # label not known yet: the mart's null


def test_clean_events_counts_every_dropped_row():
    events = pd.DataFrame(
        {
            "user_id": ["u1", "", "u2", "u3", "u4", "u1"],
            "item_id": ["i"] * 6,
            "category_id": ["c"] * 6,
            "event_type": ["Purchase", "view", "view", "click", "view", "purchase"],
            "ts": [
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:00:00Z",
                "not a time",
                "2026-01-01T10:00:00Z",
            ],
            "value": [1.0, 1.0, -1.0, np.nan, np.nan, 1.0],
        }
    )
    clean, dropped = churn.clean_events(events)
    assert dropped == {
        "missing user_id": 1,
        "negative value": 1,
        "unknown event_type": 1,
        "unparseable timestamp": 1,
        "duplicate": 1,
    }
    assert clean["event_type"].tolist() == ["purchase"]
    assert clean["ts"].tolist() == [pd.Timestamp("2026-01-01T10:00:00Z")]


def test_events_after_the_cutoff_never_change_the_features():
    events = generate(5_000, n_users=200, days=60, end=(CUTOFF + 20 * DAY).to_pydatetime(), seed=1)
    before = churn.user_features(events, CUTOFF, [7, 30, 90])
    rng = np.random.default_rng(0)
    after = events["ts"] >= CUTOFF
    changed = events.copy()
    changed.loc[after, "event_type"] = rng.choice(["view", "purchase"], after.sum())
    changed.loc[after, "value"] = rng.uniform(0, 100, after.sum())
    changed.loc[after, "user_id"] = rng.choice(events["user_id"].unique(), after.sum())
    stranger = events_frame([("stranger", "i9", "c9", "purchase", 1, 9.0)])
    for variant in (changed, pd.concat([changed, stranger]), events[~after]):
        pd.testing.assert_frame_equal(churn.user_features(variant, CUTOFF, [7, 30, 90]), before)


def generated_users(n_users: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Users with random activity levels and dormancy; churn probability falls with the 7-day decayed
    purchase count D as ``sigmoid(2 - 4 log(1 + D))``. Returns their features and true probabilities."""
    rng = np.random.default_rng(seed)
    counts = 1 + rng.poisson(rng.lognormal(2.0, 0.8, n_users))
    user = np.repeat(np.arange(n_users), counts)
    dormant_days = rng.uniform(0, 30, n_users)[user]
    ages = dormant_days + rng.uniform(0, 30, user.size)
    events = pd.DataFrame(
        {
            "user_id": [f"u{u:05d}" for u in user],
            "item_id": rng.integers(0, 50, user.size).astype(str),
            "category_id": rng.integers(0, 5, user.size).astype(str),
            "event_type": rng.choice(["view", "purchase"], user.size, p=[0.6, 0.4]),
            "ts": CUTOFF - pd.to_timedelta(ages, unit="D"),
            "value": 1.0,
        }
    )
    features = churn.user_features(events, CUTOFF, [7, 30, 90])
    decayed = features["decayed_purchase_h7"].to_numpy()
    return features, 1.0 / (1.0 + np.exp(-(2.0 - 4.0 * np.log1p(decayed))))


def test_known_answer_model_approaches_the_oracle_and_beats_shuffled_features():
    features, truth = generated_users(3_000, seed=0)
    churned = pd.Series(np.random.default_rng(1).random(len(truth)) < truth, index=features.index)
    train, test = slice(0, 1_500), slice(1_500, None)
    cfg = churn.load_config()
    model, losses = churn.fit_model(features.iloc[train], churned.iloc[train], cfg, seed=0)
    shuffled = features.iloc[train].sample(frac=1.0, random_state=0).set_axis(features.index[train])
    blind, _ = churn.fit_model(shuffled, churned.iloc[train], cfg, seed=0)

    y = churned.iloc[test].to_numpy()
    oracle_auc = roc_auc_score(y, truth[test])
    model_auc = roc_auc_score(y, churn.model_probabilities(model, features.iloc[test]))
    blind_auc = roc_auc_score(y, churn.model_probabilities(blind, features.iloc[test]))
    assert losses[-1] < losses[0]
    assert oracle_auc > 0.7  # the generator makes churn learnable at all
    assert model_auc > blind_auc + 0.15
    assert model_auc > oracle_auc - 0.04


def test_contract_and_save_load_give_identical_probabilities(tmp_path):
    features, truth = generated_users(300, seed=2)
    churned = pd.Series(truth > 0.5, index=features.index)
    model, _ = churn.fit_model(features, churned, churn.load_config(overrides={"epochs": 3}), seed=0)
    x = churn.feature_tensor(features, model.hparams["feature_names"])
    probabilities = model.predict(x)
    assert probabilities.shape == (len(features),)
    assert ((probabilities > 0) & (probabilities < 1)).all()
    assert torch.equal(model.full_sort_predict(x), probabilities)
    assert model.calculate_loss(x, torch.from_numpy(churned.to_numpy())).ndim == 0

    model.save(tmp_path)
    loaded = churn.ChurnModel.load(tmp_path)
    assert loaded.hparams == model.hparams
    assert not torch.equal(loaded.feature_std, torch.ones_like(loaded.feature_std))  # stats travelled
    assert torch.equal(loaded.predict(x), probabilities)


def test_comparison_cli_writes_a_consistent_summary_and_plot(tmp_path):
    events = generate(30_000, n_users=600, days=120, end=CUTOFF.to_pydatetime(), seed=3)
    path = write_events(events, tmp_path / "events.csv")
    churn.main(["--events", str(path), "--horizon-days", "14", "--out", str(tmp_path / "out")])

    result = json.loads((tmp_path / "out" / "churn.json").read_text())
    assert (tmp_path / "out" / "churn.png").stat().st_size > 0
    test_cutoff, train_cutoff = pd.Timestamp(result["test_cutoff"]), pd.Timestamp(result["train_cutoff"])
    assert test_cutoff == (events["ts"].max() - 14 * DAY).floor("D")
    assert test_cutoff - train_cutoff == 14 * DAY
    assert result["test_users"] == events.loc[events["ts"] < test_cutoff, "user_id"].nunique()
    assert 0 < result["test_churn_rate"] < 1
    assert len(result["loss_history"]) == churn.load_config()["epochs"]
    assert (
        set(result["metrics"]) == {"model", "baseline", "bg_nbd", "pareto_nbd", "gbt"} and not result["not_applicable"]
    )
    for name in ("bg_nbd", "pareto_nbd"):  # fitted parameters with standard errors, and a Platt scaling
        classic = result["classic_models"][name]
        assert all(value > 0 for value in classic["params"].values()) and set(classic["standard_errors"]) == set(
            classic["params"]
        )
        assert set(classic["platt"]) == {"slope", "intercept"}
    for method in result["metrics"]:
        for metric in result["metrics"][method].values():
            assert metric["ci"][0] <= metric["value"] <= metric["ci"][1]
    for difference in result["roc_auc_differences"].values():  # paired, every method against the baseline
        assert difference["ci"][0] <= difference["value"] <= difference["ci"][1]
    assert result["metrics"]["gbt"]["roc_auc"]["value"] > 0.5
    difference = result["roc_auc_difference"]
    assert difference["value"] == pytest.approx(
        result["metrics"]["model"]["roc_auc"]["value"] - result["metrics"]["baseline"]["roc_auc"]["value"]
    )
    assert difference["ci"][0] <= difference["value"] <= difference["ci"][1]


def test_comparison_is_reproducible_with_its_seed():
    events, _ = churn.clean_events(generate(10_000, n_users=300, days=90, end=CUTOFF.to_pydatetime(), seed=4))
    config = {"bootstrap_resamples": 50, "epochs": 5}
    first, second = (churn.compare_churn(events, horizon_days=14, seed=7, config=config) for _ in range(2))
    for result in (first, second):
        del result["train_seconds"]
    assert first == second


def test_cli_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        churn.main(["--help"])
    assert exit_info.value.code == 0
    assert "--horizon-days" in capsys.readouterr().out


def test_the_feature_store_serves_every_input_the_churn_model_is_trained_on():
    """churn_v1 (feature_repo) reads the mart churn_features, whose decayed counts use the dbt var
    churn_half_lives_days: the model's half-lives (churn.yaml) must be those, and every feature the model
    is trained on must be a column of the feature view."""
    import importlib.util

    import yaml

    from tests.conftest import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("features", PROJECT_ROOT / "feature_repo" / "features.py")
    features = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(features)
    dbt_vars = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text())["vars"]
    half_lives = churn.load_config()["half_lives_days"]
    assert dbt_vars["churn_half_lives_days"] == half_lives
    trained_on = churn.user_features(events_frame([("a", "i1", "c1", "purchase", -2, 1.0)]), CUTOFF, half_lives)
    assert sorted(trained_on.columns) == sorted(features.CHURN_FEATURES)
    assert sorted(f.name for f in features.churn_features_fv.schema if f.name != "as_of_ts") == sorted(
        features.CHURN_FEATURES
    )


def test_marketing_metrics_by_hand():
    from models.pipeline.churn_evaluation import expected_calibration_error, metric_values, top_share

    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0], dtype=float)  # 3 churners in 10
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    assert top_share(y, p, 0.2) == pytest.approx((1.0 / 0.3, 2 / 3))  # top 2 both churn: lift 3.33, capture 2/3
    assert top_share(y, p, 0.1) == pytest.approx((1 / 0.3, 1 / 3))
    # bins of width .1: each user alone in its bin but .05 and .1 ... by hand: |p - y| summed / 10
    assert expected_calibration_error(y, p) == pytest.approx(np.abs(p - y).sum() / 10)
    crowded = np.full(10, 0.3)  # one bin: mean prediction .3 = churn rate .3
    assert expected_calibration_error(y, crowded) == pytest.approx(0.0)
    values = metric_values(y, p)
    assert set(values) == {
        "roc_auc",
        "pr_auc",
        "brier",
        "ece",
        "lift_top10",
        "capture_top10",
        "lift_top5",
        "capture_top5",
    }


def test_science_features_by_hand():
    from models.pipeline.churn_gbt import science_features

    features = pd.DataFrame(
        {
            "purchase_recency_days": [30.0, 5.0],
            "purchase_gap_mean_days": [10.0, 0.5],  # the gap is floored at one day
            "monetary": [100.0, 7.0],
            "purchase_occasions": [4.0, 0.0],
            "decayed_view_h7": [1.0, 0.0],
            "decayed_purchase_h7": [1.0, 0.0],
            "decayed_view_h90": [3.0, 2.0],
            "decayed_purchase_h90": [1.0, 0.0],
        }
    )
    out = science_features(features)
    assert out["overdue"].tolist() == [3.0, 5.0]
    assert out["interest_trend"].tolist() == pytest.approx([2.01 / 4.01, 0.01 / 2.01])
    assert out["monetary_per_occasion"].tolist() == [25.0, 7.0]


def test_too_little_history_before_the_training_cutoff_is_one_clear_sentence(tmp_path, capsys):
    events = generate(3_000, n_users=100, days=40, end=CUTOFF.to_pydatetime(), seed=5)
    path = write_events(events, tmp_path / "events.csv")
    with pytest.raises(SystemExit) as stop:  # 40 days of data: a 30-day horizon leaves no history to train on
        churn.main(["--events", str(path), "--horizon-days", "30", "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and "churn needs at least the horizon (30 days)" in error, error
    assert "Traceback" not in error


def identity_model(names: list[str], weights: list[float]) -> churn.ChurnModel:
    """A churn model whose logit is ``weights · z``, z = sign(x)·log1p|x| (logistic regression, no hidden layer,
    standardisation left at 0 / 1)."""
    model = churn.ChurnModel(names, hidden_dims=[], dropout=0.0)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([weights]))
        model.layers[0].bias.zero_()
    return model.eval()


def raw_from(z: np.ndarray) -> np.ndarray:
    """The raw feature values whose model input (sign(x)·log1p|x|) is ``z``."""
    return np.sign(z) * np.expm1(np.abs(z))


def test_platt_scaling_gets_the_planted_scale_and_bias_back():
    rng = np.random.default_rng(0)
    z = rng.normal(size=20_000)
    churned = torch.from_numpy((rng.random(z.size) < 1 / (1 + np.exp(-(3 * z - 1)))).astype(np.float32))
    model = identity_model(["a"], [1.0])
    model.fit_platt(torch.from_numpy(raw_from(z)[:, None].astype(np.float32)), churned)
    assert float(model.platt_scale) == pytest.approx(3.0, abs=0.15)
    assert float(model.platt_bias) == pytest.approx(-1.0, abs=0.1)
    x = torch.tensor([[raw_from(np.array([0.5]))[0]]], dtype=torch.float32)
    assert float(model.predict(x)) == pytest.approx(1 / (1 + np.exp(-(model.platt_scale * 0.5 + model.platt_bias))))


def test_a_model_saved_before_platt_scaling_loads_with_the_raw_sigmoid(tmp_path):
    model = identity_model(["a"], [2.0])
    model.save(tmp_path)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("platt_")}, tmp_path / "model.pt")
    loaded = churn.ChurnModel.load(tmp_path)
    assert float(loaded.platt_scale) == 1.0 and float(loaded.platt_bias) == 0.0
    x = torch.tensor([[3.0]])
    assert float(loaded.predict(x)) == pytest.approx(float(torch.sigmoid(2 * torch.log1p(x)).squeeze()))


def test_fit_model_holds_users_out_for_calibration_per_label():
    churned = pd.Series([True] * 50 + [False] * 150)
    held_out = churn.calibration_users(churned, 0.2, seed=0)
    assert held_out[:50].sum() == 10 and held_out[50:].sum() == 30
    assert (churn.calibration_users(churned, 0.2, seed=0) == held_out).all()


def test_the_reasons_name_the_features_that_move_the_risk_with_their_exact_effect():
    from models.pipeline.churn_reasons import churn_reasons, label

    model = identity_model(["recency_days", "event_count", "decayed_view_h7"], [2.0, -0.5, 0.01])
    features = pd.DataFrame(
        {
            "recency_days": raw_from(np.array([1.5, -1.0])),
            "event_count": raw_from(np.array([0.2, 2.0])),
            "decayed_view_h7": raw_from(np.array([1.0, 1.0])),
        }
    )
    first, second = churn_reasons(model, features)
    assert [r.feature for r in first] == ["recency_days", "event_count", "decayed_view_h7"]
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    assert first[0].effect == pytest.approx(sigmoid(3.0 - 0.1 + 0.01) - sigmoid(-0.1 + 0.01), rel=1e-5)
    assert first[0].effect > 0 and "raises the risk" in first[0].text and "days since the last event" in first[0].text
    # the second user: a recent event and many events both lower the risk, recency more (logit -2 vs -1)
    assert [r.feature for r in second][:2] == ["recency_days", "event_count"]
    assert all(r.effect < 0 for r in second[:2]) and "lowers the risk" in second[0].text
    assert second[0].value == pytest.approx(features.iloc[1][second[0].feature], rel=1e-6)
    assert label("decayed_view_h7") == "view events, decayed with a 7-day half-life"
