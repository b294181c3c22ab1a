"""Incremental maintenance of the per-day interest deltas (int_interest_day_deltas) is exact: eight daily runs, each loading that
day's file (with late events of earlier days and re-sent duplicates), give the same interest as one
full refresh over all files, to 1e-9 relative, while each daily run writes rows only for the keys its
new events touch; re-running the last day changes nothing."""

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from interest_decay.events.ingest import ingest
from interest_decay.events.synthetic import generate, write_events
from tests.conftest import EVENT_TYPES, dbt, recreate_database, stack_env

pytestmark = pytest.mark.postgres
START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAYS = 8
FITTED = [
    ("2", "*", "logistic", None, 0.5, 0.3, None, None),
    ("3", "purchase", "exponential", 0.5, None, None, None, None),
    ("4", "*", "period", None, None, None, 1.0, "1;0.7;0.2"),
]
# The interest of every (user, category, event type) at a day, written out here as the model's .yml states
# it: each type's column of an exponential row decayed from its day, recomputed rows of that day only.
SNAPSHOT_SQL = f"""
select %(t)s::timestamptz as as_of, s.user_id, s.category_id, v.event_type,
       sum(case when s.recomputed then v.interest
                else v.interest * power(0.5::float8, extract(epoch from %(t)s - s.as_of)::float8 / 86400 / k.half_life_days)
           end) as interest
from analytics.int_interest_day_deltas s
cross join lateral (values {", ".join(f"('{t}', s.interest_{t})" for t in EVENT_TYPES)}) as v (event_type, interest)
join analytics.int_event_kind_parameters k on k.category_id = s.category_id and k.event_type = v.event_type
where s.as_of <= %(t)s and (not s.recomputed or s.as_of = %(t)s) and v.interest is not null
group by s.user_id, s.category_id, v.event_type
order by 2, 3, 4"""
CATEGORY_SQL = (
    "select as_of, user_id, category_id, event_count, last_event_ts, interest "
    "from analytics.user_category_interest where as_of = %s order by 2, 3"
)


def day(i: int) -> str:
    return f"{START + dt.timedelta(days=i):%Y-%m-%d}"


