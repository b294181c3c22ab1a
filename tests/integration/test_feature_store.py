"""The online store is exact at request time, sees live events at once, and training sets do not leak.

Every test runs on both Feast setups, each with its own database: the embedded default (file registry,
SQLite online store) and the one for several processes (``FEAST_ONLINE_STORE=redis``: Feast's SQL registry
in PostgreSQL, Redis online store; ``make test`` starts a private redis-server):
- materialize the mart as of D0, read through the on-demand view at D0 + 1 d and D0 + 2 d, and compare
  with the mart recomputed as of those days (no new events): equal to 1e-9 relative;
- send a batch of live events (some malformed) through ``accept_batch``: the rejects carry the reasons
  dbt staging gives them, and the online row read right after equals the mart recomputed with them;
- ``get_historical_features`` gives each label the row of its own day, never a later one.
"""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from interest_decay.events.ingest import ingest
from interest_decay.events.synthetic import generate, write_events
from tests.conftest import PROJECT_ROOT, TEST_PSEUDONYM_KEY, recreate_database, stack_env
from tests.integration.test_incremental import dbt

pytestmark = pytest.mark.postgres
NAME = "test_feature_store"
D0 = dt.datetime(2026, 5, 10, tzinfo=dt.UTC)
FITTED = [("2", "*", "exponential", 2.0), ("3", "purchase", "exponential", 0.5), ("4", "view", "exponential", 30.0)]
MART_SQL = "select user_id, category_id, interest from analytics.user_category_interest where as_of = %s order by 1, 2"


def day(offset: int) -> str:
    return f"{D0 + dt.timedelta(days=offset):%Y-%m-%d}"


def run_day(env, offset: int):
    dbt(
        env,
        "run",
        "--select",
        "+user_interest_features",
        "user_category_interest",
        "+churn_features",
        "+item_popularity",
        "+user_item_signal_state",
        "--vars",
        f'{{as_of: "{day(offset)}", as_of_start: "{day(offset)}"}}',
    )


def mart(conninfo, offset: int) -> dict[tuple[str, str], float]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(MART_SQL, (D0 + dt.timedelta(days=offset),)).fetchall()
    return {(user, category): interest for user, category, interest in rows}


def online(store, users, request_ts) -> dict[tuple[str, str], float]:
    response = store.get_online_features(
        features=store.get_feature_service("recommender_v1"),
        entity_rows=[{"user_id": u, "request_ts": request_ts} for u in users],
    ).to_dict()
    return {
        (user, category): score
        for user, categories, scores in zip(users, response["category_ids_now"], response["interest_scores_now"])
        for category, score in zip(categories or [], scores or [])
    }


def item_state_tables(rows: dict, at: dt.datetime) -> list[pd.DataFrame]:
    """The item ranker's state rows (by user) moved to ``at``, as (pairs, users, categories) tables."""
    from interest_decay.online.item_state import fold_item_events, tables_from_rows

    pairs, users, categories = tables_from_rows({u: fold_item_events(row, [], at) for u, row in rows.items() if row})
    return [
        pairs.sort_values(["user_id", "item_id"], ignore_index=True),
        users.reset_index().sort_values("user_id", ignore_index=True),
        categories.sort_values(["user_id", "category_id"], ignore_index=True),
    ]


