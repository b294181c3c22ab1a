"""Decay per (category × event type) kind, fitted from how a user's activity fades after an event.

After an event of kind (c, t) at time t_e, the same user's later events in category c arrive at a rate

    λ(τ) = β · r_c(t_e + τ) + α · m(τ; θ)          τ = days since the anchor event, 0 < τ <= horizon

where ``m`` is a decay family's multiplier (``interest_decay.decay``: 1 at τ = 0, never increasing),
``α`` the excess activity the event announces, ``β`` the background rate and ``r_c`` the category's relative
activity at the time (so that a growing or seasonal category does not pass for a slower or faster decay).
The half-life of ``m`` is the
kind's half-life: how fast the interest one event reveals fades. For interest that decays exponentially
from an episode's onset (the demo generator), the events after any event of the episode are, by
memorylessness, again ``e^(-k τ)`` above the background: the fit gives the generator's rate back.

The likelihood is Poisson over log-spaced τ bins (``models.fitting.follow_ups`` builds the histograms,
``models.fitting.decay_likelihood`` holds the families and the solver): a bin's count is the follow-ups that fall in
it, its exposure the days of it that the anchors' windows cover. All kinds are fitted at once (float64,
damped Newton with exact Hessians). The pipeline's ``fit_decay`` task runs this (``models.fitting.fit_decay``).

- Family: each kind's family is the one with the best held-out likelihood (two folds of user groups);
  exponential unless another one's gain is consistent across the groups (``FAMILY_Z`` standard errors).
- Interval: 95% percentile interval of the half-life over bootstrap resamples of user groups.
- "No decay": the fitted half-life runs to ``MAX_HALF_LIFE``, the likelihood gain over a flat rate
  (``α = 0``) is not significant (likelihood ratio, corrected for over-dispersion, at the 1% level), or
  the curve keeps more than ``NO_DECAY_LEFT`` of the interest at the horizon. Such a row is stored as
  exponential with half-life ``MAX_HALF_LIFE`` and no interval.
- Too few anchors: the kind takes its category's pooled fit, or the global one (``origin`` says which).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from interest_decay.decay import reference
from models.fitting.decay_likelihood import (
    MAX_HALF_LIFE,
    Family,
    fit_family,
    fit_problems,
    flat_nll,
    half_lives,
    pearson_dispersion,
    poisson_nll,
    rate_value,
)
from models.fitting.follow_ups import ANY, FitConfig, FitError, Histograms, follow_up_histograms

FAMILIES = ("exponential", "logistic", "period")
FAMILY_Z = 3.0  # another family replaces exponential when its held-out gain, paired over user groups,
#   is this many standard errors above 0
NO_DECAY_LR = 9.21  # chi-square(2) 99% point: the dispersion-corrected likelihood ratio decay must beat
NO_DECAY_LEFT = 0.8  # a curve that keeps more than this at the horizon is no decay the data can tell apart


# A kind's key and parameters (interest_decay.decay.reference's columns), as params.decay_parameters_fitted stores them.
PARAMETER_COLUMNS = ["category_id", "event_type", *reference.PARAMETER_COLUMNS]
TABLE_COLUMNS = [*PARAMETER_COLUMNS, "half_life_low", "half_life_high", "no_decay", "anchors", "users", "origin"]


def fit_kinds(
    events: pd.DataFrame, cutoff: pd.Timestamp, cfg: FitConfig | None = None
) -> tuple[pd.DataFrame, Histograms]:
    """The fitted decay of every kind, every category ('c', '*') and all events ('*', '*'), one row each
    (:data:`TABLE_COLUMNS`; also the held-out log-likelihood of each family ``heldout_<family>``, the
    fitted ``background_rate`` β and ``excess_rate`` α), and the histograms behind them.
    Raises :class:`FitError` when the events cannot give a fit. ``cfg``: ``models/fitting/decay_kinds.yaml``'s."""
    cfg = cfg or FitConfig.load()
    before = events[events["ts"] < cutoff]
    if before.empty:
        raise FitError(f"no events before {cutoff:%Y-%m-%d %H:%M}: nothing to fit")
    if before["user_id"].nunique() < 2:
        raise FitError("the events come from a single user: a decay fit needs several")
    if before["ts"].nunique() < 2:
        raise FitError("all events share one timestamp: there is no time to see interest fade over")
    hist = follow_up_histograms(before, cutoff, cfg)
    if hist.anchors.sum() == 0:
        raise FitError(
            f"every event falls in the first {cfg.burn_in_days:g} days of the data (burn-in): too short a span to fit"
        )
    if hist.counts.sum() == 0:
        raise FitError(
            f"no user has two events in one category within {cfg.horizon_days:g} days: there is no "
            "follow-up to fit a decay to"
        )
    # Only rows with enough anchors are fitted (the global row always): the others take a pooled row's fit.
    fitted = np.flatnonzero((hist.anchors >= cfg.min_anchors) | hist.kinds.isin([(ANY, ANY)]))
    table = _fit_rows(hist.subset(fitted), cfg)
    sparse = np.setdiff1d(np.arange(len(hist.kinds)), fitted)
    placeholders = pd.DataFrame(
        {
            "category_id": hist.kinds[sparse].get_level_values(0),
            "event_type": hist.kinds[sparse].get_level_values(1),
            "anchors": hist.anchors[sparse],
            "users": hist.users[sparse],
            "origin": "sparse",
        }
    )
    table = pd.concat([table, placeholders], ignore_index=True) if len(sparse) else table
    for column in TABLE_COLUMNS:
        if column not in table:
            table[column] = None
    return shrink_sparse_kinds(table, cfg.min_anchors), hist


