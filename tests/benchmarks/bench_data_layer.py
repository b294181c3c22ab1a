"""Data-layer benchmark: ingest, full refresh and incremental run of the interest mart, each against
a floor measured in the same run. Writes bench-results/data_layer.json.

- ingest: `interest_decay.events.ingest` of a CSV vs a bare COPY of the same file into a table of text columns;
- full refresh: dbt's int_interest_day_deltas + the view user_category_interest for one as_of day (execution
  time from dbt's run_results.json) vs one hand-written SQL aggregate over the staged table (exponential
  decay, half-life 7 d, the same weights); three times each, interleaved, medians reported, after a
  VACUUM ANALYZE of the freshly staged tables (so that autovacuum does not run during the timings);
- incremental: the same two models for the next day after 1% new events (half of them late, dated before
  the full refresh's day), as a fraction of the full refresh; three times, the day's rows deleted and
  vacuumed away before the second and third (each a first run of the day), median reported. Staging them
  and listing their kinds (incremental: the new load only) is timed apart (the dbt command's wall time,
  with dbt's start, and each model's seconds), and the run checks they reached staging before timing the
  mart. The same day is then run twice more (an idempotent re-run replaces the day's rows; the row count
  must not change).
  Where the incremental run's time goes, measured after it: the model's own insert statement (dbt's
  compiled SQL of that run) executed without dbt, rolled back each time; and a floor, the full refresh's
  hand-written aggregate over the uncounted events only, as a fraction of that aggregate over all events;
  and dbt's own cost of the same two nodes, from two trivial models run the same way (an incremental
  model appending one row, a view over it) in a copy of the project.

Run: ``make bench`` (or ``python -m tests.benchmarks.bench_data_layer --events 10000000``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from interest_decay.events.ingest import ingest
from interest_decay.events.synthetic import generate, write_events
from tests.conftest import DBT, PROJECT_ROOT, recreate_database, stack_env

END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
MART_MODELS = ("int_interest_day_deltas", "user_category_interest")
FLOOR_SQL = """
create table bench_floor as
select e.user_id, e.category_id,
       sum(w.weight * power(0.5::float8, date_part('epoch', %(as_of)s::timestamptz - e.event_ts) / 604800.0))
           as interest
from analytics.stg_behaviour__events e
join analytics.event_type_weights w on w.event_type = e.event_type
where e.event_ts < %(as_of)s::timestamptz
group by e.user_id, e.category_id
"""

# The same aggregate at the mart's grain (user, category), with each kind's weight and half-life, a sum per
# event type, the event count and the latest event: what the mart computes, without dbt, the day's marker
# row, the `as_of` and `recomputed` columns or the indexes. {per_type}: one "sum(...) filter" per event type.
SAME_GRAIN_SQL = """
create table bench_floor_kinds as
select user_id, category_id, {per_type}, count(*) as event_count, max(event_ts) as last_event_ts
from (
    select e.user_id, e.category_id, e.event_type, e.event_ts,
           k.weight * power(0.5::float8, date_part('epoch', %(as_of)s::timestamptz - e.event_ts) / 86400.0
                                         / k.half_life_days) as interest
    from analytics.stg_behaviour__events e
    join analytics.int_event_kind_parameters k on k.category_id = e.category_id and k.event_type = e.event_type
    where e.event_ts < %(as_of)s::timestamptz
) as decayed
group by user_id, category_id
"""
# The floor of the incremental run: FLOOR_SQL over the events the run counts (loaded after the full
# refresh's load, or dated on or after its day), decayed to the next day.
INCREMENTAL_FLOOR_SQL = FLOOR_SQL.replace(
    "where e.event_ts < %(as_of)s::timestamptz",
    "where e.event_ts < %(as_of)s::timestamptz and (e.load_id > %(watermark)s or e.event_ts >= %(base)s::timestamptz)",
)
# dbt's floor: the mart's two nodes with no work in them, in a copy of the project (same materializations,
# hooks and profile): an incremental append of one row and an unchanged view over it.
TRIVIAL_MODELS = {
    "bench_trivial_rows": "{{ config(materialized='incremental', incremental_strategy='append') }}\nselect 1 as x\n",
    "bench_trivial_view": "{{ config(materialized='view') }}\nselect x from {{ ref('bench_trivial_rows') }}\n",
}
REPEATS = 3  # each timing runs this often (the full refresh and its floors interleaved); medians reported


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def dbt(env: dict, *args: str, project: Path = PROJECT_ROOT / "dbt_project") -> dict[str, float]:
    """Run dbt; returns the execution seconds of each model it ran (from run_results.json)."""
    run = subprocess.run([*DBT, *args], cwd=project, env=env, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(run.stdout[-4000:])
    results = json.loads((Path(env["DBT_TARGET_PATH"]) / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results}


def run_marts(env: dict, day: str, *flags: str) -> dict[str, float]:
    """dbt run of the interest mart (MART_MODELS) for the one day ``day``; returns dbt's seconds per model."""
    return dbt(env, "run", *flags, "--select", *MART_MODELS, "--vars", f'{{as_of: "{day}", as_of_start: "{day}"}}')


