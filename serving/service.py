"""BentoML service: recommendations, interest profiles, audiences and live events.

- The model comes from the BentoML model store (``$MODEL_TAG``, default the champion of
  ``models.pipeline.registry``, else the latest ``interest_recommender``): the item ranker's package
  (``models.pipeline.served_ranker``). User features from the Feast online store: the ranker's user-side state
  (``user_item_signals_fv``), moved to the request time exactly, with the stored interest kinds for explanations;
  ``/interest`` reads the interest decayed to the request time by the on-demand view ``user_interest_now`` (exact
  per (category, event type) kind).
- User ids are pseudonymised (``PSEUDONYM_KEY``) before anything is looked up; answers show the id the
  caller sent, ``/audience`` answers with pseudonyms only.
- PostgreSQL (``PG*``) holds the raw events ``/events`` appends to and the marts ``/audience`` reads.
- ``SERVE_API_TOKEN`` set: every API call needs ``Authorization: Bearer <token>`` (``serving/middleware.py``).
Bad input gets a 400 with a message; a missing dependency a 503; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import re
import threading
from pathlib import Path
from typing import Annotated

import bentoml
from pydantic import Field

from interest_decay import config as settings
from interest_decay.events.pseudonym import pseudonym_key, pseudonymise
from interest_decay.monitoring.prediction_log import PredictionLog, ServedPrediction
from serving.deployment import ChampionFollower, LoadedRecommender
from serving.explain import allowed_items, explained_items, rank_user, utc
from serving.middleware import (
    BearerTokenMiddleware,
    BodyLimitMiddleware,
    JsonBodyMiddleware,
    UnavailableMessageMiddleware,
    access_log_config,
    tracing_config,
    unavailable,
)
from serving.queries import audience_sql
from serving.schemas import (
    Audience,
    AudienceMember,
    CategoryInterest,
    ChurnReason,
    ChurnRisk,
    DeploymentState,
    EventIn,
    EventOutcome,
    EventsResult,
    InterestProfile,
    Recommendation,
    RecommendedItem,
    UserChurnRisk,
    UserId,
)


def _default_model_tag() -> str:
    from models.pipeline.registry import champion

    return champion() or f"{settings.model_name()}:latest"


SETTINGS = settings.get()
MODEL_TAG = SETTINGS.model_tag or _default_model_tag()
CHURN_MODEL_TAG = SETTINGS.churn_model_tag
FEATURE_SERVICE = "item_ranker_v1"
PROFILE_SERVICE = "interest_profile_v1"
CHURN_SERVICE = "churn_v1"
MAX_EVENTS = 10_000
# How long /events waits for the load-order lock (interest_decay.events.ingest.hold_load_order_lock) before a 503.
EVENTS_LOCK_TIMEOUT_S = 5.0
# Worker processes behind the one port: one per core by default (each is bound to one core by the GIL).
WORKERS = SETTINGS.serve_workers or "cpu_count"


def _signature_once(method):
    """BentoML runs ``inspect.signature`` on an API method for every call (~10 us of a ~1 ms /recommend);
    with the function's own ``__signature__`` set, that is an attribute read. The signature is the same."""
    method.__signature__ = inspect.signature(method)
    return method


