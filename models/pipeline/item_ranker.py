"""Item ranker: scores a user's candidate items from item-level signals (``models.pipeline.item_signals``).

A small network (signals → ``hidden`` → ``hidden`` → score, ReLU; the mean of ``members`` such networks) over the
standardised signals of each (user, item) candidate: the user's history with the item (frequency, recency windows,
days since the last event against the item's repurchase gap), the user's activity and the item's popularity and
trend. It learns how those combine, so how fast an interest fades (and whether it does) comes from the data.

Training (``fit_item_ranker``): ``windows`` label windows of ``window_days`` days, the last one ending at the
cutoff and each earlier one ``step_days`` before; the signals are computed at each window's start and an item is
relevant when the user bought it (a target event) in the window. The loss is listwise: a softmax over each user's
candidates against the relevant ones (ListNet's top-one form). Everything uses events before the cutoff only.

Contract shared by the platform's models: ``forward``, ``calculate_loss``, ``predict``, ``full_sort_predict``,
``save`` / ``load`` (hyperparameters as JSON + state_dict, the signals' mean and spread included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from models.harness import ranking
from models.pipeline.item_signals import SIGNALS, candidate_signals
from models.pipeline.persistence import Persisted

DAY = pd.Timedelta(days=1)
NOT_A_CANDIDATE = -1e6  # below every candidate's score; the item's recent popularity orders these


class ItemRanker(Persisted, nn.Module):
    """``members`` networks of the same shape (signals → ``hidden`` → ``hidden`` → score, ReLU), each from its own
    initialisation (nn.Linear's), stored stacked so that all members run as three batched matrix products; the
    score is the members' mean, which depends less on the seed than one network's score does."""

    def __init__(self, n_signals: int = len(SIGNALS), hidden: int = 32, members: int = 1):
        super().__init__()
        self.hparams = {"n_signals": n_signals, "hidden": hidden, "members": members}
        self.register_buffer("mean", torch.zeros(n_signals))
        self.register_buffer("scale", torch.ones(n_signals))
        shapes = ((n_signals, hidden), (hidden, hidden), (hidden, 1))  # (inputs, outputs) per layer
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(members, i, o)) for i, o in shapes)
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(members, 1, o)) for _, o in shapes)
        for weight, bias in zip(self.weights, self.biases):
            bound = 1 / math.sqrt(weight.shape[1])  # nn.Linear's: U(-1/sqrt(inputs), 1/sqrt(inputs))
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A one-network ranker saved before the members were stacked (``nn.Linear`` layers ``net.0`` / ``net.2`` /
        ``net.4``: a champion in the model store from an earlier version) loads as a one-member ranker."""
        for layer, linear in enumerate((0, 2, 4)):
            weight = state_dict.pop(f"{prefix}net.{linear}.weight", None)
            if weight is not None:
                state_dict[f"{prefix}weights.{layer}"] = weight.T.unsqueeze(0)
                state_dict[f"{prefix}biases.{layer}"] = state_dict.pop(f"{prefix}net.{linear}.bias").view(1, 1, -1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def standardise_with(self, signals: torch.Tensor) -> None:
        """Take the signals' mean and spread from training rows ``[N, S]`` (kept in the state_dict)."""
        self.mean.copy_(signals.mean(0))
        self.scale.copy_(signals.std(0, correction=0).clamp(min=1e-6))

    def member_scores(self, signals: torch.Tensor) -> torch.Tensor:
        """Each member's scores ``[members, N]`` of candidate rows ``[N, S]``."""
        x = ((signals - self.mean) / self.scale).expand(len(self.weights[0]), *signals.shape)
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if layer < len(self.weights) - 1:
                x = torch.relu(x)
        return x.squeeze(-1)

    def forward(self, signals: torch.Tensor) -> torch.Tensor:
        """Scores ``[N]`` of candidate rows ``[N, S]`` (higher is better): the members' mean."""
        return self.member_scores(signals).mean(0)

    def calculate_loss(self, signals: torch.Tensor, relevant: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Listwise loss: per group (a user in a window; ``groups`` ``[N]`` from 0), the cross-entropy between the
        softmax of its candidates' scores and the uniform distribution over its relevant candidates (``relevant``
        ``[N]``, 0/1). Groups without a relevant candidate do not count. Each member is trained on its own scores
        (the mean of the members' losses), so the members stay independent models and their mean an ensemble."""
        return torch.stack([self._listwise(scores, relevant, groups) for scores in self.member_scores(signals)]).mean()

    @staticmethod
    def _listwise(scores: torch.Tensor, relevant: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        n = int(groups.max()) + 1
        top = torch.full((n,), -torch.inf).scatter_reduce(0, groups, scores.detach(), reduce="amax")
        shifted = scores - top[groups]
        log_norm = torch.log(torch.zeros(n).index_add(0, groups, torch.exp(shifted)))
        hits = torch.zeros(n).index_add(0, groups, relevant)
        weight = torch.where(hits[groups] > 0, relevant / hits[groups].clamp(min=1), torch.zeros_like(relevant))
        return -(weight * (shifted - log_norm[groups])).sum() / (hits > 0).sum().clamp(min=1)

    @torch.no_grad()
    def predict(self, signals: torch.Tensor) -> torch.Tensor:
        """Scores ``[N]`` of candidate rows, in eval mode."""
        return self.forward(signals)

    @torch.no_grad()
    def full_sort_predict(
        self, signals: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, fallback: torch.Tensor, n_rows: int
    ) -> torch.Tensor:
        """Scores of every item ``[n_rows, I]``: candidate rows ``signals`` placed at (``rows``, ``columns``); the
        other items get ``NOT_A_CANDIDATE`` + ``fallback`` ``[I]`` (recent popularity share, in [0, 1]), below
        every candidate. Candidates' ties break by ``fallback`` too."""
        out = (NOT_A_CANDIDATE + fallback).repeat(n_rows, 1)
        out[rows, columns] = self.forward(signals) + 1e-6 * fallback[columns]
        return out


@dataclass(frozen=True)
class RankerConfig:
    hidden: int = 32  # units per hidden layer
    members: int = 5  # networks averaged (each from its own initialisation)
    epochs: int = 30  # full-batch Adam steps per training window
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    windows: int = 12  # label windows before the cutoff
    step_days: float = 10  # days between the windows' ends
    window_days: float = 30  # days each label window spans
    candidates: int = 50  # popular items added to each user's history items
    neighbours: int = 200  # similar shoppers behind the neighbour signal (models.pipeline.neighbours)
    popularity_days: float = 30  # fallback order of the items that are no candidate
    seed: int = 0


def training_windows(events: pd.DataFrame, cutoff: pd.Timestamp, cfg: RankerConfig) -> list[tuple]:
    """(start, end) of each label window, latest first, all ending at or before ``cutoff`` and starting after the
    first event (a window with no history before it teaches nothing)."""
    first = events["ts"].min()
    out = []
    for k in range(cfg.windows):
        end = cutoff - k * cfg.step_days * DAY
        start = end - cfg.window_days * DAY
        if start > first:
            out.append((start, end))
    return out


def labelled_rows(events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, cfg: RankerConfig) -> pd.DataFrame:
    """Candidate signals at ``start`` of the users who bought in [start, end), with ``relevant`` (0/1)."""
    types = ranking.target_types(events)
    split = ranking.make_split(events, start, end, types)
    rows = candidate_signals(split.train.events, start, split.users, cfg.candidates, types, cfg.neighbours)
    wanted = pd.MultiIndex.from_tuples(
        [(u, i) for u, items in zip(split.users, split.relevant) for i in items], names=["user_id", "item_id"]
    )
    rows["relevant"] = pd.MultiIndex.from_frame(rows[["user_id", "item_id"]]).isin(wanted).astype(np.float32)
    return rows


def _tensors(rows: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    groups, _ = pd.factorize(rows["user_id"])
    return (
        torch.as_tensor(rows[list(SIGNALS)].to_numpy(np.float32)),
        torch.as_tensor(rows["relevant"].to_numpy(np.float32)),
        torch.as_tensor(groups),
    )


def fit_item_ranker(events: pd.DataFrame, cutoff: pd.Timestamp, cfg: RankerConfig = RankerConfig()) -> ItemRanker:
    """An ItemRanker trained on the label windows before ``cutoff`` (events after it are not read)."""
    events = events[events["ts"] < cutoff]
    sets = [_tensors(labelled_rows(events, start, end, cfg)) for start, end in training_windows(events, cutoff, cfg)]
    sets = [s for s in sets if len(s[0]) and s[1].sum() > 0]
    if not sets:
        raise ValueError(
            f"no label window before {cutoff:%Y-%m-%d} has a user who bought an item: the item ranker needs at "
            f"least {cfg.window_days:g} days of events with purchases before the cutoff"
        )
    torch.manual_seed(cfg.seed)
    model = ItemRanker(len(SIGNALS), cfg.hidden, cfg.members)
    model.standardise_with(torch.cat([s[0] for s in sets]))
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    model.train()
    model.training_losses = []  # mean listwise loss of each epoch over the windows (the run's training curve)
    model.training_rows = sum(len(s[0]) for s in sets)
    for _ in range(cfg.epochs):
        total = 0.0
        for signals, relevant, groups in sets:
            optimiser.zero_grad()
            loss = model.calculate_loss(signals, relevant, groups)
            loss.backward()
            optimiser.step()
            total += loss.item()
        model.training_losses.append(total / len(sets))
    return model.eval()
