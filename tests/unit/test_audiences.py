"""Ad audiences offline (models/harness/audiences.py): scores, precision@N and recall@N worked out by hand."""

import pandas as pd
import pytest

from models.harness import audiences

CUTOFF = pd.Timestamp("2026-03-01", tz="UTC")


def frame(rows):
    """Events from (user, category, event type, days after CUTOFF) tuples."""
    events = pd.DataFrame(rows, columns=["user_id", "category_id", "event_type", "days"])
    events["ts"] = CUTOFF + pd.to_timedelta(events.pop("days"), unit="D")
    return events.assign(item_id="i")


EVENTS = frame(
    [
        ("a", "shoes", "view", -1),  # a: fresh interest in shoes
        ("b", "shoes", "view", -20),  # b: faded interest in shoes, very active elsewhere
        ("b", "hats", "view", -2),
        ("b", "hats", "view", -3),
        ("b", "hats", "view", -4),
        ("c", "shoes", "purchase", -60),  # c: acted in shoes only long ago
        ("a", "shoes", "purchase", 2),  # responses in the 7 days after the cutoff
        ("c", "shoes", "cart", 5),
        ("b", "hats", "view", 1),  # a view is no response
        ("b", "shoes", "purchase", 9),  # after the window
    ]
)


def test_scores_by_hand():
    interest = audiences.scores(EVENTS, CUTOFF, "interest", half_life=10.0).set_index(["category_id", "user_id"])
    assert interest.loc[("shoes", "a"), "score"] == pytest.approx(0.5**0.1)
    assert interest.loc[("shoes", "c"), "score"] == pytest.approx(0.5**6)
    recent = audiences.scores(EVENTS, CUTOFF, "recent_30d").set_index(["category_id", "user_id"])["score"]
    assert recent.loc[("shoes", "a")] > recent.loc[("shoes", "b")] and ("shoes", "c") not in recent.index
    active = audiences.scores(EVENTS, CUTOFF, "most_active").set_index(["category_id", "user_id"])["score"]
    assert active.loc[("shoes", "b")] == 4 and active.loc[("shoes", "a")] == 1  # the same list in every category


def test_precision_and_recall_at_n_by_hand():
    buyers = audiences.responders(EVENTS, CUTOFF, 7)
    assert buyers.to_dict() == {"shoes": {"a", "c"}}  # views and late purchases do not count
    ranked = audiences.scores(EVENTS, CUTOFF, "interest", half_life=10.0)
    table, overall = audiences.audience_metrics(ranked, buyers, [1, 2, None])
    rows = table.set_index("size")
    assert rows.loc[1, ["audience", "hits", "precision", "recall"]].tolist() == [1, 1, 1.0, 0.5]  # a
    assert rows.loc[2, ["hits", "precision", "recall"]].tolist() == [1, 0.5, 0.5]  # a, b
    assert rows.loc["all", ["audience", "hits", "recall"]].tolist() == [3, 2, 1.0]  # a, b, c
    assert overall["1"] == {"precision": 1.0, "recall": 0.5, "audience": 1}
    recent, _ = audiences.audience_metrics(audiences.scores(EVENTS, CUTOFF, "recent_30d"), buyers, [None])
    assert recent["recall"].tolist() == [0.5]  # c acted too long ago to be in it


def test_the_half_life_is_chosen_on_validation_and_every_method_is_reported():
    result = audiences.evaluate_audiences(EVENTS, CUTOFF, CUTOFF - pd.Timedelta(days=7), sizes=[1, None])
    assert set(result["overall"]) == set(audiences.METHODS)
    assert result["half_life_days"] in (1.0, 7.0, 30.0, 90.0)
    assert {r["method"] for r in result["categories"]} == set(audiences.METHODS)
