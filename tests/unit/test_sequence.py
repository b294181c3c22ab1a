"""The neural decay recommender (models/harness/sequence.py): contract, windows, and behaviour on planted patterns."""

import numpy as np
import pandas as pd
import pytest
import torch

from models.harness.ranking import TrainData
from models.harness.sequence import NeuralDecayRecommender, SequenceRanker, event_codes, held_out_ndcg, scoring_windows
from models.harness.sequence_data import Windows, earlier_targets, training_windows

CUTOFF = pd.Timestamp("2024-03-01", tz="UTC")
SMALL = {
    "max_len": 12,
    "hidden": 32,
    "n_blocks": 1,
    "n_heads": 1,
    "dropout": 0.0,
    "learning_rate": 0.01,
    "batch_size": 32,
    "target_fraction": 1.0,
    "patience": 0,
    "n_time_buckets": 16,
}


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is faster than paying for the synchronisation of more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_data(rows: list[tuple[str, str, str, str, pd.Timestamp]]) -> TrainData:
    """Training data from (user, item, category, event type, ts) rows; the catalogue is their sorted items."""
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type", "ts"])
    events = events.assign(value=1.0).sort_values("ts", kind="stable").reset_index(drop=True)
    return TrainData(events, pd.Index(np.sort(events["item_id"].unique())), CUTOFF)


