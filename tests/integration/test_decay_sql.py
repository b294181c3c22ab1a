"""The SQL decay (dbt) against the Python reference: the function on random inputs, and whole marts
on random events with all three families in the parameters table; equal to 1e-9 relative."""

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interest_decay import decay
from interest_decay.decay import reference
from interest_decay.events.ingest import ingest
from interest_decay.events.synthetic import generate, write_events
from tests.conftest import dbt, recreate_database, stack_env

pytestmark = pytest.mark.postgres
AS_OF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
WEIGHTS = {"view": 1.0, "fav": 2.0, "cart": 3.0, "purchase": 5.0, "rating": 2.0}
FITTED = [  # category_id, event_type, family, half_life_days, k, l, period_days, weights
    ("1", "*", "logistic", None, 0.3, 0.4, None, None),
    ("2", "*", "period", None, None, None, 7.0, "1;0.6;0.35;0.1"),
    ("3", "*", "exponential", 1.5, None, None, None, None),
    ("4", "purchase", "period", None, None, None, 1.0, "1;0.5"),
    ("*", "cart", "logistic", None, 5.0, 0.05, None, None),
]


@pytest.fixture(scope="module")
def db(fresh_db, tmp_path_factory):
    name, conninfo = fresh_db
    events = generate(3_000, n_users=40, n_categories=6, days=20, end=AS_OF, seed=21)
    folder = tmp_path_factory.mktemp("events")
    write_events(events, folder / "events.parquet")
    ingest([folder], conninfo)
    env = stack_env(tmp_path_factory.mktemp("state"), name)
    dbt(env, "seed")
    dbt(env, "run", "--select", "int_decay_parameters")  # creates the functions and the fitted table
    with psycopg.connect(conninfo) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into params.decay_parameters_fitted (category_id, event_type, family, "
                "half_life_days, logistic_k, logistic_l, period_days, period_weights) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s)",
                FITTED,
            )
    dbt(env, "build", "--vars", '{as_of: "2026-11-01", as_of_start: "2026-10-29", half_life_days: 4}')
    return conninfo


def sql_multiplier(conn, family, age, h=None, k=None, l=None, period_days=None, weights=None):
    return conn.execute(
        "select analytics.decay_multiplier(%s, %s, %s, %s, %s, %s, %s)", (family, age, h, k, l, period_days, weights)
    ).fetchone()[0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["exponential", "logistic", "period"]),
    st.just(0.0) | st.floats(1e-6, 3650),
    st.floats(1e-3, 1000),
    st.floats(1e-3, 1e3),
    st.just(0.0) | st.floats(1e-9, 10),
    st.sampled_from([1.0, 7.0, 30.0]),
    st.lists(st.floats(0, 1), min_size=0, max_size=8).map(lambda ws: [1.0] + sorted(ws, reverse=True)),
)
def test_sql_decay_function_equals_python(db, family, age, h, k, l, period_days, weights):
    # Domain: ages of at least a tenth of a second, the parameter ranges assert_decay_parameters_valid allows.
    with psycopg.connect(db) as conn:
        got = sql_multiplier(conn, family, age, h, k, l, period_days, weights)
    want = float(
        decay.multiplier(
            family, age, half_life_days=h, logistic_k=k, logistic_l=l, period_days=period_days, period_weights=weights
        )
    )
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-300), (got, want)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.just(0.0) | st.floats(1e-6, 3650),
    st.just(float("inf")) | st.floats(1e-3, 1e5),
    st.sampled_from([0.0, 1.0]) | st.floats(1e-6, 1),
    st.floats(0, 730),
    st.floats(1e-2, 365),
)
def test_sql_repeat_kernel_equals_python(db, age, h, bump_weight, bump_mean, bump_sd):
    # Domain: a bump weight of 0 or at least 1e-6 (the fit's range; PostgreSQL raises on a product that underflows).
    with psycopg.connect(db) as conn:
        got = conn.execute(
            "select analytics.repeat_multiplier(%s, %s, %s, %s, %s)", (age, h, bump_weight, bump_mean, bump_sd)
        ).fetchone()[0]
    want = float(decay.repeat(age, h, bump_weight, bump_mean, bump_sd))
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-300), (got, want)


def test_sql_decay_is_one_at_zero_and_halves_at_half_life(db):
    with psycopg.connect(db) as conn:
        assert sql_multiplier(conn, "exponential", 0.0, h=3.0) == 1.0
        assert sql_multiplier(conn, "exponential", 3.0, h=3.0) == 0.5
        assert sql_multiplier(conn, "exponential", 5.0, h=float("inf")) == 1.0
        k, l = 2.0, 0.3
        assert math.isclose(
            sql_multiplier(conn, "logistic", decay.logistic_half_life(k, l), k=k, l=l), 0.5, rel_tol=1e-12
        )
        assert sql_multiplier(conn, "logistic", 1e6, k=k, l=l) == 0.0
        assert sql_multiplier(conn, "period", 13.9, period_days=7.0, weights=[1.0, 0.4]) == 0.4


def mart(conninfo, table, key):
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(f"select as_of, user_id, {key}, interest, event_count from analytics.{table}").fetchall()
    frame = pd.DataFrame(rows, columns=["as_of", "user_id", key, "interest", "event_count"])
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
    return frame.set_index(["as_of", "user_id", key]).sort_index()


