"""Feature definitions, top to bottom: entities -> sources -> feature views -> feature services.

The batch source is the dbt mart ``user_interest_features`` (one row per user and as_of day), so a
training set built with ``get_historical_features`` only sees interest computed from events
before each label's timestamp (as_of is midnight UTC; the mart counts events strictly before it).
The push source ``user_interest_push`` writes fresher rows of the same view straight to the online
store (``interest_decay.online.realtime``: new events folded in with the exponential update formula).

Stored scores are as of the row's ``as_of``. The on-demand view ``user_interest_now`` decays them to
the request time ``request_ts``: every (category, event type) kind with its own half-life, so the
result equals the mart recomputed at that instant (exact for exponential kinds; kinds of the
logistic and period families keep their as_of value until the next materialization).
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, PushSource, RequestSource, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float64, Int64, String, UnixTimestamp

from interest_decay import config as settings
from interest_decay.events.schema import EVENT_TYPES

DBT_SCHEMA = settings.dbt_schema()
# The half-lives of the churn mart's decayed counts (dbt var churn_half_lives_days) name its columns.
CHURN_HALF_LIVES = settings.dbt_vars()["churn_half_lives_days"]
CHURN_FEATURES = [
    "recency_days",
    "purchase_recency_days",
    "tenure_days",
    "event_count",
    "purchase_count",
    "purchase_occasions",
    "monetary",
    "distinct_items",
    "distinct_categories",
    "purchase_gap_mean_days",
    "purchase_gap_std_days",
    *(f"decayed_{kind}_h{h:g}" for h in CHURN_HALF_LIVES for kind in EVENT_TYPES),
]

# Entities
user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A shopper, by the pseudonymised user_id of the staged events.",
)
item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="A catalogue item.")
category = Entity(
    name="category", join_keys=["category_id"], value_type=ValueType.STRING, description="A catalogue category."
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
    description="Rows recomputed from live events (interest_decay.online.realtime), written to the online store.",
)

user_item_signals_source = PostgreSQLSource(
    name="user_item_signals_source",
    query=f"select *, as_of as state_as_of from {DBT_SCHEMA}.user_item_signal_state",
    timestamp_field="as_of",
    description="dbt mart user_item_signal_state: the item ranker's user-side state per user at the run's as_of.",
)

user_item_signals_push = PushSource(
    name="user_item_signals_push",
    batch_source=user_item_signals_source,
    description="Rows with live events folded in (interest_decay.online.item_state), written to the online store.",
)

churn_source = PostgreSQLSource(
    name="churn_source",
    query=f"select *, as_of as as_of_ts from {DBT_SCHEMA}.churn_features",
    timestamp_field="as_of",
    description="dbt mart churn_features: the churn model's inputs per user and day.",
)

item_popularity_source = PostgreSQLSource(
    name="item_popularity_source",
    query=f"select * from {DBT_SCHEMA}.item_popularity",
    timestamp_field="as_of",
    description="dbt mart item_popularity: decayed interest of all users in an item, per day.",
)

category_popularity_source = PostgreSQLSource(
    name="category_popularity_source",
    query=(
        f"select as_of, category_id, sum(popularity) as category_popularity, count(*) as category_item_count, "
        f"sum(recent_event_count)::bigint as category_recent_event_count, "
        f"max(last_event_ts) as category_last_event_ts "
        f"from {DBT_SCHEMA}.item_popularity group by as_of, category_id"
    ),
    timestamp_field="as_of",
    description="item_popularity summed per category and day.",
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
        Field(
            name="interest_scores", dtype=Array(Float64), description="Decayed interest of each category, as of as_of."
        ),
        Field(name="total_interest", dtype=Float64, description="Sum of decayed interest over all categories."),
        Field(name="event_count", dtype=Int64, description="Events before as_of, undecayed."),
        Field(name="category_count", dtype=Int64, description="Categories with any interest."),
        Field(name="last_event_ts", dtype=UnixTimestamp, description="The user's latest event before as_of."),
        Field(
            name="kind_category_ids", dtype=Array(String), description="Category of each (category, event type) kind."
        ),
        Field(name="kind_event_types", dtype=Array(String), description="Event type of each kind."),
        Field(name="kind_scores", dtype=Array(Float64), description="Decayed interest of each kind, as of as_of."),
        Field(
            name="kind_half_lives",
            dtype=Array(Float64),
            description="Half-life (days) of each kind; NaN: not exponential.",
        ),
        Field(name="scores_as_of", dtype=UnixTimestamp, description="The instant the scores hold at (= as_of)."),
    ],
    source=user_interest_push,
    online=True,
    tags={"team": "interest-decay", "decay_family": "per-kind", "grain": "user, as_of"},
)


user_item_signals_fv = FeatureView(
    name="user_item_signals_fv",
    entities=[user],
    ttl=timedelta(days=400),
    schema=[
        Field(name="user_days", dtype=Float64, description="Days with any event."),
        Field(name="user_last_ts", dtype=Float64, description="First event of the last active day (epoch s)."),
        Field(name="user_items", dtype=Float64, description="Distinct items with any event."),
        Field(name="item_ids", dtype=Array(String), description="The user's items; the per-item arrays follow it."),
        Field(name="item_days", dtype=Array(Float64), description="Days with an event on the item."),
        Field(name="item_events", dtype=Array(Float64), description="Events on the item."),
        Field(name="target_days", dtype=Array(Float64), description="Days with a target event (a purchase)."),
        Field(name="last_ts", dtype=Array(Float64), description="First event of the item's last day (epoch s)."),
        Field(name="first_ts", dtype=Array(Float64), description="First event on the item (epoch s)."),
        Field(name="target_last_ts", dtype=Array(Float64), description="Last target day's first target (NaN: none)."),
        Field(name="sum_item_days_30", dtype=Array(Float64), description="The item's days decayed, half-life 30 d."),
        Field(name="sum_item_days_90", dtype=Array(Float64), description="The item's days decayed, half-life 90 d."),
        Field(name="user_category_ids", dtype=Array(String), description="Categories acted in; arrays below follow."),
        Field(name="category_days", dtype=Array(Float64), description="Days with an event in the category."),
        Field(name="category_last_ts", dtype=Array(Float64), description="First event of its last day (epoch s)."),
        Field(name="sum_category_days_30", dtype=Array(Float64), description="Its days decayed, half-life 30 d."),
        Field(name="state_as_of", dtype=UnixTimestamp, description="The instant the decayed sums hold at."),
    ],
    source=user_item_signals_push,
    online=True,
    tags={"team": "interest-decay", "model": "item_ranker", "grain": "user, as_of"},
)

churn_features_fv = FeatureView(
    name="churn_features_fv",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="as_of_ts", dtype=UnixTimestamp, description="The instant the features hold at."),
        *(Field(name=name, dtype=Float64) for name in CHURN_FEATURES),
    ],
    source=churn_source,
    online=True,
    tags={"team": "interest-decay", "model": "churn", "grain": "user, as_of"},
)

item_popularity_fv = FeatureView(
    name="item_popularity_fv",
    entities=[item],
    ttl=timedelta(days=30),
    schema=[
        Field(name="popularity", dtype=Float64, description="Decayed interest of all users in the item, as of as_of."),
        Field(name="recent_event_count", dtype=Int64, description="Events in the activity window before as_of."),
        Field(name="user_count", dtype=Int64, description="Users with an event on the item before as_of."),
        Field(name="last_event_ts", dtype=UnixTimestamp, description="The item's latest event before as_of."),
    ],
    source=item_popularity_source,
    online=True,
    tags={"team": "interest-decay", "grain": "item, as_of"},
)

category_popularity_fv = FeatureView(
    name="category_popularity_fv",
    entities=[category],
    ttl=timedelta(days=30),
    schema=[
        Field(name="category_popularity", dtype=Float64, description="Decayed interest of all users in the category."),
        Field(
            name="category_item_count", dtype=Int64, description="Items of the category with any event before as_of."
        ),
        Field(name="category_recent_event_count", dtype=Int64, description="Events in the activity window."),
        Field(name="category_last_event_ts", dtype=UnixTimestamp, description="The category's latest event."),
    ],
    source=category_popularity_source,
    online=True,
    tags={"team": "interest-decay", "grain": "category, as_of"},
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
            return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
        return float(value)

    out = {"category_ids_now": [], "interest_scores_now": [], "total_interest_now": []}
    rows = zip(
        inputs["kind_category_ids"],
        inputs["kind_scores"],
        inputs["kind_half_lives"],
        inputs["request_ts"],
        inputs["scores_as_of"],
    )
    for categories, scores, half_lives, request_ts, as_of in rows:
        totals: dict = {}
        elapsed_days = 0.0
        if as_of is not None and request_ts is not None:
            # exact both ways: a live fold may stamp a row a few seconds ahead (realtime.fold_instant)
            elapsed_days = (seconds(request_ts) - seconds(as_of)) / 86400.0
        for category, score, half_life in zip(categories or [], scores or [], half_lives or []):
            factor = 1.0 if half_life is None or math.isnan(half_life) else 0.5 ** (elapsed_days / half_life)
            totals[category] = totals.get(category, 0.0) + score * factor
        ranked = sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))
        out["category_ids_now"].append([c for c, _ in ranked])
        out["interest_scores_now"].append([s for _, s in ranked])
        out["total_interest_now"].append(sum(s for _, s in ranked) if ranked else None)
    return out


@on_demand_feature_view(
    sources=[churn_features_fv, request_time],
    schema=[Field(name=f"{name}_now", dtype=Float64) for name in CHURN_FEATURES],
    mode="python",
    description="The churn model's inputs moved from as_of to the request time: ages grow by the elapsed "
    "days, decayed counts decay by it (exact while the user has no newer event).",
    tags={"team": "interest-decay", "model": "churn"},
)
def churn_features_now(inputs: dict) -> dict:
    # Self-contained (stored in the registry). Ages grow by the elapsed days; a user with under two purchase
    # occasions has the tenure as mean gap, so it grows too; decayed_<type>_h<h> is multiplied by 0.5^(elapsed/h).
    import datetime as dt

    def seconds(value):
        if isinstance(value, dt.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
        return None if value is None else float(value)

    names = [key for key in inputs if key not in ("request_ts", "as_of_ts", "user_id")]
    out = {f"{name}_now": [] for name in names}
    for position, (request_ts, as_of) in enumerate(zip(inputs["request_ts"], inputs["as_of_ts"])):
        elapsed = 0.0
        if request_ts is not None and as_of is not None:
            elapsed = max(seconds(request_ts) - seconds(as_of), 0.0) / 86400.0
        few_occasions = (inputs["purchase_occasions"][position] or 0.0) < 2
        for name in names:
            value = inputs[name][position]
            if value is not None:
                if name in ("recency_days", "purchase_recency_days", "tenure_days") or (
                    name == "purchase_gap_mean_days" and few_occasions
                ):
                    value = value + elapsed
                elif name.startswith("decayed_"):
                    value = value * 0.5 ** (elapsed / float(name.rsplit("_h", 1)[1]))
            out[f"{name}_now"].append(value)
    return out


# Feature services: one per model version, so a model pins its inputs.
recommender_v1 = FeatureService(
    name="recommender_v1",
    features=[user_interest_fv, user_interest_now],
    description="Stored interest and interest at request time (the interest features of the first recommender, "
    "kept for the feature-store benchmarks and tests).",
)

item_ranker_v1 = FeatureService(
    name="item_ranker_v1",
    features=[
        user_item_signals_fv,
        user_interest_fv[["kind_category_ids", "kind_scores", "kind_half_lives", "scores_as_of"]],
    ],
    description="Inputs of the served item ranker, version 1 (/recommend): the user-side state it moves to the "
    "request time (models.pipeline.item_signals.signals_at; the item side ships with the model), and the stored "
    "interest kinds with their half-lives, decayed to the request time for explanations (no on-demand view: "
    "it cost 0.8 ms a read).",
)

interest_profile_v1 = FeatureService(
    name="interest_profile_v1",
    features=[
        user_interest_now,
        user_interest_fv[
            ["last_event_ts", "event_count", "scores_as_of", "kind_category_ids", "kind_event_types", "kind_half_lives"]
        ],
    ],
    description="A user's interest profile at request time (the /interest endpoint and audience checks).",
)

churn_v1 = FeatureService(
    name="churn_v1",
    features=[churn_features_now],
    description="Inputs of the churn-risk model, version 1, at request time (names: the model's + '_now').",
)

popularity_v1 = FeatureService(
    name="popularity_v1",
    features=[item_popularity_fv, category_popularity_fv],
    description="Decayed popularity of items and categories (cold-start fallbacks, trend dashboards).",
)
