"""The repeat-purchase family's fit (models/fitting/repeat_decay.py): known answers from generated repurchases,
shrinkage from item to category to global, and the ranker against the reference kernel."""

import numpy as np
import pandas as pd
import pytest

from interest_decay import decay
from models.fitting import repeat_decay
from models.harness.ranking import TrainData

START = pd.Timestamp("2026-01-01", tz="UTC")


def purchases(item: str, category: str, n_users: int, mean: float, sd: float, rng, repeats: int = 4) -> list[dict]:
    rows = []
    for u in range(n_users):
        t = START + pd.Timedelta(days=float(rng.uniform(0, 20)))
        for _ in range(repeats):
            rows.append(
                {
                    "user_id": f"u{u}",
                    "item_id": item,
                    "category_id": category,
                    "event_type": "purchase",
                    "ts": t,
                    "value": 1.0,
                }
            )
            t += pd.Timedelta(days=float(max(rng.normal(mean, sd), 1.5)))
    return rows


@pytest.fixture(scope="module")
def events():
    rng = np.random.default_rng(3)
    rows = (
        purchases("a", "c1", 300, 30.0, 5.0, rng)
        + purchases("b", "c2", 300, 60.0, 8.0, rng)
        + purchases("rare", "c1", 1, 90.0, 1.0, rng, repeats=2)
    )
    return pd.DataFrame(rows).sort_values("ts", ignore_index=True)


def test_bump_recovers_the_generated_repurchase_interval(events):
    params = repeat_decay.fit(events, pd.Index(["a", "b", "rare"]), 30.0, 0.5, 365.0, 50)
    bumps = params.bumps
    assert bumps.loc["a", "bump_mean_days"] == pytest.approx(30.0, rel=0.05)
    assert bumps.loc["b", "bump_mean_days"] == pytest.approx(60.0, rel=0.05)
    assert bumps.loc["a", "bump_sd_days"] == pytest.approx(5.0, rel=0.15)
    assert bumps.loc["b", "bump_sd_days"] == pytest.approx(8.0, rel=0.15)
    assert list(bumps.loc[["a", "b"], "origin"]) == ["item", "item"]


def test_an_item_with_few_gaps_takes_its_categorys_bump(events):
    bumps = repeat_decay.fit(events, pd.Index(["a", "b", "rare"]), 30.0, 0.5, 365.0, 50).bumps
    rare = bumps.loc["rare"]
    assert rare["gaps"] == 1 and rare["origin"] == "category"
    # one gap of ~90 days against category c1's ~30: pulled most of the way to 30
    assert 30.0 < rare["bump_mean_days"] < 0.5 * (30.0 + 90.0)


def test_occasions_count_a_day_once_and_keep_its_first_purchase():
    ts = [START, START + pd.Timedelta(hours=5), START + pd.Timedelta(days=3)]
    frame = pd.DataFrame(
        {"user_id": "u", "item_id": "i", "category_id": "c", "event_type": "purchase", "ts": ts, "value": 1.0}
    )
    occasions = repeat_decay.purchase_occasions(frame, ["purchase"])
    assert occasions["ts"].tolist() == [ts[0], ts[2]]
    assert repeat_decay.repurchase_gaps(occasions)["gap_days"].tolist() == [3.0]


def test_ranker_scores_are_the_reference_kernel_summed_over_the_window(events):
    cutoff = events["ts"].max() + pd.Timedelta(days=1)
    items = pd.Index(["a", "b", "rare"])
    ranker = repeat_decay.RepeatRanker(
        half_life_days=20.0, bump_weight=0.4, window_days=100.0, max_purchases=3, epsilon=0.0
    ).fit(TrainData(events, items, cutoff))
    bumps = ranker.params.bumps
    got = ranker.score(["u7"])[0]
    for j, item in enumerate(items):
        mine = events[(events["user_id"] == "u7") & (events["item_id"] == item)]
        ages = ((cutoff - mine["ts"]) / pd.Timedelta(days=1)).to_numpy()
        want = decay.repeat_interest(
            ages,
            20.0,
            0.4,
            bumps.loc[item, "bump_mean_days"],
            bumps.loc[item, "bump_sd_days"],
            window_days=100.0,
            max_purchases=3,
        )
        assert got[j] == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_no_bump_and_no_fade_is_the_count_of_purchase_days(events):
    cutoff = events["ts"].max() + pd.Timedelta(days=1)
    items = pd.Index(["a", "b", "rare"])
    ranker = repeat_decay.RepeatRanker(float("inf"), 0.0, epsilon=0.0).fit(TrainData(events, items, cutoff))
    days = events.assign(day=events["ts"].dt.floor("D")).groupby(["user_id", "item_id"])["day"].nunique()
    assert ranker.score(["u3"])[0][0] == days.loc[("u3", "a")]


def test_make_evaluate_compares_the_repeat_family_and_reports_its_fit(tmp_path):
    from interest_decay.events.synthetic import generate, write_events
    from models.harness import evaluate

    path = write_events(generate(20_000, n_users=200, n_categories=4, days=40, seed=2), tmp_path / "events.parquet")
    cfg = evaluate.load_config()
    cfg.update(tasks=["item_id"], bootstrap_resamples=50)
    cfg["methods"]["repeat"]["grid"] = {"half_life_days": [float("inf"), 7.0], "bump_weight": [0.0, 0.5]}
    summary = evaluate.run([path], "project", tmp_path / "out", cfg, ["history_ties_30d", "repeat"])
    row = summary["tasks"]["item_id"]["methods"]["repeat"]
    assert row["kind"] == "repeat" and len(row["validation_grid"]) == 4 and 0 < row["ndcg@10"] <= 1
    assert summary["repeat_parameters"]["repeat"]["max_purchases"] == 50
    report = (tmp_path / "out" / "evaluation.md").read_text()
    assert "## Fitted parameters: repeat" in report and "usual repurchase (days)" in report
    assert (tmp_path / "out" / "repeat_kernels_repeat.png").exists()
