"""The synthetic generator: contract, determinism, and the half-lives it promises (known-answer)."""

import datetime as dt

import numpy as np
import pytest

from interest_decay.events.schema import EVENT_COLUMNS, EVENT_TYPES
from interest_decay.events.synthetic import generate, half_lives

END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_exact_count_schema_and_window():
    events = generate(5_000, seed=3, end=END, days=30)
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert len(events) == 5_000
    assert set(events.event_type) <= set(EVENT_TYPES)
    assert events.ts.min() >= END - dt.timedelta(days=30)
    assert events.ts.max() < END
    assert events.ts.is_monotonic_increasing
    assert events.loc[events.event_type == "view", "value"].isna().all()
    assert events.loc[events.event_type == "rating", "value"].between(1, 5).all()


def test_same_seed_same_events_other_seed_other_events():
    a, b, c = (generate(2_000, seed=s, end=END) for s in (7, 7, 8))
    assert a.equals(b)
    assert not a.equals(c)


def test_half_lives_are_geometric_between_the_bounds():
    h = half_lives(5, 1.0, 16.0)
    assert h.tolist() == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0])


def test_generated_decay_rates_come_back_from_the_data():
    # Episodes that started long before the end are fully observed, so the maximum-likelihood
    # rate of their event ages (1 / mean age) must recover each category's true rate.
    events, episodes = generate(
        300_000,
        n_users=2_000,
        n_categories=5,
        days=2_000,
        end=END,
        min_half_life=1.0,
        max_half_life=16.0,
        seed=11,
        return_episodes=True,
    )
    truth = half_lives(5, 1.0, 16.0)
    joined = events.merge(episodes, on="episode", suffixes=("", "_episode"))
    for c, true_half_life in enumerate(truth):
        category = joined[joined.category_id == str(c + 1)]
        complete = category[category.onset < END - dt.timedelta(days=14 * true_half_life)]
        ages = (complete.ts - complete.onset).dt.total_seconds() / 86400
        fitted = np.log(2) * ages.mean()
        assert len(ages) > 5_000
        assert fitted == pytest.approx(true_half_life, rel=0.05), f"category {c + 1}"
