"""The item ranker: its signals on hand-computed events, its model contract, and a planted rule it must learn."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from models.harness import baselines, ranking
from models.pipeline.item_ranker import (
    NOT_A_CANDIDATE,
    ItemRanker,
    RankerConfig,
    fit_item_ranker,
    labelled_rows,
    training_windows,
)
from models.pipeline.item_signals import SIGNALS, candidate_signals, signal_state, signals_at
from models.pipeline.served_ranker import ItemRankerMethod

START = pd.Timestamp("2026-01-01", tz="UTC")


def frame(rows):
    """Events from (user, item, event_type, day offset)."""
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "category_id": ["c"] * len(rows),
            "event_type": [r[2] for r in rows],
            "ts": [START + pd.Timedelta(days=r[3]) for r in rows],
            "value": np.nan,
        }
    )


def test_signals_of_a_small_history():
    events = frame(
        [
            ("u", "A", "purchase", 0),
            ("u", "A", "purchase", 10),
            ("u", "A", "purchase", 20),
            ("u", "A", "view", 20),
            ("u", "B", "view", 25),
            ("v", "C", "purchase", 28),
        ]
    )
    rows = candidate_signals(events, START + pd.Timedelta(days=30), candidates=3).set_index(["user_id", "item_id"])
    a, b, c = rows.loc[("u", "A")], rows.loc[("u", "B")], rows.loc[("u", "C")]
    assert a["item_days"] == pytest.approx(math.log1p(3)) and a["item_events"] == pytest.approx(math.log1p(4))
    assert a["target_days"] == pytest.approx(math.log1p(3)) and b["target_days"] == 0
    assert a["age_last"] == pytest.approx(math.log1p(10)) and a["age_first"] == pytest.approx(math.log1p(30))
    # days 0, 10, 20 are 30, 20 and 10 days old: decayed with a 30-day half-life
    assert a["item_days_30"] == pytest.approx(math.log1p(0.5 + 0.5 ** (20 / 30) + 0.5 ** (10 / 30)))
    assert rows.loc[("v", "C")]["item_days_30"] == pytest.approx(math.log1p(0.5 ** (2 / 30)))
    assert a["share"] == pytest.approx(3 / 4)  # u was active on days 0, 10, 20, 25
    assert a["gap_median"] == pytest.approx(math.log1p(10)) and a["gap_known"] == 1
    assert a["overdue"] == pytest.approx(math.log1p(10 / 10))  # last purchase 10 days ago, bought every 10 days
    assert b["overdue"] == 0 and b["gap_known"] == 0  # nobody bought B twice
    # C: a popular item u never touched is a candidate, with "never" history signals
    assert c["in_history"] == 0 and c["item_days"] == 0 and c["age_last"] == pytest.approx(math.log1p(1000))
    assert c["user_days"] == pytest.approx(math.log1p(4))
    assert c["pop_30"] == pytest.approx(math.log1p(0.5 ** (2 / 30)))  # its one buyer, 2 days ago
    # every item here is in category "c": u was active in it on all 4 of its days, last 5 days ago
    assert a["category_days"] == pytest.approx(math.log1p(4)) and a["category_share"] == pytest.approx(1.0)
    assert c["category_age_last"] == pytest.approx(math.log1p(5))
    days_30 = sum(0.5 ** (age / 30) for age in (30, 20, 10, 5))
    assert c["category_days_30"] == pytest.approx(math.log1p(days_30))
    assert not rows.isna().any().any() and list(rows.columns) == list(SIGNALS)


def test_later_events_do_not_change_the_signals():
    events = frame([("u", "A", "purchase", 0), ("u", "A", "purchase", 10), ("v", "A", "purchase", 5)])
    cutoff = START + pd.Timedelta(days=12)
    later = pd.concat([events, frame([("u", "A", "purchase", 12), ("w", "B", "purchase", 20)])])
    pd.testing.assert_frame_equal(candidate_signals(events, cutoff), candidate_signals(later, cutoff))


@pytest.mark.parametrize("hours", [0.0, 5.5, 24 * 9.25])
def test_the_state_moved_to_a_later_instant_gives_the_signals_computed_there(hours):
    """What an online store relies on: the state at as_of, moved on to t (no event between), equals the signals
    computed from the events at t, to 1e-9 (ages grow with the clock, decayed sums shrink by 0.5^(elapsed / h))."""
    events = cyclic_shop(users=30, days=90, seed=4)
    events.loc[events.index % 7 == 0, "event_type"] = "view"
    as_of = START + pd.Timedelta(days=90)
    later = as_of + pd.Timedelta(hours=hours)
    moved = signals_at(signal_state(events, as_of, candidates=8), later)
    direct = candidate_signals(events, later, candidates=8)
    pd.testing.assert_frame_equal(moved, direct, rtol=1e-9, atol=1e-12)


def test_contract_save_load_and_full_sort():
    torch.manual_seed(0)
    model = ItemRanker(len(SIGNALS), hidden=8)
    signals = torch.rand(5, len(SIGNALS))
    model.standardise_with(signals)
    model.eval()
    rows, columns = torch.tensor([0, 0, 1, 1, 1]), torch.tensor([2, 0, 0, 1, 3])
    fallback = torch.tensor([0.5, 0.0, 1.0, 0.2, 0.7])
    scores = model.full_sort_predict(signals, rows, columns, fallback, 2)
    assert scores.shape == (2, 5)
    assert torch.allclose(scores[rows, columns], model.predict(signals) + 1e-6 * fallback[columns])
    # items that are no candidate of user 0 (1, 3, 4) rank below its candidates, by the fallback
    assert scores[0, [1, 3, 4]].tolist() == pytest.approx([NOT_A_CANDIDATE + f for f in (0.0, 0.2, 0.7)])
    assert scores[0, [0, 2]].min() > scores[0, [1, 3, 4]].max()
    loss = model.calculate_loss(signals, torch.tensor([1.0, 0, 0, 0, 1]), torch.tensor([0, 0, 1, 1, 1]))
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("members", [1, 3])
def test_save_and_load_give_the_same_scores(tmp_path, members):
    torch.manual_seed(1)
    model = ItemRanker(len(SIGNALS), hidden=8, members=members)
    model.standardise_with(torch.rand(20, len(SIGNALS)) * 5)
    model.eval().save(tmp_path)
    loaded = ItemRanker.load(tmp_path)
    signals = torch.rand(7, len(SIGNALS))
    assert torch.equal(loaded.predict(signals), model.predict(signals))
    assert torch.equal(loaded.mean, model.mean) and torch.equal(loaded.scale, model.scale)


def test_listwise_loss_of_a_known_case():
    model = ItemRanker(len(SIGNALS), hidden=4)
    for parameter in model.parameters():
        torch.nn.init.zeros_(parameter)  # every score 0: a uniform softmax
    signals = torch.rand(5, len(SIGNALS))
    relevant = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0])
    groups = torch.tensor([0, 0, 1, 1, 1])
    # group 0: 2 candidates, 1 relevant: log 2; group 1: 3 candidates, 1 relevant: log 3
    assert model.calculate_loss(signals, relevant, groups).item() == pytest.approx((math.log(2) + math.log(3)) / 2)
    # a group without a relevant candidate does not count
    no_hit = model.calculate_loss(signals, torch.tensor([1.0, 0, 0, 0, 0]), groups).item()
    assert no_hit == pytest.approx(math.log(2))


def test_a_one_network_ranker_saved_by_an_earlier_version_loads(tmp_path):
    """A champion saved before the members were stacked (nn.Linear layers, no ``members``) scores as it did."""
    torch.manual_seed(3)
    n, hidden = len(SIGNALS), 8
    net = torch.nn.Sequential(
        torch.nn.Linear(n, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
    )
    mean, scale = torch.rand(n), torch.rand(n) + 0.5
    state = {"mean": mean, "scale": scale, **{f"net.{k}": v for k, v in net.state_dict().items()}}
    (tmp_path / "hparams.json").write_text(json.dumps({"n_signals": n, "hidden": hidden}))
    torch.save(state, tmp_path / "model.pt")
    loaded = ItemRanker.load(tmp_path)
    signals = torch.rand(9, n)
    with torch.no_grad():
        expected = net((signals - mean) / scale).squeeze(-1)
    assert loaded.hparams["members"] == 1
    assert torch.allclose(loaded.predict(signals), expected, atol=1e-6)


def test_an_ensemble_scores_and_learns_as_its_members_alone():
    """Members x 3: the score is the members' mean, the loss the mean of each member's own loss, and one step of
    the ensemble moves each member exactly as a step of that member alone would."""
    torch.manual_seed(2)
    signals, groups = torch.rand(6, len(SIGNALS)), torch.tensor([0, 0, 0, 1, 1, 1])
    relevant = torch.tensor([0.0, 1, 0, 1, 0, 1])
    ensemble = ItemRanker(len(SIGNALS), hidden=4, members=3)
    ensemble.standardise_with(signals)
    alone = []
    for k in range(3):
        single = ItemRanker(len(SIGNALS), hidden=4)
        single.load_state_dict(
            {name: value[k : k + 1].clone() for name, value in ensemble.state_dict().items()}
            | {"mean": ensemble.mean, "scale": ensemble.scale}
        )
        alone.append(single)
    assert torch.allclose(ensemble.predict(signals), torch.stack([m.predict(signals) for m in alone]).mean(0))
    losses = [m.calculate_loss(signals, relevant, groups) for m in alone]
    assert ensemble.calculate_loss(signals, relevant, groups).item() == pytest.approx(
        float(torch.stack(losses).mean()), rel=1e-6
    )
    # the mean scales each member's gradient by 1 / members (Adam, which training uses, is invariant to that)
    for model, rate in ((ensemble, 0.03), *((m, 0.01) for m in alone)):
        optimiser = torch.optim.SGD(model.parameters(), lr=rate)
        model.calculate_loss(signals, relevant, groups).backward()
        optimiser.step()
    for k, single in enumerate(alone):
        for stacked, own in zip(ensemble.parameters(), single.parameters()):
            assert torch.allclose(stacked[k : k + 1], own, atol=1e-6)


def test_windows_end_at_the_cutoff_and_start_after_the_first_event():
    events = frame([("u", "A", "purchase", 0)])
    cfg = RankerConfig(windows=5, step_days=10, window_days=30)
    windows = training_windows(events, START + pd.Timedelta(days=60), cfg)
    assert [(s - START).days for s, _ in windows] == [30, 20, 10]
    assert [(e - START).days for _, e in windows] == [60, 50, 40]


def cyclic_shop(users: int = 60, days: int = 200, seed: int = 0) -> pd.DataFrame:
    """Each user buys a staple every ``period`` days (7 to 14, from a random start) and bought three fad items
    many times in one early burst, never since. The staple is due at any cutoff; the fads are frequent but over."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        period = int(rng.integers(7, 15))
        for day in range(int(rng.integers(0, period)), days, period):
            rows.append((f"u{u}", f"staple{u % 5}", "purchase", day))
        for fad in rng.choice(20, size=3, replace=False):
            rows += [(f"u{u}", f"fad{fad}", "purchase", d) for d in (1, 2, 3, 4, 5, 6)]
    return frame(rows)


