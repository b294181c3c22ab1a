"""Parametric decay model: decay parameters per (category × event type), fitted by next-interaction likelihood.

The score of item j for a user at time t is the log of an intensity (a Hawkes-style "which item next"):

    x_j = Σ_{e in history, item(e) = j} w[type e] · decay(t − t_e; θ[cat e, type e])          (own history)
        + b_cat · share_j · Σ_{e in history, cat(e) = cat(j)} w[type e] · decay(...)           (category interest)
        + b_0 / I + b_all · popularity share_j + b_recent · recent popularity share_j          (base)

``share_j`` is j's share of its category's popularity. ``softmax(log x)`` is the probability that the next
target (a purchase, or any event in files without purchases) is item j; training maximises it for sampled
target baskets of the train period, each given only the history and popularity before it.

Decay families (``interest_decay.decay`` has the same formulas): exponential (log half-life), logistic
(log k, log l of ``(1 + k) / (1 + k e^(l t))``) and period (weights per bucket back, non-increasing).
Each parameter is ``global[type] + offset[category, type]`` with an L2 penalty on the offsets, so a sparse
category stays near the global value. Half-lives may grow to ``MAX_HALF_LIFE`` days: "no decay".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from interest_decay import decay
from models.fitting.decay_kinds import PARAMETER_COLUMNS
from models.harness.decay_data import Baskets, EventIndex, Histories, target_baskets
from models.harness.ranking import TrainData

FAMILIES = ("exponential", "logistic", "period")
MAX_HALF_LIFE = decay.NO_DECAY_HALF_LIFE  # days; 0.5 ** (1 year / 1e5 days) = 0.9975, i.e. no decay
LOG_HALF_LIFE = (math.log(1e-2), math.log(MAX_HALF_LIFE))
LOG_K, LOG_L = (math.log(1e-3), math.log(1e3)), (math.log(1e-6), math.log(50.0))
MIN_HALF_LIFE = math.exp(LOG_HALF_LIFE[0])  # days (~15 minutes)


def bound_flag(half_life_days: float | None) -> str | None:
    """Where a fitted half-life ends at a bound of its range (the data did not fix it there), or None: "lower
    bound" (it fades at once: often a sign the family does not suit the data, e.g. nobody repeats anything) or
    "upper bound" (no decay)."""
    if half_life_days is None or half_life_days != half_life_days:
        return None
    if half_life_days <= MIN_HALF_LIFE * 1.01:
        return "lower bound"
    if half_life_days >= MAX_HALF_LIFE * 0.99:
        return "upper bound"
    return None


CACHE_BYTES = 1 << 30  # training histories (12 bytes per basket and item) are kept across epochs up to this


def _scatter_sum(row: torch.Tensor, column: torch.Tensor, value: torch.Tensor, n_rows: int, n_columns: int):
    """Dense ``[n_rows, n_columns]`` sums of ``value`` per (row, column).

    index_add on the flat view is the fast path."""
    return torch.zeros(n_rows * n_columns).index_add(0, row * n_columns + column, value).view(n_rows, n_columns)


class DecayModel(nn.Module):
    """The intensity model above; ``forward`` gives log intensities ``[B, I]``."""

    def __init__(
        self,
        n_categories: int,
        n_types: int,
        n_items: int,
        family: str = "exponential",
        period_days: float = 7.0,
        period_buckets: int = 12,
        category_term: bool = True,
        popularity: bool = True,
        init_half_life: float = 30.0,
    ):
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
        self.hparams = {
            "n_categories": n_categories,
            "n_types": n_types,
            "n_items": n_items,
            "family": family,
            "period_days": period_days,
            "period_buckets": period_buckets,
            "category_term": category_term,
            "popularity": popularity,
            "init_half_life": init_half_life,
        }
        self.family, self.period_days, self.popularity = family, float(period_days), popularity
        init = {
            "exponential": [math.log(init_half_life)],
            "logistic": [0.0, math.log(math.log(3.0) / init_half_life)],  # k = 1: half-life = ln 3 / l
            "period": [3.0] * (period_buckets - 1),
        }[family]  # sigmoid(3) = 0.95 per bucket back
        self.global_params = nn.Parameter(torch.tensor(init).repeat(n_types, 1))  # [E, P]
        self.offsets = nn.Parameter(torch.zeros(n_categories, n_types, len(init)))  # [C, E, P]
        self.log_type_weight = nn.Parameter(torch.zeros(n_types))  # [E]
        self.log_base = nn.Parameter(torch.tensor([-2.0, 0.0, 0.0]))  # uniform, all-time, recent popularity
        self.log_category_weight = nn.Parameter(torch.tensor(-1.0)) if category_term else None
        self.register_buffer("item_category", torch.zeros(n_items, dtype=torch.long))

    # --- decay -------------------------------------------------------------------------------------
    def params(self, with_offsets: bool = True) -> torch.Tensor:
        """Family parameters per (category, type) ``[C, E, P]`` (without offsets: the global ones, ``[1, E, P]``),
        clamped to their valid ranges."""
        raw = self.global_params.unsqueeze(0) + (self.offsets if with_offsets else 0.0)
        if self.family == "exponential":
            return raw.clamp(*LOG_HALF_LIFE)
        if self.family == "logistic":
            return torch.stack([raw[..., 0].clamp(*LOG_K), raw[..., 1].clamp(*LOG_L)], dim=-1)
        return raw

    def log_decay(self, age: torch.Tensor, category: torch.Tensor, event_type: torch.Tensor) -> torch.Tensor:
        """log decay multiplier ``[P]`` of events ``age`` days old."""
        table = self.params()
        p = table.reshape(-1, table.shape[-1]).index_select(0, category * table.shape[1] + event_type)  # [P, params]
        if self.family == "exponential":
            return -math.log(2.0) * age / p[:, 0].exp()
        if self.family == "logistic":
            return torch.log1p(p[:, 0].exp()) - nn.functional.softplus(p[:, 0] + p[:, 1].exp() * age)
        log_weights = torch.cat([torch.zeros_like(p[:, :1]), nn.functional.logsigmoid(p).cumsum(-1)], dim=-1)
        bucket = (age / self.period_days).floor().long().clamp(0, log_weights.shape[1] - 1)
        return log_weights.gather(1, bucket.unsqueeze(1)).squeeze(1)

    # --- model contract ------------------------------------------------------------------------------
    def forward(self, x: Histories) -> torch.Tensor:
        """Log intensity of every catalogue item ``[B, I]``."""
        n_items = self.item_category.shape[0]
        weight = (
            self.log_type_weight.index_select(0, x.event_type) + self.log_decay(x.age, x.category, x.event_type)
        ).exp()
        base = self.log_base.exp()
        intensity = _scatter_sum(x.row, x.item, weight, x.n_rows, n_items) + base[0] / n_items
        if self.log_category_weight is not None:
            interest = _scatter_sum(x.row, x.category, weight, x.n_rows, self.offsets.shape[0])  # [B, C]
            intensity = (
                intensity + (self.log_category_weight.exp() * interest)[:, self.item_category] * x.category_share
            )
        if self.popularity:
            intensity = intensity + torch.einsum("k,bki->bi", base[1:], x.shares)
        return intensity.log()

    def full_sort_predict(self, x: Histories) -> torch.Tensor:
        """Scores of all items ``[B, I]`` (log intensities: higher is better)."""
        return self.forward(x)

    def predict(self, x: Histories, items: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` of one item per query (``items``: ``[B]`` catalogue indices)."""
        return self.forward(x).gather(1, items.unsqueeze(1)).squeeze(1)

    def calculate_loss(self, x: Histories, target: torch.Tensor, l2: float = 0.0) -> torch.Tensor:
        """Mean negative log-likelihood of the target baskets (``target``: ``[B, I]`` 0/1) + L2 on the offsets."""
        log_p = torch.log_softmax(self.forward(x), dim=1)
        nll = -(log_p * target).sum(1) / target.sum(1)
        return nll.mean() + l2 * self.offsets.pow(2).sum() + 1e-4 * self.log_type_weight.pow(2).sum()

    def save(self, directory: Path, vocabulary: dict | None = None) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hparams.json").write_text(json.dumps({**self.hparams, "vocabulary": vocabulary}, indent=2))
        torch.save(self.state_dict(), directory / "model.pt")

    @classmethod
    def load(cls, directory: Path) -> tuple[DecayModel, dict | None]:
        """The model and the vocabulary it was saved with (categories, event types, items)."""
        hparams = json.loads((Path(directory) / "hparams.json").read_text())
        vocabulary = hparams.pop("vocabulary", None)
        model = cls(**hparams)
        model.load_state_dict(torch.load(Path(directory) / "model.pt", weights_only=True))
        return model.eval(), vocabulary