def _fit_rows(hist: Histograms, cfg: FitConfig) -> pd.DataFrame:
    """One row per kind of ``hist``: every family fitted, one chosen, its interval, the no-decay verdict."""
    from tqdm import tqdm

    counts, exposure, edges = hist.counts, hist.exposure, hist.edges
    total_c, total_e = counts.sum(1), exposure.sum(1)  # [K, B], [K, 2, B]
    fits = {}
    for name in tqdm(cfg.families, desc="fit decay families", unit="family"):
        start = None if name == "exponential" else half_lives("exponential", fits["exponential"][0], edges, cfg)
        fits[name] = fit_family(name, total_c, total_e, edges, cfg, start)
    heldout = {name: heldout_log_likelihood(name, hist, cfg, fits) for name in cfg.families}  # [K, G] each
    chosen = choose_families(heldout)
    dispersion = {
        name: pearson_dispersion(Family(name, edges, cfg), fits[name][0], total_c, total_e) for name in cfg.families
    }

    rows, intervals = [], bootstrap_half_lives(hist, fits, chosen, cfg)
    flat = flat_nll(total_c, total_e)
    for i, (category, event_type) in enumerate(hist.kinds):
        name = chosen[i]
        theta, nll = fits[name][0][i], fits[name][1][i]
        family = Family(name, edges, cfg)
        row = {"category_id": category, "event_type": event_type, **family.row(theta[2:])}
        ratio = 2.0 * (flat[i] - nll) / dispersion[name][i]
        half_life = min(row["half_life_days"], MAX_HALF_LIFE)
        left = float(family.bin_mean(torch.tensor(theta[2:]))[-1])  # interest left in the last bin
        no_decay = bool(half_life >= 0.5 * MAX_HALF_LIFE or ratio < NO_DECAY_LR or left > NO_DECAY_LEFT)
        row.update(
            half_life_days=half_life,
            half_life_low=intervals[i, 0],
            half_life_high=intervals[i, 1],
            no_decay=no_decay,
            anchors=int(hist.anchors[i]),
            users=int(hist.users[i]),
            origin="fitted",
            likelihood_ratio=float(ratio),
            dispersion=float(dispersion[name][i]),
            background_rate=rate_value(theta[0]),
            excess_rate=rate_value(theta[1]),
            **{f"heldout_{n}": float(heldout[n][i].sum()) for n in cfg.families},
        )
        if no_decay:
            row.update(
                family="exponential",
                half_life_days=MAX_HALF_LIFE,
                logistic_k=None,
                logistic_l=None,
                period_days=None,
                period_weights=None,
                half_life_low=None,
                half_life_high=None,
            )
        rows.append(row)
    return pd.DataFrame(rows)