def mart_seconds(models: dict[str, float]) -> float:
    return sum(models[m] for m in MART_MODELS)


def median_run(runs: list[dict[str, float]]) -> tuple[list[float], float, dict[str, float]]:
    """mart_seconds of each run_marts result, their median (REPEATS is odd: one of them) and its models."""
    seconds = [mart_seconds(run) for run in runs]
    median = statistics.median(seconds)
    return seconds, median, runs[seconds.index(median)]


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def bare_copy(conninfo: str, path: Path) -> None:
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute(
            "drop table if exists bench_copy; create table bench_copy (user_id text, item_id text, "
            "category_id text, event_type text, ts text, value text)"
        )
        with path.open("rb") as fh, cur.copy("copy bench_copy from stdin (format csv, header)") as copy:
            while block := fh.read(1 << 20):
                copy.write(block)


def count(conninfo: str, sql: str) -> int:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(sql).fetchone()[0]


def settle(conninfo: str, *tables: str) -> None:
    """VACUUM ANALYZE tables just written in bulk. Otherwise autovacuum takes them up a minute later, in the
    middle of the timed runs (on 2 cores, the same code: the mart 4.57 s and its floor 3.16 s with it
    running, 4.28 s and 3.00 s without), and the first query to read the new rows pays for setting their
    hint bits. A daily run meets long-settled tables."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"vacuum analyze {table}")


def floor_aggregate(conninfo: str, as_of: dt.datetime, sql: str = FLOOR_SQL, **params) -> float:
    """Seconds of a floor query (its statement alone, not the connection), with JIT off as in the mart
    (compiling is a fixed ~20 ms per query here, with no gain over 10M rows)."""
    with psycopg.connect(conninfo) as conn:
        conn.execute("drop table if exists bench_floor; drop table if exists bench_floor_kinds; set jit = off")
        start = time.perf_counter()
        conn.execute(sql, {"as_of": as_of, **params})
        seconds = time.perf_counter() - start
    return seconds


def statement_without_dbt(conninfo: str, env: dict) -> float:
    """Seconds of the insert statement of int_interest_day_deltas' latest dbt run (its compiled SQL, with the
    model's `jit = off`), executed in a transaction that is rolled back."""
    compiled = next((Path(env["DBT_TARGET_PATH"]) / "run").rglob("int_interest_day_deltas.sql")).read_text()
    with psycopg.connect(conninfo) as conn:
        conn.execute("set local jit = off")
        start = time.perf_counter()
        conn.execute(compiled)
        seconds = time.perf_counter() - start
        conn.rollback()
    return seconds


