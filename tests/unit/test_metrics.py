"""Ranking metrics on tiny cases worked out by hand."""

import math

import pytest

from models.harness.metrics import evaluate_rankings, hit_rate, mrr, ndcg, recall


def test_single_relevant_item_at_rank_two():
    ranked, relevant = ["a", "b", "c"], {"b"}
    assert hit_rate(ranked, relevant, 1) == 0.0
    assert hit_rate(ranked, relevant, 2) == 1.0
    assert ndcg(ranked, relevant, 3) == pytest.approx(1 / math.log2(3))
    assert mrr(ranked, relevant, 3) == 0.5
    assert recall(ranked, relevant, 3) == 1.0


def test_ideal_dcg_is_capped_at_k():
    # Two relevant items at ranks 1 and 3, k = 2: DCG = 1, IDCG = 1 + 1/log2(3).
    assert ndcg(["x", "y", "z"], {"x", "z"}, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_evaluate_rankings_means_and_coverage():
    result = evaluate_rankings([(["a", "b"], {"a"}), (["c", "d"], {"z"})], k=1, n_items=10)
    assert result["users"] == 2
    assert result["hr@1"] == 0.5
    assert result["ndcg@1"] == 0.5
    assert result["mrr@2"] == 0.5
    assert result["coverage@1"] == pytest.approx(2 / 10)  # "a" and "c" shown at k = 1


def test_report_says_so_when_nobody_could_be_evaluated():
    from models.pipeline.report import render

    text = render("2026-11-28", "m:1", {"model": {"users": 0}, "most_popular": {"users": 0}})
    assert "No test users" in text
