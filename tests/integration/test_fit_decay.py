"""The pipeline's fit_decay step on a real PostgreSQL: staged events in, fitted rows out (which
int_decay_parameters then prefers), the report, and what always / weekly / never and a failed fit keep."""

import datetime as dt
import json

import psycopg
import pytest

from interest_decay.events.ingest import ingest
from interest_decay.events.synthetic import generate, half_lives, write_events
from models.fitting import fit_decay
from models.fitting.follow_ups import ANY, FitConfig
from tests.conftest import dbt, stack_env

pytestmark = pytest.mark.postgres
AS_OF = dt.date(2026, 11, 1)
CUTOFF = dt.datetime(2026, 10, 25, tzinfo=dt.UTC)
CONFIG = FitConfig.load(bootstrap=20)


@pytest.fixture(scope="module")
def stack(fresh_db, tmp_path_factory):
    name, conninfo = fresh_db
    folder = tmp_path_factory.mktemp("events")
    write_events(
        generate(
            30_000,
            n_users=300,
            n_categories=3,
            end=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
            days=45,
            seed=4,
            max_half_life=3.0,
        ),
        folder / "events.parquet",
    )
    ingest([folder], conninfo)
    env = stack_env(tmp_path_factory.mktemp("state"), name)
    dbt(env, "seed")
    dbt(env, "run", "--select", "+stg_behaviour__events")
    return env, conninfo


@pytest.fixture
def in_stack(stack, monkeypatch):
    env, conninfo = stack
    for key in ("PGDATABASE", "REPORTS_DIR", "DBT_SCHEMA"):
        monkeypatch.setenv(key, env.get(key, "analytics"))
    return env, conninfo


def stored(conninfo: str) -> dict:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "select category_id, event_type, half_life_days, half_life_low, half_life_high, origin, "
            "fit_cutoff, fitted_at from params.decay_parameters_fitted"
        ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def test_a_fit_stores_every_kind_and_the_marts_use_it(in_stack):
    env, conninfo = in_stack
    result = fit_decay.run(AS_OF, CUTOFF, "always", CONFIG)
    assert result["fitted"] and result["rows"] > 3
    rows = stored(conninfo)
    for category, truth in zip(("1", "2", "3"), half_lives(3, 0.5, 3.0)):
        half_life, low, high, origin, cutoff, _ = rows[(category, ANY)]
        assert origin == "fitted" and cutoff == CUTOFF.date()
        assert low <= half_life <= high and half_life == pytest.approx(truth, rel=0.2)
    dbt(env, "run", "--select", "int_decay_parameters", "int_event_kinds", "int_event_kind_parameters")
    with psycopg.connect(conninfo) as conn:
        kinds = dict(
            ((c, t), (h, o))
            for c, t, h, o in conn.execute(
                "select k.category_id, k.event_type, k.half_life_days, p.origin from analytics.int_event_kind_parameters k "
                "join analytics.int_decay_parameters p using (category_id, event_type)"
            )
        )
    assert kinds and all(origin == "fitted" for _, origin in kinds.values())
    assert all(h == pytest.approx(rows[key][0]) for key, (h, _) in kinds.items())


def test_the_report_has_the_half_life_table_and_a_curve_per_fitted_kind(in_stack):
    env, _ = in_stack
    folder = fit_decay.settings.reports_dir() / AS_OF.isoformat()
    report = (folder / "decay.md").read_text()
    assert "| category | event type | family | half-life (days) [95% CI] |" in report
    rows = json.loads((folder / "decay.json").read_text())["rows"]
    fitted = [r for r in rows if r["origin"] == "fitted"]
    curves = sorted(p.name for p in (folder / "decay_curves").glob("*.png"))
    assert len(curves) == len(fitted) and "1__all.png" in curves and "all__all.png" in curves


def repeat_rows(conninfo: str) -> dict:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "select item_id, half_life_days, bump_weight, bump_mean_days, origin, fit_cutoff, fitted_at "
            "from params.repeat_parameters_fitted"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_the_repeat_family_is_fitted_stored_reported_and_read_by_the_marts(in_stack):
    env, conninfo = in_stack
    rows = repeat_rows(conninfo)
    items = {i for i in rows if i != ANY}
    assert ANY in rows and len(items) > 10
    assert {r[4] for r in rows.values()} == {CUTOFF.date()}  # one fit, one cutoff
    assert len({(r[0], r[1]) for r in rows.values()}) == 1  # one π and h for all rows
    folder = fit_decay.settings.reports_dir() / AS_OF.isoformat()
    summary = json.loads((folder / "decay.json").read_text())["repeat"]
    assert len(summary["grid"]) == 16 and summary["items"] == len(items)
    assert "## Repeat-purchase family" in (folder / "decay.md").read_text()
    assert (folder / "repeat_kernels.png").stat().st_size > 10_000
    dbt(env, "run", "--select", "int_repeat_parameters")
    with psycopg.connect(conninfo) as conn:
        read = dict(conn.execute("select item_id, bump_mean_days from analytics.int_repeat_parameters").fetchall())
    assert read == {i: r[2] for i, r in rows.items()}


def test_a_rerun_of_the_same_interval_writes_nothing(in_stack):
    _, conninfo = in_stack
    before = stored(conninfo)
    repeat_before = repeat_rows(conninfo)
    result = fit_decay.run(AS_OF, CUTOFF, "always", CONFIG)
    assert "nothing written" in result["reason"]
    assert stored(conninfo) == before  # fitted_at included: the rows were not touched
    assert repeat_rows(conninfo) == repeat_before


def test_weekly_refits_only_a_week_later_and_never_keeps_the_table(in_stack):
    _, conninfo = in_stack
    before = stored(conninfo)
    assert not fit_decay.run(AS_OF, CUTOFF + dt.timedelta(days=6), "weekly", CONFIG)["fitted"]
    assert not fit_decay.run(AS_OF, CUTOFF + dt.timedelta(days=6), "never", CONFIG)["fitted"]
    assert stored(conninfo) == before
    later = fit_decay.run(AS_OF, CUTOFF + dt.timedelta(days=7), "weekly", CONFIG)
    assert later["fitted"] and {r[4] for r in stored(conninfo).values()} == {CUTOFF.date() + dt.timedelta(days=7)}


def test_a_fit_that_fails_keeps_the_stored_parameters_and_says_why(in_stack):
    _, conninfo = in_stack
    before = stored(conninfo)
    result = fit_decay.run(AS_OF, dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "always", CONFIG)
    assert not result["fitted"] and "no events before 2020-01-01" in result["reason"]
    assert stored(conninfo) == before
    assert not result["repeat_fitted"]
    report = (fit_decay.settings.reports_dir() / AS_OF.isoformat() / "decay.md").read_text()
    assert "The fit failed, so the stored parameters are kept: no events before 2020-01-01" in report
    assert "The repeat fit failed, so its stored parameters are kept: no purchase before 2020-01-01" in report
