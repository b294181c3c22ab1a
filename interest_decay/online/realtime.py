"""Live events: check them as staging does, store them as a raw load, fold them into online features.

The path of one batch (the serving ``/events`` endpoint and ``make push EVENTS=path`` both use it), in one
PostgreSQL transaction:
1. ``check_events`` gives each event the reject reason dbt staging would give it (or None), from the one
   rule set (``interest_decay.events.rules``), so the caller learns per event what was accepted and why not;
2. the whole batch, accepted and rejected rows alike, becomes one load of ``raw.events``
   (``interest_decay.events.ingest.load_table``, idempotent by content hash), so the nightly dbt run stages
   exactly these rows and ``raw = staged + duplicates + rejected`` still holds;
3. each accepted event counts online once, as staging counts it: copies within the batch, events already
   staged (``stg_behaviour__events``) and events an earlier live batch folded in (their keys are kept in
   ``raw.live_event_keys`` until staged) are left out (``new_events``);
4. the new events of each user are folded into the user's online feature row with the
   incremental formula ``S(now) = S(as_of) * 0.5^((now - as_of)/h) + sum w * 0.5^((now - t_e)/h)`` per
   (category, event type) kind, and the new row is written with ``FeatureStore.push``; the same events are
   folded into the user's item-ranker state row (``interest_decay.online.item_state``) and pushed with it.
   Each user's row is read, folded and pushed under a transaction-level advisory lock on that user, so
   concurrent batches (several service workers) never lose an update;
5. the transaction commits only after the online rows are written: if the online store fails, nothing is
   stored and the client's retry applies the batch whole. (A commit that fails after the push leaves the
   online rows ahead until the next materialization replaces them from the mart.)

Exactness: exponential kinds are exact (the same number the mart gives at ``now``); kinds of the
logistic and period families keep their stored score and add the new events' decayed weight.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from interest_decay import decay
from interest_decay.decay.reference import parameter_kwargs, resolve_parameters
from interest_decay.events import rules
from interest_decay.events.schema import EVENT_COLUMNS, EVENT_TYPES
from interest_decay.online import item_state
from interest_decay.online.bounded_cache import BoundedCache

MAX_CATEGORIES = 50  # dbt var max_categories_per_user
KIND_CACHE_ENTRIES = 65_536  # (category, event type) parameter lookups kept per process
ONLINE_FEATURES = (
    "category_ids",
    "interest_scores",
    "total_interest",
    "event_count",
    "category_count",
    "last_event_ts",
    "kind_category_ids",
    "kind_event_types",
    "kind_scores",
    "kind_half_lives",
    "scores_as_of",
)
FEATURE_VIEW = "user_interest_fv"
PUSH_SOURCE = "user_interest_push"


def _field(value) -> str | None:
    """A field of a live event as text, as the raw load stores it (None and a float NaN are absent)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def check_events(events: Sequence[Mapping], received_at) -> tuple[pd.DataFrame, list[str | None]]:
    """The typed events and the reason staging would reject each (None: accepted), from the one set of rules
    (``interest_decay.events.rules.check``, with ``received_at`` as the load time), after the check the
    loader makes (a field PostgreSQL cannot store is an unparseable row: ``ingest.unstorable_reason``)."""
    from interest_decay.events.ingest import unstorable_reason

    frame = pd.DataFrame({c: [_field(e.get(c)) for e in events] for c in EVENT_COLUMNS}, dtype=object)
    unstorable = [[unstorable_reason(c, v) for c, v in zip(EVENT_COLUMNS, row)] for row in frame.itertuples(False)]
    frame["parse_error"] = ["; ".join(r for r in reasons if r) or None for reasons in unstorable]
    typed, reasons = rules.check(frame, received_at)
    return typed, [None if pd.isna(r) else str(r) for r in reasons]


def check_event(event: Mapping, received_at: dt.datetime) -> str | None:
    """The reason staging would reject ``event`` (same wording as stg_behaviour__events_checked), or None."""
    return check_events([event], received_at)[1][0]


def batch_sha256(events: list[Mapping]) -> str:
    """Content hash of a batch (its contract columns, in order): the same batch sent twice is stored once."""
    rows = [[_field(e.get(c)) for c in EVENT_COLUMNS] for e in events]
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


