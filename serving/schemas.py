"""The service's request and response types (pydantic): what each endpoint takes and answers, as its
OpenAPI schema shows them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, Field

UserId = Annotated[str, Field(min_length=1, max_length=256, description="The user's id as in the events.")]


class RecommendedItem(BaseModel):
    item_id: str = Field(description="Recommended item.")
    category_id: str | None = Field(description="The item's category.")
    score: float = Field(description="Model score (a logit): higher ranks first.")
    explanation: str = Field(description="Why: the decayed interest behind the item, or the fallback used.")


class Recommendation(BaseModel):
    user_id: str = Field(description="The user asked about, as sent (features are looked up by its pseudonym).")
    items: list[RecommendedItem] = Field(description="Items, best first.")
    fallback: bool = Field(description="True when the user has no interest profile and popular items are returned.")
    interest_as_of: dt.datetime | None = Field(
        description="When the user's stored state was computed (UTC); it is moved from then to the request time."
    )
    as_of: dt.datetime | None = Field(
        default=None, description="The request time the items were ranked for (UTC): every signal is moved to it."
    )
    model: str = Field(description="Tag of the model that ranked the items.")


class CategoryInterest(BaseModel):
    category_id: str = Field(description="Category.")
    interest: float = Field(description="Decayed interest at the request time (sum of weight x decay over events).")
    share: float = Field(description="This category's share of the user's interest (0-1).")
    half_life_days: dict[str, float | None] = Field(
        description="Half-life in days per event type behind this interest, as the run's fit_decay found it "
        "(100000: no decay; null: logistic or period decay)."
    )


class InterestProfile(BaseModel):
    user_id: str = Field(description="The user asked about, as sent.")
    as_of: dt.datetime = Field(description="The request time the interest is decayed to (UTC).")
    scores_as_of: dt.datetime | None = Field(description="When the stored scores were computed or last updated.")
    last_event_ts: dt.datetime | None = Field(description="The user's latest event known to the feature store.")
    categories: list[CategoryInterest] = Field(description="Categories by interest, highest first.")
    known_user: bool = Field(description="False when the user has no interest profile (empty categories).")


class AudienceMember(BaseModel):
    user_id: str = Field(description="Pseudonymised user id (HMAC of the user id; not reversible without the key).")
    interest: float = Field(description="Decayed interest in the category now.")


class Audience(BaseModel):
    category_id: str = Field(description="The category asked about.")
    as_of: dt.datetime = Field(description="The request time interest is decayed to.")
    computed_from: dt.datetime | None = Field(description="The batch snapshot the interest is decayed from.")
    users: list[AudienceMember] = Field(description="Users above the threshold, highest interest first.")


class ChurnReason(BaseModel):
    feature: str = Field(description="The churn model's input, as named in the feature service churn_v1.")
    value: float = Field(description="The user's value now.")
    typical: float = Field(description="The training users' typical value (the model's input mean).")
    effect: float = Field(description="The user's probability minus the one with the typical value (-1 to 1).")
    text: str = Field(description="The same in words.")


class UserChurnRisk(BaseModel):
    user_id: str = Field(description="The user asked about, as sent.")
    probability: float | None = Field(
        description="Calibrated probability (Platt scaling on held-out users) that the user buys nothing within the "
        "horizon (null: no events known for this user)."
    )
    known_user: bool = Field(description="False when there are no staged events of this user.")
    reasons: list[ChurnReason] = Field(
        default_factory=list,
        description="The three inputs that move this user's probability most, largest first (empty when unknown).",
    )


class ChurnRisk(BaseModel):
    horizon_days: int = Field(description="Churn means no purchase within this many days from now.")
    as_of: dt.datetime = Field(description="The request time the features are computed at.")
    model: str = Field(description="Tag of the churn model.")
    users: list[UserChurnRisk] = Field(description="One entry per requested user, in request order.")


class EventIn(BaseModel):
    """One behaviour event in the project's event schema. Fields are checked like batch files are:
    an event that fails a check is stored in the rejects with its reason, not refused."""

    user_id: str | None = Field(default=None, max_length=4096, description="Who acted.")
    item_id: str | None = Field(default=None, max_length=4096, description="What they acted on.")
    category_id: str | None = Field(default=None, max_length=4096, description="The item's category.")
    event_type: str | None = Field(default=None, max_length=4096, description="view, cart, fav, purchase or rating.")
    ts: str | None = Field(default=None, max_length=4096, description="ISO 8601 time; no offset means UTC.")
    value: float | Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="Rating, quantity or amount (>= 0); a number or its text, at most 64 characters."
    )


class EventOutcome(BaseModel):
    index: int = Field(description="Position of the event in the request.")
    accepted: bool = Field(description="True when the event passed the checks.")
    reason: str | None = Field(description="Why the event was rejected (kept in the rejects with this reason).")


class EventsResult(BaseModel):
    load_id: int = Field(description="The raw load the batch was stored as (raw.loads).")
    duplicate_batch: bool = Field(description="True when this exact batch was stored before: nothing was added.")
    accepted: int = Field(description="Events that passed the checks.")
    rejected: int = Field(description="Events stored with a reject reason.")
    users_updated: int = Field(description="Users whose online interest now includes these events.")
    events: list[EventOutcome] = Field(description="Outcome per event, in request order.")


class DeploymentState(BaseModel):
    model: str = Field(description="The recommender serving now.")
    deployed_at: dt.datetime = Field(description="When it started serving in this process.")
    champion: str | None = Field(description="The registry's champion; differs from model until it is deployed.")
    last_error: str | None = Field(description="Why the latest champion was not deployed, if it was not.")