def python_reference(conninfo, by):
    with psycopg.connect(conninfo) as conn:
        events = pd.DataFrame(
            conn.execute(
                "select user_id, item_id, category_id, event_type, event_ts from analytics.stg_behaviour__events"
            ).fetchall(),
            columns=["user_id", "item_id", "category_id", "event_type", "event_ts"],
        )
        parameters = pd.DataFrame(
            conn.execute(
                "select category_id, event_type, family, half_life_days, logistic_k, logistic_l, period_days, "
                "period_weights from analytics.int_decay_parameters"
            ).fetchall(),
            columns=["category_id", "event_type", *reference.PARAMETER_COLUMNS],
        )
    events["event_ts"] = pd.to_datetime(events["event_ts"], utc=True)
    return events, parameters


def compare(got: pd.DataFrame, want: pd.DataFrame):
    assert got.index.tolist() == want.index.tolist()
    assert (got.event_count.to_numpy() == want.event_count.to_numpy()).all()
    np.testing.assert_allclose(got.interest.to_numpy(), want.interest.to_numpy(), rtol=1e-9, atol=0)


def test_parameters_resolve_fitted_over_defaults(db):
    _, parameters = python_reference(db, None)
    assert len(parameters) == len(FITTED) + 1
    default = parameters[(parameters.category_id == "*") & (parameters.event_type == "*")].iloc[0]
    assert (default.family, default.half_life_days) == ("exponential", 4.0)  # var half_life_days fills the seed


def test_user_category_mart_equals_reference(db):
    events, parameters = python_reference(db, None)
    days = [AS_OF - dt.timedelta(days=d) for d in (3, 2, 1, 0)]
    want = reference.interest(events, parameters, WEIGHTS, days, by=("user_id", "category_id"))
    want = want.set_index(["as_of", "user_id", "category_id"]).sort_index()
    compare(mart(db, "user_category_interest", "category_id"), want)


def test_user_item_mart_equals_reference(db):
    events, parameters = python_reference(db, None)
    want = reference.interest(events, parameters, WEIGHTS, [AS_OF], by=("user_id", "item_id"))
    want = want.set_index(["as_of", "user_id", "item_id"]).sort_index()
    compare(mart(db, "user_item_interest", "item_id"), want)


def parameters_with_one_fitted_row(tmp_path, name: str, row: tuple) -> tuple[str, dict]:
    """A fresh database with the parameters table built and one fitted ``row`` (the FITTED layout) in it."""
    conninfo = recreate_database(name)
    env = stack_env(tmp_path, name)
    dbt(env, "seed")
    dbt(env, "run", "--select", "int_decay_parameters")
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "insert into params.decay_parameters_fitted (category_id, event_type, family, half_life_days, "
            "logistic_k, logistic_l, period_days, period_weights) values (%s, %s, %s, %s, %s, %s, %s, %s)",
            row,
        )
    return conninfo, env


@pytest.mark.parametrize("family", ["exponential", "logistic", "period"])
def test_decay_family_var_puts_every_kind_on_one_family_with_its_half_life(tmp_path, family):
    """var decay_family (the DAG's Param): every kind gets ``family`` and still halves at its half-life."""
    conninfo, env = parameters_with_one_fitted_row(
        tmp_path, f"test_decay_family_{family}", ("3", "*", "exponential", 2.5, None, None, None, None)
    )
    dbt(env, "run", "--select", "int_decay_parameters", "--vars", f"{{decay_family: {family}, half_life_days: 4}}")
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "select category_id, event_type, family, half_life_days, logistic_k, logistic_l, "
            "period_days, period_weights from analytics.int_decay_parameters order by 1"
        ).fetchall()
    assert [(r[0], r[2], r[3]) for r in rows] == [("*", family, 4.0), ("3", family, 2.5)]
    for _, _, _, h, k, l, period_days, weights in rows:
        if family == "logistic":
            assert decay.logistic_half_life(k, l) == pytest.approx(h, rel=1e-12)
        if family == "period":
            assert decay.period_half_life(weights, period_days) == math.ceil(h) and weights[-1] == 0.0
            assert decay.multiplier("period", 8 * h + 1, period_days=period_days, period_weights=weights) == 0.0
        params = dict(half_life_days=h, logistic_k=k, logistic_l=l, period_days=period_days, period_weights=weights)
        assert decay.multiplier(family, 0.0, **params) == 1.0


def test_an_unknown_decay_family_is_a_clear_error(tmp_path):
    recreate_database("test_decay_family_unknown")
    run = dbt(
        stack_env(tmp_path, "test_decay_family_unknown"),
        "compile",
        "--select",
        "int_decay_parameters",
        "--vars",
        "{decay_family: hyperbolic}",
        check=False,
    )
    assert run.returncode != 0 and "decay_family must be table, exponential, logistic or period" in run.stdout


def test_half_life_overrides_replace_the_rows_of_their_keys(tmp_path):
    """var half_life_overrides (the DAG's Param, JSON text as Airflow renders it): exponential at that half-life."""
    conninfo, env = parameters_with_one_fitted_row(
        tmp_path, "test_half_life_overrides", ("3", "*", "logistic", None, 0.5, 0.2, None, None)
    )
    overrides = json.dumps({"3:*": 2.5, "it's:purchase": 30})  # JSON text, as the DAG passes it
    dbt(env, "run", "--select", "int_decay_parameters", "--vars", json.dumps({"half_life_overrides": overrides}))
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "select category_id, event_type, family, half_life_days, origin "
            "from analytics.int_decay_parameters order by 1, 2"
        ).fetchall()
    assert rows == [
        ("*", "*", "exponential", 7.0, "default"),
        ("3", "*", "exponential", 2.5, "override"),
        ("it's", "purchase", "exponential", 30.0, "override"),
    ]
    bad = dbt(env, "run", "--select", "int_decay_parameters", "--vars", "{half_life_overrides: {'3': 2}}", check=False)
    assert bad.returncode != 0 and 'each entry must be "category_id:event_type"' in bad.stdout