# --- the ranker --------------------------------------------------------------------------------------


class DecayRanker:
    """Fits a :class:`DecayModel` on the train period and ranks with it at the cutoff."""

    def __init__(
        self,
        family: str = "exponential",
        l2: float = 1e-3,
        epochs: int = 8,
        batch_size: int = 512,
        learning_rate: float = 0.1,
        window_days: float = 90.0,
        max_baskets: int = 20_000,
        max_history: int = 500,
        recent_days: float = 30.0,
        period_days: float = 7.0,
        period_buckets: int = 12,
        category_term: bool = True,
        popularity: bool = True,
        init_half_life: float = 30.0,
        polish_steps: int = 15,
        seed: int = 0,
    ):
        """Hyperparameters as in models/harness/evaluate.yaml (decay_* methods), which documents each."""
        self.config = {k: v for k, v in locals().items() if k != "self"}
        self.name = f"decay model, {family}"

    def fit(self, data: TrainData) -> DecayRanker:
        cfg = self.config
        torch.manual_seed(cfg["seed"])
        self.index = EventIndex(data, cfg["recent_days"], cfg["max_history"])
        self.cutoff = data.cutoff
        self.model = DecayModel(
            len(self.index.categories),
            len(self.index.types),
            len(data.items),
            cfg["family"],
            cfg["period_days"],
            cfg["period_buckets"],
            cfg["category_term"],
            cfg["popularity"],
            cfg["init_half_life"],
        )
        self.model.item_category.copy_(torch.from_numpy(self.index.item_category.astype(np.int64)))
        baskets = target_baskets(data, self.index, cfg["window_days"], cfg["max_baskets"], cfg["seed"])
        self.losses, self.final_loss = [], None  # no target baskets: only the initial base terms rank
        if len(baskets.user):
            batches, cached = self._batches(baskets)
            self.losses = self._train(baskets, batches, cached)
            self.final_loss = self._polish(baskets, batches, cached) if cfg["polish_steps"] else self.losses[-1]
        self.model.eval()
        self.support = data.events.groupby(["category_id", "event_type"]).size()
        return self

    def _batches(self, baskets: Baskets) -> tuple[list[tuple[int, int]], list | None]:
        """Basket ranges of one batch each, and their histories when they fit in ``CACHE_BYTES``."""
        n = len(baskets.user)
        batches = [(s, min(s + self.config["batch_size"], n)) for s in range(0, n, self.config["batch_size"])]
        cached = (
            [self.index.histories(baskets.user[a:b], baskets.seconds[a:b]) for a, b in batches]
            if n * len(self.index.items) * 12 <= CACHE_BYTES
            else None
        )
        return batches, cached

    def _train(self, baskets: Baskets, batches: list[tuple[int, int]], cached: list | None) -> list[float]:
        """Adam over the batches in shuffled order; returns the mean loss of each epoch."""
        from tqdm import tqdm

        cfg, index, n = self.config, self.index, len(baskets.user)
        optimiser = torch.optim.Adam(self.model.parameters(), lr=cfg["learning_rate"], betas=(0.9, 0.99))
        # annealing the step size to 5% lets the estimates settle instead of jittering at the end
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, cfg["epochs"] * len(batches), eta_min=0.05 * cfg["learning_rate"]
        )
        generator = np.random.default_rng(cfg["seed"])
        losses = []
        self.model.train()
        for _ in tqdm(range(cfg["epochs"]), desc=f"fit {cfg['family']} decay", unit="epoch"):
            total = 0.0
            for i in generator.permutation(len(batches)):
                a, b = batches[i]
                x = cached[i] if cached else index.histories(baskets.user[a:b], baskets.seconds[a:b])
                target = baskets.targets(a, b, len(index.items))
                loss = self.model.calculate_loss(x, target, cfg["l2"])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item() * x.n_rows
            losses.append(total / n)
        return losses

    def _polish(self, baskets: Baskets, batches: list[tuple[int, int]], cached: list | None) -> float:
        """L-BFGS on the full-data loss; returns that loss. Mini-batch noise swamps the gradient where the loss
        is flat (a half-life far beyond the data's span: "no decay"); full-data curvature steps cross such
        plateaus quickly."""
        n, n_items = len(baskets.user), len(self.index.items)
        optimiser = torch.optim.LBFGS(
            self.model.parameters(), max_iter=self.config["polish_steps"], line_search_fn="strong_wolfe"
        )

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            total = 0.0
            for i, (a, b) in enumerate(batches):
                x = cached[i] if cached else self.index.histories(baskets.user[a:b], baskets.seconds[a:b])
                loss = self.model.calculate_loss(x, baskets.targets(a, b, n_items), self.config["l2"]) * (b - a) / n
                loss.backward()
                total += loss.item()
            return torch.tensor(total)

        optimiser.step(closure)
        return float(closure())

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        users = self.index.users.get_indexer(list(user_ids))
        seconds = np.full(len(users), int(self.cutoff.timestamp()), dtype=np.int64)
        with torch.no_grad():
            return self.model.full_sort_predict(self.index.histories(users, seconds)).numpy()

    # --- fitted parameters ---------------------------------------------------------------------------
    def half_life_table(self) -> pd.DataFrame:
        """Fitted parameters per (category, event type), plus the global ('*', type) rows, in the column
        layout of ``params.decay_parameters_fitted`` (period weights as text 'w0;w1;...')."""
        with torch.no_grad():
            per_category, global_params = self.model.params().numpy(), self.model.params(False)[0].numpy()
        rows = [self._parameter_row("*", t, global_params[e]) for e, t in enumerate(self.index.types)]
        for category, event_type in self.support.index:
            c, e = self.index.categories.get_loc(category), self.index.types.get_loc(event_type)
            rows.append(self._parameter_row(category, event_type, per_category[c, e]))
        return pd.DataFrame(rows, columns=PARAMETER_COLUMNS)

    def _parameter_row(self, category: str, event_type: str, p: np.ndarray) -> list:
        family = self.config["family"]
        if family == "exponential":
            return [category, event_type, family, float(np.exp(p[0])), None, None, None, None]
        if family == "logistic":
            k, l = float(np.exp(p[0])), float(np.exp(p[1]))
            return [category, event_type, family, decay.logistic_half_life(k, l), k, l, None, None]
        weights = np.concatenate([[1.0], np.cumprod(1.0 / (1.0 + np.exp(-p)))])
        return [
            category,
            event_type,
            family,
            decay.period_half_life(weights, self.config["period_days"]),
            None,
            None,
            self.config["period_days"],
            ";".join(f"{w:.6g}" for w in weights),
        ]

    def curve(self, category: str, event_type: str, ages_days: np.ndarray) -> np.ndarray:
        """Fitted decay multiplier of (category, event type) at ``ages_days`` ('*' for the global row)."""
        row = self.half_life_table().set_index(["category_id", "event_type"]).loc[(category, event_type)]
        weights = (
            [float(w) for w in row["period_weights"].split(";")] if isinstance(row["period_weights"], str) else None
        )
        return decay.multiplier(
            row["family"],
            ages_days,
            half_life_days=row["half_life_days"],
            logistic_k=row["logistic_k"],
            logistic_l=row["logistic_l"],
            period_days=row["period_days"],
            period_weights=weights,
        )


def write_parameters(
    conn,
    table: pd.DataFrame,
    fitted_by: str = "models.harness.decay_fit",
    target: str = "params.decay_parameters_fitted",
) -> int:
    """Upsert a :meth:`DecayRanker.half_life_table` into PostgreSQL (psycopg connection); returns the row count."""
    columns = PARAMETER_COLUMNS + ["fitted_by"]
    rows = [
        tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row) + (fitted_by,)
        for row in table[PARAMETER_COLUMNS].itertuples(index=False)
    ]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[2:])
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into {target} ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))}) "
            f"on conflict (category_id, event_type) do update set {updates}, fitted_at = now()",
            rows,
        )
    conn.commit()
    return len(rows)
