"""The event rules (interest_decay.events.rules): known answers, and the dbt macros generated from them."""

import datetime as dt

import pandas as pd
import pytest

from interest_decay.events import rules


def test_the_dbt_macros_staging_uses_are_generated_from_the_rules():
    assert rules.DBT_MACROS.read_text() == rules.dbt_macros(), (
        "dbt_project/macros/event_rules.sql is stale: python -m interest_decay.events.rules --write-dbt"
    )


@pytest.mark.parametrize(
    "text, instant",
    [
        ("2026-01-01", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
        ("2026-01-01T10:20", dt.datetime(2026, 1, 1, 10, 20, tzinfo=dt.UTC)),
        ("2026-01-01 10:20:30.5Z", dt.datetime(2026, 1, 1, 10, 20, 30, 500_000, tzinfo=dt.UTC)),
        ("2026-01-01T00:30:00.000001+05:30", dt.datetime(2025, 12, 31, 19, 0, 0, 1, tzinfo=dt.UTC)),
        ("2024-02-29T23:00-0100", dt.datetime(2024, 3, 1, 0, 0, tzinfo=dt.UTC)),
        ("1000-01-01", dt.datetime(1000, 1, 1, tzinfo=dt.UTC)),  # outside pandas' Timestamp range
        ("9999-12-31T10:00:00+10", dt.datetime(9999, 12, 31, tzinfo=dt.UTC)),
    ],
)
def test_timestamps_known_answers(text, instant):
    micros = rules.timestamp_micros(pd.Series([text])).iloc[0]
    assert micros == (instant - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def test_a_day_after_python_s_last_day_still_parses():
    later = rules.timestamp_micros(pd.Series(["9999-12-31T23:59:59-14"])).iloc[0]
    last = rules.timestamp_micros(pd.Series(["9999-12-31T23:59:59Z"])).iloc[0]
    assert later - last == 14 * 3600 * 1_000_000


@pytest.mark.parametrize(
    "text", ["2026-02-29", "0000-01-01", "2026-13-01", "20260101", "2026-01-01T24:00", "2026-01-01T10", "2026-W01-1"]
)
def test_what_is_no_timestamp(text):
    assert rules.timestamp_micros(pd.Series([text])).isna().all()


def test_numbers_beyond_a_double_do_not_parse_and_nan_is_a_number():
    texts = pd.Series(["1e400", "1e-400", "5e-324", "1_000", "-NaN", "inf", " 1", "0.0e5"], dtype="string")
    value, parsed = rules.numbers(texts)
    assert parsed.tolist() == [False, False, True, False, True, True, False, True]
    assert value[2] == 5e-324 and value[5] == float("inf") and value[7] == 0.0


def test_every_rule_reason_maps_back_to_its_rule():
    assert rules.rule_name('unknown event_type "teleport"') == "unknown event_type"
    assert rules.rule_name("unparseable row: line 3: expected 5 fields") == "unparseable row"
    assert rules.rule_name("negative value") == "negative value"
    with pytest.raises(ValueError):
        rules.rule_name("something else")
