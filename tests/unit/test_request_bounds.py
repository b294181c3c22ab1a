"""Requests are bounded: string fields have a length limit (``value`` included) and the per-process caches keyed by
request data keep at most a fixed number of entries, dropping the least recently used."""

import pytest
from pydantic import ValidationError

from interest_decay.online.bounded_cache import BoundedCache
from serving.schemas import EventIn


def test_every_event_field_has_a_length_limit_value_included():
    assert EventIn(value=3.5).value == 3.5 and EventIn(value="four").value == "four"  # staging rejects it later
    with pytest.raises(ValidationError, match="at most 64 characters"):
        EventIn(value="x" * 65)
    for field in ("user_id", "item_id", "category_id", "event_type", "ts"):
        with pytest.raises(ValidationError, match="at most 4096 characters"):
            EventIn(**{field: "x" * 4097})


def test_the_bounded_cache_drops_the_least_recently_used():
    cache = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)  # b goes
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2
    assert cache.get("b", "missing") == "missing"
    with pytest.raises(ValueError):
        BoundedCache(0)


def test_kind_parameters_keep_a_bounded_number_of_lookups(monkeypatch):
    import pandas as pd

    from interest_decay.online import realtime

    monkeypatch.setattr(realtime, "KIND_CACHE_ENTRIES", 3)
    row = {"family": "exponential", "half_life_days": 7.0, "logistic_k": None, "logistic_l": None}
    frame = pd.DataFrame([{"category_id": "*", "event_type": "*", **row, "period_days": None, "period_weights": None}])
    kinds = realtime.KindParameters(frame, {"view": 1.0, "cart": 2.0})
    for i in range(10):  # ten made-up categories from live events
        kinds.of(f"made-up-{i}", "view")
    assert len(kinds._cache) == 3
