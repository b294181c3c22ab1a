"""What the server answered, for prediction-drift checks: one row per served prediction in PostgreSQL
``monitoring.served_predictions``.

Requests only append to an in-memory buffer (no database work on the request path); a daemon thread
writes the buffer every ``PREDICTION_LOG_SECONDS`` (default 5) with one COPY. When the database is
unreachable, rows wait in the buffer, which keeps the newest ``PREDICTION_LOG_MAX_ROWS`` (default 100,000)
and counts what it had to drop. ``PREDICTION_LOG_SECONDS=0`` turns logging off.
``interest_decay.monitoring.drift.prediction_drift`` compares a day of these rows with the days before it.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import operator
import threading
from dataclasses import dataclass

from interest_decay.monitoring.tables import create_table

log = logging.getLogger(__name__)

DDL = """
create schema if not exists monitoring;
create table if not exists monitoring.served_predictions (
    served_at timestamptz not null,
    endpoint text not null,
    model text not null,
    user_id text not null,
    fallback boolean not null,
    top_score float8,
    mean_score float8,
    top_category text,
    item_count int not null
);
create index if not exists served_predictions_served_at on monitoring.served_predictions (served_at);
"""
COLUMNS = (
    "served_at",
    "endpoint",
    "model",
    "user_id",
    "fallback",
    "top_score",
    "mean_score",
    "top_category",
    "item_count",
)


@dataclass(frozen=True)
class ServedPrediction:
    served_at: dt.datetime
    endpoint: str  # "recommend" or "churn_risk"
    model: str  # tag of the model that answered
    user_id: str  # pseudonymised
    fallback: bool  # popularity fallback (no profile) or unknown user
    top_score: float | None  # the first item's score; the churn probability
    mean_score: float | None  # mean score of the returned items; the churn probability
    top_category: str | None  # category of the first item
    item_count: int  # items returned (1 for churn_risk)


# A row's values in COLUMNS order. dataclasses.astuple deep-copies every field (15 us a row, its datetime
# included: a 5 s flush of 3,000 rows held a serving worker's GIL for ~45 ms); attrgetter takes 0.2 us.
_values = operator.attrgetter(*COLUMNS)


class PredictionLog:
    """Buffer of served predictions, written to PostgreSQL by a background thread."""

    def __init__(self, connect, max_rows: int = 100_000):
        self._connect = connect  # () -> a psycopg connection context manager
        self._rows: collections.deque[ServedPrediction] = collections.deque(maxlen=max_rows)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.dropped = 0
        self.written = 0
        self._ddl_done = False

    def add(self, row: ServedPrediction) -> None:
        with self._lock:
            if len(self._rows) == self._rows.maxlen:
                self.dropped += 1
            self._rows.append(row)

    def flush(self) -> int:
        """Write the buffered rows; returns how many. On a database error they go back into the buffer."""
        with self._lock:
            rows, self._rows = list(self._rows), collections.deque(maxlen=self._rows.maxlen)
        if not rows:
            return 0
        try:
            with self._connect() as conn:
                if not self._ddl_done:
                    with conn.transaction():
                        create_table(conn, DDL)
                    self._ddl_done = True
                with (
                    conn.cursor() as cur,
                    cur.copy(f"copy monitoring.served_predictions ({', '.join(COLUMNS)}) from stdin") as copy,
                ):
                    for row in rows:
                        copy.write_row(_values(row))
        except Exception:
            with self._lock:
                kept = collections.deque(rows + list(self._rows), maxlen=self._rows.maxlen)
                self.dropped += len(rows) + len(self._rows) - len(kept)
                self._rows = kept
            raise
        self.written += len(rows)
        return len(rows)

    def buffered(self) -> int:
        return len(self._rows)

    def start(self, interval_seconds: float) -> None:
        if interval_seconds <= 0:
            return

        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    self.flush()
                except Exception as error:  # noqa: BLE001 (monitoring must never break serving)
                    log.warning("served predictions not written yet (%d buffered): %s", self.buffered(), error)

        threading.Thread(target=loop, name="prediction-log", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
