"""The item ranker's user-side state in SQL (dbt mart user_item_signal_state) against the Python that trains the
model (models/pipeline/item_signals.py) to 1e-9; the ranker's signals from the mart row moved to a later instant
against the signals recomputed there; live events folded into a mart row against the tables recomputed with them."""

import datetime as dt

import numpy as np
import pandas as pd
import psycopg
import pytest

from interest_decay.events.ingest import ingest
from interest_decay.events.synthetic import write_events
from interest_decay.online.item_state import ROW_FIELDS, fold_item_events, tables_from_rows
from models.pipeline import item_signals
from models.pipeline.neighbours import Neighbourhood
from tests.conftest import dbt, stack_env, staged_events

pytestmark = pytest.mark.postgres
AS_OF = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
VARS = f'{{as_of: "{AS_OF:%Y-%m-%d}", as_of_start: "{AS_OF:%Y-%m-%d}"}}'


def behaviour(seed: int, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """30 users viewing and buying 12 items over [start, end): several events on some days, two categories for
    one item (its latest decides), an hour or two between events."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(30):
        t = start + dt.timedelta(hours=float(rng.uniform(0, 48)))
        while t < end:
            item = int(rng.integers(12))
            category = f"c{item % 3}" if item != 5 or rng.random() < 0.5 else "c9"
            kind = str(rng.choice(["view", "cart", "fav", "purchase"], p=[0.6, 0.15, 0.05, 0.2]))
            rows.append((f"u{u}", f"i{item}", category, kind, t, 1.0))
            t += dt.timedelta(hours=float(rng.choice([0.5, 2.0, 30.0, 200.0])))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type", "ts", "value"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).dt.floor("s")
    return frame[frame["ts"] < end].sort_values("ts", ignore_index=True)


@pytest.fixture(scope="module")
def stack(fresh_db, tmp_path_factory):
    name, conninfo = fresh_db
    env = stack_env(tmp_path_factory.mktemp("state"), name)
    events = behaviour(3, AS_OF - dt.timedelta(days=120), AS_OF)
    ingest([write_events(events, tmp_path_factory.mktemp("events") / "events.parquet").parent], conninfo)
    dbt(env, "seed")
    dbt(env, "run", "--select", "+user_item_signal_state", "--vars", VARS)
    staged = staged_events(conninfo)  # as staged: pseudonymised users
    with psycopg.connect(conninfo) as conn:
        cursor = conn.execute(
            "select user_id, as_of as state_as_of, * from analytics.user_item_signal_state where as_of = %s", (AS_OF,)
        )
        names = [d.name for d in cursor.description]
        rows = {r[0]: {f: r[names.index(f)] for f in ROW_FIELDS} for r in cursor.fetchall()}
    assert len(staged) == len(events) > 1000
    return staged, rows


def assert_same(got: pd.DataFrame, want: pd.DataFrame, keys: list[str]) -> None:
    got = got.sort_values(keys, ignore_index=True)
    want = want.sort_values(keys, ignore_index=True)
    assert got[keys].equals(want[keys])
    for column in want.columns.difference(keys):
        if pd.api.types.is_datetime64_any_dtype(want[column]):
            assert (got[column].isna() == want[column].isna()).all(), column
            delta = (got[column] - want[column]).dt.total_seconds().abs().fillna(0)
            assert delta.max() < 1e-6, column
        else:
            np.testing.assert_allclose(
                got[column].to_numpy(float), want[column].to_numpy(float), rtol=1e-9, err_msg=column
            )


def test_mart_equals_the_python_tables(stack):
    events, rows = stack
    as_of = pd.Timestamp(AS_OF)
    pairs, users, categories = tables_from_rows(rows)
    assert len(rows) == events["user_id"].nunique() == 30
    assert_same(pairs, item_signals.pair_table(events, as_of, ["purchase"]), ["user_id", "item_id"])
    assert_same(users.reset_index(), item_signals.user_table(events, as_of).reset_index(), ["user_id"])
    assert_same(categories, item_signals.category_table(events, as_of), ["user_id", "category_id"])
    # some pairs were never bought: their last target instant is none, not a number
    assert pairs["target_last_ts"].isna().any() and pairs["target_last_ts"].notna().any()


def test_signals_from_the_mart_moved_later_equal_the_signals_recomputed_there(stack):
    events, rows = stack
    as_of, later = pd.Timestamp(AS_OF), pd.Timestamp(AS_OF) + pd.Timedelta(hours=37.5)
    items = item_signals.item_table(events, as_of, ["purchase"])
    population = Neighbourhood.build(item_signals.pair_table(events, as_of, ["purchase"]), items.index)
    state = item_signals.assemble_state(
        *tables_from_rows(rows), items, item_signals.popular_items(items, 5), as_of, as_of, population
    )
    got = item_signals.signals_at(state, later)
    want = item_signals.candidate_signals(events, later, candidates=5)
    assert_same(got, want, ["user_id", "item_id"])
    assert (want["neighbours"] > 0).mean() > 0.5  # the neighbour signal is there, not zeros compared with zeros


def test_live_events_folded_into_the_mart_rows_equal_the_tables_recomputed_with_them(stack):
    events, rows = stack
    live = behaviour(4, AS_OF, AS_OF + dt.timedelta(days=3))
    known = sorted(rows)[:10]  # pseudonymised users of the mart, and one new user
    live["user_id"] = live["user_id"].map({f"u{i}": u for i, u in enumerate(known)} | {"u10": "new-user"})
    live = live.dropna(subset=["user_id"])
    now = AS_OF + dt.timedelta(days=3, hours=5)
    folded = {
        user: fold_item_events(
            rows.get(user),
            zip(group["item_id"], group["category_id"], group["event_type"], list(group["ts"])),
            now,
        )
        for user, group in live.groupby("user_id")
    }
    assert len(folded) == 11 and "new-user" in folded
    everything = pd.concat([events, live], ignore_index=True).sort_values("ts", kind="stable", ignore_index=True)
    mine = everything[everything["user_id"].isin(list(folded))]
    t = pd.Timestamp(now)
    pairs, users, categories = tables_from_rows(folded)
    assert_same(pairs, item_signals.pair_table(mine, t, ["purchase"]), ["user_id", "item_id"])
    assert_same(users.reset_index(), item_signals.user_table(mine, t).reset_index(), ["user_id"])
    assert_same(categories, item_signals.category_table(mine, t), ["user_id", "category_id"])
