"""Evidently recsys quality (interest_decay.monitoring.recsys_quality) on tiny cases worked out by hand.

NDCG here is Evidently's, which is the standard binary one: DCG@k = sum over ranks i <= k of rel_i / log2(i + 1),
IDCG@k = sum_{j=1}^{min(|R|, k)} 1 / log2(j + 1). MAP is Evidently's: AP@k = sum_{i<=k} P@i * rel_i / |R|
(divided by all relevant items, not by min(|R|, k)).
"""

import json
import math

import pandas as pd
import pytest

from interest_decay.monitoring.recsys_quality import recsys_report

K = 3
# User A's relevant item is at rank 1, B's at rank 3, C's ("z") is not in the list.
RECS = pd.DataFrame(
    [
        ("A", "a", 1),
        ("A", "b", 2),
        ("A", "c", 3),
        ("B", "d", 1),
        ("B", "e", 2),
        ("B", "f", 3),
        ("C", "a", 1),
        ("C", "b", 2),
        ("C", "d", 3),
    ],
    columns=["user_id", "item_id", "rank"],
)
RELEVANT = pd.DataFrame([("A", "a"), ("B", "f"), ("C", "z")], columns=["user_id", "item_id"])
# Distinct training users per item: a 2 (A, B), b 1, z 1, f 1; 4 training users (A, B, C, D).
TRAIN = pd.DataFrame({"user_id": ["A", "A", "B", "C", "D"], "item_id": ["a", "b", "a", "z", "f"]})
FEATURES = pd.DataFrame({"item_id": list("abcdefz"), "x": [1.0, 0, 1, 0, 1, 1, 0], "y": [0.0, 1, 1, 1, 0, 1, 1]})