def assert_same_item_state(store, conninfo, users, offset: int, at: dt.datetime):
    """The online item-ranker rows equal the mart's of day ``offset``, both moved to ``at`` (1e-9)."""
    from interest_decay.online.item_state import ROW_FIELDS
    from interest_decay.online.realtime import OnlineUpdater

    online_rows = OnlineUpdater(store, None).current_item_rows(list(users))
    # read as /recommend reads it: through the feature service, beside the interest features (no name may clash)
    response = store.get_online_features(
        features=store.get_feature_service("item_ranker_v1"),
        entity_rows=[{"user_id": u, "request_ts": at} for u in users],
    ).to_dict()
    served_rows = {u: {f: response[f][i] for f in ROW_FIELDS} for i, u in enumerate(users)}
    served_rows = {u: r if r["state_as_of"] is not None else None for u, r in served_rows.items()}
    with psycopg.connect(conninfo) as conn:
        cursor = conn.execute(
            "select user_id, as_of as state_as_of, * from analytics.user_item_signal_state where as_of = %s",
            (D0 + dt.timedelta(days=offset),),
        )
        names = [d.name for d in cursor.description]
        mart_rows = {r[0]: {f: r[names.index(f)] for f in ROW_FIELDS} for r in cursor.fetchall()}
    assert sum(r is not None for r in online_rows.values()) == len(mart_rows) > 50
    tables = zip(
        item_state_tables(online_rows, at), item_state_tables(served_rows, at), item_state_tables(mart_rows, at)
    )
    for got, served, want in tables:
        pd.testing.assert_frame_equal(got, served)
        assert got.shape == want.shape and len(want)
        for column in want.columns:
            if want[column].dtype == object:
                assert got[column].tolist() == want[column].tolist(), column
            elif pd.api.types.is_datetime64_any_dtype(want[column]):
                delta = (got[column] - want[column]).dt.total_seconds().abs().fillna(0)
                assert delta.max() < 1e-6 and (got[column].isna() == want[column].isna()).all(), column
            else:
                np.testing.assert_allclose(got[column], want[column], rtol=1e-9, err_msg=column)


def assert_equal_maps(got: dict, want: dict):
    assert set(got) == set(want) and len(want) > 50
    keys = sorted(want)
    np.testing.assert_allclose([got[k] for k in keys], [want[k] for k in keys], rtol=1e-9)


def online_store_env(store: str) -> dict[str, str]:
    """Environment that selects ``store``; for Redis a private, emptied database (skip when unreachable)."""
    if store == "sqlite":
        return {}
    import redis

    host, port, db = os.environ.get("REDIS_HOST", "127.0.0.1"), int(os.environ.get("REDIS_PORT", "56379")), 15
    password = os.environ.get("REDIS_PASSWORD") or None
    try:
        redis.Redis(host=host, port=port, db=db, password=password).flushdb()
    except redis.exceptions.ConnectionError as error:
        pytest.skip(f"Redis is not reachable on {host}:{port} ({error}); `make test` starts it with infra/redis.sh")
    return {
        "FEAST_FS_YAML_FILE_PATH": str(PROJECT_ROOT / "feature_repo" / "feature_store.redis.yaml"),
        "REDIS_HOST": host,
        "REDIS_PORT": str(port),
        "REDIS_DB": str(db),
    }


def test_the_private_redis_answers_only_with_its_password():
    """infra/redis.sh starts Redis with the generated REDIS_PASSWORD (infra/env.sh): a client without it gets no
    data, and the password is in no process's command line."""
    import redis

    host, port = os.environ.get("REDIS_HOST", "127.0.0.1"), int(os.environ.get("REDIS_PORT", "56379"))
    password = os.environ.get("REDIS_PASSWORD")
    try:
        redis.Redis(host=host, port=port, password=password).ping()
    except redis.exceptions.ConnectionError as error:
        pytest.skip(f"Redis is not reachable on {host}:{port} ({error}); `make test` starts it with infra/redis.sh")
    assert password and len(password) == 64
    with pytest.raises(redis.exceptions.AuthenticationError, match="authenticat"):
        redis.Redis(host=host, port=port).get("anything")
    assert not any(password.encode() in line for line in command_lines())


