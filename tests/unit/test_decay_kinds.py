"""Decay per kind from follow-up rates: known answers (planted half-lives, no decay, a non-exponential
shape), the family formulas against interest_decay.decay, pooling of sparse kinds, and fits that fail."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import torch

from interest_decay import decay
from interest_decay.events.synthetic import generate, half_lives
from models.fitting.decay_kinds import TABLE_COLUMNS, choose_families, fit_kinds, shrink_sparse_kinds
from models.fitting.decay_likelihood import LOG_HALF, LOG_K, MAX_HALF_LIFE, Family, unsquash
from models.fitting.follow_ups import ANY, FitConfig, FitError

torch.set_num_threads(2)
END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
CONFIG = FitConfig.load(bootstrap=40)


def events_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "category_id", "event_type", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    return frame


def clustered(users: int, episodes: float, size: float, displacement, seed: int = 0) -> pd.DataFrame:
    """Episodes at uniform onsets over 90 days before END, each with 1 + Poisson(size) purchases at
    onset + displacement(rng, n) seconds, one category."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for onset in END.timestamp() - rng.random(rng.poisson(episodes)) * 90 * 86400:
            for t in onset + displacement(rng, 1 + rng.poisson(size)):
                if t < END.timestamp():
                    rows.append((f"u{u}", "box", "purchase", t))
    return events_frame(rows)


@pytest.fixture(scope="module")
def planted():
    """The demo generator with three categories of half-lives 0.5, 1.22 and 3 days."""
    events = generate(50_000, n_users=500, n_categories=3, end=END, days=60, seed=1, max_half_life=3.0)
    table, hist = fit_kinds(events, pd.Timestamp(END), CONFIG)
    return table.set_index(["category_id", "event_type"]), hist, events


def test_the_generators_half_lives_come_back_with_intervals_that_cover_them(planted):
    table = planted[0]
    for category, truth in zip(("1", "2", "3"), half_lives(3, 0.5, 3.0)):
        row = table.loc[(category, ANY)]
        assert row["family"] == "exponential" and not row["no_decay"]
        assert row["half_life_days"] == pytest.approx(truth, rel=0.10), category
        assert row["half_life_low"] <= truth <= row["half_life_high"], category
        # each event type of the category sees the same fade (the generator draws types independently)
        assert table.loc[(category, "view"), "half_life_days"] == pytest.approx(truth, rel=0.15), category


def test_every_kind_every_category_and_the_global_row_are_reported(planted):
    table, hist, events = planted
    assert set(TABLE_COLUMNS) <= set(table.reset_index().columns)
    assert (ANY, ANY) in table.index and {("1", ANY), ("2", ANY), ("3", ANY)} <= set(table.index)
    # every event is an anchor but those of the first burn_in_days (no history before them)
    after_burn_in = (events["ts"] >= events["ts"].min() + pd.Timedelta(days=CONFIG.burn_in_days)).sum()
    assert table.loc[(ANY, ANY), "anchors"] == after_burn_in == hist.anchors.max()
    assert 0.8 * len(events) < after_burn_in < len(events)
    own = table[table["origin"] == "fitted"]
    assert (own["anchors"] >= CONFIG.min_anchors).all()
    assert (own["half_life_low"] <= own["half_life_days"]).all()
    assert (own["half_life_days"] <= own["half_life_high"]).all()


def test_sparse_kinds_take_their_categorys_fit_or_the_global_one_and_say_so(planted):
    table = shrink_sparse_kinds(planted[0].reset_index(), 1_000).set_index(["category_id", "event_type"])
    sparse = table[table["anchors"] < 1_000]
    assert len(sparse) >= 3  # ratings are 2% of the events: every category's rating kind is below 1,000
    for (category, _event_type), row in sparse.iterrows():
        source = (category, ANY) if table.loc[(category, ANY), "anchors"] >= 1_000 else (ANY, ANY)
        assert row["origin"] == (f"category {category}" if source[0] == category else "global")
        assert row["half_life_days"] == table.loc[source, "half_life_days"]
    assert (table.loc[table["anchors"] >= 1_000, "origin"] == "fitted").all()


def test_a_rate_that_never_fades_is_reported_as_no_decay():
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u}", category, "view", t)
        for u in range(300)
        for category in ("a", "b")
        for t in END.timestamp() - rng.random(rng.poisson(30)) * 60 * 86400
    ]  # homogeneous Poisson
    table, _ = fit_kinds(events_frame(rows), pd.Timestamp(END), CONFIG)
    assert table["no_decay"].all()
    assert (table["half_life_days"] == MAX_HALF_LIFE).all() and (table["family"] == "exponential").all()
    assert table["half_life_low"].isna().all() and table["half_life_high"].isna().all()


