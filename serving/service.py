"""BentoML service: recommendations for a user from the user's decayed category interests.

The model comes from the BentoML model store (``$MODEL_TAG``, default the latest
``interest_recommender``), the user's features from the Feast online store. Stored interest is
as of the feature row's ``as_of``; it is decayed to the request time before it is shown.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated

import bentoml
from pydantic import BaseModel, Field

from interest_decay import config as settings
from interest_decay.pseudonym import pseudonym_key, pseudonymise

MODEL_TAG = os.environ.get("MODEL_TAG") or f"{settings.model_name()}:latest"
FEATURE_SERVICE = "recommender_v1"


class RecommendedItem(BaseModel):
    item_id: str = Field(description="Recommended item.")
    category_id: str | None = Field(description="The item's category.")
    score: float = Field(description="Model score (a logit): higher ranks first.")
    explanation: str = Field(description="Why: the decayed interest behind the item, or the fallback used.")


class Recommendation(BaseModel):
    user_id: str = Field(description="The user asked about, as sent (features are looked up by its pseudonym).")
    items: list[RecommendedItem] = Field(description="Items, best first.")
    fallback: bool = Field(description="True when the user has no interest profile and popular items are returned.")
    interest_as_of: dt.datetime | None = Field(description="When the stored interest was computed (UTC).")
    model: str = Field(description="Tag of the model that ranked the items.")


def _hours(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"


@bentoml.service(traffic={"timeout": 30})
class InterestService:
    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        from feast import FeatureStore

        from models.data import Vocabulary
        from models.recommender import InterestRecommender

        path = Path(self.bento_model.path)
        self.model = InterestRecommender.load(path)
        self.vocab = Vocabulary.from_json(json.loads((path / "vocabulary.json").read_text()))
        metadata = self.bento_model.info.metadata
        self.half_life_days = float(metadata["decay"]["half_life_days"])
        self.model_tag = str(self.bento_model.tag)
        self.pseudonym_key = pseudonym_key()
        self.store = FeatureStore(repo_path=str(settings.feast_repo_path()))
        self.features = self.store.get_feature_service(FEATURE_SERVICE)

    def _profile(self, user_id: str) -> dict | None:
        """Online features of a user, looked up by the user's pseudonym; None when there are none."""
        entity = {"user_id": pseudonymise(user_id, self.pseudonym_key)}
        row = self.store.get_online_features(features=self.features, entity_rows=[entity]) \
            .to_dict(include_event_timestamps=True)
        if row["total_interest"][0] is None:
            return None
        return {key: values[0] for key, values in row.items()}

    @bentoml.api
    def recommend(
        self,
        user_id: Annotated[str, Field(min_length=1, max_length=256, description="The user's id as in the events.")],
        k: Annotated[int, Field(ge=1, le=1000, description="How many items to return (1-1000).")] = 10,
    ) -> Recommendation:
        """Top-k items for a user, ranked by the model from the user's decayed category interests."""
        import torch

        now = dt.datetime.now(dt.timezone.utc)
        profile = self._profile(user_id)
        if profile is None:
            items = [RecommendedItem(item_id=item, category_id=self.vocab.item_category.get(item), score=0.0,
                                     explanation="popular recently (no interest profile for this user)")
                     for item in self.vocab.popular_items[:k]]
            return Recommendation(user_id=user_id, items=items, fallback=True, interest_as_of=None, model=self.model_tag)

        as_of = dt.datetime.fromtimestamp(profile["total_interest__ts"], dt.timezone.utc)
        decay = 0.5 ** (max((now - as_of).total_seconds(), 0.0) / 86400.0 / self.half_life_days)
        interest = {c: s * decay for c, s in zip(profile["category_ids"], profile["interest_scores"])}
        x = self.vocab.interest_shares(profile["category_ids"], profile["interest_scores"])
        with torch.no_grad():
            scores = self.model.full_sort_predict(torch.from_numpy(x[None]))[0]
        top = torch.topk(scores, min(k, scores.numel()))
        last_event = profile.get("last_event_ts")
        seen = f", last event {_hours(now - last_event)} ago" if isinstance(last_event, dt.datetime) else ""
        items = []
        for score, index in zip(top.values.tolist(), top.indices.tolist()):
            item = self.vocab.items[index]
            category = self.vocab.item_category.get(item)
            share = x[self.vocab.category_index[category]] if category in self.vocab.category_index else 0.0
            reason = (f"category {category}: interest {interest.get(category, 0.0):.2f} ({share:.0%} of the user's), "
                      f"half-life {self.half_life_days:g} days{seen}")
            items.append(RecommendedItem(item_id=item, category_id=category, score=score, explanation=reason))
        return Recommendation(user_id=user_id, items=items, fallback=False, interest_as_of=as_of, model=self.model_tag)