def command_lines() -> list[bytes]:
    """The command line of every process (those that end while read are left out)."""
    lines = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(path.read_bytes())
        except OSError:
            continue
    return lines


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def stack(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"feature_store_{request.param}")
    name = f"{NAME}_{request.param}"
    store_env = online_store_env(request.param)
    conninfo = recreate_database(name)
    env = {**stack_env(tmp / "state", name), **store_env}
    dbt(env, "seed")
    dbt(env, "run", "--select", "int_decay_parameters")
    with psycopg.connect(conninfo) as conn:
        conn.cursor().executemany(
            "insert into params.decay_parameters_fitted (category_id, event_type, family, half_life_days) "
            "values (%s, %s, %s, %s)",
            FITTED,
        )
    events = generate(6_000, n_users=60, n_categories=6, days=20, end=D0, seed=7)
    ingest([write_events(events, tmp / "history.csv")], conninfo)
    run_day(env, 0)
    feast = [
        str(PROJECT_ROOT / ".venv/bin/feast")
        if (PROJECT_ROOT / ".venv/bin/feast").exists()
        else os.path.join(os.path.dirname(sys.executable), "feast"),
        "-c",
        str(PROJECT_ROOT / "feature_repo"),
        "apply",
    ]
    applied = subprocess.run(feast, env=env, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    with pytest.MonkeyPatch.context() as patch:
        for key in ("PGDATABASE", "FEAST_REGISTRY_PATH", "FEAST_ONLINE_PATH", *store_env):
            patch.setenv(key, env[key])
        from feast import FeatureStore

        from interest_decay.online.materialization import materialize

        store = FeatureStore(repo_path=str(PROJECT_ROOT / "feature_repo"))
        assert materialize(store, D0, days=3, chunk_days=2) == 2  # a 3-day backfill in 2-day chunks
        users = sorted({u for u, _ in mart(conninfo, 0)})
        yield conninfo, env, store, users, tmp


def test_online_interest_is_decayed_exactly_to_the_request_time(stack):
    conninfo, env, store, users, _ = stack
    assert_equal_maps(online(store, users, D0), mart(conninfo, 0))
    for offset in (1, 2):  # no new events: the mart recomputed at D0 + offset is pure decay of D0
        run_day(env, offset)
        assert_equal_maps(online(store, users, D0 + dt.timedelta(days=offset)), mart(conninfo, offset))


def test_churn_inputs_online_equal_the_models_features_at_request_time(stack):
    """churn_v1 at D0 + Δ (the mart as of D0 moved to the request time) equals models.pipeline.churn.user_features
    computed from the staged events at cutoff D0 + Δ: training and serving see the same numbers."""
    from models.pipeline.churn import user_features
    from models.pipeline.churn_data import STAGED_EVENT_COLUMNS, staged_frame

    conninfo, _, store, users, _ = stack
    with psycopg.connect(conninfo) as conn:
        events = staged_frame(
            conn.execute(f"select {', '.join(STAGED_EVENT_COLUMNS)} from analytics.stg_behaviour__events").fetchall()
        )
    half_lives = [7, 30, 90]
    for request_ts in (D0, D0 + dt.timedelta(days=1, hours=7)):
        want = user_features(events, pd.Timestamp(request_ts), half_lives)
        response = store.get_online_features(
            features=store.get_feature_service("churn_v1"),
            entity_rows=[{"user_id": u, "request_ts": request_ts} for u in want.index],
        ).to_dict()
        got = pd.DataFrame({c: response[f"{c}_now"] for c in want.columns}, index=want.index)
        assert len(want) == len(users) > 50 and (want["purchase_occasions"] >= 3).sum() > 10
        np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), rtol=1e-9, atol=1e-12)


def test_item_and_category_popularity_read_back_as_in_the_mart(stack):
    conninfo, _, store, _, _ = stack
    with psycopg.connect(conninfo) as conn:
        items = dict(
            conn.execute("select item_id, popularity from analytics.item_popularity where as_of = %s", (D0,)).fetchall()
        )
    response = store.get_online_features(
        features=store.get_feature_service("popularity_v1"),
        entity_rows=[{"item_id": i, "category_id": "1"} for i in sorted(items)],
    ).to_dict()
    assert len(items) > 50
    np.testing.assert_allclose(response["popularity"], [items[i] for i in sorted(items)], rtol=1e-12)
    with psycopg.connect(conninfo) as conn:
        category_1 = conn.execute(
            "select sum(popularity) from analytics.item_popularity where as_of = %s and category_id = '1'", (D0,)
        ).fetchone()[0]
    assert response["category_popularity"][0] == pytest.approx(category_1, rel=1e-12)


