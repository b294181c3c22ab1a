"""The parametric decay model: the model contract, decay behaviour, and known-answer recovery of half-lives.

The known-answer data come from the process the model's likelihood describes (a Hawkes-style choice of
the next item): at each step a user re-buys an item of one of their past events with probability
proportional to ``0.5 ** (age / h[category])``, or, with weight ``BASE``, buys a uniformly random item.
Fitting must bring the category half-lives back; nothing in the fit knows them.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from models.harness import ranking
from models.harness.decay_data import Histories
from models.harness.decay_fit import PARAMETER_COLUMNS, DecayModel, DecayRanker

torch.set_num_threads(2)
T0 = pd.Timestamp("2026-01-01", tz="UTC")
BASE = 0.5  # intensity of a uniformly random purchase, against 1 per fresh past event
ITEMS_PER_CATEGORY = 30


def repeat_process(half_lives, n_users=2500, steps=40, mean_gap_days=1.5, seed=0) -> pd.DataFrame:
    """Purchases from the re-interaction process above; ``half_lives[c]`` (days, inf = no decay) of category c."""
    rng = np.random.default_rng(seed)
    half_lives = np.asarray(half_lives, dtype=float)
    n_items = len(half_lives) * ITEMS_PER_CATEGORY
    times = np.cumsum(rng.exponential(mean_gap_days, (n_users, steps)), axis=1)
    items = np.zeros((n_users, steps), dtype=int)
    items[:, 0] = rng.integers(0, n_items, n_users)
    for s in range(1, steps):
        past = items[:, :s]
        weights = 0.5 ** ((times[:, s : s + 1] - times[:, :s]) / half_lives[past // ITEMS_PER_CATEGORY])
        total = weights.sum(1)
        repeat = rng.random(n_users) * (total + BASE) < total
        pick = (np.cumsum(weights, 1) < (rng.random(n_users) * total)[:, None]).sum(1)
        items[:, s] = np.where(
            repeat, past[np.arange(n_users), np.minimum(pick, s - 1)], rng.integers(0, n_items, n_users)
        )
    return (
        pd.DataFrame(
            {
                "user_id": np.repeat([f"u{u}" for u in range(n_users)], steps),
                "item_id": [f"i{i}" for i in items.ravel()],
                "category_id": [str(c) for c in (items // ITEMS_PER_CATEGORY).ravel()],
                "event_type": "purchase",
                "ts": (T0 + pd.to_timedelta(times.ravel(), unit="D")).floor("s"),
                "value": 1.0,
            }
        )
        .sort_values(["ts", "user_id"], kind="stable")
        .reset_index(drop=True)
    )


def fit(events: pd.DataFrame, family: str = "exponential", **overrides) -> DecayRanker:
    settings = dict(
        family=family,
        l2=1e-6,
        epochs=4,
        batch_size=4096,
        learning_rate=0.05,
        window_days=1e4,
        max_baskets=200_000,
        max_history=40,
        category_term=False,
        popularity=False,
        init_half_life=5.0,
        polish_steps=20,
    )
    train = ranking.train_data(events, events["ts"].max() + pd.Timedelta(seconds=1))
    return DecayRanker(**{**settings, **overrides}).fit(train)


def test_exponential_fit_recovers_known_category_half_lives():
    truth = {"0": 1.0, "1": 3.0, "2": 9.0}
    ranker = fit(repeat_process(list(truth.values()), n_users=3000))
    table = ranker.half_life_table().set_index("category_id")
    for category, half_life in truth.items():
        assert table.loc[category, "half_life_days"] == pytest.approx(half_life, rel=0.05), category


def test_fit_finds_no_decay_when_interest_does_not_fade():
    events = repeat_process([math.inf, math.inf], n_users=1500, seed=1)
    span = (events.ts.max() - events.ts.min()) / pd.Timedelta(days=1)
    table = fit(events, epochs=8, learning_rate=0.1, polish_steps=50).half_life_table()
    per_category = table[table.category_id != "*"]  # the '*' row is only the prior the categories shrink to
    assert (0.5 ** (span / per_category["half_life_days"]) > 0.95).all()  # < 5% decay over the whole span


def test_period_and_logistic_fits_give_valid_parameter_rows():
    events = repeat_process([1.0, 9.0], n_users=800, steps=30, seed=2)
    period = fit(events, "period", epochs=5, period_days=1.0, period_buckets=8, polish_steps=5).half_life_table()
    weights = period.set_index("category_id")["period_weights"].map(lambda w: [float(x) for x in w.split(";")])
    assert all(w[0] == 1.0 and np.all(np.diff(w) <= 0) and len(w) == 8 for w in weights)
    assert weights["0"][3] < weights["1"][3]  # the 1-day category has faded more after 3 days
    logistic = fit(events, "logistic", epochs=5, polish_steps=5).half_life_table()
    assert (logistic["logistic_k"] >= 1e-3).all() and (logistic["logistic_l"] >= 1e-9).all()
    assert list(logistic.columns) == PARAMETER_COLUMNS
    assert logistic.loc[logistic.category_id == "*", "event_type"].tolist() == ["purchase"]


def tiny_histories(ages, items=(0, 0), rows=(0, 0), n_rows=1, n_items=3) -> Histories:
    n = len(ages)
    shares = torch.full((n_rows, 2, n_items), 1.0 / n_items)
    return Histories(
        torch.tensor(rows[:n]),
        torch.tensor(items[:n]),
        torch.zeros(n, dtype=torch.long),
        torch.zeros(n, dtype=torch.long),
        torch.tensor(ages, dtype=torch.float32),
        shares,
        torch.full((n_rows, n_items), 1.0),
        n_rows,
    )


@pytest.mark.parametrize("family", ["exponential", "logistic", "period"])
def test_a_more_recent_event_scores_higher_and_the_contract_holds(family, tmp_path):
    model = DecayModel(
        n_categories=1, n_types=1, n_items=3, family=family, period_days=1.0, period_buckets=4, init_half_life=2.0
    )
    recent, old = model(tiny_histories([0.5])), model(tiny_histories([5.0]))
    assert recent.shape == (1, 3) and recent[0, 0] > old[0, 0]
    swapped = tiny_histories([5.0, 0.5], items=(1, 0))
    same = tiny_histories([0.5, 5.0], items=(0, 1))
    assert torch.allclose(model(swapped), model(same))  # the order of events changes nothing
    assert torch.allclose(model.predict(same, torch.tensor([1])), model.full_sort_predict(same)[:, 1])
    loss = model.calculate_loss(same, torch.tensor([[1.0, 0.0, 0.0]]))
    loss.backward()
    assert loss.item() > 0 and model.global_params.grad is not None
    model.save(tmp_path / "m", vocabulary={"items": ["a", "b", "c"]})
    loaded, vocabulary = DecayModel.load(tmp_path / "m")
    assert vocabulary == {"items": ["a", "b", "c"]}
    assert torch.allclose(loaded(same), model(same))


def test_ranker_scores_the_catalogue_for_known_and_unknown_users():
    events = repeat_process([2.0], n_users=50, steps=10, seed=3)
    ranker = fit(events, epochs=1, category_term=True, popularity=True, polish_steps=0)
    scores = ranker.score(["u0", "nobody"])
    train_items = ranking.train_data(events, events.ts.max() + pd.Timedelta(seconds=1)).items
    assert scores.shape == (2, len(train_items)) and np.isfinite(scores).all()
    bought = train_items.get_indexer(events.loc[events.user_id == "u0", "item_id"].unique())
    assert (scores[0][bought] > scores[1][bought]).all()  # own history lifts the user's items


def test_a_half_life_at_a_bound_of_its_range_is_flagged():
    from models.harness.decay_fit import MAX_HALF_LIFE, MIN_HALF_LIFE, bound_flag

    assert bound_flag(MIN_HALF_LIFE) == "lower bound" and bound_flag(MAX_HALF_LIFE) == "upper bound"
    assert bound_flag(7.0) is None and bound_flag(None) is None and bound_flag(float("nan")) is None