def dbt_floor(env: dict, work: Path) -> list[float]:
    """dbt's seconds for TRIVIAL_MODELS (created first, then run REPEATS times as the incremental run)."""
    project = work / "dbt_floor_project"
    shutil.copytree(PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    for name, sql in TRIVIAL_MODELS.items():
        (project / "models" / f"{name}.sql").write_text(sql)
    env = {
        **env,
        "DBT_TARGET_PATH": str(work / "dbt_floor" / "target"),
        "DBT_LOG_PATH": str(work / "dbt_floor" / "logs"),
    }
    dbt(env, "run", "--select", *TRIVIAL_MODELS, project=project)
    return [
        sum(dbt(env, "run", "--select", *TRIVIAL_MODELS, project=project)[m] for m in TRIVIAL_MODELS)
        for _ in range(REPEATS)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_data_layer", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="synthetic events (default 10M)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-results" / "data_layer.json")
    args = parser.parse_args(argv)
    n, new = args.events, max(args.events // 100, 1)
    database = "bench_data_layer"
    work = Path(tempfile.mkdtemp(prefix="bench-data-layer-"))
    conninfo = recreate_database(database)
    env = stack_env(work / "state", database)
    env.setdefault("PSEUDONYM_KEY", os.environ.get("PSEUDONYM_KEY", "bench-key"))

    log(f"generating {n:,} + {new:,} events")
    events = generate(n + new, n_users=max(n // 100, 20), days=60, end=END, seed=1)
    is_new = events.index.isin(events.sample(new, random_state=1).index)  # 1% arrives a day later, at random times
    write_events(events[~is_new], work / "events.csv")
    later = events[is_new].copy()
    later.loc[later.index[: new // 2], "ts"] = later.ts.iloc[: new // 2] + dt.timedelta(
        days=0
    )  # half late, half new-day
    later.loc[later.index[new // 2 :], "ts"] = END + (
        later.ts.iloc[new // 2 :] - later.ts.iloc[new // 2 :].dt.floor("D")
    )
    write_events(later, work / "new_events.csv")

    log("bare COPY floor")
    copy_s, _ = timed(bare_copy, conninfo, work / "events.csv")
    log("ingest")
    ingest_s, _ = timed(ingest, [work / "events.csv"], conninfo)

    log("dbt seed + staging")
    dbt(env, "seed")
    staging_s, _ = timed(
        dbt,
        env,
        "run",
        "--select",
        "+stg_behaviour__events",
        "int_decay_parameters",
        "int_event_kinds",
        "int_event_kind_parameters",
    )
    log("vacuum analyze of the new tables")
    settle(conninfo, "raw.events", "analytics.stg_behaviour__events_checked", "analytics.stg_behaviour__events")
    as_of = f"{END:%Y-%m-%d}"
    with psycopg.connect(conninfo) as conn:
        types = [t for (t,) in conn.execute("select event_type from analytics.event_type_weights order by 1")]
    same_grain_sql = SAME_GRAIN_SQL.format(
        per_type=", ".join(f"sum(interest) filter (where event_type = '{t}') as interest_{t}" for t in types)
    )
    fulls, floors, same_grains = [], [], []
    for i in range(REPEATS):
        log(f"full refresh of the interest mart and its floors ({i + 1}/{REPEATS})")
        fulls.append(run_marts(env, as_of, "--full-refresh"))
        floors.append(floor_aggregate(conninfo, END))
        same_grains.append(floor_aggregate(conninfo, END, same_grain_sql))
    full_runs, full_s, full = median_run(fulls)
    floor_s, same_grain_s = statistics.median(floors), statistics.median(same_grains)

    settle(conninfo, "analytics.int_interest_day_deltas")
    log("incremental: 1% new events, next day")
    ingest([work / "new_events.csv"], conninfo)
    restage_s, restage_models = timed(
        dbt,
        env,
        "run",
        "--select",
        "stg_behaviour__events_checked",
        "stg_behaviour__events",
        "int_event_kinds",
        "int_event_kind_parameters",
    )
    staged_new = count(
        conninfo,
        "select count(*) from analytics.stg_behaviour__events where load_id = (select max(load_id) from raw.loads)",
    )
    if staged_new < new * 0.99:
        raise RuntimeError(f"only {staged_new} of the {new} new events reached staging")
    next_day = f"{END + dt.timedelta(days=1):%Y-%m-%d}"
    incrementals = []
    for i in range(REPEATS):
        if i:  # the day again as a first run: its rows go and are vacuumed away, as a day's are before it runs
            log(f"incremental again as a first run of the day ({i + 1}/{REPEATS})")
            with psycopg.connect(conninfo) as conn:
                conn.execute("delete from analytics.int_interest_day_deltas where as_of = %s::timestamptz", (next_day,))
            settle(conninfo, "analytics.int_interest_day_deltas")
        incrementals.append(run_marts(env, next_day))
    incremental_runs, incremental_s, incremental = median_run(incrementals)

    rows_sql = (
        "select count(*) from analytics.int_interest_day_deltas where as_of = '{}'::timestamptz and user_id is not null"
    )
    full_rows, incremental_rows = count(conninfo, rows_sql.format(as_of)), count(conninfo, rows_sql.format(next_day))
    log("re-running the same day twice (replaces its rows)")
    reruns = [mart_seconds(run_marts(env, next_day)) for _ in range(2)]
    if count(conninfo, rows_sql.format(next_day)) != incremental_rows:
        raise RuntimeError("re-running the day changed its row count")
    log("where the incremental run's time goes: its statement without dbt, the floors")
    settle(conninfo, "analytics.int_interest_day_deltas")
    statements = [statement_without_dbt(conninfo, env) for _ in range(REPEATS)]
    full_watermark = count(
        conninfo,
        "select watermark_load_id from analytics.int_interest_day_deltas "
        f"where as_of = '{as_of}'::timestamptz and user_id is null",
    )
    incremental_floors = [
        floor_aggregate(conninfo, END + dt.timedelta(days=1), INCREMENTAL_FLOOR_SQL, watermark=full_watermark, base=END)
        for _ in range(REPEATS)
    ]
    statement_s, incremental_floor_s = statistics.median(statements), statistics.median(incremental_floors)
    dbt_floors = dbt_floor(env, work)
    dbt_floor_s = statistics.median(dbt_floors)
    result = {
        "benchmark": "data_layer",
        "command": f"make bench BENCH_EVENTS={n}",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "events": n,
        "ingest": {
            "seconds": ingest_s,
            "rows_per_s": n / ingest_s,
            "floor_bare_copy_seconds": copy_s,
            "floor_rows_per_s": n / copy_s,
            "ratio_to_floor": ingest_s / copy_s,
        },
        "staging_seconds": staging_s,
        "full_refresh": {
            "seconds": full_s,
            "models": full,
            "rows_written": full_rows,
            "floor_seconds": floor_s,
            "runs": REPEATS,
            "seconds_each": full_runs,
            "floor_seconds_each": floors,
            "ratio_to_floor": full_s / floor_s,
            "goal_ratio": 1.5,
            "same_aggregate_at_the_mart_grain_seconds": same_grain_s,
            "same_aggregate_at_the_mart_grain_seconds_each": same_grains,
            "ratio_to_same_aggregate_at_the_mart_grain": full_s / same_grain_s,
        },
        "incremental": {
            "new_events": new,
            "staged_new_events": staged_new,
            "seconds": incremental_s,
            "models": incremental,
            "runs": REPEATS,
            "seconds_each": incremental_runs,
            "rows_written": incremental_rows,
            "fraction_of_full_refresh": incremental_s / full_s,
            "goal_fraction": 0.05,
            "restaging_seconds": restage_s,
            "restaged": "the new load only (incremental staging)",
            "restaging_models": restage_models,
            "rerun_same_day_seconds_each": reruns,
            "statement_without_dbt_seconds": statement_s,
            "statement_without_dbt_seconds_each": statements,
            "statement_fraction_of_full_refresh": statement_s / full_s,
            "dbt_and_view_seconds": incremental_s - statement_s,
            "floor_seconds": incremental_floor_s,
            "floor_seconds_each": incremental_floors,
            "floor_fraction_of_full_floor": incremental_floor_s / floor_s,
            "dbt_floor_seconds": dbt_floor_s,
            "dbt_floor_seconds_each": dbt_floors,
            "dbt_floor": "two trivial models run as the mart's two: " + ", ".join(TRIVIAL_MODELS),
            "statement_and_dbt_floor_fraction_of_full_refresh": (statement_s + dbt_floor_s) / full_s,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log(json.dumps({k: result[k] for k in ("ingest", "full_refresh", "incremental")}, indent=2))


if __name__ == "__main__":
    main()
