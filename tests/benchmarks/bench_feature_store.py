"""Feature-store benchmark: online reads through Feast (SDK and `feast serve`) and the push path, each
against a floor measured in the same run. Writes bench-results/feature_store.json.

Stack: synthetic events -> ingest -> dbt `+user_interest_features` for one day -> `feast apply` ->
materialize, in database ``bench_feature_store`` and a temp state dir (SQLite online store).

- SDK: ``get_online_features`` with the feature service ``recommender_v1`` (stored features + the
  on-demand view that decays them to ``request_ts``) for 1 and 100 random known users, and the same
  with only the ``user_interest_fv`` features (the on-demand view's cost is the difference);
- floor: the SELECT Feast's SQLite store runs, on the same file and keys, with a plain sqlite3
  connection (and the same plus decoding the value protos);
- HTTP: ``feast serve`` POST /get-online-features, 1 and 100 users;
- push: single-event batches through ``interest_decay.online.realtime.accept_batch``, time from the call to
  the first ``get_online_features`` that shows the new score, split into PostgreSQL store, Feast read
  of the current row, Feast push and the read;
- Redis online store: the SDK runs again when ``redis-server`` and the ``redis`` package exist.

Goals (reported, not asserted): 1 user p99 <= 5 ms and 100 users p99 <= 30 ms via the SDK; push
event -> visible p99 < 1 s.

Run: ``python -m tests.benchmarks.bench_feature_store [--events 200000 --users 5000 --calls 2000]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import importlib.util
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import psycopg

from interest_decay.online.materialization import materialize
from tests.benchmarks.feature_store_reads import FEATURE_SERVICE, FV, http_runs, raw_floor, sdk_runs, user_batches
from tests.benchmarks.stack import (
    BIN,
    PROJECT_ROOT,
    RESULTS,
    background,
    build_feature_stack,
    free_port,
    log,
    machine_info,
    ratio,
    summarize,
    today_midnight,
    write_result,
)

DATABASE = "bench_feature_store"
GOALS = {"sdk_1_user_p99_ms": 5.0, "sdk_100_users_p99_ms": 30.0, "push_event_to_visible_p99_ms": 1000.0}


class TimedStore:
    """Stands in for the FeatureStore inside OnlineUpdater, timing its read of the current row and its push."""

    def __init__(self, store):
        self.store = store
        self.last: dict[str, float] = {}

    def get_online_features(self, **kwargs):
        start = time.perf_counter()
        try:
            return self.store.get_online_features(**kwargs)
        finally:
            self.last["feast_read_current_row"] = time.perf_counter() - start

    def push(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.store.push(*args, **kwargs)
        finally:
            self.last["feast_push"] = time.perf_counter() - start


def push_runs(store, conninfo: str, key: str, raw_users: list[str], batches: int, seed: int) -> dict:
    """Single-event batches: time from accept_batch to the read that shows the new score."""
    from interest_decay.config import dbt_schema
    from interest_decay.events.pseudonym import pseudonymise
    from interest_decay.online.realtime import KindParameters, OnlineUpdater, accept_batch

    rng = np.random.default_rng(seed)
    service = store.get_feature_service(FEATURE_SERVICE)
    timed = TimedStore(store)
    splits = defaultdict(list)
    visible, reads_needed, not_visible = [], [], 0
    with psycopg.connect(conninfo, autocommit=True) as conn:
        params = KindParameters.from_database(conn, dbt_schema())
        updater = OnlineUpdater(timed, params)
        weight = params.weights["purchase"]

        def total_now(user: str) -> float:
            row = store.get_online_features(
                features=service, entity_rows=[{"user_id": user, "request_ts": dt.datetime.now(dt.UTC)}]
            ).to_dict()
            return row["total_interest_now"][0] or 0.0

        for i in range(batches + 5):  # the first 5 warm up the connection and caches
            raw = str(rng.choice(raw_users))
            user = pseudonymise(raw, key)
            before = total_now(user)
            now = dt.datetime.now(dt.UTC)
            event = {
                "user_id": raw,
                "item_id": f"bench-{i}",
                "category_id": str(rng.integers(1, 21)),
                "event_type": "purchase",
                "ts": now.isoformat(),
                "value": None,
            }
            timed.last.clear()
            start = time.perf_counter()
            result = accept_batch(conn, updater, [event], key)
            stored = time.perf_counter()
            reads, seen = 0, None
            while time.perf_counter() - start < 5.0:
                read_start = time.perf_counter()
                after = total_now(user)
                reads += 1
                if after >= before + 0.5 * weight:
                    seen = time.perf_counter()
                    break
            if i < 5:
                continue
            if seen is not None:
                splits["read_that_showed_it"].append(seen - read_start)
            assert result.users_updated == 1 and result.reasons == [None], result
            total_accept = stored - start
            online = timed.last.get("feast_read_current_row", 0.0) + timed.last.get("feast_push", 0.0)
            splits["accept_batch"].append(total_accept)
            splits["pg_store_and_checks"].append(total_accept - online)
            splits["feast_read_current_row"].append(timed.last.get("feast_read_current_row", 0.0))
            splits["feast_push"].append(timed.last.get("feast_push", 0.0))
            if seen is None:
                not_visible += 1
            else:
                visible.append(seen - start)
                reads_needed.append(reads)
    return {
        "batches": batches,
        "events_per_batch": 1,
        "event_type": "purchase",
        "visible_when": "total_interest_now (request_ts = now) rises by at least half the purchase weight",
        "event_to_visible": summarize(visible) if visible else None,
        "not_visible_within_5_s": not_visible,
        "reads_until_visible_max": int(max(reads_needed)) if reads_needed else None,
        "split": {name: summarize(values) for name, values in splits.items()},
    }


def redis_check() -> dict | None:
    """None when Redis can be benchmarked, else why not."""
    reasons = []
    if shutil.which("redis-server") is None:
        reasons.append("redis-server is not installed (`which redis-server` finds nothing)")
    if importlib.util.find_spec("redis") is None:
        reasons.append("the `redis` Python package is not installed in the venv")
    return {"skipped": "; ".join(reasons) + "; not installed by the benchmark"} if reasons else None


def redis_runs(env: dict, work: Path, batches, request_ts, calls, day: dt.datetime) -> dict:
    """The SDK runs again with the setup FEAST_ONLINE_STORE=redis selects (feature_repo/feature_store.redis.yaml:
    Redis online store, SQL registry in the stack's database), against a redis-server on a free port."""
    import subprocess

    import redis
    from feast import FeatureStore

    port = free_port()
    redis_env = {
        "FEAST_FS_YAML_FILE_PATH": str(PROJECT_ROOT / "feature_repo" / "feature_store.redis.yaml"),
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(port),
        "REDIS_DB": "0",
        "REDIS_PASSWORD": "",  # this throwaway server asks for none
    }
    env = {**env, **redis_env}
    args = [
        shutil.which("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with background(args, env, work / "redis.log") as redis_server:
        deadline = time.monotonic() + 30
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or redis_server.process.poll() is not None:
                    raise RuntimeError("redis-server did not start:\n" + redis_server.tail()) from None
                time.sleep(0.2)
        applied = subprocess.run(
            [str(BIN / "feast"), "-c", str(PROJECT_ROOT / "feature_repo"), "apply"],
            env=env,
            capture_output=True,
            text=True,
        )
        if applied.returncode:
            raise RuntimeError("feast apply (redis) failed:\n" + applied.stdout[-2000:] + applied.stderr[-2000:])
        saved = {key: os.environ.get(key) for key in redis_env}
        os.environ.update(redis_env)
        try:
            store = FeatureStore(repo_path=str(PROJECT_ROOT / "feature_repo"))
            materialize(store, day)
            return {"online_store": f"redis 127.0.0.1:{port}", "sdk": sdk_runs(store, batches, request_ts, calls)}
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_feature_store", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=200_000, help="synthetic events (default 200k)")
    parser.add_argument("--users", type=int, default=5_000, help="synthetic users (default 5k)")
    parser.add_argument("--calls", type=int, default=2_000, help="timed calls per measurement (default 2000)")
    parser.add_argument("--batch-users", type=int, default=100, help="users per multi-user read (default 100)")
    parser.add_argument("--push-batches", type=int, default=200, help="single-event push batches (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temp state dir (its path is logged)")
    parser.add_argument("--out", type=Path, default=RESULTS / "feature_store.json")
    args = parser.parse_args(argv)

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-feature-store-"))
    log(f"state in {work}")
    day = today_midnight()
    result: dict = {
        "benchmark": "feature_store",
        "command": "python -m tests.benchmarks.bench_feature_store " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "parameters": {
            "events": args.events,
            "users": args.users,
            "calls": args.calls,
            "batch_users": args.batch_users,
            "push_batches": args.push_batches,
            "seed": args.seed,
            "as_of": f"{day:%Y-%m-%d}",
            "online_store": "sqlite (file in the temp state dir)",
            "feast": importlib.metadata.version("feast"),
        },
        "goals": GOALS,
        "notes": [
            "Latencies are wall-clock per call on a shared 2-core machine, client and server in the same "
            "run; the feature service is fetched once (as the BentoML service does).",
            "Floor: the exact SELECT Feast's SQLite store runs, through a plain sqlite3 connection to the "
            "same file, keys serialised with feast's serialize_entity_key.",
        ],
    }
    try:
        env, conninfo = build_feature_stack(
            work, DATABASE, events=args.events, users=args.users, end=day, seed=args.seed
        )
        for name in ("PGDATABASE", "FEAST_REGISTRY_PATH", "FEAST_ONLINE_PATH", "DECAY_STATE_DIR", "PSEUDONYM_KEY"):
            os.environ[name] = env[name]
        from feast import FeatureStore

        store = FeatureStore(repo_path=str(PROJECT_ROOT / "feature_repo"))
        log("materialize")
        start = time.perf_counter()
        materialize(store, day)
        result["materialize_seconds"] = time.perf_counter() - start
        with psycopg.connect(conninfo) as conn:
            users = [
                u
                for (u,) in conn.execute(
                    "select distinct user_id from analytics.user_interest_features where as_of = %s order by 1", (day,)
                )
            ]
        online_path = Path(env["FEAST_ONLINE_PATH"])
        with sqlite3.connect(str(online_path)) as conn:
            tables = [t for (t,) in conn.execute("select name from sqlite_master where type = 'table'")]
            table = next(t for t in tables if t.endswith(FV))
            online_rows = conn.execute(f'select count(distinct entity_key) from "{table}"').fetchone()[0]
        result["stack"] = {
            "users_in_mart": len(users),
            "online_table": table,
            "online_users": online_rows,
            "online_db_bytes": online_path.stat().st_size,
        }
        log(f"{len(users):,} users in the mart, {online_rows:,} in online table {table}")

        rng = np.random.default_rng(args.seed)
        request_ts = dt.datetime.now(dt.UTC).replace(microsecond=0)  # whole seconds: HTTP sends a number
        batches = {
            1: user_batches(rng, users, 1, 500),
            args.batch_users: user_batches(rng, users, args.batch_users, 200),
        }
        result["sdk"] = sdk_runs(store, batches, request_ts, args.calls)
        result["floor"] = raw_floor(online_path, table, batches, args.calls)
        ratios = {}
        for size_key, sdk in result["sdk"].items():
            raw = result["floor"][size_key]["raw_select"]
            ratios[size_key] = {
                "feature_service_p50_over_raw_p50": ratio(sdk["feature_service"]["p50_ms"], raw["p50_ms"]),
                "feature_service_p99_over_raw_p99": ratio(sdk["feature_service"]["p99_ms"], raw["p99_ms"]),
                "feature_view_only_p50_over_raw_p50": ratio(sdk["feature_view_only"]["p50_ms"], raw["p50_ms"]),
            }
        result["sdk_over_floor"] = ratios

        result["http"] = http_runs(store, env, work, batches, request_ts, args.calls)
        for size_key in ratios:
            result["http"][size_key]["p50_over_raw_p50"] = ratio(
                result["http"][size_key]["p50_ms"], result["floor"][size_key]["raw_select"]["p50_ms"]
            )
            result["http"][size_key]["p50_over_sdk_p50"] = ratio(
                result["http"][size_key]["p50_ms"], result["sdk"][size_key]["feature_service"]["p50_ms"]
            )

        log(f"push path: {args.push_batches} single-event batches")
        raw_users = [f"u{i}" for i in range(args.users)]
        from interest_decay.events.pseudonym import pseudonymise

        known = set(users)
        raw_users = [u for u in raw_users if pseudonymise(u, env["PSEUDONYM_KEY"]) in known]
        result["push"] = push_runs(store, conninfo, env["PSEUDONYM_KEY"], raw_users, args.push_batches, args.seed)

        skipped = redis_check()
        if skipped:
            log(f"redis: {skipped['skipped']}")
            result["redis"] = skipped
        else:
            log("redis online store")
            result["redis"] = redis_runs(env, work, batches, request_ts, args.calls, day)

        sdk1, sdk100 = result["sdk"]["1_users"], result["sdk"][f"{args.batch_users}_users"]
        push = result["push"]["event_to_visible"]
        result["against_goals"] = {
            "sdk_1_user_p99_ms": {
                "measured": sdk1["feature_service"]["p99_ms"],
                "goal": GOALS["sdk_1_user_p99_ms"],
                "met": sdk1["feature_service"]["p99_ms"] <= GOALS["sdk_1_user_p99_ms"],
            },
            "sdk_100_users_p99_ms": {
                "measured": sdk100["feature_service"]["p99_ms"],
                "goal": GOALS["sdk_100_users_p99_ms"],
                "met": sdk100["feature_service"]["p99_ms"] <= GOALS["sdk_100_users_p99_ms"],
            },
            "push_event_to_visible_p99_ms": {
                "measured": push["p99_ms"] if push else None,
                "goal": GOALS["push_event_to_visible_p99_ms"],
                "met": bool(push) and push["p99_ms"] < GOALS["push_event_to_visible_p99_ms"],
            },
        }
        result["wall_seconds"] = time.monotonic() - started
        write_result(args.out, result)
        log(
            "against goals: "
            + ", ".join(
                f"{k} {v['measured']:.2f} (goal {v['goal']}, {'met' if v['met'] else 'NOT met'})"
                for k, v in result["against_goals"].items()
                if v["measured"] is not None
            )
        )
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