def test_unknown_user_gets_nulls(stack):
    _, _, store, _, _ = stack
    response = store.get_online_features(
        features=store.get_feature_service("recommender_v1"), entity_rows=[{"user_id": "nobody", "request_ts": D0}]
    ).to_dict()
    assert response["total_interest"] == [None] and response["total_interest_now"] == [None]
    assert response["category_ids_now"] == [[]]


def identical(a, b) -> bool:
    """Equal values of the same types, lists element by element, NaN equal to NaN."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


def test_the_services_row_reader_equals_get_online_features(stack):
    """/recommend reads its row with ``ServiceReader`` (item_ranker_v1 planned once): value for value and type
    for type what ``get_online_features`` gives, for every user and for one the store has never seen. A
    service with an on-demand view is refused."""
    from interest_decay.online.reader import ServiceReader

    _, _, store, users, _ = stack
    service = store.get_feature_service("item_ranker_v1")
    reader = ServiceReader(store, service)
    for user in [*users, "nobody"]:
        response = store.get_online_features(features=service, entity_rows=[{"user_id": user}]).to_dict()
        want, got = {name: values[0] for name, values in response.items()}, reader.row(user)
        assert set(got) == set(want)
        assert all(identical(got[name], want[name]) for name in want), user
    assert len(users) > 50 and all(reader.row(user)["item_ids"] for user in users)
    assert reader.row("nobody")["state_as_of"] is None
    with pytest.raises(ValueError, match="on-demand"):
        ServiceReader(store, store.get_feature_service("recommender_v1"))


def test_live_events_are_visible_at_once_and_match_the_mart(stack):
    from interest_decay.config import dbt_schema
    from interest_decay.online.realtime import OnlineUpdater, accept_batch

    conninfo, env, store, users, _ = stack
    received = D0 + dt.timedelta(days=2)
    live = generate(300, n_users=60, n_categories=6, days=2, end=received, seed=8)
    records = [{**row, "ts": row["ts"].isoformat()} for row in live.to_dict("records")]
    records += [
        {"user_id": "", "item_id": "i1", "category_id": "1", "event_type": "view", "ts": day(1)},
        {"user_id": "u1", "item_id": "i1", "category_id": "1", "event_type": "teleport", "ts": day(1)},
        {"user_id": "u1", "item_id": "i1", "category_id": "1", "event_type": "view", "ts": "yesterday"},
    ]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        updater = OnlineUpdater.from_database(store, conn, dbt_schema())
        result = accept_batch(conn, updater, records, TEST_PSEUDONYM_KEY, received_at=received)
        again = accept_batch(conn, updater, records, TEST_PSEUDONYM_KEY, received_at=received)
    assert result.reasons[: len(live)] == [None] * len(live)
    assert result.reasons[len(live) :] == [
        "missing user_id",
        'unknown event_type "teleport"',
        'unparseable timestamp "yesterday"',
    ]
    assert again.duplicate_batch and again.load_id == result.load_id and again.users_updated == 0
    got = online(store, users, received)

    run_day(env, 2)  # the nightly run over the same raw rows
    assert_equal_maps(got, mart(conninfo, 2))
    assert_same_item_state(store, conninfo, users, 2, received)
    with psycopg.connect(conninfo) as conn:
        staged_reasons = [
            r
            for (r,) in conn.execute(
                "select reject_reason from analytics.stg_behaviour__events_checked "
                "where load_id = %s and reject_reason is not null order by row_number",
                (result.load_id,),
            )
        ]
    assert staged_reasons == [r for r in result.reasons if r is not None]


def test_nightly_materialization_keeps_live_events_pushed_after_midnight(stack):
    """Events pushed after midnight D0+2 are not in the mart as of D0+2; materializing that mart must fold
    them back in, so the online row at D0+3 equals the mart as of D0+3 (which counts them)."""
    from interest_decay.config import dbt_schema
    from interest_decay.online.materialization import materialize_and_replay
    from interest_decay.online.realtime import OnlineUpdater, accept_batch

    conninfo, env, store, users, _ = stack
    midnight, received = D0 + dt.timedelta(days=2), D0 + dt.timedelta(days=2, hours=20)
    live = generate(400, n_users=60, n_categories=6, days=1, end=received, seed=9)
    live = live[live["ts"] >= midnight]
    records = [{**row, "ts": row["ts"].isoformat()} for row in live.to_dict("records")]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        updater = OnlineUpdater.from_database(store, conn, dbt_schema())
        accept_batch(conn, updater, records[:100], TEST_PSEUDONYM_KEY, received_at=received)
        run_day(env, 2)  # the nightly run stages the first batch; the second arrives after it
        accept_batch(conn, updater, records[100:], TEST_PSEUDONYM_KEY, received_at=received + dt.timedelta(minutes=1))
        result = materialize_and_replay(
            store, conn, dbt_schema(), midnight, TEST_PSEUDONYM_KEY, now=received + dt.timedelta(minutes=5)
        )
    assert result["replayed_events"] == len(records) > 150
    run_day(env, 3)
    assert_equal_maps(online(store, users, D0 + dt.timedelta(days=3)), mart(conninfo, 3))
    assert_same_item_state(store, conninfo, users, 3, D0 + dt.timedelta(days=3))


def test_training_rows_never_come_from_after_the_label(stack):
    _, env, store, users, _ = stack
    run_day(env, 1)
    labels = pd.DataFrame(
        {"user_id": users[:20], "event_timestamp": [D0 + dt.timedelta(days=1, hours=h) for h in range(20)]}
    )
    rows = store.get_historical_features(entity_df=labels, features=["user_interest_fv:scores_as_of"]).to_df()
    assert len(rows) == 20
    as_of = pd.to_datetime(rows["scores_as_of"], utc=True)
    assert (as_of <= pd.to_datetime(rows["event_timestamp"], utc=True)).all()
    assert (as_of == pd.Timestamp(D0 + dt.timedelta(days=1))).all()  # the latest row at or before each label


def test_make_push_cli_folds_a_file_into_the_online_store(stack, capsys):
    from interest_decay.events.pseudonym import pseudonymise
    from interest_decay.online import realtime

    _, _, store, _, tmp = stack
    now = dt.datetime.now(dt.UTC)
    path = tmp / "push.csv"
    pd.DataFrame(
        {
            "user_id": ["pushed", "pushed"],
            "item_id": ["i1", "i2"],
            "category_id": ["5", "5"],
            "event_type": ["cart", "bogus"],
            "ts": [now.isoformat(), now.isoformat()],
        }
    ).to_csv(path, index=False)
    realtime.main([str(path)])
    assert "1 accepted, 1 rejected, 1 users updated online" in capsys.readouterr().out
    scores = online(store, [pseudonymise("pushed", TEST_PSEUDONYM_KEY)], now)
    assert list(scores) == [(pseudonymise("pushed", TEST_PSEUDONYM_KEY), "5")]
    assert scores[(pseudonymise("pushed", TEST_PSEUDONYM_KEY), "5")] == pytest.approx(3.0, rel=1e-6)


def test_registry_lives_where_the_setup_says(stack):
    """Default: a registry file. FEAST_ONLINE_STORE=redis: Feast's SQL registry in PostgreSQL."""
    conninfo, env, _, _, _ = stack
    with psycopg.connect(conninfo) as conn:
        in_postgres = conn.execute("select to_regclass('public.feature_views') is not null").fetchone()[0]
        views = [name for (name,) in conn.execute("select feature_view_name from feature_views")] if in_postgres else []
    if "FEAST_FS_YAML_FILE_PATH" in env:
        assert sorted(views) == [
            "category_popularity_fv",
            "churn_features_fv",
            "item_popularity_fv",
            "user_interest_fv",
            "user_item_signals_fv",
        ]
    else:
        assert not in_postgres and Path(env["FEAST_REGISTRY_PATH"]).stat().st_size > 0


