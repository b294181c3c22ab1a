"""Feature definitions, top to bottom: entities -> sources -> feature views -> feature services.

The source is the dbt mart ``user_interest_features`` (one row per user and as_of day), so a
training set built with ``get_historical_features`` only sees interest computed from events
before each label's timestamp (as_of is midnight UTC; the mart counts events strictly before it).
"""

import os
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.types import Array, Float64, Int64, String, UnixTimestamp

DBT_SCHEMA = os.environ.get("DBT_SCHEMA", "analytics")

# Entities
user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A shopper, by the user_id of the event schema.",
)

# Sources
user_interest_source = PostgreSQLSource(
    name="user_interest_source",
    query=f"select * from {DBT_SCHEMA}.user_interest_features",
    timestamp_field="as_of",
    description="dbt mart user_interest_features: decayed category interest per user and day.",
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
    ],
    source=user_interest_source,
    online=True,
    tags={"team": "interest-decay", "decay_family": "exponential"},
)

# Feature services: one per model version, so a model pins its inputs.
recommender_v1 = FeatureService(
    name="recommender_v1",
    features=[user_interest_fv],
    description="Inputs of the interest recommender, version 1.",
)
