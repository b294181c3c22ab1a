"""Properties every decay family must have, on random parameters (hypothesis): 1 at age 0,
never increasing, one half at its half-life."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interest_decay import decay

ages = st.lists(st.floats(0, 3650, allow_nan=False), min_size=2, max_size=50)
half_lives = st.floats(0.01, 1000, allow_nan=False)
logistic_params = st.tuples(st.floats(1e-3, 1e3), st.floats(1e-3, 10))
period_weights = st.lists(st.floats(0, 1), min_size=1, max_size=12).map(
    lambda ws: [1.0] + sorted(ws, reverse=True))


@given(half_lives, ages)
def test_exponential(h, t):
    assert decay.exponential_half_life(0.0, h) == 1.0
    values = decay.exponential_half_life(np.sort(t), h)
    assert np.all(np.diff(values) <= 0)
    assert decay.exponential_half_life(h, h) == pytest.approx(0.5, rel=1e-12)


@given(logistic_params, ages)
def test_logistic(params, t):
    k, l = params
    assert decay.logistic(0.0, k, l) == 1.0
    values = decay.logistic(np.sort(t), k, l)
    assert np.all(np.diff(values) <= 0)
    assert decay.logistic(decay.logistic_half_life(k, l), k, l) == pytest.approx(0.5, rel=1e-9)


@given(period_weights, st.sampled_from(list(decay.PERIOD_DAYS.values())), ages)
def test_period(weights, period_days, t):
    assert decay.period(0.0, weights, period_days) == 1.0
    values = decay.period(np.sort(t), weights, period_days)
    assert np.all(np.diff(values) <= 0)
    h = decay.period_half_life(weights, period_days)
    if math.isfinite(h):
        assert decay.period(h, weights, period_days) <= 0.5
        if h > 0:
            assert decay.period(h - 1e-9 * period_days, weights, period_days) > 0.5


@settings(max_examples=50)
@given(st.sampled_from(["exponential", "logistic", "period"]), st.floats(0, 100))
def test_multiplier_dispatches_to_the_family(family, t):
    params = {"half_life_days": 3.0, "logistic_k": 0.5, "logistic_l": 0.2, "period_days": 7.0,
              "period_weights": [1.0, 0.5, 0.25]}
    expected = {"exponential": decay.exponential_half_life(t, 3.0), "logistic": decay.logistic(t, 0.5, 0.2),
                "period": decay.period(t, [1.0, 0.5, 0.25], 7.0)}[family]
    assert decay.multiplier(family, t, **params) == expected


def test_unknown_family_is_a_readable_error():
    with pytest.raises(ValueError, match="unknown decay family 'linear'"):
        decay.multiplier("linear", 1.0)
