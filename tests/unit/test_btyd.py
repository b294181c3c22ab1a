"""BG/NBD and Pareto/NBD (models/pipeline/btyd.py): the customer summary by hand, parameters recovered from the
models' own generative processes, and expected purchases against simulation and the no-dropout limit."""

import numpy as np
import pandas as pd
import pytest

from models.pipeline import btyd

TRUE = {
    "bg_nbd": {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5},  # the values (CDNOW-like, weeks)
    "pareto_nbd": {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7},
}


def test_summary_counts_repeat_purchase_days_from_the_first_day_seen():
    cutoff = pd.Timestamp("2026-03-01", tz="UTC")
    rows = [
        ("a", "view", "2026-02-01 10:00"),  # first seen: day 0 = Feb 1
        ("a", "purchase", "2026-02-01 12:00"),  # same day as the birth: no repeat
        ("a", "purchase", "2026-02-05 09:00"),
        ("a", "purchase", "2026-02-05 18:00"),  # second line of the same day: counted once
        ("a", "purchase", "2026-02-11 08:00"),
        ("a", "purchase", "2026-03-01 00:00"),  # at the cutoff: not before it
        ("b", "purchase", "2026-02-20 23:00"),
    ]
    events = pd.DataFrame(rows, columns=["user_id", "event_type", "ts"])
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    rfm = btyd.summary(events, cutoff)
    assert rfm.loc["a"].tolist() == [2.0, 10.0, 28.0]  # x, t_x (Feb 11 - Feb 1), T (Mar 1 - Feb 1)
    assert rfm.loc["b"].tolist() == [0.0, 0.0, 9.0]


@pytest.mark.parametrize("name", ["bg_nbd", "pareto_nbd"])
def test_parameters_come_back_from_the_models_own_generative_process(name):
    T = np.random.default_rng(1).uniform(26, 52, 4000)
    data = btyd.simulate(name, TRUE[name], T, seed=3)
    model = btyd.MODELS[name]().fit(data["x"], data["t_x"], data["T"])
    for key, value in TRUE[name].items():
        error = model.standard_errors[key]
        assert 0 < error < value  # identified, not a flat direction
        assert abs(model.params[key] - value) < 2 * error, (key, model.params[key], error)


@pytest.mark.parametrize("name", ["bg_nbd", "pareto_nbd"])
def test_expected_purchases_of_a_new_customer_match_simulation(name):
    model = btyd.MODELS[name](params=TRUE[name])
    horizon = 30.0
    simulated = btyd.simulate(name, TRUE[name], np.full(40_000, horizon), seed=7)["x"].mean()
    expected = model.expected_purchases(horizon, np.array([0.0]), np.array([0.0]), np.array([0.0]))[0]
    assert expected == pytest.approx(simulated, rel=0.05)


def test_without_dropout_both_models_expect_the_poisson_gamma_rate():
    x, t_x, T = np.array([0.0, 3.0]), np.array([0.0, 20.0]), np.array([30.0, 30.0])
    rate = (0.5 + x) / (10.0 + T)  # posterior mean of λ, Gamma(r + x, α + T)
    bg = btyd.BGNBD(params={"r": 0.5, "alpha": 10.0, "a": 1e-9, "b": 1.0})
    pareto = btyd.ParetoNBD(params={"r": 0.5, "alpha": 10.0, "s": 1e-9, "beta": 1.0})
    for model in (bg, pareto):
        assert model.expected_purchases(7.0, x, t_x, T) == pytest.approx(rate * 7.0, rel=1e-6)
        assert model.p_alive(x, t_x, T) == pytest.approx(1.0, abs=1e-6)


def test_a_model_without_repeat_buyers_is_a_clear_error():
    with pytest.raises(ValueError, match="repeat purchase"):
        btyd.BGNBD().fit(np.zeros(50), np.zeros(50), np.full(50, 10.0))