def test_each_event_counts_once_online_and_concurrent_batches_lose_no_update(stack):
    """500 copies of one event in a batch, events stored by an earlier batch, and batches for the same users
    sent at the same time through two connections and two online updaters (two service workers): the online
    rows equal the mart of the nightly run over the same raw rows, which counts each event once."""
    from concurrent.futures import ThreadPoolExecutor

    from feast import FeatureStore

    from interest_decay.config import dbt_schema
    from interest_decay.online.realtime import OnlineUpdater, accept_batch

    conninfo, env, store, users, _ = stack
    received = D0 + dt.timedelta(days=5)
    live = generate(600, n_users=30, n_categories=6, days=8, end=received, seed=12)
    records = [{**row, "ts": row["ts"].isoformat()} for row in live.to_dict("records")]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        updater = OnlineUpdater.from_database(store, conn, dbt_schema())
        copies = accept_batch(conn, updater, records[:40] + [records[0]] * 500, TEST_PSEUDONYM_KEY, received)
        before = online(store, users, received)
        stored = accept_batch(conn, updater, records[:40] + [records[0]], TEST_PSEUDONYM_KEY, received)
    assert copies.reasons == [None] * 540 and copies.users_updated > 0
    assert not stored.duplicate_batch and stored.users_updated == 0  # every event of it counted already
    assert online(store, users, received) == before

    def send(batch: list[dict]) -> int:
        worker = FeatureStore(repo_path=str(PROJECT_ROOT / "feature_repo"))  # its own store, as a worker has
        with psycopg.connect(conninfo, autocommit=True) as conn:
            result = accept_batch(
                conn, OnlineUpdater.from_database(worker, conn, dbt_schema()), batch, TEST_PSEUDONYM_KEY, received
            )
        return result.users_updated

    batches = [records[40 + i :: 8] for i in range(8)]  # every batch touches most of the same users
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert sum(pool.map(send, batches)) > len(batches)
    got = online(store, users, received)
    items = OnlineUpdater(store, None).current_item_rows(list(users))
    run_day(env, 5)
    assert_equal_maps(got, mart(conninfo, 5))
    # The item-ranker rows: every event counted once (item_events); their day counts and day instants are
    # exact only for events in time order, which concurrent batches are not (interest_decay.online.item_state:
    # the nightly run recounts them), so those are compared by the tests above.
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "select user_id, item_ids, item_events from analytics.user_item_signal_state where as_of = %s",
            (D0 + dt.timedelta(days=5),),
        ).fetchall()
    want = {(u, i): n for u, ids, counts in rows for i, n in zip(ids, counts)}
    got_events = {(u, i): n for u, row in items.items() if row for i, n in zip(row["item_ids"], row["item_events"])}
    assert got_events == want and len(want) > 1000