@bentoml.service(
    traffic={"timeout": 30},
    workers=WORKERS,
    tracing=tracing_config(SETTINGS.serve_tracing_sample_rate),
    logging={"access": access_log_config(SETTINGS.serve_access_log)},
)
class InterestService:
    bento_model = bentoml.models.BentoModel(MODEL_TAG)
    churn_bento_model = bentoml.models.BentoModel(CHURN_MODEL_TAG)

    def __init__(self) -> None:
        import torch
        from feast import FeatureStore

        from interest_decay.online.reader import ServiceReader

        torch.set_num_threads(SETTINGS.serve_torch_threads)  # OpenMP threads spin after each forward pass

        from models.pipeline.registry import champion

        packaged = LoadedRecommender.from_directory(str(self.bento_model.tag), Path(self.bento_model.path))
        self.follower = ChampionFollower(packaged, champion=champion)
        self.follower.check()  # a champion promoted after the bento was built serves from the start
        self.follower.start(SETTINGS.model_reload_seconds)
        self.prediction_log = PredictionLog(self._db, SETTINGS.prediction_log_max_rows)
        self.prediction_log.start(SETTINGS.prediction_log_seconds)
        from models.pipeline.churn import ChurnModel

        self.churn_model = ChurnModel.load(Path(self.churn_bento_model.path)).eval()
        self.churn_metadata = self.churn_bento_model.info.metadata
        self.pseudonym_key = pseudonym_key()
        self.store = FeatureStore(repo_path=str(settings.feast_repo_path()))
        self.features = self.store.get_feature_service(FEATURE_SERVICE)
        self.ranker_rows = ServiceReader(self.store, self.features)  # get_online_features, planned once
        self.profile_features = self.store.get_feature_service(PROFILE_SERVICE)
        self.churn_features = self.store.get_feature_service(CHURN_SERVICE)
        served = {
            f"{f.name}" for projection in self.churn_features.feature_view_projections for f in projection.features
        }
        missing = [n for n in self.churn_model.hparams["feature_names"] if f"{n}_now" not in served]
        if missing:
            raise RuntimeError(
                f"feature service {CHURN_SERVICE} lacks the churn model's inputs {missing}: "
                "retrain the churn model or update feature_repo/features.py"
            )
        self.schema = settings.dbt_schema()
        self._pool = None
        self._updater = None
        self._lock = threading.Lock()

    # -- dependencies -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self):
        """A pooled PostgreSQL connection (autocommit) for a ``with`` block; 503 with a message when the database
        cannot be reached, also when it goes away during the block (a pooled connection is checked before use,
        so one broken by a database restart is replaced, not handed out)."""
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    settings.pg_conninfo(),
                    min_size=1,
                    max_size=4,
                    open=True,
                    kwargs={"autocommit": True},
                    timeout=5,
                    check=ConnectionPool.check_connection,
                )
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise unavailable(
                f"the event database is not reachable ({reason}): nothing was read or stored, try again shortly"
            ) from None

    def _online_updater(self, conn):
        from interest_decay.events.ingest import ensure_raw_schema
        from interest_decay.online.realtime import OnlineUpdater

        with self._lock:
            if self._updater is None:
                ensure_raw_schema(conn)
                self._updater = OnlineUpdater.from_database(self.store, conn, self.schema)
        return self._updater

    def __is_ready__(self) -> bool:
        try:
            with self._db() as conn:
                conn.execute("select 1")
            return True
        except Exception:  # noqa: BLE001
            return False

    def _lookup(self, service, pseudonyms: list[str], now: dt.datetime | None) -> dict:
        """Features of ``service`` for the users; ``now``: the request time its on-demand views decay to."""
        entities = [{"user_id": u} if now is None else {"user_id": u, "request_ts": now} for u in pseudonyms]
        return self.store.get_online_features(features=service, entity_rows=entities).to_dict()

    # -- endpoints ----------------------------------------------------------------------------------
    @bentoml.api
    @_signature_once
    async def recommend(
        self,
        user_id: UserId,
        k: Annotated[int, Field(ge=1, le=1000, description="How many items to return (1-1000).")] = 10,
        category_id: Annotated[str | None, Field(max_length=256, description="Only items of this category.")] = None,
        exclude_purchased: Annotated[bool, Field(description="Leave out items the user bought before.")] = False,
    ) -> Recommendation:
        """Top-k items for a user: the item ranker scores the user's own items and the popular ones from their
        signals moved to now (models.pipeline.served_ranker); the other items follow by recent popularity."""
        # A coroutine, so it runs on the worker's event loop: BentoML runs a plain function in a thread pool,
        # and the hop cost ~0.4 ms a request (see docs/benchmarks.md, serving). The online-store read and the
        # model are short and run inline; the one database query (exclude_purchased) goes to a thread so it does
        # not hold up other requests.
        now = dt.datetime.now(dt.UTC)
        deployed = self.follower.current  # one model for the whole request, even if a deploy swaps it now
        package = deployed.model
        pseudonym = pseudonymise(user_id, self.pseudonym_key)
        bought = await asyncio.to_thread(self._purchased_items, pseudonym) if exclude_purchased else None
        allowed = allowed_items(deployed, category_id, bought)
        row = self.ranker_rows.row(pseudonym)
        if row["state_as_of"] is None:
            items = [
                RecommendedItem(
                    item_id=r.item_id,
                    category_id=r.category_id,
                    score=0.0,
                    explanation="popular recently (no history for this user)",
                )
                for r in package.popular_fallback(k, allowed)
            ]
            self._log_recommendation(now, deployed.tag, pseudonym, True, items)
            return Recommendation(
                user_id=user_id, items=items, fallback=True, interest_as_of=None, as_of=now, model=deployed.tag
            )

        ranked = rank_user(package, row, now, k, allowed)
        items = explained_items(ranked, row, now)
        self._log_recommendation(now, deployed.tag, pseudonym, False, items)
        return Recommendation(
            user_id=user_id,
            items=items,
            fallback=False,
            interest_as_of=utc(row.get("state_as_of")),
            as_of=now,
            model=deployed.tag,
        )

    def _log_recommendation(
        self, now: dt.datetime, model: str, pseudonym: str, fallback: bool, items: list[RecommendedItem]
    ) -> None:
        """One row for prediction-drift checks (interest_decay.monitoring.prediction_log); no database work here."""
        scores = [item.score for item in items]
        self.prediction_log.add(
            ServedPrediction(
                now,
                "recommend",
                model,
                pseudonym,
                fallback,
                scores[0] if scores and not fallback else None,
                sum(scores) / len(scores) if scores and not fallback else None,
                items[0].category_id if items else None,
                len(items),
            )
        )

    def _purchased_items(self, pseudonym: str) -> list[str]:
        """Items the user bought (staged purchase events)."""
        with self._db() as conn:
            return [
                item
                for (item,) in conn.execute(
                    f"select distinct item_id from {self.schema}.stg_behaviour__events "
                    "where user_id = %s and event_type = 'purchase'",
                    (pseudonym,),
                ).fetchall()
            ]

    @bentoml.api
    @_signature_once
    async def interest(self, user_id: UserId) -> InterestProfile:
        """The user's interest per category, decayed to now, with the half-lives behind it."""
        # A coroutine like recommend: one short online-store read, run inline on the event loop.
        now = dt.datetime.now(dt.UTC)
        pseudonym = pseudonymise(user_id, self.pseudonym_key)
        row = {key: values[0] for key, values in self._lookup(self.profile_features, [pseudonym], now).items()}
        kinds: dict[str, dict[str, float | None]] = {}
        for category, kind, half_life in zip(
            row.get("kind_category_ids") or [], row.get("kind_event_types") or [], row.get("kind_half_lives") or []
        ):
            kinds.setdefault(category, {})[kind] = half_life if half_life == half_life else None
        total = row.get("total_interest_now") or 0.0
        categories = [
            CategoryInterest(
                category_id=c, interest=s, share=s / total if total else 0.0, half_life_days=kinds.get(c, {})
            )
            for c, s in zip(row.get("category_ids_now") or [], row.get("interest_scores_now") or [])
        ]
        return InterestProfile(
            user_id=user_id,
            as_of=now,
            scores_as_of=utc(row.get("scores_as_of")),
            last_event_ts=utc(row.get("last_event_ts")),
            categories=categories,
            known_user=row.get("total_interest_now") is not None,
        )

    @bentoml.api
    @_signature_once
    def audience(
        self,
        category_id: Annotated[str, Field(min_length=1, max_length=256, description="The category to target.")],
        min_interest: Annotated[float, Field(ge=0, description="Minimum decayed interest now.")] = 1.0,
        limit: Annotated[int, Field(ge=1, le=10_000, description="At most this many users (1-10000).")] = 100,
    ) -> Audience:
        """Users whose interest in a category, decayed to now, is at least ``min_interest`` (ad targeting).

        Read from the batch marts (dbt ``user_category_interest`` at the latest stored day) and decayed to now
        per kind: exponential kinds exactly, with dbt's ``decay_multiplier``; logistic and period kinds at their
        value of the latest stored day (see ``serving.queries.audience_sql``)."""
        now = dt.datetime.now(dt.UTC)
        with self._db() as conn:
            columns = [
                c.name for c in conn.execute(f"select * from {self.schema}.user_category_interest limit 0").description
            ]
            sql = audience_sql(
                self.schema,
                [c.removeprefix("interest_") for c in columns if re.fullmatch(r"interest_[a-z][a-z0-9_]*", c)],
            )
            rows = conn.execute(
                sql, {"now": now, "category": category_id, "min_interest": min_interest, "limit": limit}
            ).fetchall()
        return Audience(
            category_id=category_id,
            as_of=now,
            computed_from=rows[0][2] if rows else None,
            users=[AudienceMember(user_id=u, interest=i) for u, i, _ in rows],
        )

    @bentoml.api
    @_signature_once
    def churn_risk(
        self,
        user_ids: Annotated[list[UserId], Field(min_length=1, max_length=1000, description="1 to 1,000 user ids.")],
    ) -> ChurnRisk:
        """Probability per user of buying nothing within the model's horizon, from the features the
        model was trained on (Feast feature service churn_v1: the mart churn_features moved to now)."""
        import pandas as pd

        from models.pipeline.churn import model_probabilities
        from models.pipeline.churn_reasons import churn_reasons

        now = dt.datetime.now(dt.UTC)
        pseudonyms = {u: pseudonymise(u, self.pseudonym_key) for u in user_ids}
        keys = sorted(set(pseudonyms.values()))
        response = self._lookup(self.churn_features, keys, now)
        names = self.churn_model.hparams["feature_names"]
        features = pd.DataFrame({n: response[f"{n}_now"] for n in names}, index=keys)
        features = features[features[names[0]].notna()]
        probabilities, reasons = {}, {}
        if len(features):
            features = features.astype(float)
            probabilities = dict(zip(features.index, model_probabilities(self.churn_model, features)))
            reasons = dict(zip(features.index, churn_reasons(self.churn_model, features)))
        model = str(self.churn_bento_model.tag)
        for user, probability in probabilities.items():
            self.prediction_log.add(
                ServedPrediction(now, "churn_risk", model, user, False, float(probability), float(probability), None, 1)
            )
        users = [
            UserChurnRisk(
                user_id=u,
                probability=probabilities.get(pseudonyms[u]),
                known_user=pseudonyms[u] in probabilities,
                reasons=[
                    ChurnReason(feature=r.feature, value=r.value, typical=r.typical, effect=r.effect, text=r.text)
                    for r in reasons.get(pseudonyms[u], [])
                ],
            )
            for u in user_ids
        ]
        return ChurnRisk(horizon_days=int(self.churn_metadata["horizon_days"]), as_of=now, model=model, users=users)

    @bentoml.api
    @_signature_once
    def events(
        self,
        events: Annotated[
            list[EventIn],
            Field(min_length=1, max_length=MAX_EVENTS, description=f"1 to {MAX_EVENTS:,} events in the event schema."),
        ],
    ) -> EventsResult:
        """Store live events (the same raw tables as batch ingest) and fold the accepted ones into the
        users' online interest at once; answers accepted / rejected per event with the reason."""
        from psycopg.errors import LockNotAvailable

        from interest_decay.online.realtime import accept_batch

        records = [e.model_dump() for e in events]
        with self._db() as conn:
            try:
                result = accept_batch(
                    conn, self._online_updater(conn), records, self.pseudonym_key, lock_timeout_s=EVENTS_LOCK_TIMEOUT_S
                )
            except LockNotAvailable:  # staging holds new loads back while it waits for a long batch load
                raise unavailable(
                    f"staging is reading the raw events (waited {EVENTS_LOCK_TIMEOUT_S:g} s): "
                    "nothing was stored, send the batch again shortly"
                ) from None
        outcomes = [EventOutcome(index=i, accepted=r is None, reason=r) for i, r in enumerate(result.reasons)]
        accepted = sum(o.accepted for o in outcomes)
        return EventsResult(
            load_id=result.load_id,
            duplicate_batch=result.duplicate_batch,
            accepted=accepted,
            rejected=len(outcomes) - accepted,
            users_updated=result.users_updated,
            events=outcomes,
        )

    @bentoml.api
    @_signature_once
    def deployment(self) -> DeploymentState:
        """Which recommender serves now; the process follows the registry's champion (see serving/deployment.py)."""
        from models.pipeline.registry import champion

        current = self.follower.current
        return DeploymentState(
            model=current.tag, deployed_at=current.deployed_at, champion=champion(), last_error=self.follower.last_error
        )


InterestService.add_asgi_middleware(JsonBodyMiddleware)
InterestService.add_asgi_middleware(BodyLimitMiddleware, limit=SETTINGS.serve_max_body_bytes)
InterestService.add_asgi_middleware(UnavailableMessageMiddleware)
if SETTINGS.serve_api_token is not None:
    InterestService.add_asgi_middleware(BearerTokenMiddleware, token=SETTINGS.serve_api_token.get_secret_value())
