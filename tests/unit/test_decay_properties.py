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
period_weights = st.lists(st.floats(0, 1), min_size=1, max_size=12).map(lambda ws: [1.0] + sorted(ws, reverse=True))


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
    params = {
        "half_life_days": 3.0,
        "logistic_k": 0.5,
        "logistic_l": 0.2,
        "period_days": 7.0,
        "period_weights": [1.0, 0.5, 0.25],
    }
    expected = {
        "exponential": decay.exponential_half_life(t, 3.0),
        "logistic": decay.logistic(t, 0.5, 0.2),
        "period": decay.period(t, [1.0, 0.5, 0.25], 7.0),
    }[family]
    assert decay.multiplier(family, t, **params) == expected


def test_unknown_family_is_a_readable_error():
    with pytest.raises(ValueError, match="unknown decay family 'linear'"):
        decay.multiplier("linear", 1.0)


repeat_params = st.tuples(st.just(math.inf) | half_lives, st.floats(0, 1), st.floats(0, 400), st.floats(0.1, 100))


@given(repeat_params, ages)
def test_repeat_stays_in_unit_interval_and_nests_exponential(params, t):
    h, pi, mu, sd = params
    values = decay.repeat(np.asarray(t), h, pi, mu, sd)
    assert np.all((values >= 0) & (values <= 1 + 1e-12))
    assert np.array_equal(decay.repeat(np.asarray(t), h, 0.0, mu, sd), decay.exponential_half_life(t, h))


@given(st.floats(1, 30), st.floats(40, 200), st.floats(0.3, 0.9))
def test_repeat_falls_after_a_purchase_then_rises_towards_the_repurchase_interval(h, mu, pi):
    # The documented shape: with the bump well clear of 0 (mu = 8 sigma) and the fade faster than mu,
    # interest falls right after the purchase, is back up near mu, and fades again after it.
    sd = mu / 8
    trough = decay.repeat(mu / 2, h, pi, mu, sd)
    peak = decay.repeat(mu, h, pi, mu, sd)
    assert decay.repeat(0.0, h, pi, mu, sd) > trough < peak
    assert decay.repeat(mu + 4 * sd, h, pi, mu, sd) < peak
    assert peak >= pi


def test_repeat_interest_sums_the_latest_purchases_within_the_window():
    def kernel(a):
        return decay.repeat(a, 10.0, 0.5, 30.0, 5.0)

    got = decay.repeat_interest([1.0, 31.0, 29.0, 400.0], 10.0, 0.5, 30.0, 5.0, window_days=365, max_purchases=2)
    assert got == pytest.approx(kernel(1.0) + kernel(29.0), rel=1e-12)  # the latest two
    got = decay.repeat_interest([1.0, 400.0, -1.0], 10.0, 0.5, 30.0, 5.0, window_days=365, max_purchases=3)
    assert got == pytest.approx(kernel(1.0), rel=1e-12)  # 400 d is outside the window, -1 d is the future


def test_repeat_rejects_parameters_out_of_range():
    with pytest.raises(ValueError, match="bump_weight"):
        decay.repeat(1.0, 10.0, 1.5, 30.0, 5.0)
