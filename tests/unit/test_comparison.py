"""A run's test window in the harness protocol: every method measured on the same users, against history + ties."""

import pandas as pd
import pytest

from models.pipeline.comparison import FLOOR, SERVED, compare, render
from models.pipeline.item_ranker import RankerConfig, fit_item_ranker
from models.pipeline.served_ranker import RankerPackage
from tests.unit.test_item_ranker import START, cyclic_shop


def staged(events: pd.DataFrame) -> pd.DataFrame:
    """Events as the pipeline reads them from stg_behaviour__events."""
    return events.rename(columns={"ts": "event_ts"})[["user_id", "item_id", "category_id", "event_type", "event_ts"]]


def test_every_method_on_the_same_window_with_paired_ratios():
    events = staged(cyclic_shop(days=120))
    test_start, test_end = START + pd.Timedelta(days=100), START + pd.Timedelta(days=114)
    history, window = events[events.event_ts < test_start], events[events.event_ts >= test_start]
    train = cyclic_shop(days=120)
    train = train[train.ts < test_start]
    package = RankerPackage.build(
        fit_item_ranker(train, test_start, RankerConfig()),
        train,
        test_start,
        RankerConfig(),
        ["purchase"],
    )
    result, lists = compare(
        history,
        window[window.event_ts < test_end],
        test_start,
        test_end,
        measured={SERVED: package.top_items(train, test_start)},
    )
    assert result["users"] == 60 and set(result["methods"]) == {"popular_30d", "history", FLOOR, "stan", SERVED}
    assert len(lists[SERVED]) == len(lists["popular"]) == len(lists["users"]) == 60
    floor, model = result["methods"][FLOOR], result["methods"][SERVED]
    assert floor[f"ndcg@10_over_{FLOOR}"]["ratio"] == 1.0
    ratio = model[f"ndcg@10_over_{FLOOR}"]
    assert ratio["ratio"] == pytest.approx(model["ndcg@10"] / floor["ndcg@10"], rel=1e-12)
    assert ratio["ci95"][0] <= ratio["ratio"] <= ratio["ci95"][1]
    assert model["hr@10"] == 1.0  # each user's staple is due: the ranker learns it from the earlier windows
    table = "\n".join(render(result))
    assert f"| {SERVED} |" in table and "× history + ties" in table


def test_a_window_nobody_bought_in_is_reported_not_measured():
    events = staged(cyclic_shop(days=60))
    result, _ = compare(events, events.iloc[:0], START + pd.Timedelta(days=60), START + pd.Timedelta(days=67))
    assert result["users"] == 0 and "no user" in result["skipped"]
    assert "Not measured" in "\n".join(render(result))


def test_the_served_models_lists_are_measured_on_the_same_users():
    """Known answer: a served model that lists exactly what each user then bought scores NDCG@10 1 (the windows
    here hold at most 10 distinct purchases per user), and is paired with history + ties like the others."""
    events = staged(cyclic_shop(days=120))
    test_start, test_end = START + pd.Timedelta(days=100), START + pd.Timedelta(days=114)
    window = events[(events.event_ts >= test_start) & (events.event_ts < test_end)]
    bought = window.groupby("user_id")["item_id"].agg(lambda items: sorted(set(items)))
    result, _ = compare(
        events[events.event_ts < test_start],
        window,
        test_start,
        test_end,
        measured={SERVED: lambda users: [bought[user] for user in users]},
    )
    served = result["methods"][SERVED]
    assert list(result["methods"])[0] == SERVED and served["ndcg@10"] == 1.0 and served["hr@10"] == 1.0
    floor = result["methods"][FLOOR]["ndcg@10"]
    assert served[f"ndcg@10_over_{FLOOR}"]["ratio"] == pytest.approx(1.0 / floor, rel=1e-12)
