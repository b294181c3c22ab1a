"""serving.explain: which items /recommend may show, and the explanation each one gets."""

import datetime as dt

import numpy as np
import pytest
from bentoml.exceptions import BadInput

from models.pipeline.data import Vocabulary
from serving.deployment import LoadedRecommender
from serving.explain import allowed_items, explained_items, half_lives

NOW = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)
VOCAB = Vocabulary(["i1", "i2", "i3"], ["a", "b"], {"i1": "a", "i2": "a", "i3": "b"}, ["i3", "i1", "i2"])
DEPLOYED = LoadedRecommender("m:1", None, VOCAB, np.array(["a", "a", "b"], dtype=object), NOW)


def test_no_filter_allows_everything_and_filters_combine():
    assert allowed_items(DEPLOYED, None, None) is None
    assert allowed_items(DEPLOYED, "a", None).tolist() == [True, True, False]
    assert allowed_items(DEPLOYED, "a", ["i1", "unknown item"]).tolist() == [False, True, False]


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


def test_explanations_name_interest_share_half_life_and_stop_at_filtered_items():
    row = {
        "kind_category_ids": ["a"],
        "kind_scores": [1.0],
        "kind_half_lives": [3.0],
        "last_event_ts": NOW - dt.timedelta(hours=5),
    }
    logits = np.array([2.0, -np.inf, 1.0])
    items = explained_items(VOCAB, np.array([0, 2, 1]), logits, np.array([0.75, 0.25]), {"a": 3.0, "b": 1.0}, row, NOW)
    assert [i.item_id for i in items] == ["i1", "i3"]  # i2 (-inf) ends the list
    assert items[0].score == 2.0 and items[0].category_id == "a"
    assert items[0].explanation.startswith("category a: interest 3.00 (75% of the user's)")
    assert "3 days" in items[0].explanation and items[0].explanation.endswith("last event 5 h ago")
    assert items[1].explanation == "category b: interest 1.00 (25% of the user's), last event 5 h ago"