def test_a_non_exponential_fade_chooses_another_family():
    """Purchases spread uniformly over 7 days after an onset: a later purchase follows one at a rate that
    falls linearly to nothing at 7 days (the gap of two uniform draws), half of it after 3.5 days."""
    events = clustered(600, 6, 5, lambda rng, n: rng.random(n) * 7 * 86400)
    table, _ = fit_kinds(events, pd.Timestamp(END), CONFIG)
    row = table.set_index(["category_id", "event_type"]).loc[("box", "purchase")]
    assert row["family"] in ("logistic", "period")
    assert 3.0 <= row["half_life_days"] <= 4.0


def test_exponential_onsets_give_an_exponential_fade():
    events = clustered(600, 6, 5, lambda rng, n: rng.exponential(2.0 / np.log(2), n) * 86400)
    row = fit_kinds(events, pd.Timestamp(END), CONFIG)[0].set_index(["category_id", "event_type"]).loc[("box", ANY)]
    assert row["family"] == "exponential" and row["half_life_days"] == pytest.approx(2.0, rel=0.10)


@pytest.mark.parametrize(
    "name, parameters",
    [
        ("exponential", {"half_life_days": 2.0}),
        ("logistic", {"logistic_k": 0.3, "logistic_l": 1.1}),
        ("period", {"period_days": 1.0}),
    ],
)
def test_bin_means_are_the_averages_of_the_multiplier_of_interest_decay(name, parameters):
    cfg = FitConfig.load(period_buckets=5)
    edges = np.array([0.0, 0.01, 0.4, 1.0, 2.5, 3.7, 9.0, 30.0])
    family = Family(name, edges, cfg)
    theta = {
        "exponential": family.initial(np.array([2.0]))[0],
        "logistic": None,
        "period": np.array([0.5, -0.2, 1.0, 2.0]),
    }[name]
    if name == "logistic":  # unbounded parameters whose row has k = 0.3, l = 1.1
        theta = np.array([unsquash(np.log(0.3), *LOG_K), unsquash(np.log(np.log(3.0) / 1.1), *LOG_HALF)])
    row = family.row(theta)
    weights = [float(w) for w in row["period_weights"].split(";")] if name == "period" else None
    for key, value in parameters.items():
        assert row[key] == pytest.approx(value, rel=1e-9)
    fine = [np.linspace(a, b, 20001) for a, b in zip(edges[:-1], edges[1:])]

    def curve(t):
        return decay.multiplier(
            row["family"],
            t,
            half_life_days=row.get("half_life_days"),
            logistic_k=row.get("logistic_k"),
            logistic_l=row.get("logistic_l"),
            period_days=row.get("period_days"),
            period_weights=weights,
        )

    want = [np.trapezoid(curve(t), t) / (t[-1] - t[0]) for t in fine]
    got = family.bin_mean(torch.tensor(theta, dtype=torch.float64)).numpy()
    assert got == pytest.approx(want, rel=1e-4, abs=1e-7)


def test_another_family_needs_a_gain_that_holds_across_user_groups():
    exponential = np.zeros((2, 8))
    steady = exponential + 1.0  # +1 in every group: consistent
    lucky = exponential + np.array([40.0, -5, -5, -5, -5, -5, -5, -5])  # +5 in total, from one group
    chosen = choose_families({"exponential": exponential, "period": np.stack([steady[0], lucky[1]])})
    assert chosen.tolist() == ["period", "exponential"]


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("u1", "a", "view", END.timestamp() + 60)], "no events before"),
        ([("u1", "a", "view", 1.7e9 + i * 3600) for i in range(50)], "single user"),
        ([(f"u{i}", "a", "view", 1.7e9) for i in range(50)], "all events share one timestamp"),
        ([(f"u{i}", "a", "view", 1.7e9 + i * 3600) for i in range(50)], "first 7 days"),
        ([(f"u{i}", str(i), "view", 1.7e9 + i * 86400) for i in range(50)], "no follow-up"),
    ],
)
def test_a_fit_that_cannot_be_done_says_why(rows, message):
    with pytest.raises(FitError, match=message):
        fit_kinds(events_frame(rows), pd.Timestamp(END), CONFIG)
