"""The evaluation harness (cleaning, split, ranking, metrics, bootstrap) and the baseline rankers,
checked against values worked out by hand on tiny inputs."""

import math

import numpy as np
import pandas as pd
import pytest

from models.harness import baselines, ranking

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def events(rows):
    """Cleaned events from (user, item, category, type, days after T0) tuples."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type", "days"])
    frame["ts"] = T0 + pd.to_timedelta(frame.pop("days"), unit="D")
    frame["value"] = np.nan
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def test_cleaning_counts_each_reject_by_its_first_failing_rule():
    raw = pd.DataFrame(
        {
            "user_id": ["u1", "", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "u1", "U10", "x" * 300],
            "item_id": ["i1", "i1", "i1", "i1", "i1", "i1", "i1", "i1", "i1", "i1", "i2", "i1"],
            "category_id": ["c", "c", " ", "c", "c", "c", "c", "c", "c", "c", "c", "c"],
            "event_type": [
                "View",
                "view",
                "view",
                "click",
                "view",
                "view",
                "view",
                "view",
                "view",
                "View",
                "buy",
                "view",
            ],
            "ts": [
                "2026-01-01T10:00:00",
                "2026-01-01",
                "2026-01-01",
                "2026-01-01",
                "yesterday",
                "1989-12-31T23:00:00Z",
                "2026-01-02T00:00:00+02:00",
                "2026-01-01",
                "2026-01-01",
                "2026-01-01T10:00:00",
                "2026-01-01",
                "2026-01-01",
            ],
            "value": ["", "", "", "", "", "", "3", "-1", "abc", "", "", ""],
        }
    )
    cleaned, quality = ranking.clean_events(raw, now=pd.Timestamp("2026-02-01", tz="UTC"))
    assert quality["dropped"] == {
        "missing user_id": 1,
        "missing category_id": 1,
        "unknown event_type": 2,
        "unparseable timestamp": 1,
        "timestamp before EVENTS_EARLIEST_DAY": 1,
        "negative value": 1,
        "non-numeric value": 1,
        "oversize id (more than 256 characters)": 1,
    }
    assert quality["events"] == len(cleaned) == 3
    assert quality["duplicates"] == 1 and not quality["duplicates_dropped"]  # u1's two equal rows: counted, kept
    assert cleaned["event_type"].eq("view").all()
    assert cleaned.loc[cleaned.user_id == "u7", "ts"].item() == pd.Timestamp("2026-01-01T22:00:00Z")
    assert cleaned.loc[cleaned.user_id == "u1", "ts"].iloc[0] == pd.Timestamp("2026-01-01T10:00:00Z")  # no zone: UTC


def test_cleaning_can_drop_duplicates_and_takes_dataset_rules():
    raw = events([("u", "i", "c", "purchase", 0), ("u", "i", "c", "purchase", 0), ("v", "i", "c", "purchase", 1)])
    extra = pd.Series([pd.NA, pd.NA, "free line"], dtype="string")
    cleaned, quality = ranking.clean_events(raw, extra, drop_duplicates=True)
    assert len(cleaned) == 1 and quality["duplicates"] == 1 and quality["dropped"] == {"free line": 1}


def test_split_keeps_users_with_history_and_a_target_in_the_window():
    data = events(
        [
            ("a", "i1", "c", "purchase", 0),
            ("a", "i2", "c", "view", 1),
            ("b", "i1", "c", "view", 2),
            ("a", "i3", "c", "purchase", 10),
            ("a", "i3", "c", "purchase", 11),
            ("a", "i4", "c", "view", 11),
            ("b", "i2", "c", "view", 12),
            ("c", "i1", "c", "purchase", 12),
        ]
    )
    split = ranking.make_split(data, T0 + pd.Timedelta(days=5), T0 + pd.Timedelta(days=20), ranking.target_types(data))
    assert split.users.tolist() == ["a"]  # b has no purchase in the window, c no history
    assert split.relevant == [{"i3"}]  # purchases only, distinct
    assert split.train.items.tolist() == ["i1", "i2"]
    views_only = data[data.event_type == "view"]
    assert ranking.target_types(views_only) == list(ranking.EVENT_TYPES)


def test_default_cutoffs_round_to_midnight_and_cap_the_validation_window():
    frame = pd.DataFrame({"ts": pd.to_datetime(["2010-12-01 08:26", "2011-12-09 12:50"], utc=True)})
    test, validation = ranking.default_cutoffs(frame, 0.105, 39, 31)
    assert (test, validation) == (pd.Timestamp("2011-11-01", tz="UTC"), pd.Timestamp("2011-10-01", tz="UTC"))
    short = pd.DataFrame({"ts": pd.to_datetime(["2017-11-24 16:00", "2017-12-03 15:59"], utc=True)})
    test, validation = ranking.default_cutoffs(short, 0.105, 39, 31)
    assert test == pd.Timestamp("2017-12-03", tz="UTC") and validation == test - pd.Timedelta(days=1)


def test_ties_break_by_train_popularity_then_item_id():
    data = events(
        [("u", "b", "c", "view", 0), ("v", "b", "c", "view", 0), ("u", "c", "c", "view", 0), ("u", "a", "c", "view", 0)]
    )
    train = ranking.train_data(data, T0 + pd.Timedelta(days=1))
    order = ranking.tie_order(train)  # items a, b, c: b has 2 events, a and c 1
    assert train.items.to_numpy()[order].tolist() == ["b", "a", "c"]
    scores = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [2.0, 1.0, 2.0]])
    assert train.items.to_numpy()[ranking.top_items(scores, order, 3)].tolist() == [
        ["b", "a", "c"],
        ["c", "b", "a"],
        ["a", "c", "b"],
    ]


class FixedRanker:
    name = "fixed"

    def __init__(self, rows):
        self.rows = rows

    def fit(self, data):
        return self

    def score(self, user_ids):
        return np.array([self.rows[u] for u in user_ids], dtype=float)


def test_metrics_of_a_known_ranking():
    items = [f"i{n:02d}" for n in range(25)]
    data = events([("u", item, "c", "view", 0) for item in items] + [("v", "i00", "c", "view", 0)])
    train = ranking.train_data(data, T0 + pd.Timedelta(days=1))
    descending = np.arange(25, 0, -1, dtype=float)  # ranks i00, i01, ... i24
    split = ranking.Split(train, np.array(["u", "v"]), [{"i01", "i03", "i30"}, {"i24"}], (T0, T0))
    result = ranking.evaluate(FixedRanker({"u": descending, "v": descending}), split)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert result.per_user[0].tolist() == pytest.approx([1.0, 1.0, 2 / 3, dcg / idcg, 0.5])
    assert result.per_user[1].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]  # i24 is ranked 25th
    assert ranking.coverage(result, 25) == 10 / 25
    categories = np.array(["a", "b"] * 12 + ["a"])
    assert ranking.category_diversity(result, categories) == pytest.approx(0.2)
    assert ranking.exposure_gini(result, 25) == pytest.approx(1 - 10 / 25)  # 10 items shown equally, 15 never


def test_bootstrap_is_seeded_paired_and_brackets_the_mean():
    rng = np.random.default_rng(1)
    a = rng.random(400)
    indices = ranking.bootstrap_indices(400, 1000, seed=0)
    assert np.array_equal(indices, ranking.bootstrap_indices(400, 1000, seed=0))
    low, high = ranking.confidence_interval(a, indices)
    assert low < a.mean() < high and high - low < 0.1
    assert ranking.relative_gain(a, a, indices) == (0.0, 0.0, 0.0)
    gain, low, high = ranking.relative_gain(a * 1.1, a, indices)
    assert gain == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)


def test_retarget_ranks_categories_with_the_same_code():
    data = events([("u", "i1", "cat1", "purchase", 0), ("u", "i2", "cat2", "purchase", 1)])
    assert ranking.retarget(data, "category_id")["item_id"].tolist() == ["cat1", "cat2"]


# --- baselines -------------------------------------------------------------------------------------

HISTORY = events(
    [
        ("u", "a", "x", "purchase", 0),
        ("u", "a", "x", "purchase", 1),
        ("u", "b", "x", "purchase", 9),
        ("v", "b", "x", "purchase", 2),
        ("v", "c", "y", "purchase", 8),
        ("w", "c", "y", "purchase", 9),
        ("w", "d", "y", "purchase", 9.5),
    ]
)
TRAIN = ranking.train_data(HISTORY, T0 + pd.Timedelta(days=10))  # items a, b, c, d


def test_popularity_baselines_count_events_in_their_window():
    assert baselines.PopularAllTime().fit(TRAIN).score(["u", "new"]).tolist() == [[2, 2, 2, 1]] * 2
    assert baselines.PopularRecent(days=5).fit(TRAIN).score(["u"]).tolist() == [[0, 1, 2, 1]]


def test_history_counts_and_decays_from_the_cutoff():
    count = baselines.UserHistory().fit(TRAIN).score(["u", "new"])
    assert count.tolist() == [[2, 1, 0, 0], [0, 0, 0, 0]]
    decayed = baselines.UserHistory(half_life_days=1.0).fit(TRAIN).score(["u"])[0]
    assert decayed[:2] == pytest.approx([0.5**10 + 0.5**9, 0.5])  # the recent b now beats the older a


def test_recent_popularity_only_breaks_history_ties():
    scores = baselines.HistoryRecentTies(days=5).fit(TRAIN).score(["v"])[0]  # v: b and c once each
    assert scores[2] > scores[1] > scores[3] > scores[0]  # c (2 recent) > b (1 recent) > d (1 recent) > a
    assert scores[1] - 1 < 1e-3 and scores[2] - 1 < 1e-3


def test_item_knn_recommends_co_bought_items_not_the_item_itself():
    knn = baselines.ItemKNN(half_life_days=float("inf")).fit(TRAIN)
    scores = knn.score(["w"])[0]  # w bought c and d; c was co-bought with b by v
    assert scores[1] == pytest.approx(1 / math.sqrt(2 * 2))  # cos(b, c): one shared user of 2 and 2
    assert scores[0] == 0.0  # a shares no user with c or d
    assert scores[3] == pytest.approx(1 / math.sqrt(2 * 1))  # d is scored through c only


def test_stan_scores_the_items_of_recent_similar_users():
    stan = baselines.STAN(neighbours=1, position_decay=10, neighbour_decay_days=10, item_decay_days=10).fit(TRAIN)
    scores = stan.score(["w", "new"])
    assert scores[1].tolist() == [0, 0, 0, 0]
    assert scores[0][0] == 0 and scores[0][1] > 0  # w's one neighbour is v (shares c): v's b is scored
    assert stan.score(["u"])[0][2] > 0  # u's neighbour v (shares b) brings c


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "the file is empty"),
        (b"user_id,item_id\nu1,i1\n", "missing required column(s) category_id, event_type, ts"),
        (
            b"user_id,item_id,category_id,event_type,ts\nu1,i1,c1,view,1989-01-01\nu\xe9,i1,c1,view,2026-01-01\n",
            "0 events on 0 day(s) are left after cleaning 2 rows (dropped: 1 timestamp before EVENTS_EARLIEST_DAY, 1 unparseable row)",
        ),
    ],
)
def test_make_evaluate_refuses_a_file_of_no_usable_events_in_one_sentence(tmp_path, capsys, content, says):
    from models.harness import evaluate

    path = tmp_path / "events.csv"
    path.write_bytes(content)
    with pytest.raises(SystemExit) as stop:
        evaluate.main(["--events", str(path), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and error.startswith("error: ") and error.count("\n") == 1, error
    assert says in error


def test_a_log_older_than_the_earliest_day_is_refused_with_the_setting_to_change(tmp_path, capsys, monkeypatch):
    """A 1990s log under the default EVENTS_EARLIEST_DAY: one sentence naming the setting; with the setting
    moved back, the harness keeps every event (the same rule as staging and /events)."""
    rows = [{"user_id": "u1", "item_id": f"i{d}", "category_id": "c1", "event_type": "view"} for d in range(5)]
    frame = pd.DataFrame([{**row, "ts": f"1988-03-0{d + 1}"} for d, row in enumerate(rows)])
    cleaned, quality = ranking.clean_events(frame, now=pd.Timestamp("2026-02-01", tz="UTC"))
    assert cleaned.empty and quality["dropped"] == {"timestamp before EVENTS_EARLIEST_DAY": 5}
    with pytest.raises(ranking.NotEnoughEvents, match="set EVENTS_EARLIEST_DAY \\(now 1990-01-01\\) to a day before"):
        ranking.require_events(cleaned, quality)
    monkeypatch.setenv("EVENTS_EARLIEST_DAY", "1970-01-01")
    cleaned, quality = ranking.clean_events(frame, now=pd.Timestamp("2026-02-01", tz="UTC"))
    assert len(cleaned) == 5 and quality["dropped"] == {}
    ranking.require_events(cleaned, quality)
