"""Interest recommender: scores every item for a user from the user's decayed category interests.

Contract shared by the platform's models: ``forward``, ``calculate_loss``, ``predict``,
``full_sort_predict``, ``save`` / ``load`` (hyperparameters as JSON + state_dict).
Input ``x`` is the user's interest share per category (decayed interest / total) ``[B, C]``.
"""

from __future__ import annotations

import torch
from torch import nn

from models.pipeline.persistence import Persisted


class InterestRecommender(Persisted, nn.Module):
    def __init__(self, n_categories: int, n_items: int, embedding_dim: int = 32, dropout: float = 0.1):
        super().__init__()
        self.hparams = {
            "n_categories": n_categories,
            "n_items": n_items,
            "embedding_dim": embedding_dim,
            "dropout": dropout,
        }
        self.dropout = nn.Dropout(dropout)
        self.user_proj = nn.Linear(n_categories, embedding_dim)
        self.item_embedding = nn.Embedding(n_items, embedding_dim)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.item_embedding.weight, std=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """User vectors ``[B, H]`` from interest shares ``[B, C]``."""
        return self.user_proj(self.dropout(x))

    def full_sort_predict(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of all items ``[B, I]`` (logits: higher is better)."""
        return self.forward(x) @ self.item_embedding.weight.T + self.item_bias

    def predict(self, x: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` of one item per user (``items``: ``[B]`` item indices)."""
        return (self.forward(x) * self.item_embedding(items)).sum(-1) + self.item_bias[items]

    def calculate_loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the next item ``target`` ``[B]`` over the full catalogue."""
        return nn.functional.cross_entropy(self.full_sort_predict(x), target)