def chain_data(n_users: int = 200, length: int = 15, seed: int = 0) -> TrainData:
    """Every user walks the cycle i0 -> i1 -> ... -> i9 -> i0 from a random start, one event an hour."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start = rng.integers(10)
        for step in range(length):
            ts = CUTOFF - pd.Timedelta(hours=length - step)
            rows.append(
                (
                    f"u{user}",
                    f"i{(start + step) % 10}",
                    f"c{(start + step) % 10 % 3}",
                    "purchase" if step % 2 else "view",
                    ts,
                )
            )
    return train_data(rows)


def gap_data(n_users: int = 300, length: int = 20, seed: int = 0) -> tuple[TrainData, pd.Series]:
    """What comes next depends on the time since the last event: after a short gap (about an hour) the user
    stays in the last item's category; after a long one (about a month) the user comes back for item R,
    and leaves R for a random category. Half of the users end an hour before the cutoff, half a month.
    Returns the data and, per user, the set of items that are right at the cutoff."""
    rng = np.random.default_rng(seed)
    category_items = {c: [f"{c}-{k}" for k in range(4)] for c in ("a", "b", "c", "d", "e")}
    rows, expected = [], {}
    for user in range(n_users):
        long_gaps = rng.random(length) < 0.35
        long_gaps[-1] = user % 2 == 0  # the gap from the last event to the cutoff
        long_gaps[-2] = False  # so the last event is never R
        gaps = np.where(long_gaps, rng.uniform(20, 40, length) * 24, rng.uniform(0.2, 2, length))
        times = CUTOFF - pd.to_timedelta(np.cumsum(gaps[::-1])[::-1], unit="h")
        category = rng.choice(list(category_items))
        for step in range(length):
            if step > 0 and long_gaps[step - 1]:
                category = "R"
            elif category == "R" or step == 0:
                category = rng.choice(list(category_items))
            item = "R" if category == "R" else rng.choice(category_items[category])
            rows.append((f"u{user}", item, category, "purchase", times[step]))
        expected[f"u{user}"] = {"R"} if long_gaps[-1] else set(category_items[category])
    return train_data(rows), pd.Series(expected)


def top1_accuracy(ranker: SequenceRanker, expected: pd.Series) -> float:
    top = ranker.score(list(expected.index)).argmax(1)
    return float(np.mean([ranker.targets[t] in right for t, right in zip(top, expected)]))


def test_scoring_window_holds_the_latest_events_in_time_order_and_predicts_at_the_cutoff():
    rows = [("u1", f"i{k}", "c", "view", CUTOFF - pd.Timedelta(hours=10 - k)) for k in range(10)]
    rows.append(("u2", "i0", "c", "cart", CUTOFF - pd.Timedelta(days=3)))
    data = train_data(rows[::-1])  # input order must not matter
    codes = event_codes(data.events, data.items, pd.Index(["c"]), "item_id", data.cutoff)
    windows, users = scoring_windows(codes, max_len=4)
    u1 = list(users).index("u1")
    assert [data.items[i - 1] for i in windows.items[u1]] == ["i6", "i7", "i8", "i9"]
    assert windows.hours[u1].tolist() == [-4, -3, -2, -1]
    assert windows.query_hours[u1].tolist() == [-3, -2, -1, 0]  # next event's time; the cutoff after the last
    u2 = list(users).index("u2")
    assert windows.event_types[u2].tolist() == [0, 0, 0, 2]  # left-padded; "cart" is the second type
    own_now = pd.Series({"u2": -48.0})  # u2 is ranked two days before the cutoff (leave-one-out's own "now")
    windows, users = scoring_windows(codes, max_len=4, now_hours=own_now)
    assert windows.query_hours[list(users).index("u2")].tolist() == [0, 0, 0, -48]
    assert windows.query_hours[list(users).index("u1")].tolist() == [-3, -2, -1, 0]


@pytest.mark.parametrize("use_time_intervals", [True, False])
def test_contract_shapes_and_consistency(use_time_intervals):
    ranker = SequenceRanker({**SMALL, "epochs": 1}, use_time_intervals=use_time_intervals).fit(chain_data(20))
    batch = ranker._windows.batch(np.arange(3))
    scores = ranker.model.full_sort_predict(batch)
    assert scores.shape == (3, 10)
    assert torch.allclose(scores.exp().sum(1), torch.ones(3), atol=1e-4)  # a distribution over the targets
    targets = torch.tensor([4, 0, 9])
    assert torch.allclose(ranker.model.predict(batch, targets), scores[torch.arange(3), targets])
    assert ranker.model(batch).shape == (*batch["items"].shape, SMALL["hidden"])
    assert ranker.model.calculate_loss(batch).ndim == 0
    assert ranker.history and len(ranker.history) == 1
    user_scores = ranker.score(["u3", "nobody"])
    assert user_scores.shape == (2, 10) and not user_scores[1].any()  # unknown users get zeros


def test_category_target_scores_categories():
    ranker = SequenceRanker({**SMALL, "epochs": 1}, target="category_id").fit(chain_data(20))
    assert list(ranker.targets) == ["c0", "c1", "c2"]
    assert ranker.score(["u0", "u1"]).shape == (2, 3)


def test_save_and_load_give_the_same_scores(tmp_path):
    ranker = SequenceRanker({**SMALL, "epochs": 1}).fit(chain_data(20))
    ranker.model.save(tmp_path)
    loaded = NeuralDecayRecommender.load(tmp_path)
    batch = ranker._windows.batch(np.arange(5))
    assert loaded.hparams == ranker.model.hparams
    assert torch.equal(ranker.model.full_sort_predict(batch), loaded.full_sort_predict(batch))


def test_learns_a_deterministic_next_item_chain():
    data = chain_data()
    ranker = SequenceRanker({**SMALL, "epochs": 12}).fit(data)
    last = data.events.groupby("user_id")["item_id"].last()
    expected = last.map(lambda item: {f"i{(int(item[1:]) + 1) % 10}"})
    assert ranker.history[-1] < ranker.history[0] / 3
    assert top1_accuracy(ranker, expected) > 0.9


def test_time_intervals_tell_a_return_after_a_long_gap_from_staying_after_a_short_one():
    data, expected = gap_data()
    config = {**SMALL, "epochs": 15}
    with_time = SequenceRanker(config, use_time_intervals=True).fit(data)
    without_time = SequenceRanker(config, use_time_intervals=False).fit(data)
    accuracy_with, accuracy_without = top1_accuracy(with_time, expected), top1_accuracy(without_time, expected)
    # Without intervals the model cannot know which half a user is in: at best one half is right.
    assert accuracy_without < 0.65
    assert accuracy_with > 0.9
    assert with_time.history[-1] < without_time.history[-1]


def test_gru4rec_learns_the_chain_and_meets_the_contract(tmp_path):
    data = chain_data()
    ranker = SequenceRanker({**SMALL, "epochs": 12}, use_time_intervals=False, encoder="gru", use_repeat=False).fit(
        data
    )
    assert ranker.name == "gru4rec" and isinstance(ranker.model.gru, torch.nn.GRU) and not ranker.model.blocks
    last = data.events.groupby("user_id")["item_id"].last()
    assert top1_accuracy(ranker, last.map(lambda item: {f"i{(int(item[1:]) + 1) % 10}"})) > 0.9
    batch = ranker._windows.batch(np.arange(4))
    assert torch.allclose(ranker.model.full_sort_predict(batch).exp().sum(1), torch.ones(4), atol=1e-4)
    ranker.model.save(tmp_path)
    assert torch.equal(
        NeuralDecayRecommender.load(tmp_path).full_sort_predict(batch), ranker.model.full_sort_predict(batch)
    )


def test_gru_state_ignores_left_padding():
    """A window's states are the same whatever padding precedes it: padding never enters the recurrence."""
    torch.manual_seed(0)
    model = NeuralDecayRecommender(
        5, 2, use_time_intervals=False, max_len=6, hidden=8, dropout=0.0, encoder="gru"
    ).eval()
    events = {"items": [1, 2, 3], "categories": [1, 2, 1], "event_types": [1, 4, 4], "hours": [-3.0, -2.0, -1.0]}

    def window(pad: int) -> dict[str, torch.Tensor]:
        batch = {k: torch.tensor([[0] * pad + v]) for k, v in events.items() if k != "hours"}
        batch["hours"] = torch.tensor([[0.0] * pad + events["hours"]])
        batch["query_hours"] = batch["hours"]
        return batch

    short, long = model(window(0)), model(window(3))
    assert torch.allclose(short[0], long[0, 3:], atol=1e-6)
    assert not long[0, :3].any()