@dataclass
class KindParameters:
    """Decay parameters (dbt model int_decay_parameters) and event weights (seed event_type_weights)."""

    parameters: pd.DataFrame
    weights: dict[str, float]
    _cache: BoundedCache = field(default_factory=lambda: BoundedCache(KIND_CACHE_ENTRIES), repr=False)

    @classmethod
    def from_database(cls, conn, schema: str) -> KindParameters:
        with conn.cursor() as cur:
            cur.execute(
                f"select category_id, event_type, family, half_life_days, logistic_k, logistic_l, "
                f"period_days, period_weights from {schema}.int_decay_parameters"
            )
            columns = [d.name for d in cur.description]
            frame = pd.DataFrame(cur.fetchall(), columns=columns)
            cur.execute(f"select event_type, weight from {schema}.event_type_weights")
            weights = {kind: float(weight) for kind, weight in cur.fetchall()}
        return cls(frame, weights)

    def of(self, category_id: str, event_type: str) -> dict:
        key = (category_id, event_type)
        found = self._cache.get(key)
        if found is None:  # live events name any category: the cache is bounded (least recently used out)
            found = resolve_parameters(self.parameters, category_id, event_type)
            self._cache.put(key, found)
        return found

    def half_life(self, category_id: str, event_type: str) -> float:
        """Exponential half-life of a kind; NaN for kinds of another family (their score is held)."""
        p = self.of(category_id, event_type)
        return float(p["half_life_days"]) if p["family"] == "exponential" else math.nan

    def contribution(self, category_id: str, event_type: str, age_days: float) -> float:
        """Interest an event of this kind adds, ``age_days`` after it happened."""
        p = self.of(category_id, event_type)
        return self.weights[event_type] * float(
            decay.multiplier(p["family"], max(age_days, 0.0), **parameter_kwargs(p))
        )


