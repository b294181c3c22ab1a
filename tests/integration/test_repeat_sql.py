"""The repeat-purchase family in the marts against the offline harness's Python (models/fitting/repeat_decay.py):
user_item_repeat_interest equals ``repeat_decay.interest`` to 1e-9 with fitted per-item parameters; the bounded
state user_item_purchase_days built in two loads equals a full refresh, and re-running changes nothing."""

import datetime as dt

import numpy as np
import pandas as pd
import psycopg
import pytest

from interest_decay.events.ingest import ingest
from interest_decay.events.synthetic import write_events
from models.fitting import repeat_decay
from models.fitting.fit_decay import REPEAT, store
from tests.conftest import dbt, stack_env, staged_events

pytestmark = pytest.mark.postgres
AS_OF = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
MAX_PURCHASES, WINDOW_DAYS = 5, 120  # small, so the cap and the window both bite
VARS = (
    f'{{as_of: "{AS_OF:%Y-%m-%d}", as_of_start: "{AS_OF - dt.timedelta(days=2):%Y-%m-%d}", '
    f"repeat_max_purchases: {MAX_PURCHASES}, repeat_window_days: {WINDOW_DAYS}}}"
)
MODELS = "+stg_behaviour__events int_repeat_parameters user_item_purchase_days user_item_repeat_interest"


def purchases(seed: int) -> pd.DataFrame:
    """20 users buying 6 items again and again over 200 days (several times on some days), plus views."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(20):
        for i in range(6):
            gap = 5 + 10 * i
            t = AS_OF - dt.timedelta(days=200) + dt.timedelta(days=float(rng.uniform(0, gap)))
            while t < AS_OF:
                for _ in range(1 + int(rng.random() < 0.2)):  # a second purchase the same day now and then
                    rows.append((f"u{u}", f"i{i}", f"c{i % 2}", "purchase", t, 1.0))
                    t += dt.timedelta(hours=float(rng.uniform(0.1, 3)))
                rows.append((f"u{u}", f"i{i}", f"c{i % 2}", "view", t, None))
                t += dt.timedelta(days=float(max(rng.normal(gap, gap / 4), 1.0)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type", "ts", "value"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).dt.floor("s")
    return frame[frame["ts"] < AS_OF].sort_values("ts", ignore_index=True)


@pytest.fixture(scope="module")
def stack(fresh_db, tmp_path_factory):
    name, conninfo = fresh_db
    env = stack_env(tmp_path_factory.mktemp("state"), name)
    events = purchases(8)
    folder = tmp_path_factory.mktemp("events")
    middle = AS_OF - dt.timedelta(days=60)
    # two loads; the second also brings late purchases of earlier days
    late = events["ts"].lt(middle) & (np.arange(len(events)) % 7 == 0)
    ingest(
        [write_events(events[events["ts"].lt(middle) & ~late], folder / "first" / "events.parquet").parent], conninfo
    )
    dbt(env, "seed")
    dbt(env, "run", "--select", MODELS, "--vars", VARS)
    ingest(
        [write_events(events[events["ts"].ge(middle) | late], folder / "second" / "events.parquet").parent], conninfo
    )
    dbt(env, "run", "--select", MODELS, "--vars", VARS)
    staged = staged_events(conninfo)  # as staged: pseudonymised users
    assert len(staged) == len(events)
    return env, conninfo, staged


def state(conninfo) -> dict:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("select user_id, item_id, purchase_times from analytics.user_item_purchase_days").fetchall()
    return {(u, i): list(times) for u, i, times in rows}


def test_incremental_state_equals_a_full_refresh_and_a_rerun_changes_nothing(stack):
    env, conninfo, events = stack
    incremental = state(conninfo)
    assert max(len(t) for t in incremental.values()) == MAX_PURCHASES  # the cap bites
    dbt(env, "run", "--select", "user_item_purchase_days", "--vars", VARS)
    assert state(conninfo) == incremental
    dbt(env, "run", "--select", "user_item_purchase_days", "--full-refresh", "--vars", VARS)
    full = state(conninfo)
    assert full == incremental
    occasions = repeat_decay.purchase_occasions(events, ["purchase"])
    latest = occasions.groupby(["user_id", "item_id"]).tail(MAX_PURCHASES)
    assert len(full) == latest.groupby(["user_id", "item_id"]).ngroups
    user = events["user_id"].iloc[0]
    assert full[(user, "i2")] == latest[(latest.user_id == user) & (latest.item_id == "i2")]["ts"].tolist()


def test_repeat_interest_mart_equals_the_python_harness(stack):
    env, conninfo, events = stack
    items = pd.Index(np.sort(events["item_id"].unique()))
    params = repeat_decay.fit(
        events,
        items,
        half_life_days=12.0,
        bump_weight=0.4,
        window_days=WINDOW_DAYS,
        max_purchases=MAX_PURCHASES,
        prior_gaps=3.0,
    )
    params.bumps = params.bumps.drop("i5")  # an item without a row takes the shop's row
    with psycopg.connect(conninfo) as conn:
        store(conn, params.table(), AS_OF, target=REPEAT)
    dbt(env, "run", "--select", "int_repeat_parameters user_item_repeat_interest", "--vars", VARS)
    occasions = repeat_decay.purchase_occasions(events, ["purchase"])
    for day in (AS_OF - dt.timedelta(days=2), AS_OF):
        want = repeat_decay.interest(occasions, params, pd.Timestamp(day)).set_index(["user_id", "item_id"])["interest"]
        with psycopg.connect(conninfo) as conn:
            got = pd.DataFrame(
                conn.execute(
                    "select user_id, item_id, repeat_interest from analytics.user_item_repeat_interest where as_of = %s",
                    (day,),
                ).fetchall(),
                columns=["user_id", "item_id", "interest"],
            ).set_index(["user_id", "item_id"])["interest"]
        assert len(got) == len(want) > 100
        got = got.reindex(want.index)
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9)
    # the fitted bumps moved the scores: not the plain count of purchase days
    assert not np.allclose(want.to_numpy(), np.round(want.to_numpy()))
