"""The served-prediction buffer never blocks or loses rows silently: a failed write keeps them, a full
buffer drops the oldest and counts them."""

import contextlib
import datetime as dt

import pytest

from interest_decay.monitoring.prediction_log import PredictionLog, ServedPrediction

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def row(i: int) -> ServedPrediction:
    return ServedPrediction(T0 + dt.timedelta(seconds=i), "recommend", "m:1", f"u{i}", False, 1.0, 0.5, "c", 10)


def unreachable():
    raise ConnectionError("database is down")


def test_a_failed_write_keeps_the_rows_for_the_next_flush():
    log = PredictionLog(unreachable, max_rows=10)
    for i in range(3):
        log.add(row(i))
    with pytest.raises(ConnectionError):
        log.flush()
    log.add(row(3))
    assert log.buffered() == 4 and log.dropped == 0 and log.written == 0


def test_a_full_buffer_drops_the_oldest_rows_and_counts_them():
    log = PredictionLog(unreachable, max_rows=3)
    for i in range(5):
        log.add(row(i))
    assert log.buffered() == 3 and log.dropped == 2
    with pytest.raises(ConnectionError):
        log.flush()
    assert log.buffered() == 3 and log.dropped == 2


def test_an_empty_buffer_writes_nothing():
    @contextlib.contextmanager
    def never():
        raise AssertionError("no connection should be opened")
        yield

    assert PredictionLog(never).flush() == 0
