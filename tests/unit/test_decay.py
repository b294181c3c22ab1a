"""Decay functions against values worked out by hand."""

import math

import numpy as np
import pytest

from interest_decay import decay


def test_exponential_halves_at_half_life_and_quarters_at_two():
    k = decay.rate_from_half_life(7.0)
    assert k == pytest.approx(math.log(2) / 7)
    assert decay.exponential(0.0, k) == 1.0
    assert decay.exponential(7.0, k) == pytest.approx(0.5, rel=1e-12)
    assert decay.exponential(14.0, k) == pytest.approx(0.25, rel=1e-12)
    assert decay.half_life_from_rate(k) == pytest.approx(7.0)


def test_infinite_half_life_means_no_decay():
    assert decay.rate_from_half_life(math.inf) == 0.0
    assert decay.half_life_from_rate(0.0) == math.inf
    assert decay.exponential(365.0, 0.0) == 1.0


def test_logistic_decays_from_one_and_halves_at_its_half_life():
    # k = 1, l = ln 3: (1 + 1) / (1 + e^(ln 3 * t)) is 2/2 at t = 0 and 2/4 at t = 1.
    k, l = 1.0, math.log(3.0)
    assert decay.logistic(0.0, k, l) == 1.0
    assert decay.logistic(1.0, k, l) == pytest.approx(0.5, rel=1e-12)
    assert decay.logistic_half_life(k, l) == pytest.approx(1.0, rel=1e-12)
    t = np.linspace(0, 30, 301)
    assert np.all(np.diff(decay.logistic(t, 0.2, 0.5)) <= 0)


def test_logistic_is_not_the_growing_form():
    # The printed source form I0 / (1 + k e^(-l t)) grows with t; ours must fall.
    assert decay.logistic(5.0, 2.0, 0.3) < decay.logistic(1.0, 2.0, 0.3)


def test_period_weights_by_bucket():
    weights = [1.0, 0.6, 0.3]
    assert decay.period([0.0, 0.99, 1.0, 6.9, 7.0, 13.9, 14.0, 400.0], weights, period_days=7.0).tolist() == [
        1.0,
        1.0,
        1.0,
        1.0,
        0.6,
        0.6,
        0.3,
        0.3,
    ]


@pytest.mark.parametrize("weights", [[0.9, 0.5], [1.0, 1.2], [1.0, -0.1], []])
def test_period_rejects_weights_that_do_not_decay_from_one(weights):
    with pytest.raises(ValueError):
        decay.period(1.0, weights)


def test_decayed_sum_matches_the_dbt_unit_test_case():
    # A view (weight 1) 7 days back and a purchase (weight 5) 14 days back at half-life 7 d: 0.5 + 1.25.
    assert decay.decayed_sum([7.0, 14.0], [1.0, 5.0], decay.rate_from_half_life(7.0)) == pytest.approx(1.75)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_non_positive_half_life_is_an_error(bad):
    with pytest.raises(ValueError, match="half-life must be positive"):
        decay.rate_from_half_life(bad)
