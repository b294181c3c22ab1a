"""The event contract's event types are the dbt seed's (staging accepts the seed's; the API, ingest and the
harness accept schema.EVENT_TYPES): one list, checked here."""

from interest_decay.events.schema import EVENT_TYPES
from tests.conftest import EVENT_TYPES as SEED_EVENT_TYPES


def test_event_types_are_the_seeds():
    assert sorted(EVENT_TYPES) == SEED_EVENT_TYPES
    assert len(set(EVENT_TYPES)) == len(EVENT_TYPES)
