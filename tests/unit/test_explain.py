"""serving.explain: which items /recommend may show, one user's ranking from their online row, and the explanation
each item gets."""

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import torch
from bentoml.exceptions import BadInput

from interest_decay.online.item_state import fold_item_events
from models.pipeline.data import Vocabulary
from models.pipeline.item_ranker import ItemRanker, RankerConfig
from models.pipeline.served_ranker import RankerPackage
from serving.deployment import LoadedRecommender
from serving.explain import allowed_items, explained_items, half_lives, item_reason, rank_user

NOW = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)
VOCAB = Vocabulary(["i1", "i2", "i3"], ["a", "b"], {"i1": "a", "i2": "a", "i3": "b"}, ["i3", "i1", "i2"])
DEPLOYED = LoadedRecommender("m:1", None, VOCAB, np.array(["a", "a", "b"], dtype=object), NOW)


def test_no_filter_allows_everything_and_filters_combine():
    assert allowed_items(DEPLOYED, None, None) is None
    assert [allowed_items(DEPLOYED, "a", None)(i) for i in VOCAB.items] == [True, True, False]
    only = allowed_items(DEPLOYED, "a", ["i1", "unknown item"])
    assert [only(i) for i in VOCAB.items] == [False, True, False]


def test_an_unknown_category_is_bad_input_naming_it():
    with pytest.raises(BadInput, match="unknown category_id 'zz'.*2 categories"):
        allowed_items(DEPLOYED, "zz", None)


def test_half_life_of_the_strongest_kind_and_nan_kinds_skipped():
    row = {
        "kind_category_ids": ["a", "a", "b"],
        "kind_scores": [1.0, 3.0, 2.0],
        "kind_half_lives": [7.0, 2.5, float("nan")],  # NaN: a kind that does not decay online
    }
    assert half_lives(row) == {"a": 2.5}
    assert half_lives({}) == {}


def package() -> RankerPackage:
    """Random weights; the item side: i1 bought by u every 10 days, i2 viewed, i3 bought by others (one of them, w,
    bought i1 too: u's neighbour), i4 bought by one stranger."""
    day = pd.Timestamp("2026-11-01", tz="UTC")
    rows = [("u", "i1", "a", "purchase", day + pd.Timedelta(days=d)) for d in (0, 10, 20)]
    rows += [("u", "i2", "a", "view", day + pd.Timedelta(days=25))]
    rows += [(f"v{n}", "i3", "b", "purchase", day + pd.Timedelta(days=30)) for n in range(3)]
    rows += [
        ("w", "i1", "a", "purchase", day + pd.Timedelta(days=2)),
        ("w", "i3", "b", "purchase", day + pd.Timedelta(days=30)),
    ]
    rows += [("x", "i4", "b", "purchase", day + pd.Timedelta(days=29))]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type", "ts"])
    torch.manual_seed(0)
    return RankerPackage.build(ItemRanker().eval(), events, pd.Timestamp(NOW), RankerConfig(), ["purchase"]), events


def online_row(events: pd.DataFrame, user: str) -> dict:
    mine = events[events["user_id"] == user]
    return fold_item_events(
        None,
        zip(mine["item_id"], mine["category_id"], mine["event_type"], list(mine["ts"])),
        NOW - dt.timedelta(hours=1),
    ) | {"user_id": user}


def test_a_users_ranking_from_the_online_row_equals_the_offline_one_and_explains_each_item():
    served, events = package()
    row = online_row(events, "u")
    online = rank_user(served, row, NOW, 4, None)
    offline = served.rank(*served.user_tables(events, pd.Timestamp(NOW)), pd.Timestamp(NOW), pd.Timestamp(NOW), 4)
    assert [r.item_id for r in online] == [r.item_id for r in offline["u"]]
    # the signals agree to 1e-9 (tests/integration/test_item_signal_sql.py); the model computes in float32
    assert np.allclose([r.score for r in online], [r.score for r in offline["u"]], rtol=1e-6)
    reasons = {r.item_id: item_reason(r.state, NOW) for r in online}
    assert reasons["i1"].startswith("bought on 3 days, usually every 10 days, last 15.5 days ago")
    assert reasons["i2"] == "seen on 1 day, last 10.5 days ago"
    # w shares i1 with u: i3 comes with the neighbour signal (w's unit weight on it, over k = 200 slots)
    assert reasons["i3"].startswith(
        "new to the user: shoppers with baskets like theirs chose it lately (neighbour signal 0.00389)"
    )
    assert reasons["i4"].startswith("new to the user, popular: 1 users lately") and item_reason(None, NOW) == (
        "popular recently"
    )


def test_an_item_the_model_never_saw_is_left_out_and_no_score_is_nan():
    served, events = package()
    row = online_row(events, "u")
    row = fold_item_events(row, [("brand-new", "a", "purchase", NOW - dt.timedelta(minutes=5))], NOW)
    ranked = rank_user(served, row, NOW, 10, None)
    assert [r.item_id for r in ranked][:3] != [] and "brand-new" not in {r.item_id for r in ranked}
    assert len(ranked) == 4 and all(math.isfinite(r.score) for r in ranked)


def test_explanations_add_the_category_interest_share_and_half_life():
    served, events = package()
    ranked = rank_user(served, online_row(events, "u"), NOW, 4, None)
    row = {  # a's interest 6 three days ago (half-life 3 days: 3 now), b's 1, held (NaN: not exponential)
        "kind_category_ids": ["a", "b"],
        "kind_scores": [6.0, 1.0],
        "kind_half_lives": [3.0, float("nan")],
        "scores_as_of": NOW - dt.timedelta(days=3),
    }
    items = {i.item_id: i for i in explained_items(ranked, row, NOW)}
    assert items["i1"].explanation.endswith("; category a: interest 3.00 (75% of the user's), half-life 3 days")
    assert items["i3"].explanation.endswith("; category b: interest 1.00 (25% of the user's)")
    assert items["i1"].category_id == "a" and items["i1"].score == next(r.score for r in ranked if r.item_id == "i1")


def test_a_user_who_never_bought_is_ranked_too():
    """All of a user's target instants are none (views only): they stay UTC instants, the ranking works."""
    served, events = package()
    viewer = events[events["item_id"] == "i2"].assign(user_id="w")
    ranked = rank_user(served, online_row(viewer, "w"), NOW, 3, None)
    assert [r.item_id for r in ranked][0] in {"i1", "i2", "i3"} and len(ranked) == 3
    assert item_reason(next(r.state for r in ranked if r.item_id == "i2"), NOW).startswith("seen on 1 day")
