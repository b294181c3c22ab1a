"""The neighbour signal (models.pipeline.neighbours): known answers on a hand-made population, the one-user path
equal to the batch path, the user left out of their own neighbours, and no change when a user's sums decay."""

import numpy as np
import pandas as pd
import pytest

from models.pipeline.neighbours import Neighbourhood, _top_k_mask

ITEMS = pd.Index(["a", "b", "c", "d"], name="item_id")


def pairs(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "sum_item_days_90"])


# u1 and u2 share item a; u3 shares nothing with u1; u4 has a and d with equal weights.
POPULATION = pairs(
    [
        ("u1", "a", 1.0),
        ("u2", "a", 3.0),
        ("u2", "b", 4.0),
        ("u3", "c", 2.0),
        ("u4", "a", 1.0),
        ("u4", "d", 1.0),
    ]
)


def test_a_known_answer_with_k_neighbours_and_the_user_left_out():
    hood = Neighbourhood.build(POPULATION, ITEMS, k=2)
    candidates = pd.DataFrame({"user_id": ["u1"] * 4, "item_id": list(ITEMS)})
    got = hood.scores(POPULATION[POPULATION["user_id"] == "u1"], candidates)
    # u1 = (1, 0, 0, 0); similarities: u2 = 3/5 = .6, u4 = 1/√2 ≈ .707, u3 = 0, itself left out.
    # Its 2 neighbours are u4 and u2; the signal is the mean of their unit vectors over k = 2 slots.
    u2 = np.array([0.6, 0.8, 0.0, 0.0])
    u4 = np.array([1.0, 0.0, 0.0, 1.0]) / np.sqrt(2)
    np.testing.assert_allclose(got, (u2 + u4) / 2, atol=1e-12)


def test_neighbours_with_nothing_in_common_do_not_count():
    hood = Neighbourhood.build(POPULATION, ITEMS, k=3)  # u1 has only two users in common
    got = hood.scores(pairs([("x", "a", 1.0)]), pd.DataFrame({"user_id": ["x"], "item_id": ["c"]}))
    assert got.tolist() == [0.0]  # u3 (item c) shares nothing with x: not a neighbour


def test_a_user_or_item_outside_the_population_and_the_table():
    hood = Neighbourhood.build(POPULATION, ITEMS, k=1)
    candidates = pd.DataFrame({"user_id": ["new", "new", "empty"], "item_id": ["b", "zzz", "a"]})
    got = hood.scores(pairs([("new", "b", 2.0), ("new", "zzz", 5.0)]), candidates)
    # "new" = (0, 1, 0, 0) (zzz is unknown): its one neighbour is u2, weight .8 on b; "empty" has no vector
    np.testing.assert_allclose(got, [0.8, 0.0, 0.0], atol=1e-12)


def test_the_one_user_path_equals_the_batch_path_and_decay_changes_nothing():
    rng = np.random.default_rng(4)
    items = pd.Index([f"i{j}" for j in range(40)], name="item_id")
    population = pairs(
        [(f"u{u}", f"i{j}", float(rng.exponential())) for u in range(120) for j in rng.choice(40, 6, replace=False)]
    ).drop_duplicates(["user_id", "item_id"])
    hood = Neighbourhood.build(population, items, k=15)
    for user in ("u3", "u77", "stranger"):
        mine = population[population["user_id"] == user] if user != "stranger" else population.iloc[:5]
        mine = mine.assign(user_id=user)
        candidates = pd.DataFrame({"user_id": user, "item_id": list(items)})
        batch = hood.scores(mine, candidates)
        one = hood.scores_one(
            user, items.get_indexer(mine["item_id"]), mine["sum_item_days_90"].to_numpy(), np.arange(len(items))
        )
        np.testing.assert_array_equal(one, batch)
        later = mine.assign(sum_item_days_90=mine["sum_item_days_90"] * 0.5 ** (17 / 90))  # 17 days on
        np.testing.assert_allclose(hood.scores(later, candidates), batch, atol=1e-12)
        assert batch.sum() > 0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_breaks_ties_by_position(k):
    values = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]])
    want = {1: [1], 2: [0, 1], 3: [0, 1, 2]}[k]
    assert np.flatnonzero(_top_k_mask(values, k)).tolist() == want


def test_save_and_load_keep_the_population(tmp_path):
    hood = Neighbourhood.build(POPULATION, ITEMS, k=2)
    hood.save(tmp_path)
    back = Neighbourhood.load(tmp_path, ITEMS, 2)
    candidates = pd.DataFrame({"user_id": ["u1"] * 4, "item_id": list(ITEMS)})
    mine = POPULATION[POPULATION["user_id"] == "u1"]
    np.testing.assert_array_equal(back.scores(mine, candidates), hood.scores(mine, candidates))
    assert list(back.users) == ["u1", "u2", "u3", "u4"]