def heldout_log_likelihood(name: str, hist: Histograms, cfg: FitConfig, fits: dict) -> np.ndarray:
    """Log-likelihood ``[K, G]`` of each user group's follow-ups under the family fitted on the other fold
    (even and odd groups are the two folds), starting from the full-data fit."""
    family, groups = Family(name, hist.edges, cfg), np.arange(cfg.groups)
    out = np.zeros(hist.counts.shape[:2])
    for test in (groups % 2 == 0, groups % 2 == 1):
        theta, _ = fit_problems(family, hist.counts[:, ~test].sum(1), hist.exposure[:, ~test].sum(1), fits[name][0])
        t = torch.as_tensor(theta, dtype=torch.float64)[:, None, :]
        c = torch.as_tensor(hist.counts[:, test], dtype=torch.float64)
        e = torch.as_tensor(hist.exposure[:, test], dtype=torch.float64)
        with torch.no_grad():
            nll = (poisson_nll(family, t, c, e) - 1e-6 * t[..., 2:].pow(2).sum(-1)) * (c.sum(-1) + 1.0)
        out[:, test] = -nll.numpy()
    return out


def choose_families(heldout: dict[str, np.ndarray]) -> np.ndarray:
    """Per kind, the family with the best held-out log-likelihood if its gain over exponential is consistent
    across user groups (paired over groups: mean / standard error above ``FAMILY_Z``), else exponential."""
    names = list(heldout)
    totals = np.stack([heldout[n].sum(1) for n in names])  # [F, K]
    best = totals.argmax(0)
    gains = np.stack([heldout[n] - heldout["exponential"] for n in names])  # [F, K, G]
    gain = np.take_along_axis(gains, best[None, :, None], 0)[0]  # [K, G]
    error = gain.std(1, ddof=1) / math.sqrt(gain.shape[1])
    consistent = gain.mean(1) > FAMILY_Z * np.maximum(error, 1e-12)
    return np.where(consistent, np.array(names, dtype=object)[best], "exponential")


def bootstrap_half_lives(hist: Histograms, fits: dict, chosen: np.ndarray, cfg: FitConfig) -> np.ndarray:
    """95% percentile interval ``[K, 2]`` of each kind's half-life over resamples of user groups, refitting
    the kind's chosen family from its full-data fit."""
    rng = np.random.default_rng(cfg.seed)
    weights = rng.multinomial(cfg.groups, np.full(cfg.groups, 1.0 / cfg.groups), size=cfg.bootstrap)  # [R, G]
    out = np.full((len(hist.kinds), 2), np.nan)
    if cfg.bootstrap < 2:
        return out
    for name in np.unique(chosen):
        kinds = np.flatnonzero(chosen == name)
        counts = np.einsum("rg,kgb->rkb", weights, hist.counts[kinds]).reshape(-1, hist.counts.shape[-1])
        exposure = np.einsum("rg,kgxb->rkxb", weights, hist.exposure[kinds]).reshape(-1, 2, hist.counts.shape[-1])
        init = np.tile(fits[name][0][kinds], (cfg.bootstrap, 1))
        theta, _ = fit_problems(Family(name, hist.edges, cfg), counts, exposure, init)
        resampled = half_lives(name, theta, hist.edges, cfg).reshape(cfg.bootstrap, len(kinds))
        out[kinds] = np.percentile(resampled, [2.5, 97.5], axis=0).T
    return out


def shrink_sparse_kinds(table: pd.DataFrame, min_anchors: int) -> pd.DataFrame:
    """Kinds with fewer than ``min_anchors`` anchors take their category's pooled row, or the global row
    when that one is sparse too; ``origin`` says which ('category c', 'global')."""
    parameters = [*reference.PARAMETER_COLUMNS, "half_life_low", "half_life_high", "no_decay"]
    table = table.reset_index(drop=True)
    keys = pd.MultiIndex.from_frame(table[["category_id", "event_type"]])
    position = pd.Series(np.arange(len(table)), index=keys)
    is_global = (table["category_id"] == ANY) & (table["event_type"] == ANY)
    sparse = (table["anchors"] < min_anchors) & ~is_global
    pooled = position.reindex(pd.MultiIndex.from_arrays([table["category_id"], np.full(len(table), ANY)])).to_numpy()
    pooled_ok = (table["event_type"] != ANY).to_numpy() & (
        table["anchors"].to_numpy()[pooled.astype(int)] >= min_anchors
    )
    source = np.where(pooled_ok, pooled, position[(ANY, ANY)]).astype(int)
    rows = np.flatnonzero(sparse.to_numpy())
    table = table.astype({column: object for column in parameters})
    table.loc[rows, parameters] = table.loc[source[rows], parameters].to_numpy()
    table.loc[rows, "origin"] = np.where(
        pooled_ok[rows], "category " + table.loc[rows, "category_id"].astype(str), "global"
    )
    return table
