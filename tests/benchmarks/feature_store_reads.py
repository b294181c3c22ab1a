"""Online reads of the feature-store benchmark (``bench_feature_store``): Feast's SDK with the feature service and
with the feature view only, the floor (the SELECT Feast's SQLite store runs, through plain sqlite3) and ``feast serve``
over HTTP, each timed the same way.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np

from interest_decay.online.realtime import ONLINE_FEATURES
from tests.benchmarks.stack import (
    BIN,
    PROJECT_ROOT,
    background,
    free_port,
    log,
    summarize,
    time_calls,
)

FEATURE_SERVICE = "recommender_v1"
FV = "user_interest_fv"
FV_FEATURES = ONLINE_FEATURES


def user_batches(rng: np.random.Generator, users: list[str], size: int, count: int) -> list[list[str]]:
    return [list(rng.choice(users, size=size, replace=False)) for _ in range(count)]


def sdk_runs(store, batches: dict[int, list[list[str]]], request_ts: dt.datetime, calls: int) -> dict:
    """Latency of get_online_features with the feature service and with the stored view only."""
    service = store.get_feature_service(FEATURE_SERVICE)
    fv_only = [f"{FV}:{name}" for name in FV_FEATURES]
    out = {}
    for size, rows in batches.items():
        entity_rows = [[{"user_id": u, "request_ts": request_ts} for u in users] for users in rows]
        plain_rows = [[{"user_id": u} for u in users] for users in rows]
        got = store.get_online_features(features=service, entity_rows=entity_rows[0]).to_dict()
        assert all(v is not None for v in got["total_interest_now"]), "a known user came back empty"
        log(f"SDK, feature service {FEATURE_SERVICE}, {size} user(s), {calls:,} calls")
        with_odfv = time_calls(
            lambda i: store.get_online_features(
                features=service, entity_rows=entity_rows[i % len(entity_rows)]
            ).to_dict(),
            calls,
        )
        log(f"SDK, {FV} only, {size} user(s), {calls:,} calls")
        stored = time_calls(
            lambda i: store.get_online_features(
                features=fv_only, entity_rows=plain_rows[i % len(plain_rows)]
            ).to_dict(),
            calls,
        )
        a, b = summarize(with_odfv), summarize(stored)
        out[f"{size}_users"] = {
            "feature_service": a,
            "feature_view_only": b,
            "on_demand_view_cost_p50_ms": a["p50_ms"] - b["p50_ms"],
            "on_demand_view_cost_mean_ms": a["mean_ms"] - b["mean_ms"],
        }
    return out


def raw_floor(online_path: Path, table: str, batches: dict[int, list[list[str]]], calls: int) -> dict:
    """The SELECT the SQLite online store runs, on the same file and keys (keys serialised as Feast does)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    def key(user: str) -> bytes:
        return serialize_entity_key(
            EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=user)]), entity_key_serialization_version=3
        )

    conn = sqlite3.connect(str(online_path), check_same_thread=False)
    out = {}
    try:
        for size, rows in batches.items():
            keys = [[key(u) for u in users] for users in rows]
            sql = (
                f'select entity_key, feature_name, value, event_ts from "{table}" '
                f"where entity_key in ({','.join('?' * size)}) order by entity_key"
            )
            found = conn.execute(sql, keys[0]).fetchall()
            assert len({r[0] for r in found}) == size, "the serialised keys do not match the online table"

            def read(i):
                return conn.execute(sql, keys[i % len(keys)]).fetchall()

            def read_decode(i):
                return [Value.FromString(r[2]) for r in conn.execute(sql, keys[i % len(keys)]).fetchall()]

            log(f"floor: raw SQLite read, {size} user(s)")
            out[f"{size}_users"] = {
                "raw_select": summarize(time_calls(read, calls)),
                "raw_select_and_decode": summarize(time_calls(read_decode, calls)),
                "rows_per_user": len(found) // size,
            }
    finally:
        conn.close()
    return out


def http_runs(
    store, env: dict, work: Path, batches: dict[int, list[list[str]]], request_ts: dt.datetime, calls: int
) -> dict:
    import requests

    port = free_port()
    args = [
        str(BIN / "feast"),
        "-c",
        str(PROJECT_ROOT / "feature_repo"),
        "serve",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "--no-access-log",
    ]
    url = f"http://127.0.0.1:{port}"
    out = {
        "command": f"feast -c feature_repo serve -h 127.0.0.1 -p {port} --no-access-log",  # repo-relative
        "request_ts_format": "Unix seconds (a number; an ISO 8601 string gets a 500 from the on-demand view)",
    }
    with background(args, env, work / "feast-serve.log") as server:
        out["startup_seconds"] = server.wait_http(f"{url}/health", timeout=180)
        session = requests.Session()
        for size, rows in batches.items():
            bodies = [
                {
                    "feature_service": FEATURE_SERVICE,
                    "entities": {"user_id": users, "request_ts": [request_ts.timestamp()] * len(users)},
                }
                for users in rows
            ]
            first = session.post(f"{url}/get-online-features", json=bodies[0], timeout=30)
            if first.status_code != 200:
                raise RuntimeError(f"feast serve answered {first.status_code}: {first.text[:2000]}")
            payload = first.json()
            names = payload["metadata"]["feature_names"]
            total = payload["results"][names.index("total_interest_now")]["values"]
            want = store.get_online_features(
                features=store.get_feature_service(FEATURE_SERVICE),
                entity_rows=[{"user_id": u, "request_ts": request_ts} for u in rows[0]],
            ).to_dict()["total_interest_now"]
            np.testing.assert_allclose(total, want, rtol=1e-9, err_msg="feast serve and the SDK disagree")

            def call(i):
                response = session.post(f"{url}/get-online-features", json=bodies[i % len(bodies)], timeout=30)
                response.raise_for_status()
                return response.content

            log(f"feast serve over HTTP, {size} user(s), {calls:,} calls")
            out[f"{size}_users"] = summarize(time_calls(call, calls))
        session.close()
    return out