def daily_files(folder: Path) -> list[Path]:
    """One file per day; 15% of each day's events arrive two days late; some events are sent twice."""
    events = generate(4_000, n_users=30, n_categories=6, days=DAYS, end=START + dt.timedelta(days=DAYS), seed=4)
    rng = np.random.default_rng(4)
    arrival = ((events.ts - START).dt.total_seconds() // 86400).astype(int)
    late = rng.random(len(events)) < 0.15
    arrival[late] = np.minimum(arrival[late] + 2, DAYS - 1)
    files = []
    for i in range(DAYS):
        batch = events[arrival == i]
        if i > 0:  # re-sent duplicates of earlier-arrived events
            batch = pd.concat([batch, events[arrival < i].sample(20, random_state=i)])
        files.append(write_events(batch, folder / f"day{i}.csv"))
    return files


def prepare(name, tmp_path):
    conninfo = recreate_database(name)
    env = stack_env(tmp_path / name, name)
    dbt(env, "seed")
    dbt(env, "run", "--select", "int_decay_parameters")
    with psycopg.connect(conninfo) as conn:
        conn.cursor().executemany(
            "insert into params.decay_parameters_fitted (category_id, event_type, family, half_life_days, "
            "logistic_k, logistic_l, period_days, period_weights) values (%s, %s, %s, %s, %s, %s, %s, %s)",
            FITTED,
        )
    return conninfo, env


def snapshot(conninfo, as_of):
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(SNAPSHOT_SQL, {"t": dt.datetime.fromisoformat(as_of).replace(tzinfo=dt.UTC)}).fetchall()
    return pd.DataFrame(rows, columns=["as_of", "user_id", "category_id", "event_type", "interest"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("incremental")
    files = daily_files(tmp / "files")
    incremental, inc_env = prepare("test_incremental_daily", tmp)
    for i, path in enumerate(files):
        ingest([path], incremental)
        dbt(
            inc_env,
            "run",
            "--select",
            "+user_category_interest",
            "--vars",
            f'{{as_of: "{day(i + 1)}", as_of_start: "{day(i + 1)}"}}',
        )
    compiled = (
        Path(inc_env["DBT_TARGET_PATH"]) / "compiled/interest_decay/models/intermediate/int_interest_day_deltas.sql"
    )
    last_daily_sql = compiled.read_text()
    full, full_env = prepare("test_incremental_full", tmp)
    ingest(files, full)
    dbt(
        full_env,
        "run",
        "--full-refresh",
        "--select",
        "+user_category_interest",
        "--vars",
        f'{{as_of: "{day(DAYS)}", as_of_start: "{day(DAYS)}"}}',
    )
    return incremental, inc_env, full, last_daily_sql


def category_interest(conninfo, as_of):
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(CATEGORY_SQL, (dt.datetime.fromisoformat(as_of).replace(tzinfo=dt.UTC),)).fetchall()
    return pd.DataFrame(rows, columns=["as_of", "user_id", "category_id", "event_count", "last_event_ts", "interest"])


def assert_same(got: pd.DataFrame, want: pd.DataFrame, min_rows: int = 100):
    keys = [c for c in got.columns if c != "interest"]
    assert len(got) == len(want) > min_rows
    assert got[keys].equals(want[keys])
    np.testing.assert_allclose(got.interest, want.interest, rtol=1e-9, atol=1e-280)


def test_daily_runs_read_only_uncounted_events_and_write_only_touched_keys(runs):
    incremental, _, _, last_daily_sql = runs
    # The last daily run started from the previous day's run and read only the events it did not count.
    assert "where load_id > 7" in last_daily_sql
    assert f"event_ts >= (date '{day(DAYS - 1)}'" in last_daily_sql
    with psycopg.connect(incremental) as conn:
        marks = conn.execute(
            "select as_of::date, max(watermark_load_id), count(*) from analytics.int_interest_day_deltas "
            "group by 1 order by 1"
        ).fetchall()
        exponential_keys = conn.execute(
            "select count(distinct (user_id, category_id)) from analytics.int_interest_day_deltas "
            "where not recomputed and user_id is not null"
        ).fetchone()[0]
        last_day_exponential_rows = conn.execute(
            "select count(*) from analytics.int_interest_day_deltas "
            "where not recomputed and user_id is not null and as_of = %s",
            (dt.datetime.fromisoformat(day(DAYS)).replace(tzinfo=dt.UTC),),
        ).fetchone()[0]
        touched_keys = conn.execute(
            "select count(distinct (e.user_id, e.category_id)) from analytics.stg_behaviour__events e "
            "join analytics.int_event_kind_parameters k using (category_id, event_type) "
            "where k.family = 'exponential' and (e.load_id > 7 or e.event_ts >= %s) and e.event_ts < %s",
            tuple(dt.datetime.fromisoformat(day(i)).replace(tzinfo=dt.UTC) for i in (DAYS - 1, DAYS)),
        ).fetchone()[0]
    assert [str(d) for d, _, _ in marks] == [day(i + 1) for i in range(DAYS)]
    assert [w for _, w, _ in marks] == list(range(1, DAYS + 1))
    # The run wrote a row for each (user, category) its uncounted events touch, and none for the others.
    assert last_day_exponential_rows == touched_keys < exponential_keys


def test_incremental_equals_full_refresh(runs):
    incremental, _, full, _ = runs
    assert_same(snapshot(incremental, day(DAYS)), snapshot(full, day(DAYS)))
    assert_same(category_interest(incremental, day(DAYS)), category_interest(full, day(DAYS)))


def test_rerunning_the_last_day_changes_nothing(runs):
    incremental, env, _, _ = runs
    stored = "select * from analytics.int_interest_day_deltas order by as_of, user_id, category_id, recomputed"
    with psycopg.connect(incremental) as conn:
        rows_before = conn.execute(stored).fetchall()
    before = snapshot(incremental, day(DAYS))
    dbt(
        env,
        "run",
        "--select",
        "+user_category_interest",
        "--vars",
        f'{{as_of: "{day(DAYS)}", as_of_start: "{day(DAYS)}"}}',
    )
    assert_same(snapshot(incremental, day(DAYS)), before)
    with psycopg.connect(incremental) as conn:
        assert conn.execute(stored).fetchall() == rows_before


def test_rerunning_an_older_day_recomputes_the_days_after_it(runs):
    incremental, env, full, _ = runs
    dbt(env, "run", "--select", "+user_category_interest", "--vars", f'{{as_of: "{day(5)}", as_of_start: "{day(5)}"}}')
    with psycopg.connect(incremental) as conn:
        days = [
            str(d)
            for (d,) in conn.execute(
                "select distinct as_of::date from analytics.int_interest_day_deltas order by 1"
            ).fetchall()
        ]
    assert days == [day(i + 1) for i in range(DAYS)]  # days 5..8 recomputed, none lost
    assert_same(snapshot(incremental, day(DAYS)), snapshot(full, day(DAYS)))


def feature_rows(conninfo) -> pd.DataFrame:
    """user_interest_features, every stored day: keys and the total interest."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "select as_of, user_id, category_ids, total_interest from analytics.user_interest_features order by 1, 2"
        ).fetchall()
    return pd.DataFrame(rows, columns=["as_of", "user_id", "category_ids", "interest"])


def test_changed_parameters_replace_the_stored_days(runs):
    """A fitted half-life changes the parameters' fingerprint: the next run deletes every stored day
    (decayed with the old parameters) and computes its window from all events; the result equals a full
    refresh under the new parameters. The per-day feature mart recomputes its whole window too (not just
    the latest day, as it does while the parameters stay the same)."""
    incremental, env, full, _ = runs
    full_env = stack_env(
        Path(env["DECAY_STATE_DIR"]).parent / "test_incremental_full", "test_incremental_full"
    )  # as prepare()
    window = f'{{as_of: "{day(DAYS)}", as_of_start: "{day(DAYS - 2)}"}}'
    dbt(env, "run", "--select", "+user_interest_features", "--vars", window)  # stored days, old parameters
    for conninfo in (incremental, full):
        with psycopg.connect(conninfo) as conn:
            conn.execute(
                "insert into params.decay_parameters_fitted (category_id, event_type, family, half_life_days) "
                "values ('5', '*', 'exponential', 0.5)"
            )
    dbt(env, "run", "--select", "+user_category_interest", "+user_interest_features", "--vars", window)
    dbt(
        full_env,
        "run",
        "--full-refresh",
        "--select",
        "+user_category_interest",
        "+user_interest_features",
        "--vars",
        window,
    )
    with psycopg.connect(incremental) as conn:
        days, fingerprints = conn.execute(
            "select array_agg(distinct as_of::date::text), count(distinct parameters_fingerprint) "
            "from analytics.int_interest_day_deltas"
        ).fetchone()
    assert sorted(days) == [day(DAYS - 2), day(DAYS - 1), day(DAYS)] and fingerprints == 1
    assert_same(snapshot(incremental, day(DAYS)), snapshot(full, day(DAYS)))
    assert_same(category_interest(incremental, day(DAYS)), category_interest(full, day(DAYS)))
    got, want = feature_rows(incremental), feature_rows(full)
    assert sorted({str(d.date()) for d in got["as_of"]}) == [day(DAYS - 2), day(DAYS - 1), day(DAYS)]
    assert_same(got, want, min_rows=60)  # 30 users x 3 days
