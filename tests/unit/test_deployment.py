"""Deploys without downtime (serving/deployment.py): a new champion is swapped in only once it has loaded
and passed the smoke check; a champion that cannot serve leaves the current model serving."""

import json

import pandas as pd
import pytest
import torch

from models.pipeline.data import Vocabulary
from models.pipeline.item_ranker import ItemRanker, RankerConfig
from serving.deployment import ChampionFollower, LoadedRecommender

VOCAB = Vocabulary(
    items=["a1", "a2", "b1"],
    categories=["A", "B"],
    item_category={"a1": "A", "a2": "A", "b1": "B"},
    popular_items=["a1", "b1"],
)


def saved_model(path, events: pd.DataFrame | None = None):
    """An item-ranker package (random weights) with the item side of a few events, as train.register_model saves."""
    from models.pipeline.served_ranker import RankerPackage

    if events is None:
        events = pd.DataFrame(
            {
                "user_id": ["u", "u", "v"],
                "item_id": ["a1", "a2", "b1"],
                "category_id": ["A", "A", "B"],
                "event_type": "purchase",
                "ts": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True),
            }
        )
    torch.manual_seed(0)
    package = RankerPackage.build(
        ItemRanker().eval(), events, pd.Timestamp("2026-01-05", tz="UTC"), RankerConfig(), ["purchase"]
    )
    package.save(path)
    (path / "vocabulary.json").write_text(json.dumps(VOCAB.to_json()))
    return path


def test_a_saved_model_loads_with_its_vocabulary_and_item_categories(tmp_path):
    loaded = LoadedRecommender.from_directory("m:1", saved_model(tmp_path))
    assert loaded.tag == "m:1" and list(loaded.item_categories) == ["A", "A", "B"]
    assert (
        sorted(loaded.model.items.index) == ["a1", "a2", "b1"] and loaded.model.popular[0] == "b1"
    )  # the latest buyer counts most


def test_a_package_without_items_fails_the_smoke_check(tmp_path):
    with pytest.raises(ValueError, match="smoke check"):
        LoadedRecommender.from_directory(
            "m:bad",
            saved_model(
                tmp_path,
                pd.DataFrame(columns=["user_id", "item_id", "category_id", "event_type", "ts"]).astype(
                    {"ts": "datetime64[ns, UTC]"}
                ),
            ),
        )


def test_a_model_of_another_kind_is_refused_with_a_reason(tmp_path):
    ItemRanker().save(tmp_path)  # weights without the package's item side
    with pytest.raises(ValueError, match="no item-ranker package"):
        LoadedRecommender.from_directory("m:old", tmp_path)


def test_a_model_with_non_finite_weights_fails_the_smoke_check(tmp_path):
    path = saved_model(tmp_path)
    state = torch.load(path / "model.pt")
    torch.save({name: torch.full_like(value, float("nan")) for name, value in state.items()}, path / "model.pt")
    with pytest.raises(ValueError, match="finite scores: False"):
        LoadedRecommender.from_directory("m:nan", path)


class Registry:
    """The champion's tag as a test sets it; ``load`` builds a stand-in model or fails for tags marked bad."""

    def __init__(self, tag):
        self.tag, self.loads = tag, []

    def champion(self):
        return self.tag

    def load(self, tag):
        self.loads.append(tag)
        if tag.endswith(":bad"):
            raise ValueError("weights do not load")
        return LoadedRecommender(tag, model=None, vocab=None, item_categories=None, deployed_at=None)


def test_the_follower_swaps_in_a_new_champion_and_keeps_serving_when_one_fails():
    registry = Registry("m:1")
    follower = ChampionFollower(registry.load("m:1"), registry.champion, registry.load)
    assert follower.check() is False and registry.loads == ["m:1"]  # unchanged: nothing loaded
    registry.tag = "m:2"
    assert follower.check() is True and follower.current.tag == "m:2" and follower.last_error is None
    registry.tag = "m:bad"
    assert follower.check() is False and follower.current.tag == "m:2"
    assert follower.last_error == "champion m:bad not deployed: weights do not load"
    assert follower.check() is False and registry.loads.count("m:bad") == 1  # a failed tag is not retried
    registry.tag = "m:2"  # rolled back: the serving model is the champion again
    assert follower.check() is False and follower.current.tag == "m:2"
    registry.tag = "m:3"
    assert follower.check() is True and follower.current.tag == "m:3" and follower.last_error is None


def test_an_unreadable_registry_does_not_stop_serving():
    def broken():
        raise OSError("champions.json: permission denied")

    follower = ChampionFollower(LoadedRecommender("m:1", None, None, None, None), broken, lambda tag: None)
    assert follower.check() is False and follower.current.tag == "m:1"
    assert "permission denied" in follower.last_error


def test_the_follower_thread_deploys_on_its_own():
    import time

    registry = Registry("m:1")
    follower = ChampionFollower(registry.load("m:1"), registry.champion, registry.load)
    follower.start(0.05)
    try:
        registry.tag = "m:2"
        deadline = time.monotonic() + 5
        while follower.current.tag != "m:2" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert follower.current.tag == "m:2"
    finally:
        follower.stop()
