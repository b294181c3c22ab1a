"""The evaluation harness (cleaning, split, ranking, metrics, bootstrap) and the baseline rankers,
checked against values worked out by hand on tiny inputs."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

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
    # HR@10, HR@20, Recall@20, NDCG@10, MRR@20, NDCG@20 (both hits are in the top 10: NDCG@20 = NDCG@10)
    assert result.per_user[0].tolist() == pytest.approx([1.0, 1.0, 2 / 3, dcg / idcg, 0.5, dcg / idcg])
    assert result.per_user[1].tolist() == [0.0] * 6  # i24 is ranked 25th
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


def test_leave_one_out_holds_out_each_users_last_and_second_to_last_interaction():
    data = events(
        [
            ("a", "i1", "c", "purchase", 1),
            ("a", "i9", "c", "view", 1.5),
            ("a", "i2", "c", "purchase", 2),
            ("a", "i3", "c", "purchase", 3),  # one basket: i3 then i4 in file order, i4 is the last interaction
            ("a", "i4", "c", "purchase", 3),
            ("a", "i8", "c", "view", 4),  # after a's last interaction: never read
            ("b", "i1", "c", "purchase", 1),  # b has too few interactions: no target, but b's events train
            ("b", "i2", "c", "purchase", 5),
            ("d", "i5", "c", "purchase", 1),
            ("d", "i6", "c", "purchase", 2),
            ("d", "i7", "c", "purchase", 6),
        ]
    )
    validation, test = ranking.leave_one_out(data, ["purchase"], min_interactions=3)
    assert test.users.tolist() == ["a", "d"] and test.relevant == [{"i4"}, {"i7"}]
    assert validation.users.tolist() == ["a", "d"] and validation.relevant == [{"i3"}, {"i6"}]
    trained = test.train.events.groupby("user_id")["item_id"].agg(list).to_dict()
    assert trained == {"a": ["i1", "i9", "i2", "i3"], "b": ["i1", "i2"], "d": ["i5", "i6"]}
    assert validation.train.events.groupby("user_id")["item_id"].agg(list).to_dict() == {
        "a": ["i1", "i9", "i2"],
        "b": ["i1", "i2"],
        "d": ["i5"],
    }
    assert test.train.cutoff == T0 + pd.Timedelta(days=5, seconds=1)  # the latest train event (b's) + 1 s
    second = pd.Timedelta(seconds=1)  # each protocol user's own now: their latest train event + 1 s
    assert test.train.user_now.to_dict() == {
        "a": T0 + pd.Timedelta(days=3) + second,
        "d": T0 + pd.Timedelta(days=2) + second,
    }
    assert ranking.leave_one_out(data, ["purchase"], min_interactions=4)[1].users.tolist() == ["a"]


def test_next_basket_keeps_each_users_first_basket_in_the_window():
    data = events(
        [
            ("a", "i1", "c", "purchase", 1),
            ("a", "i2", "c", "purchase", 11),
            ("a", "i3", "c", "purchase", 11),
            ("a", "i4", "c", "purchase", 12),
            ("a", "i5", "c", "view", 10.5),  # not a target: no basket
            ("b", "i1", "c", "purchase", 2),
            ("b", "i6", "c", "purchase", 13),
        ]
    )
    split = ranking.make_split(data, T0 + pd.Timedelta(days=10), T0 + pd.Timedelta(days=20), ["purchase"])
    assert split.relevant == [{"i2", "i3", "i4"}, {"i6"}]
    basket = ranking.first_baskets(split, data, ["purchase"])
    assert basket.users.tolist() == ["a", "b"] and basket.relevant == [{"i2", "i3"}, {"i6"}]
    assert basket.train is split.train


@pytest.mark.parametrize("protocol", ["time", "next-basket", "loo"])
def test_the_harness_runs_each_protocol_and_says_which(tmp_path, protocol):
    from interest_decay.events.synthetic import generate
    from models.harness import evaluate

    frame = generate(3_000, n_users=60, n_categories=3, items_per_category=10, days=40, seed=2)
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    out = tmp_path / "out"
    evaluate.main(
        ["--events", str(path), "--out", str(out), "--methods", "popular_30d,history", "--protocol", protocol]
    )
    summary = json.loads((out / "evaluation.json").read_text())
    task = summary["tasks"]["item_id"]
    assert summary["protocol"] == protocol and task["test"]["users"] > 10
    relevant = task["test"]["mean_relevant"]
    assert relevant == 1.0 if protocol == "loo" else relevant >= 1.0
    assert {"ndcg@10", "ndcg@20", "hr@10", "hr@20", "mrr@20"} <= set(task["methods"]["history"])
    words = {"time": "Protocol: time window.", "next-basket": "Protocol: next basket.", "loo": "leave-one-out"}
    report = (out / "evaluation.md").read_text()
    assert words[protocol] in report
    # every result table (method and gains, per task) names the protocol, split and masking that produced it
    names = {"time": "time window", "next-basket": "next basket", "loo": "leave-one-out"}
    captions = [line for line in report.splitlines() if line.startswith(f"*Protocol: {names[protocol]};")]
    assert len(captions) == 2 * len(summary["tasks"])
    assert all("own train items ranked (auto: train repeat rate" in c for c in captions)
    split = "last target test" if protocol == "loo" else f"test [{summary['cutoffs']['test'][:10]}, "
    assert all(split in c for c in captions)
    # ad audiences need a cutoff to look after: reported with the time split, not with leave-one-out
    assert ("## Ad audiences" in report) == (protocol != "loo") and ("audiences" in summary) == (protocol != "loo")
    if protocol != "loo":
        assert set(summary["audiences"]["overall"]) == {"interest", "recent_30d", "most_active"}


def test_leave_one_out_without_enough_interactions_is_one_clear_sentence(tmp_path, capsys):
    from models.harness import evaluate

    config = yaml.safe_load(evaluate.DEFAULT_CONFIG.read_text()) | {"loo": {"min_interactions": 10_000}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    from interest_decay.events.synthetic import generate

    generate(1_000, n_users=20, n_categories=2, items_per_category=5, days=20, seed=1).to_parquet(
        tmp_path / "e.parquet"
    )
    with pytest.raises(SystemExit) as stop:
        evaluate.main(
            ["--events", str(tmp_path / "e.parquet"), "--out", str(tmp_path / "out"), "--protocol", "loo"]
            + ["--methods", "history", "--config", str(tmp_path / "cfg.yaml")]
        )
    error = capsys.readouterr().err
    assert stop.value.code == 2 and "fewer than 10000 target events (loo.min_interactions" in error, error


def test_sequence_models_take_grids_stop_early_and_report_their_training(tmp_path):
    from interest_decay.events.synthetic import generate
    from models.harness import evaluate

    config = yaml.safe_load(evaluate.DEFAULT_CONFIG.read_text())
    config["tasks"] = ["item_id"]
    tiny = {"epochs": 3, "patience": 1, "max_len": 10, "n_time_buckets": 8}
    config["methods"]["gru4rec"]["params"] |= tiny
    config["methods"]["gru4rec"]["grid"] = {"learning_rate": [0.001, 0.01], "hidden": [8]}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    generate(3_000, n_users=60, n_categories=3, items_per_category=10, days=40, seed=2).to_parquet(
        tmp_path / "e.parquet"
    )
    out = tmp_path / "out"
    evaluate.main(
        ["--events", str(tmp_path / "e.parquet"), "--out", str(out), "--methods", "popular_30d,gru4rec"]
        + ["--config", str(tmp_path / "cfg.yaml")]
    )
    row = json.loads((out / "evaluation.json").read_text())["tasks"]["item_id"]["methods"]["gru4rec"]
    assert row["label"] == "gru4rec" and len(row["validation_grid"]) == 2
    assert row["tuned"]["learning_rate"] in (0.001, 0.01) and row["params"]["encoder"] == "gru"
    training = row["training"]
    assert 1 <= training["best_epoch"] <= training["epochs_run"] <= 3
    assert len(training["held_out_ndcg@10"]) == training["epochs_run"]
    assert (
        f"gru4rec: {training['epochs_run']} epochs run, epoch {training['best_epoch']} kept"
        in (out / "evaluation.md").read_text()
    )
    assert (out / "training_curve_gru4rec.png").stat().st_size > 1000


def test_repeat_rate_counts_items_done_again_on_a_later_day():
    data = events(
        [
            ("a", "i1", "c", "purchase", 1),
            ("a", "i1", "c", "purchase", 1.2),  # same day: not a repeat
            ("a", "i1", "c", "purchase", 3),  # a repeat
            ("a", "i2", "c", "purchase", 3),
            ("b", "i1", "c", "purchase", 2),  # another user's first time
            ("b", "i1", "c", "view", 4),  # not a target
        ]
    )
    assert ranking.repeat_rate(data, ["purchase"]) == pytest.approx(1 / 4)
    assert ranking.repeat_rate(data.iloc[:0], ["purchase"]) == 0.0


def test_excluding_seen_items_leaves_each_users_train_items_out():
    data = events([("u", "i0", "c", "view", 0), ("u", "i1", "c", "view", 0), ("v", "i2", "c", "view", 0)])
    train = ranking.train_data(data, T0 + pd.Timedelta(days=1))
    split = ranking.Split(train, np.array(["u", "v"]), [{"i2"}, {"i0"}], (T0, T0))
    scores = np.array([3.0, 2.0, 1.0])
    kept = ranking.evaluate(FixedRanker({"u": scores, "v": scores}), split)
    masked = ranking.evaluate(FixedRanker({"u": scores, "v": scores}), split, exclude_seen=True)
    assert [train.items[r].tolist()[:3] for r in kept.top] == [["i0", "i1", "i2"]] * 2
    assert train.items[masked.top[0]].tolist()[0] == "i2" and train.items[masked.top[1]].tolist()[:2] == ["i0", "i1"]
    assert masked.per_user[:, ranking.METRICS.index("ndcg@10")].tolist() == [1.0, 1.0]


def test_the_exclude_seen_rule_turns_on_for_logs_without_repeats():
    from models.harness import evaluate

    assert evaluate.exclude_seen_rule({"exclude_seen": "auto", "auto_exclude_below": 0.01}, 0.002) == (
        True,
        "auto: train repeat rate 0.20% < 1%",
    )
    assert evaluate.exclude_seen_rule({"exclude_seen": "auto", "auto_exclude_below": 0.01}, 0.4)[0] is False
    assert evaluate.exclude_seen_rule({"exclude_seen": False}, 0.0) == (False, "set off")


def test_a_log_without_repeats_masks_own_items_and_reports_history_methods_not_applicable(tmp_path):
    """A ratings-like log (every user acts on an item once): auto turns the mask on, the history methods are
    reported as not applicable instead of scoring zero, and the report says why."""
    from models.harness import evaluate

    rng = np.random.default_rng(0)
    rows = []
    for u in range(80):
        for item in rng.choice(60, size=12, replace=False):
            rows.append((f"u{u}", f"i{item}", f"c{item % 4}", "purchase", float(rng.uniform(0, 50))))
    frame = events(rows)
    path = tmp_path / "ratings.parquet"
    frame.to_parquet(path)
    out = tmp_path / "out"
    evaluate.main(
        ["--events", str(path), "--out", str(out), "--methods", "popular_30d,history,history_ties_30d"]
        + ["--protocol", "loo"]
    )
    task = json.loads((out / "evaluation.json").read_text())["tasks"]["item_id"]
    assert task["repeat_rate"] == 0.0 and task["exclude_seen"] is True
    assert set(task["not_applicable"]) == {"history", "history_ties_30d"} and list(task["methods"]) == ["popular_30d"]
    report = (out / "evaluation.md").read_text()
    assert "users' own items left out of their rankings (auto: train repeat rate 0.00% < 1%)" in report
    assert "`history`: not applicable" in report


def test_a_method_that_cannot_be_fitted_is_reported_and_the_others_run(tmp_path):
    """Ten days of data: the item ranker needs 30-day label windows; the run goes on and the report says why."""
    from interest_decay.events.synthetic import generate
    from models.harness import evaluate

    generate(2_000, n_users=40, n_categories=2, items_per_category=8, days=10, seed=5).to_parquet(
        tmp_path / "e.parquet"
    )
    out = tmp_path / "out"
    evaluate.main(["--events", str(tmp_path / "e.parquet"), "--out", str(out), "--methods", "history,item_ranker"])
    task = json.loads((out / "evaluation.json").read_text())["tasks"]["item_id"]
    assert list(task["methods"]) == ["history"]
    assert task["not_applicable"]["item_ranker"].startswith("could not be fitted: no label window before")
    assert "`item_ranker`: not applicable (could not be fitted" in (out / "evaluation.md").read_text()
