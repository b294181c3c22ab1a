"""One rule set online and offline: the same random rows through the API's check (``POST /events``) and
through dbt staging get the same verdict and the same reason, row by row (``interest_decay.events.rules``)."""

import datetime as dt

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from interest_decay.events.ingest import ensure_raw_schema
from interest_decay.events.schema import EVENT_TYPES
from interest_decay.online.realtime import accept_batch, check_events
from tests.conftest import dbt, stack_env

pytestmark = pytest.mark.postgres

WHITESPACE = ["", " ", "\t", "\n", "\x0b", "\x0c", "\r", "\u00a0", "\u2003", "\u3000", "\u200b"]


def padded(values):
    return st.tuples(st.sampled_from(WHITESPACE), values, st.sampled_from(WHITESPACE)).map("".join)


ODD = ["", "a\x00b", "u\ud800", "\udcff", "x" * 257, "é" * 256, "١٢", "Ⅻ"]
IDS = st.one_of(st.sampled_from(["u1", "i1", "c1", *ODD]), st.text(max_size=6))
KINDS = st.one_of(
    st.tuples(st.sampled_from([*EVENT_TYPES, "teleport", "ＶＩＥＷ", "vİew", "view\x00", "ſ"]), st.booleans()).map(
        lambda t: t[0].upper() if t[1] else t[0]
    ),
    st.text(max_size=6),
)


@st.composite
def iso_like(draw) -> str:
    """Timestamps near and beyond what ISO 8601 allows: odd fields, separators, fractions and offsets."""
    date = f"{draw(st.sampled_from([0, 1, 1969, 1989, 1990, 2025, 2026, 2027, 9999])):04d}-{draw(st.integers(0, 13)):02d}-{draw(st.integers(0, 32)):02d}"
    form = draw(st.integers(0, 3))
    if form == 0:
        return date + draw(st.sampled_from(["", "Z", "+01:00"]))
    hm = f"{draw(st.integers(0, 25)):02d}:{draw(st.integers(0, 61)):02d}"
    seconds = "" if form == 1 else f":{draw(st.integers(0, 61)):02d}"
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".1234567", "."])) if form == 3 else ""
    sep = draw(st.sampled_from(["T", " ", "t", "  "]))
    offset = draw(st.sampled_from(["", "Z", "z", "+05:30", "-0800", "+05", "+15:00", "-14:00", " +01:00", "+5"]))
    return date + sep + hm + seconds + fraction + offset


TIMESTAMPS = padded(
    st.one_of(
        iso_like(),
        st.sampled_from(
            ["20261203", "2026-12-03T12", "2026-W49-3", "2026-337", "yesterday", "now", "epoch", "infinity"]
            + ["٢٠٢٦-١٢-٠٣", "2026-12-03T12:00:00+24:00", "2026-12-03T24:00:00", "2026-02-29", "2024-02-29"]
        ),
        st.text(max_size=12),
    )
)
VALUES = st.one_of(
    st.none(),
    st.floats(),
    st.integers(-(10**30), 10**30),
    padded(
        st.one_of(
            st.floats().map(repr),
            st.integers(-(10**400), 10**400).map(str),
            st.sampled_from(["1_000", "1e400", "-1e400", "1e-400", "2e-324", "5e-324", "nan", "-NaN", "+nan"])
            | st.sampled_from(["inf", "+Infinity", "INF", "-infinity", "infinit", "0x1p3", "١٢", ".5", "5.", "-0"])
            | st.sampled_from(["+.5e-3", "1e", "e3", "", "1e+", "--1", "1.2.3", "1e99999999999"]),
            st.text(max_size=8),
        )
    ),
)
EVENT = st.fixed_dictionaries(
    {"user_id": padded(IDS), "item_id": IDS, "category_id": IDS, "event_type": padded(KINDS), "ts": TIMESTAMPS},
    optional={"value": VALUES},
)