def test_the_ranker_learns_that_a_due_staple_beats_an_old_fad():
    """Known answer: history counts rank the fads (6 purchases) above a staple bought fewer times in a short
    history; the ranker, trained on earlier windows, must learn that the staple is what gets bought next."""
    events = cyclic_shop()
    cutoff = START + pd.Timedelta(days=40)
    split = ranking.make_split(events, cutoff, cutoff + pd.Timedelta(days=14), ["purchase"])
    cfg = {"windows": 3, "step_days": 4, "window_days": 14, "epochs": 60, "hidden": 16, "candidates": 5}
    learned = ranking.evaluate(ItemRankerMethod(**cfg).fit(split.train), split)
    history = ranking.evaluate(baselines.UserHistory(float("inf")).fit(split.train), split)
    top_one, items = learned.top[:, 0], split.train.items
    assert np.mean([items[i].startswith("staple") for i in top_one]) >= 0.95
    assert np.mean([items[i].startswith("staple") for i in history.top[:, 0]]) < 0.5


def test_a_window_without_buyers_is_left_out():
    events = frame([("u", "A", "purchase", 0), ("u", "B", "view", 40), ("u", "A", "purchase", 41)])
    quiet = labelled_rows(events, START + pd.Timedelta(days=10), START + pd.Timedelta(days=20), RankerConfig())
    assert quiet.empty and "relevant" in quiet
    model = fit_item_ranker(events, START + pd.Timedelta(days=45), RankerConfig(windows=3, window_days=10, epochs=2))
    assert isinstance(model, ItemRanker)  # trained on the one window with a buyer (days 35-45)
    assert torch.isfinite(model.scale).all() and torch.isfinite(model.predict(torch.rand(3, len(SIGNALS)))).all()


def test_no_purchase_window_is_a_clear_error():
    events = frame([("u", "A", "purchase", 0), ("u", "B", "purchase", 1)])
    with pytest.raises(ValueError, match="no label window"):
        fit_item_ranker(events, START + pd.Timedelta(days=3), RankerConfig(window_days=30))
