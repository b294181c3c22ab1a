"""The event rules: when a raw row becomes an event, and the reason when it does not. One definition for
every place that checks events.

- dbt staging (``stg_behaviour__events_checked``) uses the macros of ``dbt_project/macros/event_rules.sql``,
  generated from this module (``python -m interest_decay.events.rules --write-dbt``; a unit test fails when
  the file is stale);
- ``POST /events``, ``make push`` and the nightly replay call ``check`` (``interest_decay.online.realtime``);
- the offline harness and the churn model clean their files with ``check`` too (``models.harness.ranking``,
  ``models.pipeline.churn_data``).

``tests/integration/test_event_rules.py`` feeds the same random rows (odd ISO forms, Unicode whitespace and
digits, NUL, lone surrogates, huge and tiny numbers, every event type in any case) through staging and through
``check`` and finds the same verdict and reason for every row.

The rules, in the order the first failing one names the reason (``RULES``):

- every field is trimmed of ASCII whitespace (``WHITESPACE``; other Unicode spaces are data) and an empty
  field is missing; ``event_type`` is lower-cased in ASCII only;
- a row the loader could not store as given (``parse_error``: a ragged CSV row, a NUL byte, bytes that are
  not UTF-8; ``interest_decay.events.ingest.storable``) is an unparseable row;
- ids longer than ``MAX_ID_LENGTH`` characters are refused;
- a timestamp is ISO 8601 as ``TIMESTAMP`` spells it, ASCII digits only: ``YYYY-MM-DD``, optionally
  ``[T ]hh:mm[:ss[.ffffff]]`` and an offset ``Z`` / ``±hh[[:]mm]`` right after the time; no offset means UTC;
  a day that does not exist (02-30) is unparseable; it must lie from the setting ``EVENTS_EARLIEST_DAY``
  (``interest_decay.config``; dbt reads the same environment variable) to the load time + ``FUTURE_SLACK``;
- a value is a decimal number as ``NUMBER`` spells it (ASCII digits, optional exponent) or one of
  ``inf``/``infinity``/``nan`` (any case, optional sign, which is non-finite); a number beyond a double's range
  (1e400, 1e-400) is non-numeric, as PostgreSQL's ``float8`` says; it must be >= 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from interest_decay import config as settings
from interest_decay.events.schema import EVENT_TYPES

WHITESPACE = " \t\n\r\f\v"
MAX_ID_LENGTH = 256
EARLIEST_SETTING = "EVENTS_EARLIEST_DAY"
EARLIEST_DEFAULT = settings.Settings.model_fields["events_earliest_day"].default
FUTURE_SLACK = dt.timedelta(days=1)
REASON_QUOTE_LENGTH = 40  # characters of a bad value quoted in its reason

_HOUR, _MINUTE, _SECOND = "([01][0-9]|2[0-3])", "([0-5][0-9])", "([0-5][0-9])"
TIMESTAMP = (  # groups: year, month, day, hour, minute, second, fraction, offset
    "([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    f"(?:[T ]{_HOUR}:{_MINUTE}(?::{_SECOND}(?:[.]([0-9]{{1,6}}))?)?(Z|[+-](?:0[0-9]|1[0-4])(?::?[0-5][0-9])?)?)?"
)
NUMBER = "[+-]?(?:[0-9]+(?:[.][0-9]*)?|[.][0-9]+)(?:[eE][+-]?[0-9]+)?"
SPECIAL_NUMBER = "[+-]?(?:[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])"


@dataclass(frozen=True)
class Rule:
    name: str  # the reason without what it quotes: what reports count by
    reason: str  # SQL expression of the reason over the typed row (``_reason_sql``); Python: ``Rule.says``
    sql: str  # the condition in staging's SQL over the typed row (see ``typed_sql``)
    quotes: str | None = None  # the typed column whose first REASON_QUOTE_LENGTH characters the reason quotes

    def says(self, quoted: pd.Series) -> pd.Series:
        """The reason per row, as the SQL expression writes it."""
        if self.quotes == "earliest":
            return pd.Series(f"{self.name} ({earliest_day()})", index=quoted.index, dtype="string")
        if self.quotes is None:
            return pd.Series(self.name, index=quoted.index, dtype="string")
        if self.quotes == "parse_error":
            return self.name + ": " + quoted.astype("string")
        return self.name + ' "' + quoted.astype("string").str[:REASON_QUOTE_LENGTH] + '"'


def _quoted(name: str, column: str) -> str:
    return f"'{name} \"' || left({column}, {REASON_QUOTE_LENGTH}) || '\"'"


def earliest_day() -> dt.date:
    """The first day (UTC) an event may lie on: the setting ``EVENTS_EARLIEST_DAY``, read now."""
    return settings.get().events_earliest_day


# dbt reads the setting from the same environment variable when it runs (an empty one counts as unset)
_EARLIEST_DAY_SQL = f"coalesce(nullif('{{{{ env_var(\"{EARLIEST_SETTING}\", \"\") }}}}', ''), '{EARLIEST_DEFAULT}')"
_EARLIEST_SQL = f"({_EARLIEST_DAY_SQL}::date::timestamp at time zone 'UTC')"
_SLACK_SQL = f"interval '{FUTURE_SLACK.total_seconds():g} seconds'"
RULES = (
    Rule("unparseable row", "'unparseable row: ' || parse_error", "parse_error is not null", "parse_error"),
    Rule("missing user_id", "'missing user_id'", "user_id is null"),
    Rule("missing item_id", "'missing item_id'", "item_id is null"),
    Rule("missing category_id", "'missing category_id'", "category_id is null"),
    Rule(
        f"oversize id (more than {MAX_ID_LENGTH} characters)",
        f"'oversize id (more than {MAX_ID_LENGTH} characters)'",
        f"greatest(length(user_id), length(item_id), length(category_id)) > {MAX_ID_LENGTH}",
    ),
    Rule("missing event_type", "'missing event_type'", "event_type is null"),
    Rule(
        "unknown event_type",
        _quoted("unknown event_type", "event_type"),
        "event_type not in (select weights.event_type from {{ ref('event_type_weights') }} as weights)",
        "event_type",
    ),
    Rule("missing ts", "'missing ts'", "ts_text is null"),
    Rule("unparseable timestamp", _quoted("unparseable timestamp", "ts_text"), "event_ts is null", "ts_text"),
    Rule(
        f"timestamp before {EARLIEST_SETTING}",
        f"'timestamp before {EARLIEST_SETTING} (' || {_EARLIEST_DAY_SQL}::date::text || ')'",
        f"event_ts < {_EARLIEST_SQL}",
        "earliest",
    ),
    Rule(
        "timestamp in the future (after load time + 1 day)",
        "'timestamp in the future (after load time + 1 day)'",
        f"event_ts > loaded_at + {_SLACK_SQL}",
    ),
    Rule(
        "non-numeric value",
        _quoted("non-numeric value", "value_text"),
        "value_text is not null and value is null",
        "value_text",
    ),
    Rule(
        "non-finite value",
        "'non-finite value'",
        "value = 'NaN'::float8 or value in ('Infinity'::float8, '-Infinity'::float8)",
    ),
    Rule("negative value", "'negative value'", "value < 0"),
)


# --- Python ------------------------------------------------------------------------------------------------


def text(column: pd.Series) -> pd.Series:
    """Trimmed text (``WHITESPACE``), empty as missing: staging's ``event_text``."""
    values = column.astype("string").str.strip(WHITESPACE)
    return values.mask(values == "")


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(column: pd.Series) -> pd.Series:
    return column.map(lambda v: v.translate(_LOWER), na_action="ignore").astype("string")


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm; any year, int64)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _month_days(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    return np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[m] + (leap & (m == 2))


def timestamp_micros(ts_text: pd.Series) -> pd.Series:
    """Microseconds since the epoch (UTC) of each ``TIMESTAMP`` text, <NA> where it is none or names no real
    day (staging's ``try_timestamptz``)."""
    parts = ts_text.astype("string").str.extract(rf"\A{TIMESTAMP}\Z")
    out = pd.Series(pd.NA, index=ts_text.index, dtype="Int64")
    matched = parts[0].notna().to_numpy()
    if not matched.any():
        return out
    p = parts[matched]

    def number(i: int) -> np.ndarray:
        return pd.to_numeric(p[i].fillna("0")).to_numpy(dtype=np.int64)

    y, m, d = number(0), number(1), number(2)
    real = (y > 0) & (d <= _month_days(y, m))  # PostgreSQL has no year 0
    micros = pd.to_numeric(p[6].fillna("").str.ljust(6, "0")).to_numpy(dtype=np.int64)
    offset = p[7].fillna("Z").tolist()
    offset_minutes = np.array(
        [
            0 if o == "Z" else (1 if o[0] == "+" else -1) * (int(o[1:3]) * 60 + int(o[3:].lstrip(":") or 0))
            for o in offset
        ],
        dtype=np.int64,
    )
    seconds = _days_from_civil(y, m, d) * 86400 + number(3) * 3600 + number(4) * 60 + number(5)
    values = pd.array((seconds - offset_minutes * 60) * 1_000_000 + micros, dtype="Int64")
    values[~real] = pd.NA
    out[matched] = values
    return out


def numbers(value_text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(value, parsed) of each text: ``NUMBER`` or ``SPECIAL_NUMBER`` as a float (NaN where it says nan), and
    whether it parsed; a decimal beyond a double's range (inf from finite digits, 0 from a mantissa that is not
    0) does not, as staging's ``try_float8`` (PostgreSQL's float8) says."""
    value = np.full(len(value_text), np.nan)
    decimal = value_text.str.fullmatch(NUMBER).fillna(False).to_numpy(dtype=bool)
    special = value_text.str.fullmatch(SPECIAL_NUMBER).fillna(False).to_numpy(dtype=bool)
    if decimal.any():
        given = value_text[decimal]
        parsed = given.map(float).to_numpy(dtype=float)
        mantissa = given.str.replace("[eE].*", "", regex=True)
        beyond = np.isinf(parsed) | ((parsed == 0) & mantissa.str.contains("[1-9]").to_numpy(dtype=bool))
        value[decimal] = parsed
        decimal[np.flatnonzero(decimal)[beyond]] = False
    if special.any():
        value[special] = value_text[special].map(float).to_numpy(dtype=float)
    return value, decimal | special


def check(frame: pd.DataFrame, loaded_at) -> tuple[pd.DataFrame, pd.Series]:
    """The typed rows of ``frame`` (``EVENT_COLUMNS`` as text, optionally ``parse_error``) and the reason each
    is rejected (<NA>: accepted), as staging decides with ``loaded_at`` (a time, or one per row) as the load
    time. A ``ts`` column already of datetime type and a numeric ``value`` are taken as they are (a NaN value
    is absent).

    Typed columns: user_id, item_id, category_id, event_type (ASCII lower case), ts (UTC; NaT where the row is
    rejected), value (float; NaN when absent or rejected)."""
    index = frame.index
    error = frame["parse_error"].astype("string") if "parse_error" in frame else pd.Series(pd.NA, index, "string")
    user, item, category = (text(frame[c]) for c in ("user_id", "item_id", "category_id"))
    event_type = ascii_lower(text(frame["event_type"]))
    if pd.api.types.is_datetime64_any_dtype(frame["ts"]):
        ts = frame["ts"]
        ts = (ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")).dt.tz_localize(None)
        ts_text = ts.astype("string")
        micros = pd.Series(ts.astype("datetime64[us]").astype(np.int64), index, dtype="Int64").mask(ts.isna())
    else:
        ts_text = text(frame["ts"])
        micros = timestamp_micros(ts_text)
    if "value" in frame and pd.api.types.is_numeric_dtype(frame["value"]):
        value = frame["value"].to_numpy(dtype=float)
        value_text = pd.Series(value, index).astype("string").mask(np.isnan(value))
        parsed = ~np.isnan(value)
    else:
        value_text = text(frame["value"]) if "value" in frame else pd.Series(pd.NA, index, "string")
        value, parsed = numbers(value_text)
    loaded = pd.Series(pd.to_datetime(loaded_at, utc=True), index=index).dt.tz_localize(None)
    limit = (loaded + FUTURE_SLACK).astype("datetime64[us]").astype(np.int64).to_numpy()
    earliest = int(pd.Timestamp(earliest_day(), tz="UTC").value // 1000)
    longest = pd.concat([s.str.len() for s in (user, item, category)], axis=1).max(axis=1)
    finite = np.isfinite(value)
    failed = {
        "unparseable row": error.notna(),
        "missing user_id": user.isna(),
        "missing item_id": item.isna(),
        "missing category_id": category.isna(),
        RULES[4].name: longest > MAX_ID_LENGTH,
        "missing event_type": event_type.isna(),
        "unknown event_type": ~event_type.isin(EVENT_TYPES),
        "missing ts": ts_text.isna(),
        "unparseable timestamp": micros.isna(),
        RULES[9].name: micros < earliest,
        RULES[10].name: micros > limit,
        "non-numeric value": value_text.notna() & ~parsed,
        "non-finite value": pd.Series(parsed & ~finite, index),
        "negative value": pd.Series(parsed & finite & (np.nan_to_num(value) < 0), index),
    }
    quoted = {"parse_error": error, "event_type": event_type, "ts_text": ts_text, "value_text": value_text}
    reason = pd.Series(pd.NA, index=index, dtype="string")
    for rule in RULES:
        hit = reason.isna() & failed[rule.name].fillna(False).astype(bool)
        if hit.any():
            reason = reason.mask(hit, rule.says(quoted.get(rule.quotes, error)))
    accepted = reason.isna().to_numpy()
    typed = pd.DataFrame(
        {
            "user_id": user,
            "item_id": item,
            "category_id": category,
            "event_type": event_type,
            "ts": pd.to_datetime(micros.where(accepted), unit="us", utc=True),
            "value": np.where(accepted & parsed & finite, value, np.nan),
        },
        index=index,
    )
    return typed, reason


def rule_name(reason: str) -> str:
    """The rule a reason comes from (what it says without what it quotes)."""
    for rule in RULES:
        quote = {"parse_error": ": ", "earliest": " ("}.get(rule.quotes, ' "')
        if reason == rule.name or reason.startswith(rule.name + quote):
            return rule.name
    raise ValueError(f"no rule gives the reason {reason!r}")


# --- SQL (dbt) ---------------------------------------------------------------------------------------------

DBT_MACROS = Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "event_rules.sql"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def dbt_macros() -> str:
    """The dbt macros staging uses, written from the definitions above (``--write-dbt``)."""
    whitespace = " || ".join(f"chr({ord(c)})" for c in WHITESPACE)
    upper, lower = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
    cases = "\n".join(f"        when {rule.sql}\n            then {rule.reason}" for rule in RULES)
    return f"""{{#- GENERATED by `python -m interest_decay.events.rules --write-dbt` from
    interest_decay/events/rules.py, the one definition of the event rules (POST /events and the offline
    harness use it too): do not edit here. -#}}

{{#- A field as text: trimmed of ASCII whitespace, empty as null. #}}
{{% macro event_text(column) %}}nullif(btrim({{{{ column }}}}, {whitespace}), ''){{% endmacro %}}

{{#- ASCII lower case (lower() would follow the database's locale). #}}
{{% macro event_lower(expression) %}}translate({{{{ expression }}}}, '{upper}', '{lower}'){{% endmacro %}}

{{#- What try_timestamptz accepts (ISO 8601, ASCII digits). #}}
{{% macro event_timestamp_pattern() %}}{_sql_string("^" + TIMESTAMP + "$")}{{% endmacro %}}

{{#- What try_float8 accepts: a decimal number, or inf / infinity / nan in any case. #}}
{{% macro event_number_pattern() %}}{_sql_string("^" + NUMBER + "$")}{{% endmacro %}}
{{% macro event_special_number_pattern() %}}{_sql_string("^" + SPECIAL_NUMBER + "$")}{{% endmacro %}}

{{#- The reason a typed row is rejected (null: accepted); the first rule that fails names it. #}}
{{% macro event_reject_reason() %}}
    case
{cases}
    end
{{%- endmacro %}}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m interest_decay.events.rules",
        description="The event rules: print the dbt macros generated from them, or write them to "
        f"{DBT_MACROS.relative_to(DBT_MACROS.parents[2])}.",
    )
    parser.add_argument("--write-dbt", action="store_true", help="write the dbt macros file")
    args = parser.parse_args(argv)
    if args.write_dbt:
        DBT_MACROS.write_text(dbt_macros())
        print(f"wrote {DBT_MACROS}")
    else:
        print(dbt_macros(), end="")


if __name__ == "__main__":
    main()
