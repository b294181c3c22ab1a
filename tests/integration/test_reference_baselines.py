"""The evaluation harness reproduces the independent reference baselines on UCI Online Retail
(../shared/reference/online_retail_baselines.md) to ±0.002; skipped, with a message, without the data."""

from pathlib import Path

import pandas as pd
import pytest

from models.harness import baselines, ranking
from models.harness.evaluate import read_dataset

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RETAIL = SHARED_DATA / "online_retail" / "online_retail.parquet"
pytestmark = pytest.mark.skipif(
    not RETAIL.exists(),
    reason=f"Online Retail not found at {RETAIL}; the reference comparison needs ../shared/data next to the repository",
)
T = pd.Timestamp("2011-11-01", tz="UTC")
TOLERANCE = 0.002

# method -> HR@10, Recall@20, NDCG@10, MRR@20, NDCG@10 95% CI, copied from the reference's test table
REFERENCE = {
    "popular, last 30 days": (baselines.PopularRecent, {"days": 30}, 0.5952, 0.0742, 0.1338, 0.3020, (0.1256, 0.1421)),
    "popular, all time": (baselines.PopularAllTime, {}, 0.4650, 0.0559, 0.0941, 0.2316, (0.0879, 0.1013)),
    "user history count, no decay": (baselines.UserHistory, {}, 0.8420, 0.2360, 0.3496, 0.5588, (0.3364, 0.3637)),
    "user history, exp decay h = 180": (
        baselines.UserHistory,
        {"half_life_days": 180},
        0.8420,
        0.2399,
        0.3497,
        0.5541,
        (0.3361, 0.3641),
    ),
    "item-kNN, h = 30": (baselines.ItemKNN, {"half_life_days": 30}, 0.6153, 0.1253, 0.1946, 0.3404, (0.1832, 0.2068)),
    "history no decay, ties by 30-day popularity": (
        baselines.HistoryRecentTies,
        {"days": 30},
        0.8543,
        0.2471,
        0.3651,
        0.5838,
        (0.3519, 0.3787),
    ),
}


def reference_protocol_events() -> pd.DataFrame:
    """The reference's cleaning straight from the raw columns, independent of the adapter and the harness."""
    raw = pd.read_parquet(RETAIL)
    keep = (
        ~raw.InvoiceNo.astype(str).str.startswith("C")
        & (raw.Quantity > 0)
        & (raw.UnitPrice > 0)
        & raw.CustomerID.notna()
    )
    return raw[keep]


@pytest.fixture(scope="module")
def cleaned():
    events, quality = ranking.clean_events(*read_dataset([RETAIL], "online-retail"))
    return events, quality


@pytest.fixture(scope="module")
def test_split(cleaned):
    events, _ = cleaned
    cutoff, _ = ranking.default_cutoffs(events, 0.105, 39, 31)
    assert cutoff == T
    return ranking.make_split(events, T, events.ts.max() + pd.Timedelta(seconds=1), ranking.target_types(events))


def test_cleaning_gives_the_reference_events(cleaned):
    events, quality = cleaned
    reference = reference_protocol_events()
    assert (len(reference), reference.CustomerID.nunique(), reference.StockCode.nunique()) == (397_884, 4_338, 3_665)
    assert (quality["events"], quality["users"], quality["items"]) == (397_884, 4_338, 3_665)
    assert quality["dropped"] == {
        "missing user_id": 135_080,
        "negative value": 8_905,
        "free line (UnitPrice <= 0, reference protocol)": 40,
    }
    ours = events.assign(ts=events.ts.dt.tz_localize(None))[["user_id", "item_id", "ts"]]
    theirs = pd.DataFrame(
        {
            "user_id": reference.CustomerID.astype(int).astype(str),
            "item_id": reference.StockCode.astype(str),
            "ts": reference.InvoiceDate,
        }
    )
    key = ["user_id", "item_id", "ts"]
    assert ours.sort_values(key).reset_index(drop=True).equals(theirs.sort_values(key).reset_index(drop=True))


def test_split_matches_the_reference_protocol(cleaned, test_split):
    events, _ = cleaned
    assert len(test_split.users) == 1_544
    assert len(test_split.train.items) == 3_613
    assert test_split.describe()["mean_relevant"] == pytest.approx(36.1, abs=0.05)
    validation = ranking.make_split(events, T - pd.Timedelta(days=31), T, ["purchase"])
    assert len(validation.users) == 1_006


@pytest.mark.parametrize("method", list(REFERENCE))
def test_baseline_reproduces_its_reference_row(test_split, method):
    factory, params, hr10, recall20, ndcg10, mrr20, (low, high) = REFERENCE[method]
    result = ranking.evaluate(factory(**params).fit(test_split.train), test_split)
    got = {m: result.mean(m) for m in ("hr@10", "recall@20", "ndcg@10", "mrr@20")}
    assert got == pytest.approx(
        {"hr@10": hr10, "recall@20": recall20, "ndcg@10": ndcg10, "mrr@20": mrr20}, abs=TOLERANCE
    )
    column = ranking.METRICS.index("ndcg@10")
    interval = ranking.confidence_interval(result.per_user[:, column], ranking.bootstrap_indices(len(test_split.users)))
    assert interval == pytest.approx((low, high), abs=0.0015)  # another implementation's resamples


def test_adapter_without_the_price_rule_keeps_40_free_lines_and_the_same_numbers(test_split):
    frame, _ = read_dataset([RETAIL], "online-retail")
    events, quality = ranking.clean_events(frame)
    assert quality["events"] == 397_884 + 40
    split = ranking.make_split(events, T, events.ts.max() + pd.Timedelta(seconds=1), ["purchase"])
    for factory in (baselines.UserHistory, baselines.HistoryRecentTies):
        with_rule = ranking.evaluate(factory().fit(test_split.train), test_split).mean("ndcg@10")
        without = ranking.evaluate(factory().fit(split.train), split).mean("ndcg@10")
        assert without == pytest.approx(with_rule, abs=TOLERANCE)
