"""Feature definitions, top to bottom: entities -> sources -> feature views -> feature services.

The batch source is the dbt mart ``user_interest_features`` (one row per user and as_of day), so a
training set built with ``get_historical_features`` only sees interest computed from events
before each label's timestamp (as_of is midnight UTC; the mart counts events strictly before it).
The push source ``user_interest_push`` writes fresher rows of the same view straight to the online
store (``interest_decay.realtime``: new events folded in with the exponential update formula).

Stored scores are as of the row's ``as_of``. The on-demand view ``user_interest_now`` decays them to
the request time ``request_ts``: every (category, event type) kind with its own half-life, so the
result equals the mart recomputed at that instant (exact for exponential kinds; kinds of the
logistic and period families keep their as_of value until the next materialization).
"""

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, PushSource, RequestSource, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float64, Int64, String, UnixTimestamp

DBT_SCHEMA = os.environ.get("DBT_SCHEMA", "analytics")

# Entities
user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A shopper, by the pseudonymised user_id of the staged events.",
)

# Sources
user_interest_source = PostgreSQLSource(
    name="user_interest_source",
    query=f"select * from {DBT_SCHEMA}.user_interest_features",
    timestamp_field="as_of",
    description="dbt mart user_interest_features: decayed category interest per user and day.",
)

user_interest_push = PushSource(
    name="user_interest_push",
    batch_source=user_interest_source,
    description="Rows recomputed from live events (interest_decay.realtime), written to the online store.",
)

request_time = RequestSource(
    name="request_time",
    schema=[Field(name="request_ts", dtype=UnixTimestamp, description="The instant to decay interest to.")],
    description="The time of the request: stored interest is decayed to it.",
)

# Feature views
user_interest_fv = FeatureView(
    name="user_interest_fv",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="category_ids", dtype=Array(String), description="Top categories, highest interest first."),
        Field(name="interest_scores", dtype=Array(Float64), description="Decayed interest of each category, as of as_of."),
        Field(name="total_interest", dtype=Float64, description="Sum of decayed interest over all categories."),
        Field(name="event_count", dtype=Int64, description="Events before as_of, undecayed."),
        Field(name="category_count", dtype=Int64, description="Categories with any interest."),
        Field(name="last_event_ts", dtype=UnixTimestamp, description="The user's latest event before as_of."),
        Field(name="kind_category_ids", dtype=Array(String), description="Category of each (category, event type) kind."),
        Field(name="kind_event_types", dtype=Array(String), description="Event type of each kind."),
        Field(name="kind_scores", dtype=Array(Float64), description="Decayed interest of each kind, as of as_of."),
        Field(name="kind_half_lives", dtype=Array(Float64), description="Half-life (days) of each kind; NaN: not exponential."),
        Field(name="scores_as_of", dtype=UnixTimestamp, description="The instant the scores hold at (= as_of)."),
    ],
    source=user_interest_push,
    online=True,
    tags={"team": "interest-decay", "decay_family": "per-kind", "grain": "user, as_of"},
)


@on_demand_feature_view(
    sources=[user_interest_fv, request_time],
    schema=[
        # No Field descriptions here: Feast compares these with fields inferred from the function.
        Field(name="category_ids_now", dtype=Array(String)),  # categories by interest at request_ts
        Field(name="interest_scores_now", dtype=Array(Float64)),  # interest decayed to request_ts
        Field(name="total_interest_now", dtype=Float64),  # sum of interest_scores_now
    ],
    mode="python",
    description="Stored per-kind interest decayed exactly to the request time, summed per category.",
    tags={"team": "interest-decay"},
)
def user_interest_now(inputs: dict) -> dict:
    # Self-contained (Feast stores this function in the registry): no module-level names used.
    import datetime as dt
    import math

    def seconds(value):
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()
        return float(value)

    out = {"category_ids_now": [], "interest_scores_now": [], "total_interest_now": []}
    rows = zip(inputs["kind_category_ids"], inputs["kind_scores"], inputs["kind_half_lives"],
               inputs["request_ts"], inputs["scores_as_of"])
    for categories, scores, half_lives, request_ts, as_of in rows:
        totals: dict = {}
        elapsed_days = 0.0
        if as_of is not None and request_ts is not None:
            elapsed_days = max(seconds(request_ts) - seconds(as_of), 0.0) / 86400.0
        for category, score, half_life in zip(categories or [], scores or [], half_lives or []):
            factor = 1.0 if half_life is None or math.isnan(half_life) else 0.5 ** (elapsed_days / half_life)
            totals[category] = totals.get(category, 0.0) + score * factor
        ranked = sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))
        out["category_ids_now"].append([c for c, _ in ranked])
        out["interest_scores_now"].append([s for _, s in ranked])
        out["total_interest_now"].append(sum(s for _, s in ranked) if ranked else None)
    return out


# Feature services: one per model version, so a model pins its inputs.
recommender_v1 = FeatureService(
    name="recommender_v1",
    features=[user_interest_fv, user_interest_now],
    description="Inputs of the interest recommender, version 1: stored interest and interest at request time.",
)

interest_profile_v1 = FeatureService(
    name="interest_profile_v1",
    features=[user_interest_now, user_interest_fv[["last_event_ts", "event_count", "scores_as_of",
                                                    "kind_category_ids", "kind_event_types", "kind_half_lives"]]],
    description="A user's interest profile at request time (the /interest endpoint and audience checks).",
)
