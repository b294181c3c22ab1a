"""Neural decay recommender: self-attention over a user's latest events with time-interval input.

In the spirit of TiSASRec (Li et al., WSDM 2020): the attention logits and values between the
prediction at position i and each earlier event j get an embedding of the interval between them.
The interval runs from event j to the *prediction time* (the next event's time in training, the
cutoff when scoring), clipped to ``max_interval_days`` and bucketed on a log scale; so the model
sees how long ago every event was when it predicts, which is what lets interest fade. Absolute
positions and event types (view, cart, fav, purchase, rating) are input embeddings as well.
``use_time_intervals=False`` drops every interval input: plain SASRec. ``encoder="gru"`` replaces the
attention blocks with a recurrent network over the same inputs: GRU4Rec (Hidasi et al., ICLR 2016) with a
full softmax, the field's other standard baseline.

With ``use_repeat`` a repeat head (as in RepeatNet) mixes a copy distribution over the user's own
history into the scores: each past event is weighted by a learned kernel over its interval bucket
(the learned decay curve; over its recency rank without time intervals), its event type and its match
with the current state, and a learned gate per position sets the share of repeating vs. exploring.

The target column is ``item_id`` or ``category_id``; the output table is that column's input embedding.
A batch is a dict of left-padded ``[B, L]`` tensors, the fields of ``Windows`` (``event_types`` 0 = padding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn
from tqdm import tqdm

from interest_decay.events.schema import EVENT_TYPES
from models.harness.sequence_data import (
    Windows,
    earlier_targets,
    event_codes,
    hold_out_last,
    length_batches,
    scoring_windows,
    training_windows,
)
from models.pipeline.persistence import Persisted

if TYPE_CHECKING:
    from models.harness.ranking import TrainData

DEFAULT_CONFIG = Path(__file__).with_name("sequence.yaml")
TARGETS = ("item_id", "category_id")
MODEL_KEYS = (
    "max_len",
    "hidden",
    "n_blocks",
    "n_heads",
    "dropout",
    "use_repeat",
    "n_time_buckets",
    "min_interval_minutes",
    "max_interval_days",
    "encoder",
)
ENCODERS = ("attention", "gru")


class AttentionBlock(nn.Module):
    """Pre-norm causal self-attention and feed-forward; with ``n_relations`` > 0 the relation
    (interval bucket) of each query-key pair gets an embedding in the keys and in the values (TiSASRec)."""

    def __init__(self, hidden: int, n_heads: int, dropout: float, n_relations: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.relation_key = nn.Embedding(n_relations, hidden) if n_relations else None
        self.relation_value = nn.Embedding(n_relations, hidden) if n_relations else None
        self.norm_attention, self.norm_ffn = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, relations: torch.Tensor | None) -> torch.Tensor:
        """``x`` [B, L, H], ``allowed`` [B, L, L] bool (query may see key), ``relations`` [B, L, L] bucket ids."""
        batch, length, hidden = x.shape
        heads, size = self.n_heads, hidden // self.n_heads
        q, k, v = self.qkv(self.norm_attention(x)).view(batch, length, 3, heads, size).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2)  # [B, h, L, L]
        if self.relation_key is not None:
            index = relations[:, None].expand(batch, heads, length, length)
            relation_key = self.relation_key.weight.view(-1, heads, size).permute(1, 2, 0)  # [h, d, R]
            logits = logits + (q @ relation_key).gather(-1, index)  # q·r_ij without materialising [B, L, L, H]
        attention = (logits / math.sqrt(size)).masked_fill(~allowed[:, None], -torch.inf).softmax(-1)
        attention = self.dropout(attention)
        context = attention @ v  # [B, h, L, d]
        if self.relation_value is not None:
            mass = torch.zeros(*attention.shape[:3], self.relation_value.num_embeddings).scatter_add_(
                -1, index, attention
            )
            context = context + mass @ self.relation_value.weight.view(-1, heads, size).transpose(0, 1)
        x = x + self.dropout(self.out(context.transpose(1, 2).reshape(batch, length, hidden)))
        return x + self.dropout(self.ffn(self.norm_ffn(x)))


class NeuralDecayRecommender(Persisted, nn.Module):
    """Next-target log-probabilities from a user's event window (see the module docstring)."""

    def __init__(
        self,
        n_items: int,
        n_categories: int,
        target: str = "item_id",
        use_time_intervals: bool = True,
        max_len: int = 100,
        hidden: int = 64,
        n_blocks: int = 2,
        n_heads: int = 1,
        dropout: float = 0.2,
        use_repeat: bool = True,
        n_time_buckets: int = 32,
        min_interval_minutes: float = 1.0,
        max_interval_days: float = 365.0,
        encoder: str = "attention",
    ):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, not {encoder!r}")
        self.hparams = {
            "n_items": n_items,
            "n_categories": n_categories,
            "target": target,
            "use_time_intervals": use_time_intervals,
            "max_len": max_len,
            "hidden": hidden,
            "n_blocks": n_blocks,
            "n_heads": n_heads,
            "dropout": dropout,
            "use_repeat": use_repeat,
            "n_time_buckets": n_time_buckets,
            "min_interval_minutes": min_interval_minutes,
            "max_interval_days": max_interval_days,
            "encoder": encoder,
        }
        self.item_embedding = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.category_embedding = nn.Embedding(n_categories + 1, hidden, padding_idx=0)
        self.type_embedding = nn.Embedding(len(EVENT_TYPES) + 1, hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, hidden)
        self.gap_embedding = nn.Embedding(n_time_buckets, hidden) if use_time_intervals else None
        relations = n_time_buckets if use_time_intervals else 0
        if encoder == "gru":
            self.blocks = nn.ModuleList()
            self.gru = nn.GRU(hidden, hidden, num_layers=n_blocks, batch_first=True, dropout=dropout * (n_blocks > 1))
        else:
            self.blocks = nn.ModuleList(AttentionBlock(hidden, n_heads, dropout, relations) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        n_targets = n_items if target == "item_id" else n_categories
        self.output_bias = nn.Parameter(torch.zeros(n_targets))
        if use_repeat:
            self.decay_kernel = nn.Parameter(torch.zeros(n_time_buckets))  # log-weight of a past event per bucket
            self.type_weight = nn.Parameter(torch.zeros(len(EVENT_TYPES) + 1))
            self.repeat_query = nn.Linear(hidden, hidden)
            self.repeat_gate = nn.Linear(hidden, 1)
        edges = torch.logspace(
            math.log10(min_interval_minutes / 60), math.log10(max_interval_days * 24), n_time_buckets - 1
        )
        self.register_buffer("bucket_edges", edges, persistent=False)  # hours; rebuilt from hparams on load
        for embedding in (self.item_embedding, self.category_embedding, self.type_embedding, self.position_embedding):
            nn.init.normal_(embedding.weight, std=0.05)

    def output_table(self) -> torch.Tensor:
        """Embeddings of the targets ``[T, H]`` (the target column's input embedding, padding row dropped)."""
        table = self.item_embedding if self.hparams["target"] == "item_id" else self.category_embedding
        return table.weight[1:]

    def relation_buckets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, L, L]``: bucket of the interval from key event j to query i's prediction time;
        without time intervals, the recency rank i - j (clipped), which only the repeat head uses."""
        if self.hparams["use_time_intervals"]:
            gap = (batch["query_hours"][:, :, None] - batch["hours"][:, None, :]).clamp_min(0)
            return torch.bucketize(gap, self.bucket_edges)
        steps = torch.arange(batch["hours"].shape[1])
        rank = (steps[:, None] - steps[None, :]).clamp(0, self.hparams["n_time_buckets"] - 1)
        return rank.expand(len(batch["hours"]), -1, -1)

    def encode(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hidden states ``[B, L, H]``, relation buckets and the attention mask ``[B, L, L]``."""
        valid = batch["event_types"] > 0
        length = valid.shape[1]
        positions = torch.arange(self.hparams["max_len"] - length, self.hparams["max_len"])
        x = (
            self.item_embedding(batch["items"])
            + self.category_embedding(batch["categories"])
            + self.type_embedding(batch["event_types"])
            + self.position_embedding(positions)
        )
        relations = self.relation_buckets(batch)
        if self.gap_embedding is not None:  # interval from each event to its own prediction time
            x = x + self.gap_embedding(relations.diagonal(dim1=1, dim2=2))
        x = self.dropout(x) * valid[..., None]
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        allowed = (causal & valid[:, None, :]) | torch.eye(length, dtype=torch.bool)  # padding rows see themselves
        if self.hparams["encoder"] == "gru":
            return self.norm(self.recur(x, valid)), relations, allowed
        for block in self.blocks:
            x = block(x, allowed, relations if self.gap_embedding is not None else None)
        return self.norm(x), relations, allowed

    def recur(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The GRU's state ``[B, L, H]`` after each event of left-padded windows ``x`` ``[B, L, H]``: each window
        is shifted to start at position 0 and packed, so padding never enters the recurrence (zeros at padding)."""
        length = x.shape[1]
        pad = length - valid.sum(1)  # [B]
        shift = (torch.arange(length)[None, :] + pad[:, None]).clamp(max=length - 1)  # [B, L] left-aligned -> source
        packed = nn.utils.rnn.pack_padded_sequence(
            x.gather(1, shift[..., None].expand_as(x)),
            (length - pad).clamp(min=1),
            batch_first=True,
            enforce_sorted=False,
        )
        out, _ = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=length)
        back = (torch.arange(length)[None, :] - pad[:, None]).clamp(min=0)  # [B, L] padded position -> left-aligned
        return out.gather(1, back[..., None].expand_as(out)) * valid[..., None]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Hidden state ``[B, L, H]`` at every position."""
        return self.encode(batch)[0]

    def heads(
        self, batch: dict[str, torch.Tensor], rows: torch.Tensor, cols: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """At the positions ``(rows, cols)``: generation logits over the targets ``[P, T]``; with the repeat head
        also the copy weights over the window's events ``[P, L]`` (sum 1) and the gate logit of repeating ``[P, 1]``."""
        hidden, relations, allowed = self.encode(batch)
        state = hidden[rows, cols]  # [P, H]
        logits = state @ self.output_table().T + self.output_bias
        if not self.hparams["use_repeat"]:
            return logits, None, None
        history = batch["history_targets"]  # [B, L] target id of each event, -1 = none
        keys = self.output_table()[history.clamp_min(0)]  # [B, L, H]
        match = (self.repeat_query(hidden) @ keys.transpose(1, 2))[rows, cols] / math.sqrt(hidden.shape[-1])
        score = self.decay_kernel[relations[rows, cols]] + self.type_weight[batch["event_types"][rows]] + match
        usable = allowed[rows, cols] & (history[rows] >= 0)
        weights = score.masked_fill(~usable, -1e9).softmax(-1) * usable  # no usable event: all zero, no NaN
        return logits, weights, self.repeat_gate(state)

    @staticmethod
    def mix(generate: torch.Tensor, copy: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """log((1 - g)·p_generate + g·p_copy) from log p_generate, p_copy and the gate logit of g."""
        return torch.logaddexp(
            nn.functional.logsigmoid(-gate) + generate, nn.functional.logsigmoid(gate) + copy.clamp_min(1e-30).log()
        )

    def log_probs(self, batch: dict[str, torch.Tensor], rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``[P, T]`` of the next target at the positions ``(rows, cols)``."""
        logits, weights, gate = self.heads(batch, rows, cols)
        generate = logits.log_softmax(-1)
        if weights is None:
            return generate
        copy = torch.zeros_like(generate).scatter_add_(1, batch["history_targets"][rows].clamp_min(0), weights)
        return self.mix(generate, copy, gate)

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean negative log-likelihood of ``batch["targets"]`` over every position that has one
        (only the targets' probabilities are formed, not the whole ``[P, T]`` mixture)."""
        rows, cols = (batch["targets"] >= 0).nonzero(as_tuple=True)
        targets = batch["targets"][rows, cols, None]  # [P, 1]
        logits, weights, gate = self.heads(batch, rows, cols)
        generate = logits.gather(1, targets) - logits.logsumexp(-1, keepdim=True)
        if weights is None:
            return -generate.mean()
        copy = (weights * (batch["history_targets"][rows] == targets)).sum(-1, keepdim=True)
        return -self.mix(generate, copy, gate).mean()

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores of all targets ``[B, T]`` at the last position (log-probabilities: higher is better)."""
        rows = torch.arange(len(batch["items"]))
        return self.log_probs(batch, rows, torch.full_like(rows, batch["items"].shape[1] - 1))

    def predict(self, batch: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` of one target per window (``targets``: ``[B]`` target ids)."""
        return self.full_sort_predict(batch).gather(1, targets[:, None]).squeeze(1)


def load_config(path: Path = DEFAULT_CONFIG, overrides: dict | None = None) -> dict:
    return {**yaml.safe_load(Path(path).read_text()), **(overrides or {})}


def held_out_ndcg(
    model: NeuralDecayRecommender,
    windows: Windows,
    batch_size: int,
    k: int = 10,
    left_out: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """Mean NDCG@k of each window's last target ranked over all targets (one relevant item: 1 / log2(rank + 1)
    within the top k; ties count against the target), without dropout or gradients. ``left_out``: (window,
    target) pairs sorted by window (``earlier_targets``) that are not ranked, as the harness's ``exclude_seen``."""
    model.eval()
    gains = []
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            stop = min(start + batch_size, len(windows))
            batch = windows.batch(np.arange(start, stop))
            targets = batch["targets"][:, -1]
            scores = model.full_sort_predict(batch)
            if left_out is not None:
                lo, hi = np.searchsorted(left_out[0], [start, stop])
                rows, cols = left_out[0][lo:hi] - start, left_out[1][lo:hi]
                scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
            target_scores = scores.gather(1, targets.clamp_min(0)[:, None])
            rank = (scores >= target_scores).sum(1)  # the target counts itself
            found = (rank <= k) & (target_scores[:, 0] > -torch.inf)  # a target left out is never found
            gain = torch.where(found, 1.0 / torch.log2(rank.float() + 1), torch.zeros(len(rank)))
            gains.append(gain[targets >= 0])
    return float(torch.cat(gains).mean()) if gains else 0.0


def train_epoch(
    model: NeuralDecayRecommender,
    optimiser: torch.optim.Optimizer,
    windows: Windows,
    cfg: dict,
    rng: np.random.Generator,
    description: str,
) -> float:
    """One pass of Adam over ``windows``, the loss on a random ``target_fraction`` of the positions;
    returns the mean training loss per target."""
    model.train()
    total, count = 0.0, 0
    for rows in tqdm(length_batches(windows, cfg["batch_size"], rng), desc=description, unit="batch", leave=False):
        batch = windows.batch(rows)
        drawn = torch.from_numpy(rng.random(batch["targets"].shape) < cfg["target_fraction"])
        batch["targets"] = batch["targets"].where(drawn, -1)
        n = int((batch["targets"] >= 0).sum())
        if not n:
            continue
        loss = model.calculate_loss(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.item() * n
        count += n
    return total / max(count, 1)


class SequenceRanker:
    """The neural decay recommender behind the evaluation harness's ``Ranker`` interface (``models.harness.ranking``).

    ``score`` is aligned to ``self.targets``: ``data.items`` for the item target, the sorted categories of the
    training events for the category target. Users without history get a row of zeros."""

    def __init__(
        self,
        config: dict | None = None,
        target: str = "item_id",
        use_time_intervals: bool = True,
        seed: int = 0,
        exclude_seen: bool = False,
        **overrides,
    ):
        """``config`` and ``overrides`` (e.g. a grid's ``learning_rate=``) replace keys of ``sequence.yaml``.
        ``exclude_seen``: the evaluation leaves out each user's own items (data without repeats), so the
        held-out target of early stopping is ranked without them too."""
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
        self.config = load_config(overrides={**(config or {}), **overrides})
        unknown = sorted(set(self.config) - set(load_config()))
        if unknown:
            raise ValueError(f"unknown sequence model keys {unknown}: models/harness/sequence.yaml lists the keys")
        self.target, self.use_time_intervals, self.seed = target, use_time_intervals, seed
        self.exclude_seen = exclude_seen
        kind = "gru4rec" if self.config["encoder"] == "gru" else "tisasrec" if use_time_intervals else "sasrec"
        self.name = f"{kind}{'+repeat' if self.config['use_repeat'] else ''}" + (
            "" if target == "item_id" else "-category"
        )
        self.history: list[float] = []  # mean training loss per epoch
        self.held_out_history: list[float] = []  # NDCG@10 of each user's held-out last target per epoch
        self.best_epoch = 0  # the epoch whose weights are kept

    def fit(self, data: TrainData) -> SequenceRanker:
        """Train on every user's event sequence before ``data.cutoff``; keeps the epoch of best held-out NDCG@10."""
        cfg = self.config
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.categories = pd.Index(np.sort(data.events["category_id"].unique()))
        self.targets = data.items if self.target == "item_id" else self.categories
        codes = event_codes(data.events, data.items, self.categories, self.target, data.cutoff)
        train, users, latest = training_windows(codes, cfg["max_len"])
        held_out, left_out = None, None
        if cfg["patience"] > 0:
            train, held_out = hold_out_last(train, latest)
            if self.exclude_seen:
                left_out = earlier_targets(codes, users[latest])
        self.model = NeuralDecayRecommender(
            len(data.items),
            len(self.categories),
            self.target,
            self.use_time_intervals,
            **{k: cfg[k] for k in MODEL_KEYS},
        )
        self._train(train, held_out, left_out, rng)
        now = None if data.user_now is None else (data.user_now - data.cutoff) / pd.Timedelta(hours=1)
        self._windows, users = scoring_windows(codes, cfg["max_len"], now)
        self._user_rows = pd.Index(users)
        return self

    def _train(
        self,
        train: Windows,
        held_out: Windows | None,
        left_out: tuple[np.ndarray, np.ndarray] | None,
        rng: np.random.Generator,
    ) -> None:
        cfg = self.config
        optimiser = torch.optim.Adam(self.model.parameters(), lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
        best, best_state, stale = -math.inf, None, 0
        for epoch in range(1, cfg["epochs"] + 1):
            description = f"{self.name} epoch {epoch}/{cfg['epochs']}"
            self.history.append(train_epoch(self.model, optimiser, train, cfg, rng, description))
            if held_out is None:
                self.best_epoch = epoch
                continue
            self.held_out_history.append(held_out_ndcg(self.model, held_out, 4 * cfg["batch_size"], left_out=left_out))
            if self.held_out_history[-1] > best:
                best, stale, self.best_epoch = self.held_out_history[-1], 0, epoch
                best_state = {k: v.clone() for k, v in self.model.state_dict().items()}
            else:
                stale += 1
                if stale >= cfg["patience"]:
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        """Log-probabilities ``[len(user_ids), len(self.targets)]`` of each user's next target at the cutoff."""
        scores = np.zeros((len(user_ids), len(self.targets)), dtype=np.float32)
        rows = self._user_rows.get_indexer(pd.Index(user_ids))
        known = np.flatnonzero(rows >= 0)
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(known), 256):
                chunk = known[start : start + 256]
                scores[chunk] = self.model.full_sort_predict(self._windows.batch(rows[chunk])).numpy()
        return scores