def test_early_stopping_keeps_the_epoch_of_best_held_out_ndcg():
    ranker = SequenceRanker({**SMALL, "epochs": 8, "patience": 2, "learning_rate": 0.05}).fit(chain_data(60))
    held_out = ranker.held_out_history
    assert len(ranker.history) == len(held_out) and all(0 <= v <= 1 for v in held_out)
    assert ranker.best_epoch == int(np.argmax(held_out)) + 1
    stopped_early = len(held_out) < 8
    assert not stopped_early or len(held_out) - ranker.best_epoch == 2  # ran `patience` epochs past the best


def test_unknown_keys_are_refused_with_the_yaml_named():
    with pytest.raises(ValueError, match="sequence.yaml"):
        SequenceRanker(learning_rat=0.1)
    with pytest.raises(ValueError, match="encoder"):
        NeuralDecayRecommender(3, 1, encoder="lstm")


class FixedScores:
    """A model of fixed scores, 12 down to 1 over 12 items (only ``eval`` and ``full_sort_predict`` are read);
    ``tie``: a window whose target is item 2 gets item 1's score on it."""

    def __init__(self, tie: bool = False):
        self.tie = tie

    def eval(self):
        return self

    def full_sort_predict(self, batch):
        scores = torch.arange(12, 0, -1, dtype=torch.float32).repeat(len(batch["items"]), 1)
        if self.tie:
            tied = batch["targets"][:, -1] == 2
            scores[tied, 2] = scores[tied, 1]
        return scores


def last_targets(*targets: int) -> Windows:
    """Windows of two columns whose last targets are ``targets``."""
    ones = np.ones((len(targets), 2), dtype=np.int64)
    last = np.stack([np.full(len(targets), -1), np.array(targets)], axis=1)
    return Windows(ones, ones, ones, ones.astype(np.float32), ones.astype(np.float32), ones - 1, last)


def test_held_out_ndcg_by_hand():
    """Three windows whose last targets rank 1st, 3rd (tied with one above: counted below it) and 12th of 12."""
    expected = (1.0 + 1 / np.log2(4) + 0.0) / 3
    assert held_out_ndcg(FixedScores(tie=True), last_targets(0, 2, 11), batch_size=2) == pytest.approx(expected)


def test_held_out_ndcg_leaves_out_what_the_evaluation_leaves_out():
    """Targets 0, 2, 5 rank 1st, 3rd, 6th; with items 0 and 1 left out of the second window's ranking its target
    becomes 1st, and the third window's own target left out is not found."""
    windows = last_targets(0, 2, 5)
    left_out = (np.array([1, 1, 2]), np.array([0, 1, 5]))
    assert held_out_ndcg(FixedScores(), windows, batch_size=2, left_out=left_out) == pytest.approx(2 / 3)
    expected = (1 + 1 / np.log2(4) + 1 / np.log2(7)) / 3
    assert held_out_ndcg(FixedScores(), windows, batch_size=2) == pytest.approx(expected)


def test_earlier_targets_are_each_users_items_before_the_held_out_one():
    t = CUTOFF - pd.Timedelta(days=3)
    data = train_data(
        [
            ("u1", "a", "c", "view", t),
            ("u1", "b", "c", "view", t + pd.Timedelta(hours=1)),
            ("u1", "a", "c", "purchase", t + pd.Timedelta(hours=2)),
            ("u1", "c", "c", "view", t + pd.Timedelta(hours=3)),  # u1's held-out target: c
            ("u2", "b", "c", "view", t),
            ("u2", "a", "c", "view", t + pd.Timedelta(hours=1)),  # u2's held-out target: a
            ("u3", "c", "c", "view", t),  # a single event: no training window
        ]
    )
    codes = event_codes(data.events, data.items, pd.Index(["c"]), "item_id", CUTOFF)
    _, users, latest = training_windows(codes, max_len=4)
    held_out_users = users[latest]
    rows, targets = earlier_targets(codes, held_out_users)
    pairs = {(held_out_users[r], data.items[t]) for r, t in zip(rows, targets)}
    assert pairs == {("u1", "a"), ("u1", "b"), ("u2", "b")}
    assert (np.diff(rows) >= 0).all()


def test_early_stopping_can_rank_without_the_users_own_items():
    ranker = SequenceRanker({**SMALL, "epochs": 3, "patience": 2}, exclude_seen=True).fit(chain_data(60))
    plain = SequenceRanker({**SMALL, "epochs": 3, "patience": 2}).fit(chain_data(60))
    assert len(ranker.held_out_history) == len(plain.held_out_history) == 3
    # a 15-step walk round a 10-item cycle has seen its next item: left out, it is never found
    assert max(ranker.held_out_history) == 0.0 < max(plain.held_out_history)