@pytest.fixture(scope="module")
def staging(fresh_db, tmp_path_factory):
    """Store a batch as POST /events does and stage it with dbt (with ``settings`` in dbt's environment): (the
    API's reasons, staging's reasons, the load's time)."""
    name, conninfo = fresh_db
    env = stack_env(tmp_path_factory.mktemp("state"), name)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        ensure_raw_schema(conn)
        conn.execute("create schema if not exists analytics")
    dbt(env, "seed")

    def stage(events: list[dict], **settings) -> tuple[list, list, dt.datetime]:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            result = accept_batch(conn, None, events, "test-key")
            (loaded_at,) = conn.execute(
                "select loaded_at from raw.loads where load_id = %s", (result.load_id,)
            ).fetchone()
        dbt({**env, **settings}, "run", "--select", "stg_behaviour__events_checked")
        with psycopg.connect(conninfo) as conn:
            staged = conn.execute(
                "select reject_reason from analytics.stg_behaviour__events_checked where load_id = %s"
                " order by row_number",
                (result.load_id,),
            ).fetchall()
        return result.reasons, [reason for (reason,) in staged], loaded_at

    return stage


# No shrinking: each example is a dbt run, and a failure shows its first rows that differ anyway.
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(events=st.lists(EVENT, min_size=150, max_size=300))
def test_the_api_and_staging_give_every_row_the_same_verdict_and_reason(staging, events):
    api, staged, loaded_at = staging(events)
    assert len(staged) == len(events)
    same_clock = check_events(events, loaded_at)[1]  # the API's check at the load's own time
    differ = [(e, a, s) for e, a, s in zip(events, same_clock, staged) if a != s]
    assert not differ, differ[:5]
    assert api == same_clock  # received_at vs loaded_at: milliseconds apart, no generated ts in between


GOOD = {"user_id": "u1", "item_id": "i1", "category_id": "c1", "event_type": "view", "ts": "2026-01-01T10:00:00Z"}
KNOWN = [  # (change to GOOD, the reason both give)
    ({}, None),
    ({"user_id": "\u00a0u1\u3000", "event_type": " PURCHASE\t", "value": " 2.5 "}, None),
    ({"ts": "2026-01-01 10:00:00.123456+05:30"}, None),
    ({"ts": "2026-01-01"}, None),
    ({"value": "1e-310"}, None),
    ({"user_id": " \t"}, "missing user_id"),
    ({"item_id": "a\x00b"}, "unparseable row: item_id contains a NUL byte (shown as \\x00)"),
    ({"category_id": "x" * 257}, "oversize id (more than 256 characters)"),
    ({"event_type": "ＶＩＥＷ"}, 'unknown event_type "ＶＩＥＷ"'),  # ASCII lower case only
    ({"ts": "20260101"}, 'unparseable timestamp "20260101"'),
    ({"ts": "2026-01-01T10"}, 'unparseable timestamp "2026-01-01T10"'),
    ({"ts": "2026-W01-3"}, 'unparseable timestamp "2026-W01-3"'),
    ({"ts": "2026-02-29"}, 'unparseable timestamp "2026-02-29"'),
    ({"ts": "٢٠٢٦-01-01"}, 'unparseable timestamp "٢٠٢٦-01-01"'),
    ({"ts": "1990-01-01T00:30:00+01:00"}, "timestamp before EVENTS_EARLIEST_DAY (1990-01-01)"),
    ({"ts": "2999-01-01"}, "timestamp in the future (after load time + 1 day)"),
    ({"value": "1_000"}, 'non-numeric value "1_000"'),
    ({"value": "1e400"}, 'non-numeric value "1e400"'),
    ({"value": "1e-400"}, 'non-numeric value "1e-400"'),
    ({"value": "-Infinity"}, "non-finite value"),
    ({"value": "-0.5"}, "negative value"),
]


def test_known_rows_get_the_reason_the_docs_give_in_both_places(staging):
    events = [{**GOOD, **change} for change, _ in KNOWN]
    api, staged, _ = staging(events)
    assert api == staged == [reason for _, reason in KNOWN]


def test_the_earliest_day_is_one_setting_in_both_places(staging, monkeypatch):
    """EVENTS_EARLIEST_DAY moves the "timestamp before" rule alike in the API's check and in dbt staging."""
    monkeypatch.setenv("EVENTS_EARLIEST_DAY", "1995-06-01")
    events = [{**GOOD, "ts": ts} for ts in ("1995-05-31T23:59:59Z", "1995-06-01T00:00:00Z", "1995-06-01T01:00+02:00")]
    api, staged, _ = staging(events, EVENTS_EARLIEST_DAY="1995-06-01")
    early = "timestamp before EVENTS_EARLIEST_DAY (1995-06-01)"
    assert api == staged == [early, None, early]