def _seconds(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    return float(value)


def fold_instant(now: dt.datetime, row: Mapping | None, item_row: Mapping | None) -> dt.datetime:
    """The instant a live fold moves a user's rows to and stamps them with: ``now`` in whole seconds (Feast
    keeps a timestamp feature such as ``scores_as_of`` in whole seconds, so the rows say exactly when they
    hold), and at least 1 s after the stored rows' instant: an online store keeps a row only when its
    timestamp is newer than the stored one's (Redis skips an equal one), so two batches of one user in the
    same second would lose one. A burst of batches can put a row a few seconds ahead of the clock; the
    exponential decay is exact in both directions (S(t) = S(as_of) * 0.5^((t - as_of) / h) for t < as_of
    too), so reads before it stay exact."""
    at = now.replace(microsecond=0)
    stored = [_seconds(r[key]) for r, key in ((row, "scores_as_of"), (item_row, "state_as_of")) if r]
    latest = max((s for s in stored if s is not None), default=None)
    if latest is not None and latest >= at.timestamp():
        at = dt.datetime.fromtimestamp(math.floor(latest) + 1, dt.UTC)
    return at


def fold_events(
    row: Mapping | None,
    events: Iterable[tuple[str, str, dt.datetime]],
    params: KindParameters,
    now: dt.datetime,
    max_categories: int = MAX_CATEGORIES,
) -> dict:
    """A user's feature row at ``now``: the stored row decayed from its ``scores_as_of`` plus ``events``
    ((category_id, event_type, ts) triples). ``row`` None or empty means a user without a profile."""
    now_s = now.timestamp()
    kinds: dict[tuple[str, str], list[float]] = {}  # kind -> [score, half_life]
    remainder, last_event, count = 0.0, None, 0
    if row and row.get("kind_category_ids") is not None:
        elapsed = (now_s - _seconds(row["scores_as_of"])) / 86400.0  # exact both ways (fold_instant)
        for category, kind, score, half_life in zip(
            row["kind_category_ids"], row["kind_event_types"], row["kind_scores"], row["kind_half_lives"]
        ):
            factor = 1.0 if math.isnan(half_life) else 0.5 ** (elapsed / half_life)
            kinds[(category, kind)] = [score * factor, half_life]
        # interest in categories beyond the kept top ones: decayed with the default ('*', '*') parameters
        default = params.half_life("*", "*") if len(params.parameters) else math.nan
        kept = sum(row["kind_scores"])
        remainder = max((row["total_interest"] or 0.0) - kept, 0.0) * (
            1.0 if math.isnan(default) else 0.5 ** (elapsed / default)
        )
        last_event, count = _seconds(row.get("last_event_ts")), int(row.get("event_count") or 0)
    for category, kind, ts in events:
        entry = kinds.setdefault((category, kind), [0.0, params.half_life(category, kind)])
        entry[0] += params.contribution(category, kind, (now_s - ts.timestamp()) / 86400.0)
        last_event = max(last_event or -math.inf, ts.timestamp())
        count += 1
    totals: dict[str, float] = {}
    for (category, _), (score, _) in kinds.items():
        totals[category] = totals.get(category, 0.0) + score
    top = sorted(totals.items(), key=lambda pair: (-pair[1], pair[0]))[:max_categories]
    rank = {category: position for position, (category, _) in enumerate(top)}
    kept_kinds = sorted((k for k in kinds if k[0] in rank), key=lambda k: (rank[k[0]], k[1]))
    as_of = dt.datetime.fromtimestamp(now_s, dt.UTC)
    return {
        "category_ids": [c for c, _ in top],
        "interest_scores": [s for _, s in top],
        "total_interest": sum(s for s, _ in kinds.values()) + remainder,
        "event_count": count,
        "category_count": max(len(totals), int(row.get("category_count") or 0) if row else 0),
        "last_event_ts": dt.datetime.fromtimestamp(last_event, dt.UTC) if last_event else None,
        "kind_category_ids": [k[0] for k in kept_kinds],
        "kind_event_types": [k[1] for k in kept_kinds],
        "kind_scores": [kinds[k][0] for k in kept_kinds],
        "kind_half_lives": [kinds[k][1] for k in kept_kinds],
        "scores_as_of": as_of,
        "as_of": as_of,
    }


class OnlineUpdater:
    """Folds accepted events into the online store of ``store`` (a feast.FeatureStore): each user's interest row
    (``fold_events``) and item-ranker state row (``interest_decay.online.item_state.fold_item_events``)."""

    def __init__(
        self, store, params: KindParameters, target_types: Sequence[str] = ("purchase",), schema: str = "analytics"
    ):
        self.store = store
        self.params = params
        self.target_types = tuple(target_types)
        self.schema = schema  # the dbt schema: staged events, to count each event once (new_events)
        self._lock = threading.Lock()  # read-modify-write of a user's row: one batch at a time per process

    @classmethod
    def from_database(cls, store, conn, schema: str) -> OnlineUpdater:
        """The decay parameters and event weights of the marts; purchases are the ranker's target where the
        staged events have any, else every event type (as ``models.harness.ranking.target_types``)."""
        purchases = conn.execute(
            f"select exists (select from {schema}.stg_behaviour__events where event_type = 'purchase')"
        ).fetchone()[0]
        types = ("purchase",) if purchases else EVENT_TYPES
        return cls(store, KindParameters.from_database(conn, schema), types, schema)

    def _online_rows(self, view: str, names: Sequence[str], marker: str, user_ids: list[str]) -> dict:
        response = self.store.get_online_features(
            features=[f"{view}:{name}" for name in names], entity_rows=[{"user_id": u} for u in user_ids]
        ).to_dict()
        rows = {}
        for position, user in enumerate(user_ids):
            row = {name: response[name][position] for name in names}
            rows[user] = row if row[marker] is not None else None
        return rows

    def current_rows(self, user_ids: list[str]) -> dict[str, dict | None]:
        return self._online_rows(FEATURE_VIEW, ONLINE_FEATURES, "scores_as_of", user_ids)

    def current_item_rows(self, user_ids: list[str]) -> dict[str, dict | None]:
        return self._online_rows(item_state.FEATURE_VIEW, item_state.ROW_FIELDS, "state_as_of", user_ids)

    def apply(
        self,
        events: pd.DataFrame,
        now: dt.datetime | None = None,
        base_rows: Mapping[str, dict | None] | None = None,
        base_item_rows: Mapping[str, dict | None] | None = None,
    ) -> int:
        """Fold ``events`` (pseudonymised user_id, item_id, category_id, event_type, ts as aware datetimes) into
        the online rows of their users (or into ``base_rows`` / ``base_item_rows``, one per user, when given);
        returns how many users were updated."""
        if events.empty:
            return 0
        now = now or dt.datetime.now(dt.UTC)
        with self._lock:
            users = sorted(events["user_id"].unique())
            current = self.current_rows(users) if base_rows is None else {u: base_rows.get(u) for u in users}
            current_items = (
                self.current_item_rows(users) if base_item_rows is None else {u: base_item_rows.get(u) for u in users}
            )
            rows, item_rows = [], []
            for user, group in events.groupby("user_id", sort=True):
                at = fold_instant(now, current[user], current_items[user])
                triples = zip(group["category_id"], group["event_type"], group["ts"])
                rows.append({"user_id": user, **fold_events(current[user], triples, self.params, at)})
                quads = list(zip(group["item_id"], group["category_id"], group["event_type"], group["ts"]))
                folded = item_state.fold_item_events(current_items[user], quads, at, self.target_types)
                item_rows.append({"user_id": user, **folded, "as_of": folded["state_as_of"]})
            self.store.push(PUSH_SOURCE, pd.DataFrame(rows))
            self.store.push(item_state.PUSH_SOURCE, pd.DataFrame(item_rows))
        return len(rows)


@dataclass(frozen=True)
class BatchResult:
    load_id: int
    duplicate_batch: bool  # True: this exact batch was stored before; nothing was added
    reasons: list[str | None]  # per event: None = accepted, else the reject reason
    users_updated: int


USER_LOCK = "interest_decay.online_user:"  # + pseudonym: one batch at a time folds a user's online row
KEY_COLUMNS = ("user_id", "item_id", "category_id", "event_type", "ts", "value")  # staging's duplicate key


def event_keys(events: pd.DataFrame) -> list[str]:
    """A key per typed event (pseudonymised ``user_id``): equal exactly when staging calls two events
    duplicates (the same user, item, category, type, instant and value)."""
    micros = events["ts"].astype("datetime64[us, UTC]").astype("int64")
    values = [None if v != v else float(v) + 0.0 for v in events["value"]]  # -0.0 == 0.0, as in float8
    rows = zip(events["user_id"], events["item_id"], events["category_id"], events["event_type"], micros, values)
    return [hashlib.sha256(json.dumps(list(r), default=int).encode()).hexdigest() for r in rows]


def new_events(conn, schema: str, events: pd.DataFrame, load_id: int) -> pd.DataFrame:
    """The events (typed, pseudonymised) that no earlier load holds, each once: leaves out copies within
    ``events``, events already staged and events of live batches not yet staged; records the rest in
    ``raw.live_event_keys`` (in the caller's transaction: a concurrent batch with the same event waits for
    it and then finds the key)."""
    if events.empty:
        return events
    events = events.assign(key=event_keys(events)).drop_duplicates("key")
    if conn.execute("select to_regclass(%s)", (f"{schema}.stg_behaviour__events",)).fetchone()[0] is not None:
        staged = conn.execute(
            f"select user_id, item_id, category_id, event_type, event_ts as ts, value::float8 as value "
            f"from {schema}.stg_behaviour__events where (event_ts, user_id) in "
            f"(select * from unnest(%s::timestamptz[], %s::text[]))",
            (list(events["ts"]), list(events["user_id"])),
        ).fetchall()
        if staged:
            seen = set(event_keys(pd.DataFrame(staged, columns=list(KEY_COLUMNS))))
            events = events[~events["key"].isin(seen)]
    fresh = conn.execute(
        "insert into raw.live_event_keys (event_key, load_id) select key, %s from unnest(%s::text[]) as key "
        "on conflict do nothing returning event_key",
        (load_id, list(events["key"])),
    ).fetchall()
    return events[events["key"].isin({key for (key,) in fresh})].drop(columns="key")


def accept_batch(
    conn,
    updater: OnlineUpdater | None,
    events: list[Mapping],
    pseudonym_key: str,
    received_at: dt.datetime | None = None,
    source: str = "api:/events",
    lock_timeout_s: float | None = None,
) -> BatchResult:
    """Check, store (one raw load) and fold one batch of events, in one transaction; see the module docstring.
    The raw tables must exist (``interest_decay.events.ingest.ensure_raw_schema``, once per process)."""
    import pyarrow as pa

    from interest_decay.events.ingest import load_table
    from interest_decay.events.pseudonym import pseudonymise

    received_at = received_at or dt.datetime.now(dt.UTC)
    typed, reasons = check_events(events, received_at)

    def as_text() -> tuple[pa.Table, list[str]]:
        def raw(value) -> bytes | None:  # bytes: a lone surrogate is stored escaped (ingest.storable)
            text = _field(value)
            if text is None:
                return None
            try:  # the bytes of a file row `make push` decoded with surrogateescape
                return text.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:  # a lone surrogate sent in JSON
                return text.encode("utf-8", "surrogatepass")

        return pa.table({c: pa.array([raw(e.get(c)) for e in events], pa.binary()) for c in EVENT_COLUMNS}), []

    with conn.transaction():
        load = load_table(conn, as_text, source=source, sha=batch_sha256(events), lock_timeout_s=lock_timeout_s)
        updated = 0
        if not load.skipped and updater is not None:
            accepted = typed[[reason is None for reason in reasons]]
            accepted = accepted.assign(user_id=[pseudonymise(u, pseudonym_key) for u in accepted["user_id"]])
            for user in sorted(set(accepted["user_id"])):  # sorted: two batches never wait for each other in a cycle
                conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (USER_LOCK + user,))
            fresh = new_events(conn, updater.schema, accepted, load.load_id)
            frame = fresh[["user_id", "item_id", "category_id", "event_type", "ts"]].astype(
                {c: object for c in ("user_id", "item_id", "category_id", "event_type")}
            )
            updated = updater.apply(frame, now=received_at)
    return BatchResult(load.load_id, load.skipped, reasons, updated)


