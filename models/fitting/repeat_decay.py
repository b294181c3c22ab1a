"""The repeat-purchase family: interest in buying an item again, fitted from the shop's repurchase gaps.

A purchase meets a need that fades (half-life ``h``) and comes back around the item's usual repurchase
interval: ``kernel(t) = (1 - π) 0.5^(t / h) + π exp(-((t - μ_i) / σ_i)² / 2)`` (``interest_decay.decay.repeat``,
SLRC / TAIW style). A user's interest in item i at time t is the kernel summed over their purchase occasions of
i (distinct UTC days; an occasion's time is its first purchase that day), the latest ``max_purchases`` no older
than ``window_days``: the bounded state a daily run keeps per user × item.

- μ_i, σ_i: median and 1.4826 · MAD of the gaps between consecutive occasions of the same user and item, shrunk
  towards the category's, and the category's towards the shop's: ``μ_i = (n_i m_i + k μ_c) / (n_i + k)`` with
  ``n_i`` gaps and ``k = prior_gaps`` (the same for σ, at least ``min_sd_days``). ``origin`` names the level with
  the largest weight (item, category or global).
- π and h are hyperparameters: ``make evaluate`` chooses them on the validation window (evaluate.yaml grid); π = 0
  with h = inf is the plain count of purchase days, so the family nests "no decay, no bump".
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from interest_decay import config, decay
from models.harness import ranking
from models.harness.baselines import popularity, user_item_matrix
from models.harness.ranking import TrainData, item_categories, target_types

DAY = pd.Timedelta(days=1)
MAD_TO_SD = 1.4826  # σ of a normal distribution per median absolute deviation
DEFAULT_BUMP = (30.0, 10.0)  # days: the bump (mean, sd) of a shop without any repurchase
ANY = "*"  # item_id of the shop's row
DEFAULT_CONFIG = Path(__file__).with_name("repeat_decay.yaml")
TABLE_COLUMNS = [
    "item_id",
    "category_id",
    "half_life_days",
    "bump_weight",
    "bump_mean_days",
    "bump_sd_days",
    "gaps",
    "origin",
]


def purchase_occasions(events: pd.DataFrame, types: Sequence[str]) -> pd.DataFrame:
    """user_id, item_id, ts: one row per user, item and UTC day with a target event (the day's first one)."""
    targets = events[events["event_type"].isin(types)]
    day = targets["ts"].dt.floor("D")
    first = targets.assign(day=day).groupby(["user_id", "item_id", "day"], sort=False, observed=True)["ts"].min()
    return first.reset_index()[["user_id", "item_id", "ts"]].sort_values(
        ["user_id", "item_id", "ts"], ignore_index=True
    )


def repurchase_gaps(occasions: pd.DataFrame) -> pd.DataFrame:
    """item_id, gap_days: days between consecutive occasions of the same user and item."""
    same = occasions["user_id"].eq(occasions["user_id"].shift()) & occasions["item_id"].eq(occasions["item_id"].shift())
    gaps = (occasions["ts"] - occasions["ts"].shift()) / DAY
    return pd.DataFrame({"item_id": occasions["item_id"][same], "gap_days": gaps[same]}).reset_index(drop=True)


def _median_spread(gaps: pd.Series) -> tuple[float, float]:
    median = float(gaps.median())
    return median, MAD_TO_SD * float((gaps - median).abs().median())


def _group_median_spread(gaps: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per ``by`` group of ``gaps``: size, median and MAD-based spread of gap_days."""
    groups = gaps.groupby(by)["gap_days"]
    deviation = (gaps["gap_days"] - groups.transform("median")).abs()
    return pd.DataFrame(
        {"size": groups.size(), "median": groups.median(), "spread": MAD_TO_SD * deviation.groupby(gaps[by]).median()}
    )


def fit_bumps(
    gaps: pd.DataFrame, item_category: pd.Series, prior_gaps: float = 10.0, min_sd_days: float = 1.0
) -> pd.DataFrame:
    """Per item of ``item_category`` (index item_id, value category_id): bump_mean_days, bump_sd_days, gaps,
    origin, shrunk item → category → global. Without any gap in the shop the bump sits at 30 ± 10 days."""
    if gaps.empty:
        global_mean, global_sd = DEFAULT_BUMP
    else:
        global_mean, global_sd = _median_spread(gaps["gap_days"])
    gaps = gaps.assign(category_id=item_category.reindex(gaps["item_id"]).to_numpy())

    def shrunk(by, prior_mean, prior_sd):
        stats = _group_median_spread(gaps, by)
        weight = stats["size"] / (stats["size"] + prior_gaps)
        return (
            stats["size"],
            weight * stats["median"] + (1 - weight) * prior_mean,
            weight * stats["spread"] + (1 - weight) * prior_sd,
        )

    n_c, mean_c, sd_c = shrunk("category_id", global_mean, global_sd)
    n_i, mean_i, sd_i = shrunk("item_id", 0.0, 0.0)  # the item's own weighted part
    out = pd.DataFrame({"category_id": item_category})
    n_c_i = n_c.reindex(out["category_id"]).fillna(0).to_numpy()
    prior_mean = mean_c.reindex(out["category_id"]).fillna(global_mean).to_numpy()
    prior_sd = sd_c.reindex(out["category_id"]).fillna(global_sd).to_numpy()
    n = n_i.reindex(out.index).fillna(0).to_numpy()
    weight = n / (n + prior_gaps)
    out["bump_mean_days"] = mean_i.reindex(out.index).fillna(0).to_numpy() + (1 - weight) * prior_mean
    out["bump_sd_days"] = np.maximum(
        sd_i.reindex(out.index).fillna(0).to_numpy() + (1 - weight) * prior_sd, min_sd_days
    )
    out["gaps"] = n.astype(int)
    category_weight = (1 - weight) * n_c_i / (n_c_i + prior_gaps)
    out["origin"] = np.select(
        [
            weight >= np.maximum(category_weight, 1 - weight - category_weight),
            category_weight >= 1 - weight - category_weight,
        ],
        ["item", "category"],
        "global",
    )
    return out


@dataclass(frozen=True)
class RepeatConfig:
    """The fit's settings (``repeat_decay.yaml``) and the bounded state's (dbt vars, read from dbt_project.yml)."""

    prior_gaps: float = 10.0
    min_sd_days: float = 1.0
    holdout_days: float = 28.0
    half_lives: tuple = (float("inf"), 365.0, 90.0, 30.0)
    bump_weights: tuple = (0.0, 0.1, 0.3, 0.6)
    window_days: float = 365.0
    max_purchases: int = 50

    @classmethod
    def load(cls, path: Path = DEFAULT_CONFIG) -> RepeatConfig:
        values = yaml.safe_load(Path(path).read_text())
        dbt_vars = config.dbt_vars()
        return cls(
            **{
                **values,
                "half_lives": tuple(float(h) for h in values["half_lives"]),
                "bump_weights": tuple(float(p) for p in values["bump_weights"]),
                "window_days": float(dbt_vars["repeat_window_days"]),
                "max_purchases": int(dbt_vars["repeat_max_purchases"]),
            }
        )


class RepeatFitError(ValueError):
    """The events cannot give a repeat fit (no purchases, nobody buying in the held-out window); says why."""


@dataclass
class RepeatParameters:
    half_life_days: float  # h: fade of the need a purchase met (inf: never fades)
    bump_weight: float  # π: share of the interest that returns around the repurchase interval
    window_days: float  # purchases older than this are forgotten
    max_purchases: int  # at most this many latest purchase days per user × item
    bumps: pd.DataFrame  # per item_id: category_id, bump_mean_days, bump_sd_days, gaps, origin
    shop_bump: tuple[float, float]  # (mean, sd) of items without a row: the shop's

    def table(self) -> pd.DataFrame:
        """Rows of ``params.repeat_parameters_fitted``: one per item, then the shop's row '*'."""
        shop = pd.DataFrame(
            {
                "category_id": [None],
                "bump_mean_days": [self.shop_bump[0]],
                "bump_sd_days": [self.shop_bump[1]],
                "gaps": [int(self.bumps["gaps"].sum())],
                "origin": ["global"],
            },
            index=pd.Index([ANY], name="item_id"),
        )
        rows = pd.concat([self.bumps.rename_axis("item_id"), shop]).reset_index()
        return rows.assign(half_life_days=self.half_life_days, bump_weight=self.bump_weight)[TABLE_COLUMNS]

    @classmethod
    def from_table(cls, table: pd.DataFrame, window_days: float, max_purchases: int) -> RepeatParameters:
        """The parameters a ``params.repeat_parameters_fitted`` table holds (one π and h for all rows)."""
        shop = table[table["item_id"] == ANY].iloc[0]
        bumps = table[table["item_id"] != ANY].set_index("item_id")
        return cls(
            float(shop["half_life_days"]),
            float(shop["bump_weight"]),
            window_days,
            max_purchases,
            bumps[["category_id", "bump_mean_days", "bump_sd_days", "gaps", "origin"]],
            (float(shop["bump_mean_days"]), float(shop["bump_sd_days"])),
        )


def fit(
    events: pd.DataFrame,
    items: pd.Index,
    half_life_days: float,
    bump_weight: float,
    window_days: float,
    max_purchases: int,
    prior_gaps: float = 10.0,
    min_sd_days: float = 1.0,
) -> RepeatParameters:
    """Bump location and spread per catalogue item from ``events`` (π and h are given)."""
    occasions = purchase_occasions(events, target_types(events))
    gaps = repurchase_gaps(occasions)
    category = pd.Series(item_categories(events, items), index=items, name="category_id")
    bumps = fit_bumps(gaps, category, prior_gaps, min_sd_days)
    shop = _median_spread(gaps["gap_days"]) if len(gaps) else (DEFAULT_BUMP[0], DEFAULT_BUMP[1])
    return RepeatParameters(
        float(half_life_days),
        float(bump_weight),
        float(window_days),
        int(max_purchases),
        bumps,
        (shop[0], max(shop[1], min_sd_days)),
    )


def interest(occasions: pd.DataFrame, params: RepeatParameters, as_of: pd.Timestamp) -> pd.DataFrame:
    """user_id, item_id, interest at ``as_of``: the kernel summed over each pair's latest ``max_purchases``
    occasions (of all given, as the state keeps them) that are before ``as_of`` and no older than the window.
    The SQL twin is the dbt mart user_item_repeat_interest over the state user_item_purchase_days."""
    latest = occasions[
        occasions.groupby(["user_id", "item_id"], sort=False).cumcount(ascending=False) < params.max_purchases
    ]
    ages = ((as_of - latest["ts"]) / DAY).to_numpy(dtype=float)
    kept = latest.assign(age=ages)[(ages > 0) & (ages <= params.window_days)]
    bumps = params.bumps.reindex(kept["item_id"])
    kernel = decay.repeat(
        kept["age"].to_numpy(),
        params.half_life_days,
        params.bump_weight,
        bumps["bump_mean_days"].fillna(params.shop_bump[0]).to_numpy(),
        bumps["bump_sd_days"].fillna(params.shop_bump[1]).to_numpy(),
    )
    return kept.assign(interest=kernel).groupby(["user_id", "item_id"], sort=False, as_index=False)["interest"].sum()


def choose(events: pd.DataFrame, cutoff: pd.Timestamp, cfg: RepeatConfig) -> tuple[dict, list[dict]]:
    """π and h with the best next-purchase NDCG@10 over the ``holdout_days`` before ``cutoff`` (fitted on the
    events before them; the first of equals, so the grid's order says which of equals is preferred), and every
    grid point's score."""
    holdout = ranking.make_split(events, cutoff - pd.Timedelta(days=cfg.holdout_days), cutoff, ["purchase"])
    if not len(holdout.users):
        raise RepeatFitError(
            f"nobody who bought before {cutoff - pd.Timedelta(days=cfg.holdout_days):%Y-%m-%d} "
            f"bought again in the {cfg.holdout_days:g} days held out to choose π and h"
        )
    bumps = fit(
        holdout.train.events,
        holdout.train.items,
        math.inf,
        0.0,
        cfg.window_days,
        cfg.max_purchases,
        cfg.prior_gaps,
        cfg.min_sd_days,
    )  # π and h do not enter the bumps: fitted once
    scores = []
    for half_life, weight in itertools.product(cfg.half_lives, cfg.bump_weights):
        ranker = RepeatRanker(half_life, weight, cfg.window_days, cfg.max_purchases, cfg.prior_gaps, cfg.min_sd_days)
        ranker.fit(holdout.train, dataclasses.replace(bumps, half_life_days=half_life, bump_weight=weight))
        scores.append(
            {
                "half_life_days": half_life,
                "bump_weight": weight,
                "ndcg@10": ranking.evaluate(ranker, holdout).mean("ndcg@10"),
            }
        )
    return max(scores, key=lambda s: s["ndcg@10"]), scores


def fit_repeat(events: pd.DataFrame, cutoff: pd.Timestamp, cfg: RepeatConfig) -> tuple[RepeatParameters, list[dict]]:
    """The pipeline's fit: π and h chosen on the held-out window, then every purchased item's bump from all
    purchases before ``cutoff``; and the grid's scores. ``events``: at least the purchases."""
    purchases = events[(events["event_type"] == "purchase") & (events["ts"] < cutoff)]
    if purchases.empty:
        raise RepeatFitError(f"no purchase before {cutoff:%Y-%m-%d}")
    best, scores = choose(purchases, cutoff, cfg)
    items = pd.Index(np.sort(purchases["item_id"].unique()))
    params = fit(
        purchases,
        items,
        best["half_life_days"],
        best["bump_weight"],
        cfg.window_days,
        cfg.max_purchases,
        cfg.prior_gaps,
        cfg.min_sd_days,
    )
    return params, scores


class RepeatRanker:
    """Repeat-purchase interest at the cutoff; ties broken by the item's ``days``-day popularity (< ``epsilon``)."""

    def __init__(
        self,
        half_life_days: float = float("inf"),
        bump_weight: float = 0.0,
        window_days: float = 365.0,
        max_purchases: int = 50,
        prior_gaps: float = 10.0,
        min_sd_days: float = 1.0,
        days: float = 30.0,
        epsilon: float = 1e-3,
    ):
        """Hyperparameters as in models/harness/evaluate.yaml (method repeat), which documents each."""
        self.config = {k: v for k, v in locals().items() if k != "self"}
        self.name = f"repeat family (h = {half_life_days:g} d, π = {bump_weight:g})"

    def fit(self, data: TrainData, params: RepeatParameters | None = None) -> RepeatRanker:
        """Fit the bumps on ``data`` (or take ``params``, fitted on the same data) and score at its cutoff."""
        cfg = self.config
        self.params = params or fit(
            data.events,
            data.items,
            cfg["half_life_days"],
            cfg["bump_weight"],
            cfg["window_days"],
            cfg["max_purchases"],
            cfg["prior_gaps"],
            cfg["min_sd_days"],
        )
        scores = interest(purchase_occasions(data.events, target_types(data.events)), self.params, data.cutoff)
        self.users = pd.Index(scores["user_id"].unique())
        self.matrix = user_item_matrix(scores, self.users, data.items, scores["interest"])
        recent = popularity(data, cfg["days"])
        self.recent = cfg["epsilon"] * recent / max(recent.max(), 1.0)
        return self

    def score(self, user_ids: Sequence[str]) -> np.ndarray:
        rows = self.users.get_indexer(list(user_ids))
        out = np.tile(self.recent, (len(rows), 1))
        known = rows >= 0
        out[known] += self.matrix[rows[known]].toarray()
        return out

    def summary(self, top: int = 10) -> dict:
        """JSON-ready: π, h, window, cap, how many items took their bump from which level, the bump quartiles
        and the ``top`` items with the most repurchase gaps."""
        bumps = self.params.bumps
        return {
            "half_life_days": self.params.half_life_days,
            "bump_weight": self.params.bump_weight,
            "window_days": self.params.window_days,
            "max_purchases": self.params.max_purchases,
            "origins": {k: int(v) for k, v in bumps["origin"].value_counts().items()},
            "bump_mean_days_quartiles": bumps["bump_mean_days"].quantile([0.25, 0.5, 0.75]).round(2).tolist(),
            "bump_sd_days_quartiles": bumps["bump_sd_days"].quantile([0.25, 0.5, 0.75]).round(2).tolist(),
            "top_items": bumps.nlargest(top, "gaps").reset_index(names="item_id").round(3).to_dict("records"),
        }

    def plot_kernels(self, path: Path, top: int = 6) -> Path:
        """PNG of the fitted kernel of the ``top`` items with the most repurchase gaps."""
        from models.fitting.repeat_report import plot_kernels

        return plot_kernels(self.params, path, top)
