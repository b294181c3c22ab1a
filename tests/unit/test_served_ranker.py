"""The served item ranker (models.pipeline.served_ranker): the one-user numpy path /recommend takes equals ``rank``,
the pandas path the evaluation takes, on generated data, with filters, new users and items the model never saw."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import torch

from interest_decay.events.synthetic import generate
from interest_decay.online.item_state import fold_item_events, tables_from_rows
from models.pipeline.item_ranker import ItemRanker, RankerConfig
from models.pipeline.served_ranker import RankerPackage

AS_OF = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def shop():
    events = generate(6_000, n_users=80, n_categories=5, items_per_category=30, days=40, end=AS_OF, seed=3)
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    torch.manual_seed(1)
    package = RankerPackage.build(
        ItemRanker().eval(), events, pd.Timestamp(AS_OF), RankerConfig(candidates=12), ["purchase"]
    )
    return events, package


def rows_of(events: pd.DataFrame, at: dt.datetime) -> dict:
    """Each user's online row at ``at`` (as the service reads it: with its user_id, which the neighbour signal
    leaves out of the user's neighbours)."""
    return {
        user: {
            "user_id": user,
            **fold_item_events(
                None, zip(group["item_id"], group["category_id"], group["event_type"], list(group["ts"])), at
            ),
        }
        for user, group in events[events["ts"] < at].groupby("user_id")
    }


def assert_same(fast, slow):
    assert [r.item_id for r in fast] == [r.item_id for r in slow]
    np.testing.assert_allclose([r.score for r in fast], [r.score for r in slow], rtol=1e-6, atol=1e-9)
    assert [r.category_id for r in fast] == [r.category_id for r in slow]


@pytest.mark.parametrize("hours_later", [0.0, 30.5])
def test_the_numpy_path_equals_rank_for_every_user(shop, hours_later):
    events, package = shop
    rows = rows_of(events, AS_OF)
    t = pd.Timestamp(AS_OF) + pd.Timedelta(hours=hours_later)
    slow = package.rank(*tables_from_rows(rows), pd.Timestamp(AS_OF), t, 15, explain=True)
    assert len(rows) == len(slow) == 80
    for user, row in rows.items():
        fast = package.rank_row(row, t, 15)
        assert_same(fast, slow[user])
        for f, s in zip(fast, slow[user]):
            assert f.state["in_history"] == s.state["in_history"] and f.state["item_days"] == s.state["item_days"]


def test_filters_new_items_a_long_list_and_a_user_without_state(shop):
    events, package = shop
    rows = rows_of(events, AS_OF)
    user = sorted(rows)[5]
    row = fold_item_events(
        rows[user], [("never-seen", "c1", "purchase", AS_OF + dt.timedelta(hours=1))], AS_OF + dt.timedelta(hours=2)
    ) | {"user_id": user}
    t = pd.Timestamp(AS_OF) + pd.Timedelta(hours=3)
    category = package.items["category_id"].iloc[0]

    def allowed(item):
        return package.items["category_id"].get(item) == category

    slow = package.rank(*tables_from_rows({user: row}), pd.Timestamp(row["state_as_of"]), t, 100, allowed)[user]
    fast = package.rank_row(row, t, 100, allowed)
    assert_same(fast, slow)
    assert len(fast) == 30 and {r.category_id for r in fast} == {category}  # every item of it, filled by popularity
    assert "never-seen" not in {r.item_id for r in package.rank_row(row, t, 200)}
    assert [r.item_id for r in package.rank_row({"item_ids": None, "state_as_of": None}, t, 5)] == list(
        package.fallback.index[:5]
    )


def test_the_neighbour_signal_is_kept_per_user_state_and_a_live_event_makes_a_new_one(shop):
    events, package = shop
    user = sorted(rows_of(events, AS_OF))[7]
    row = rows_of(events, AS_OF)[user]
    t = pd.Timestamp(AS_OF) + pd.Timedelta(hours=2)
    first = package.rank_row(row, t, 10)
    assert_same(package.rank_row(row, t, 10), first)
    assert (user, row["state_as_of"]) in package._neighbour_cache
    item = events.loc[events["user_id"] != user, "item_id"].iloc[0]
    later = fold_item_events(
        row, [(item, "c1", "purchase", AS_OF + dt.timedelta(hours=1))], AS_OF + dt.timedelta(hours=1)
    )
    later |= {"user_id": user}
    slow = package.rank(*tables_from_rows({user: later}), pd.Timestamp(later["state_as_of"]), t, 10)[user]
    assert_same(package.rank_row(later, t, 10), slow)
    assert (user, later["state_as_of"]) in package._neighbour_cache


def test_rows_without_a_user_id_are_not_kept(shop):
    events, package = shop
    rows = rows_of(events, AS_OF)
    anonymous = [{k: v for k, v in rows[user].items() if k != "user_id"} for user in sorted(rows)[:2]]
    t = pd.Timestamp(AS_OF)
    before = len(package.__dict__.get("_neighbour_cache", {}))
    first, second = (package.rank_row(row, t, 10) for row in anonymous)
    assert len(package.__dict__.get("_neighbour_cache", {})) == before
    assert [r.item_id for r in first] != [r.item_id for r in second] or first[0].score != second[0].score