def main(argv: list[str] | None = None) -> None:
    import argparse
    from pathlib import Path

    import psycopg

    from interest_decay import config as settings
    from interest_decay.events.ingest import ensure_raw_schema, read_events
    from interest_decay.events.pseudonym import pseudonym_key
    from interest_decay.events.schema import EventSchemaError

    parser = argparse.ArgumentParser(
        prog="python -m interest_decay.online.realtime",
        description="Push an events file as live events: check each event, store the batch as one raw load "
        "and fold the accepted events into the online store at once (what POST /events does).",
    )
    parser.add_argument("path", type=Path, help="events file (.csv or .parquet) in the project's event schema")
    args = parser.parse_args(argv)
    from feast import FeatureStore

    try:
        table, bad_rows = read_events(args.path)
    except (EventSchemaError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")
    if bad_rows:
        parser.exit(
            2,
            f"error: {len(bad_rows)} row(s) of {args.path} cannot be split into columns "
            f"(first: {bad_rows[0]}); load such files with `make ingest`\n",
        )
    records = [  # CSV fields come as bytes; undecodable ones stay visible to check_event as surrogates
        {c: v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v for c, v in record.items()}
        for record in table.to_pylist()
    ]
    store = FeatureStore(repo_path=str(settings.feast_repo_path()))
    with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
        ensure_raw_schema(conn)
        updater = OnlineUpdater.from_database(store, conn, settings.dbt_schema())
        result = accept_batch(conn, updater, records, pseudonym_key(), source=f"push:{args.path.name}")
    rejected = [r for r in result.reasons if r is not None]
    state = (
        "already stored, nothing added"
        if result.duplicate_batch
        else (
            f"{len(records) - len(rejected):,} accepted, {len(rejected):,} rejected, "
            f"{result.users_updated:,} users updated online"
        )
    )
    print(f"{args.path.name}: load {result.load_id}: {state}")
    for reason, count in pd.Series(rejected, dtype=object).value_counts().items():
        print(f"  rejected {count:,}: {reason}")


if __name__ == "__main__":
    main()
