"""The event contract: what every behaviour event looks like when it enters the platform.

| column        | type                | meaning                                                        |
|---------------|---------------------|----------------------------------------------------------------|
| user_id       | string, required    | who acted (pseudonymised downstream)                           |
| item_id       | string, required    | what they acted on                                             |
| category_id   | string, required    | the item's category                                            |
| event_type    | string, required    | one of ``view``, ``cart``, ``fav``, ``purchase``, ``rating``   |
| ts            | timestamp, required | when, ISO 8601; no offset means UTC                            |
| value         | number, optional    | rating, quantity or amount, by event type                      |

Files (CSV with a header row, or Parquet) may carry extra columns; they are ignored.
"""

from __future__ import annotations

EVENT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "category_id", "event_type", "ts", "value")
REQUIRED_COLUMNS: tuple[str, ...] = EVENT_COLUMNS[:-1]
EVENT_TYPES: tuple[str, ...] = ("view", "cart", "fav", "purchase", "rating")


class EventSchemaError(ValueError):
    """A file that cannot be read as events at all (as opposed to single bad rows)."""


def check_columns(columns: list[str], source: str) -> None:
    """Raise a readable error when a file lacks a required column of the contract."""
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        found = ", ".join(columns) or "none"
        if not found.isprintable() or len(found) > 300:  # binary or not CSV at all: show what it starts with
            found = f"a first line that is no CSV header ({found[:40]!r}...)"
        raise EventSchemaError(
            f"{source}: missing required column(s) {', '.join(missing)}; "
            f"expected {', '.join(EVENT_COLUMNS)} (value optional), found {found}"
        )
