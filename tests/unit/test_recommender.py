"""The recommender's model contract and behaviour on a tiny problem with a known answer."""

import numpy as np
import pytest
import torch

from models.pipeline.data import Vocabulary
from models.pipeline.recommender import InterestRecommender
from models.pipeline.train import fit


@pytest.fixture
def vocab():
    return Vocabulary(
        items=["a1", "a2", "b1", "b2"],
        categories=["A", "B"],
        item_category={"a1": "A", "a2": "A", "b1": "B", "b2": "B"},
        popular_items=["a1"],
    )


def test_interest_shares_normalise_and_ignore_unknown_categories(vocab):
    assert vocab.interest_shares(["B", "A", "Z"], [3.0, 1.0, 100.0]).tolist() == [0.25, 0.75]
    assert vocab.interest_shares(None, None).tolist() == [0.0, 0.0]


def test_contract_shapes_and_consistency():
    torch.manual_seed(0)
    model = InterestRecommender(n_categories=3, n_items=5, embedding_dim=4, dropout=0.0).eval()
    x = torch.rand(2, 3)
    scores = model.full_sort_predict(x)
    assert scores.shape == (2, 5)
    items = torch.tensor([4, 1])
    assert torch.allclose(model.predict(x, items), scores[torch.arange(2), items])
    assert model.calculate_loss(x, items).ndim == 0


def test_save_and_load_give_the_same_scores(tmp_path):
    model = InterestRecommender(3, 6, embedding_dim=4).eval()
    model.save(tmp_path)
    loaded = InterestRecommender.load(tmp_path)
    x = torch.rand(4, 3)
    assert torch.equal(model.full_sort_predict(x), loaded.full_sort_predict(x))
    assert loaded.hparams == model.hparams


def test_learns_that_interest_in_a_category_predicts_its_items(vocab):
    # Users interested in A pick A-items, users interested in B pick B-items.
    rng = np.random.default_rng(0)
    x = np.zeros((400, 2), dtype=np.float32)
    side = rng.integers(0, 2, 400)
    x[np.arange(400), side] = 1.0
    y = (side * 2 + rng.integers(0, 2, 400)).astype(np.int64)
    torch.manual_seed(0)
    model = InterestRecommender(2, 4, embedding_dim=8, dropout=0.0)
    losses = fit(model, x, y, {"learning_rate": 0.05, "weight_decay": 0.0, "seed": 0, "epochs": 15, "batch_size": 64})
    assert losses[-1] < losses[0] * 0.7
    with torch.no_grad():
        top = model.full_sort_predict(torch.eye(2)).topk(2).indices
    assert set(top[0].tolist()) == {0, 1}
    assert set(top[1].tolist()) == {2, 3}


def test_most_popular_counts_events_and_breaks_ties_by_item_id():
    import pandas as pd

    from models.pipeline.data import most_popular

    events = pd.DataFrame({"item_id": ["b", "a", "c", "c", "b", "d"]})
    assert most_popular(events) == ["b", "c", "a", "d"]
    assert most_popular(events, n=2) == ["b", "c"]
