"""Ranking metrics over full rankings, averaged over users.

Binary gain; NDCG@k uses the discount 1/log2(rank + 1) and an ideal DCG of min(|relevant|, k) ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def hit_rate(ranked: Sequence, relevant: set, k: int) -> float:
    return float(any(item in relevant for item in ranked[:k]))


def recall(ranked: Sequence, relevant: set, k: int) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def ndcg(ranked: Sequence, relevant: set, k: int) -> float:
    dcg = sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def mrr(ranked: Sequence, relevant: set, k: int) -> float:
    return next((1.0 / (rank + 1) for rank, item in enumerate(ranked[:k]) if item in relevant), 0.0)


def evaluate_rankings(rankings: Iterable[tuple[Sequence, set]], k: int, n_items: int) -> dict[str, float]:
    """Mean HR@k, NDCG@k, Recall@2k, MRR@2k over (ranking, relevant set) pairs, and catalogue coverage@k."""
    rows, shown = [], set()
    for ranked, relevant in rankings:
        rows.append(
            (
                hit_rate(ranked, relevant, k),
                ndcg(ranked, relevant, k),
                recall(ranked, relevant, 2 * k),
                mrr(ranked, relevant, 2 * k),
            )
        )
        shown.update(ranked[:k])
    n = len(rows)
    if n == 0:
        return {"users": 0}
    means = [sum(column) / n for column in zip(*rows)]
    return {
        "users": n,
        f"hr@{k}": means[0],
        f"ndcg@{k}": means[1],
        f"recall@{2 * k}": means[2],
        f"mrr@{2 * k}": means[3],
        f"coverage@{k}": len(shown) / n_items if n_items else 0.0,
    }