def test_a_batch_whose_online_update_fails_is_not_stored_and_its_retry_applies_it(stack):
    from interest_decay.config import dbt_schema
    from interest_decay.online.realtime import OnlineUpdater, accept_batch

    conninfo, _, store, users, _ = stack
    received = D0 + dt.timedelta(days=5, hours=6)
    records = [
        {"user_id": "retry", "item_id": f"i{i}", "category_id": "2", "event_type": "view", "ts": day(5)}
        for i in range(3)
    ]

    class OnlineStoreDown(OnlineUpdater):
        def apply(self, *args, **kwargs):
            raise ConnectionError("online store not reachable")

    with psycopg.connect(conninfo, autocommit=True) as conn:
        loads = conn.execute("select count(*) from raw.loads").fetchone()[0]
        down = OnlineStoreDown.from_database(store, conn, dbt_schema())
        with pytest.raises(ConnectionError):
            accept_batch(conn, down, records, TEST_PSEUDONYM_KEY, received)
        assert conn.execute("select count(*) from raw.loads").fetchone()[0] == loads  # nothing stored
        retry = accept_batch(
            conn, OnlineUpdater.from_database(store, conn, dbt_schema()), records, TEST_PSEUDONYM_KEY, received
        )
    assert not retry.duplicate_batch and retry.users_updated == 1
    from interest_decay.events.pseudonym import pseudonymise

    user = pseudonymise("retry", TEST_PSEUDONYM_KEY)
    assert online(store, [user], received)[(user, "2")] > 0
