"""The neural decay recommender's data (``models.harness.sequence``): a user's events as integer codes, cut into
left-padded windows whose every position predicts the next target at the next event's time; the held-out last
target; batches of similar length."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd
import torch

from interest_decay.events.schema import EVENT_TYPES


@dataclass
class Windows:
    """Users' events cut into left-padded windows of ``max_len`` columns; every field ``[N, L]``.
    A position holds one event and the prediction made right after it (its target and the time of it)."""

    items: np.ndarray  # int64: item id + 1 (0 = padding)
    categories: np.ndarray  # int64: category id + 1 (0 = padding)
    event_types: np.ndarray  # int64: index in EVENT_TYPES + 1 (0 = padding)
    hours: np.ndarray  # float32: event time, hours relative to the cutoff (negative = before)
    query_hours: np.ndarray  # float32: prediction time: the next event's time, or the cutoff after the last
    history_targets: np.ndarray  # int64: target id of the event itself (-1 = padding or not in the targets)
    targets: np.ndarray  # int64: target id of the next event (-1 = no loss here)

    def __len__(self) -> int:
        return len(self.items)

    def lengths(self) -> np.ndarray:
        return (self.event_types > 0).sum(1)

    def batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Windows ``rows`` as tensors, without the leading columns that are padding in all of them."""
        first = int((self.event_types[rows] > 0).any(0).argmax())
        return {f.name: torch.from_numpy(getattr(self, f.name)[rows][:, first:]) for f in fields(self)}


def event_codes(
    events: pd.DataFrame, items: pd.Index, categories: pd.Index, target: str, cutoff: pd.Timestamp
) -> pd.DataFrame:
    """Events as integer codes, ordered by user then time, each with the time and target of the user's next event
    (NaN / -1 after the last one). ``rank`` counts back from the user's last event (0 = last)."""
    event_type = pd.Categorical(events["event_type"].str.lower(), categories=EVENT_TYPES).codes + 1
    item = items.get_indexer(events["item_id"])
    category = categories.get_indexer(events["category_id"])
    codes = pd.DataFrame(
        {
            "user_id": events["user_id"].to_numpy(),
            "item": item + 1,
            "category": category + 1,
            "event_type": event_type.astype(np.int64),
            "hours": ((events["ts"] - cutoff) / pd.Timedelta(hours=1)).to_numpy(np.float32),
            "target": item if target == "item_id" else category,
        }
    )[event_type > 0]  # event types outside the contract carry no meaning here
    codes = codes.iloc[np.lexsort((codes["hours"].to_numpy(), codes["user_id"].to_numpy()))].reset_index(drop=True)
    by_user = codes.groupby("user_id", sort=False)
    codes["next_hours"] = by_user["hours"].shift(-1)
    codes["next_target"] = by_user["target"].shift(-1).fillna(-1).astype(np.int64)
    codes["rank"] = by_user.cumcount(ascending=False)
    return codes


def cut_windows(codes: pd.DataFrame, rank: np.ndarray, max_len: int) -> tuple[Windows, np.ndarray, np.ndarray]:
    """Windows of the rows of ``codes``; ``rank`` counts back from each user's last input (0 = last column of
    the user's latest window). Returns the windows, the user of each and whether it is the user's latest."""
    chunk, col = rank // max_len, max_len - 1 - rank % max_len
    keys, row = np.unique(np.stack([pd.factorize(codes["user_id"])[0], chunk]), axis=1, return_inverse=True)
    row = row.reshape(-1)
    shape = (keys.shape[1], max_len)

    def column(name: str, fill, dtype) -> np.ndarray:
        out = np.full(shape, fill, dtype=dtype)
        out[row, col] = codes[name].to_numpy()
        return out

    windows = Windows(
        items=column("item", 0, np.int64),
        categories=column("category", 0, np.int64),
        event_types=column("event_type", 0, np.int64),
        hours=column("hours", 0, np.float32),
        query_hours=column("next_hours", 0, np.float32),
        history_targets=column("target", -1, np.int64),
        targets=column("next_target", -1, np.int64),
    )
    users = np.empty(shape[0], dtype=object)
    users[row] = codes["user_id"].to_numpy()
    return windows, users, keys[1] == 0


def training_windows(codes: pd.DataFrame, max_len: int) -> tuple[Windows, np.ndarray, np.ndarray]:
    """Every event that has a next one, as windows predicting that next event (the whole history is used);
    the user of each window and whether it is its user's latest."""
    inputs = codes[codes["rank"] > 0]
    windows, users, latest = cut_windows(inputs, inputs["rank"].to_numpy() - 1, max_len)
    return windows, users, latest


def scoring_windows(
    codes: pd.DataFrame, max_len: int, now_hours: pd.Series | None = None
) -> tuple[Windows, np.ndarray]:
    """Each user's latest ``max_len`` events, one window per user, predicting at the cutoff (hour 0), or at
    ``now_hours`` (per user id, hours relative to the cutoff) for the users it names."""
    inputs = codes[codes["rank"] < max_len].copy()
    last = inputs["rank"] == 0
    now = 0.0 if now_hours is None else inputs.loc[last, "user_id"].map(now_hours).fillna(0.0).astype(np.float32)
    inputs.loc[last, "next_hours"] = now
    windows, users, _ = cut_windows(inputs, inputs["rank"].to_numpy(), max_len)
    return windows, users


def hold_out_last(windows: Windows, latest: np.ndarray) -> tuple[Windows, Windows]:
    """Training windows without each user's last target, and those last targets alone (for early stopping)."""
    rows = np.flatnonzero(latest)
    held_out = replace(windows, **{f.name: getattr(windows, f.name)[rows] for f in fields(windows)})
    held_out.targets = np.full_like(held_out.targets, -1)
    held_out.targets[:, -1] = windows.targets[rows, -1]
    train_targets = windows.targets.copy()
    train_targets[rows, -1] = -1
    return replace(windows, targets=train_targets), held_out


def earlier_targets(codes: pd.DataFrame, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(window, target) pairs, sorted by window: for held-out window ``i`` (of user ``users[i]``), every target of
    the user's events before the held-out last one. Ranking the held-out target without them is what the harness
    does with ``exclude_seen`` (data without repeats), so early stopping measures what the test measures."""
    earlier = codes[(codes["rank"] > 0) & (codes["target"] >= 0)]
    rows = pd.Index(users).get_indexer(earlier["user_id"])
    pairs = np.unique(np.stack([rows, earlier["target"].to_numpy()]), axis=1)
    pairs = pairs[:, pairs[0] >= 0]
    return pairs[0], pairs[1]


def length_batches(windows: Windows, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of windows of similar length, so that little padding is computed."""
    order = rng.permutation(len(windows))
    order = order[np.argsort(windows.lengths()[order], kind="stable")]  # random within equal lengths
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
