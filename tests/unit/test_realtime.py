"""Live-event checks and the online update formula, against the Python reference of the marts."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from interest_decay.decay import reference
from interest_decay.online.realtime import KindParameters, batch_sha256, check_event, fold_events

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
GOOD = {"user_id": "u1", "item_id": "i1", "category_id": "c1", "event_type": "view", "ts": "2026-05-31T10:00:00"}
PARAMETERS = pd.DataFrame(
    [
        {"category_id": "*", "event_type": "*", "family": "exponential", "half_life_days": 7.0},
        {"category_id": "c2", "event_type": "*", "family": "exponential", "half_life_days": 1.5},
        {"category_id": "c3", "event_type": "purchase", "family": "exponential", "half_life_days": 40.0},
    ]
).reindex(columns=["category_id", "event_type", *reference.PARAMETER_COLUMNS])
WEIGHTS = {"view": 1.0, "fav": 2.0, "cart": 3.0, "purchase": 5.0, "rating": 2.0}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"value": "2.5"}, None),
        ({"user_id": "  "}, "missing user_id"),
        ({"item_id": None}, "missing item_id"),
        ({"category_id": "x" * 257}, "oversize id (more than 256 characters)"),
        ({"event_type": "Teleport"}, 'unknown event_type "teleport"'),
        ({"event_type": "PURCHASE"}, None),
        ({"ts": None}, "missing ts"),
        ({"ts": "yesterday"}, 'unparseable timestamp "yesterday"'),
        ({"ts": "1989-12-31T23:59:59Z"}, "timestamp before EVENTS_EARLIEST_DAY (1990-01-01)"),
        ({"ts": "2026-06-02T00:00:01Z"}, "timestamp in the future (after load time + 1 day)"),
        ({"value": "lots"}, 'non-numeric value "lots"'),
        ({"value": "inf"}, "non-finite value"),
        ({"value": -1}, "negative value"),
        ({"item_id": "i\x001"}, "unparseable row: item_id contains a NUL byte (shown as \\x00)"),
        ({"user_id": "u\ud800", "ts": "x"}, "unparseable row: user_id is not valid UTF-8 (bytes shown as \\xNN)"),
    ],
)
def test_check_event_gives_the_staging_reason(change, reason):
    assert check_event({**GOOD, **change}, NOW) == reason


def test_batch_hash_depends_on_content_and_order():
    other = {**GOOD, "item_id": "i2"}
    assert batch_sha256([GOOD, other]) == batch_sha256([dict(GOOD), dict(other)])
    assert batch_sha256([GOOD, other]) != batch_sha256([other, GOOD])


def random_events(rng, n, start, end):
    span = (end - start).total_seconds()
    return pd.DataFrame(
        {
            "user_id": "u1",
            "category_id": rng.choice(["c1", "c2", "c3"], n),
            "event_type": rng.choice(list(WEIGHTS), n),
            "event_ts": [start + dt.timedelta(seconds=float(s)) for s in rng.uniform(0, span, n)],
        }
    )


def row_from_reference(events, as_of):
    """A feature row as the mart would build it at ``as_of`` (kinds from the Python reference)."""
    kinds = reference.interest(events, PARAMETERS, WEIGHTS, [as_of], by=("category_id", "event_type"))
    params = KindParameters(PARAMETERS, WEIGHTS)
    return {
        "kind_category_ids": list(kinds.category_id),
        "kind_event_types": list(kinds.event_type),
        "kind_scores": list(kinds.interest),
        "kind_half_lives": [params.half_life(c, t) for c, t in zip(kinds.category_id, kinds.event_type)],
        "scores_as_of": as_of,
        "total_interest": kinds.interest.sum(),
        "event_count": len(events),
        "category_count": kinds.category_id.nunique(),
        "last_event_ts": events.event_ts.max(),
    }


@pytest.mark.parametrize("seed", range(5))
def test_folding_new_events_equals_recomputing_from_all_events(seed):
    rng = np.random.default_rng(seed)
    t0, t1 = NOW - dt.timedelta(days=3), NOW
    old = random_events(rng, 40, t0 - dt.timedelta(days=30), t0)
    new = random_events(rng, 10, t0 - dt.timedelta(days=2), t1)  # some arrive late (before t0)
    folded = fold_events(
        row_from_reference(old, t0),
        zip(new.category_id, new.event_type, new.event_ts),
        KindParameters(PARAMETERS, WEIGHTS),
        t1,
    )
    want = reference.interest(pd.concat([old, new]), PARAMETERS, WEIGHTS, [t1]).set_index("category_id").interest
    got = dict(zip(folded["category_ids"], folded["interest_scores"]))
    assert set(got) == set(want.index)
    np.testing.assert_allclose([got[c] for c in want.index], want.values, rtol=1e-12)
    assert folded["category_ids"] == sorted(got, key=lambda c: -got[c])
    assert folded["total_interest"] == pytest.approx(want.sum(), rel=1e-12)
    assert folded["event_count"] == 50 and folded["scores_as_of"] == t1
    assert folded["last_event_ts"] == max(old.event_ts.max(), new.event_ts.max())


def test_a_user_without_a_profile_starts_from_nothing():
    folded = fold_events(
        None, [("c2", "purchase", NOW - dt.timedelta(days=1.5))], KindParameters(PARAMETERS, WEIGHTS), NOW
    )
    assert folded["category_ids"] == ["c2"] and folded["interest_scores"] == [pytest.approx(2.5)]
    assert folded["kind_half_lives"] == [1.5] and folded["event_count"] == 1