@pytest.fixture(scope="module")
def three_users(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("quality")
    return recsys_report(RECS, RELEVANT, TRAIN, K, out_dir), out_dir


def test_ranking_metrics_by_hand(three_users):
    summary, _ = three_users
    assert summary["k"] == K and summary["users"] == 3
    assert summary["hit_rate"] == pytest.approx(2 / 3)
    assert summary["mrr"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    # A: 1/log2(2) / 1; B: 1/log2(4) / 1; C: 0 (its relevant item counts in IDCG, not in DCG).
    assert summary["ndcg"] == pytest.approx((1 + 1 / math.log2(4) + 0) / 3)  # = 0.5
    assert summary["recall"] == pytest.approx(2 / 3)
    assert summary["precision"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert summary["map"] == pytest.approx((1 + 1 / 3 + 0) / 3)  # AP_B = P@3 * rel_3 = 1/3


def test_beyond_accuracy_metrics_by_hand(three_users):
    summary, _ = three_users
    # Lists A {a,b,c}, B {d,e,f}, C {a,b,d}: overlaps A-C 2, B-C 1, A-B 0 -> 1 - mean(2/3, 1/3, 0) = 2/3.
    assert summary["personalization"] == pytest.approx(2 / 3)
    # Recommended items seen in training: a, b, f out of a, b, f, z.
    assert summary["coverage"] == pytest.approx(3 / 4)
    # Per user mean popularity over items seen in training: A (2+1)/2, B 1, C (2+1)/2.
    assert summary["popularity_bias_arp"] == pytest.approx((1.5 + 1 + 1.5) / 3)
    # -log2(share of training users): a 1, b 2, f 2 -> A 1.5, B 2, C 1.5.
    assert summary["novelty"] == pytest.approx((1.5 + 2 + 1.5) / 3)
    # Counts over recommended items, ascending [1, 1, 1, 2, 2, 2]: sum((2i - n - 1) c) / ((n - 1) sum c) = 9 / 45.
    assert summary["gini"] == pytest.approx(0.2)
    assert "diversity" not in summary and "serendipity" not in summary  # no item features given


def test_report_files_are_written(three_users):
    summary, out_dir = three_users
    html = (out_dir / "quality.html").read_text(encoding="utf-8")
    assert "<script src=" not in html  # self-contained: scripts are inline
    saved = json.loads((out_dir / "quality.json").read_text())
    assert saved["summary"] == summary
    types = {metric["config"]["type"].rsplit(":", 1)[-1] for metric in saved["evidently"]["metrics"]}
    assert {"NDCG", "HitRate", "RecallTopK", "PrecisionTopK", "MAP", "MRR", "Personalization"} <= types


def test_several_relevant_items_and_who_counts(tmp_path):
    recs = pd.DataFrame(
        [
            ("U", "a", 1),
            ("U", "b", 2),
            ("U", "c", 3),
            ("U", "x", 4),  # rank 4 is cut at k = 3
            ("V", "d", 1),
            ("V", "e", 2),
            ("V", "f", 3),
            ("W", "a", 1),
            ("W", "d", 2),
            ("W", "e", 3),
        ],  # W has no truth: not evaluated
        columns=["user_id", "item_id", "rank"],
    )
    relevant = pd.DataFrame(
        [
            ("U", "a"),
            ("U", "c"),
            ("U", "x"),
            ("U", "y"),
            ("V", "e"),
            ("N", "a"),
        ],  # N has no recommendations: not evaluated
        columns=["user_id", "item_id"],
    )
    summary = recsys_report(recs, relevant, TRAIN, K, tmp_path)
    assert summary["users"] == 2
    ndcg_u = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))  # IDCG capped at k = 3 items
    ndcg_v = 1 / math.log2(3)
    assert summary["ndcg"] == pytest.approx((ndcg_u + ndcg_v) / 2)
    assert summary["recall"] == pytest.approx((2 / 4 + 1) / 2)
    assert summary["precision"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert summary["hit_rate"] == pytest.approx(1.0)
    assert summary["mrr"] == pytest.approx((1 + 1 / 2) / 2)
    # Evidently's AP divides by |R_U| = 4 (not min(4, k) = 3): U (1 + 2/3) / 4, V (1/2) / 1.
    assert summary["map"] == pytest.approx(((1 + 2 / 3) / 4 + 1 / 2) / 2)


def test_item_features_add_diversity_and_serendipity(tmp_path):
    summary = recsys_report(RECS, RELEVANT, TRAIN, K, tmp_path, item_features=FEATURES)
    d = 1 - 1 / math.sqrt(2)  # cosine distance of (1, 0) or (0, 1) to (1, 1)
    # Sum of pairwise cosine distances / k: A {a,b,c} (1 + 2d) / 3, B {d,e,f} (1 + 2d) / 3, C {a,b,d} 2 / 3.
    assert summary["diversity"] == pytest.approx((2 * (1 + 2 * d) / 3 + 2 / 3) / 3)
    # Users with a hit: A (train a, b; hit a): 1 - (1 + 0) / 2; B (train a; hit f): 1 - (1 - d) / 1.
    assert summary["serendipity"] == pytest.approx((0.5 + d) / 2)


def test_empty_training_window_leaves_out_the_metrics_that_need_it(tmp_path):
    summary = recsys_report(RECS, RELEVANT, TRAIN.iloc[:0], K, tmp_path)
    assert summary["hit_rate"] == pytest.approx(2 / 3)
    assert not {"novelty", "popularity_bias_arp", "coverage", "gini"} & summary.keys()


@pytest.mark.parametrize(
    ("recs", "relevant", "train", "k", "message"),
    [
        (RECS.drop(columns="rank"), RELEVANT, TRAIN, K, r"recommendations is missing column\(s\) \['rank'\]"),
        (RECS, RELEVANT.drop(columns="item_id"), TRAIN, K, r"relevant is missing column\(s\) \['item_id'\]"),
        (RECS, RELEVANT, TRAIN.drop(columns="user_id"), K, r"train_interactions is missing column\(s\)"),
        (RECS, RELEVANT, TRAIN, 0, "k must be an integer >= 1"),
        (RECS, RELEVANT, TRAIN, -2, "k must be an integer >= 1"),
        (RECS, RELEVANT, TRAIN, 2.5, "k must be an integer >= 1"),
        (RECS.iloc[:0], RELEVANT, TRAIN, K, "recommendations is empty"),
        (RECS, RELEVANT.iloc[:0], TRAIN, K, "relevant is empty"),
        (RECS, RELEVANT, TRAIN, 4, "full top-4 list"),
        (RECS.assign(rank=0), RELEVANT, TRAIN, K, "whole numbers >= 1"),
        (RECS.assign(rank=RECS["rank"].where(RECS.index != 1, 1)), RELEVANT, TRAIN, K, "repeated rank"),
        (RECS, RELEVANT.assign(user_id="Q"), TRAIN, K, "no user in relevant has recommendations"),
    ],
)
def test_bad_input_raises_value_error(tmp_path, recs, relevant, train, k, message):
    with pytest.raises(ValueError, match=message):
        recsys_report(recs, relevant, train, k, tmp_path)
    assert not (tmp_path / "quality.json").exists()


def test_item_features_must_cover_the_recommended_items(tmp_path):
    with pytest.raises(ValueError, match="item_features lacks"):
        recsys_report(RECS, RELEVANT, TRAIN, K, tmp_path, item_features=FEATURES[FEATURES.item_id != "a"])
    with pytest.raises(ValueError, match="numeric"):
        recsys_report(RECS, RELEVANT, TRAIN, K, tmp_path, item_features=FEATURES.assign(x="big"))
