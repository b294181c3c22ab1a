"""Decay per (category × event type) kind, fitted from how a user's activity fades after an event.

After an event of kind (c, t) at time t_e, the same user's later events in category c arrive at a rate

    λ(τ) = β + α · m(τ; θ)          τ = days since the anchor event, 0 < τ <= horizon

where ``m`` is a decay family's multiplier (``interest_decay.decay``: 1 at τ = 0, never increasing),
``α`` the excess activity the event announces and ``β`` the background rate. The half-life of ``m`` is the
kind's half-life: how fast the interest one event reveals fades. For interest that decays exponentially
from an episode's onset (the demo generator), the events after any event of the episode are, by
memorylessness, again ``e^(-k τ)`` above the background: the fit gives the generator's rate back.

The likelihood is Poisson over log-spaced τ bins: a bin's count is the follow-ups that fall in it, its
exposure the days of it that the anchors' windows cover (a window ends at the horizon or the cutoff).
All kinds are fitted at once (float64, L-BFGS on the summed loss of independent problems).

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from interest_decay import decay

FAMILIES = ("exponential", "logistic", "period")
MAX_HALF_LIFE = decay.NO_DECAY_HALF_LIFE   # days; the stored half-life of "no decay"
MIN_HALF_LIFE = 1e-3     # days (86 s)
FAMILY_Z = 3.0           # another family replaces exponential when its held-out gain, paired over user groups, is this many standard errors
NO_DECAY_LR = 9.21       # chi-square(2) 99% point: the dispersion-corrected likelihood ratio decay must beat
NO_DECAY_LEFT = 0.8      # a curve that keeps more than this at the horizon is no decay the data can tell apart
DAY_S = 86400.0
ANY = "*"


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit_kinds` (``models/decay_kinds.yaml`` documents each)."""
    horizon_days: float = 30.0
    burn_in_days: float = 7.0
    min_gap_days: float = 0.0
    first_bin_days: float = 1.0 / 288   # 5 minutes
    bins: int = 40
    min_anchors: int = 200
    groups: int = 32
    bootstrap: int = 100
    period_days: float = 1.0
    period_buckets: int = 14
    families: tuple[str, ...] = FAMILIES
    seed: int = 0

    @classmethod
    def load(cls, path: Path = Path(__file__).with_name("decay_kinds.yaml"), **overrides) -> "FitConfig":
        import yaml

        values = {**yaml.safe_load(Path(path).read_text()), **overrides}
        return cls(**{**values, "families": tuple(values["families"])})


class FitError(ValueError):
    """The events cannot give a decay fit (no events, one user, no follow-ups); the message says why."""


@dataclass
class Histograms:
    """Follow-up counts and exposure per (kind, user group, τ bin)."""
    kinds: pd.MultiIndex          # (category_id, event_type) of each row; '*' rows pool over that level
    counts: np.ndarray            # [K, G, B] follow-up events
    exposure: np.ndarray          # [K, G, 2, B] anchor-days of each bin; [..., 1, :] weighted by the category's
                                  #   relative activity at the time (the background's exposure)
    anchors: np.ndarray           # [K] anchor events
    users: np.ndarray             # [K] users with an anchor
    edges: np.ndarray             # [B + 1] bin edges in days
    span_days: float = 0.0

    def subset(self, rows: np.ndarray) -> "Histograms":
        """The histograms of the kinds at positions ``rows``."""
        return Histograms(self.kinds[rows], self.counts[rows], self.exposure[rows], self.anchors[rows],
                          self.users[rows], self.edges, self.span_days)


def bin_edges(cfg: FitConfig) -> np.ndarray:
    """``min_gap_days`` (0: follow-ups at any τ > 0 count), then log-spaced edges from ``first_bin_days`` to
    ``horizon_days``."""
    first = max(cfg.first_bin_days, 1.25 * cfg.min_gap_days)
    return np.concatenate([[cfg.min_gap_days], np.geomspace(first, cfg.horizon_days, cfg.bins)])


def follow_up_histograms(events: pd.DataFrame, cutoff: pd.Timestamp, cfg: FitConfig) -> Histograms:
    """Histograms of every kind, every category pooled (c, '*') and all events pooled ('*', '*').

    ``events``: user_id, category_id, event_type, ts (UTC) — staged events; those at or after ``cutoff``
    are left out. A follow-up is a later event (τ > 0) of the same user in the same category, any type.
    """
    events = events.loc[events["ts"] < cutoff, ["user_id", "category_id", "event_type", "ts"]]
    edges = bin_edges(cfg)
    seconds = ((events["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    stream = pd.MultiIndex.from_frame(events[["user_id", "category_id"]].astype(str)).factorize()[0]
    order = np.lexsort((seconds, stream))
    key = stream[order].astype(np.int64) * 10**11 + seconds[order]
    n_bins = len(edges) - 1
    counts = np.empty((len(key), n_bins), dtype=np.int64)
    edge_seconds = np.round(edges * DAY_S).astype(np.int64)
    for lo in range(0, len(key), 200_000):   # bounded memory: [chunk, B + 1] positions at a time
        chunk = key[lo:lo + 200_000]
        positions = np.searchsorted(key, chunk[:, None] + edge_seconds[None, :], side="right")
        counts[lo:lo + len(chunk)] = np.diff(positions, axis=1)
    window = np.minimum(cfg.horizon_days, (cutoff.timestamp() - seconds[order]) / DAY_S)   # [N] days
    exposure = np.clip(window[:, None] - edges[None, :-1], 0.0, np.diff(edges)[None, :])   # [N, B]
    frame = events.iloc[order]
    background = activity_exposure(frame["category_id"].astype(str).to_numpy(), seconds[order] / DAY_S,
                                   edges, window, cutoff.timestamp() / DAY_S)
    # Anchors of the first burn_in_days are left out (their events still count as follow-ups): just after the
    # data start, a user's activity has no earlier history, and the episodes then seen have just begun.
    anchor = (seconds[order] >= seconds.min() + cfg.burn_in_days * DAY_S) if len(seconds) else np.ones(0, bool)
    counts, exposure, background = counts * anchor[:, None], exposure * anchor[:, None], background * anchor[:, None]
    users = frame["user_id"].astype(str).to_numpy()
    group = (pd.util.hash_array(users, categorize=True) % cfg.groups).astype(np.int64)
    levels = [("category_id", "event_type"), ("category_id",), ()]
    parts = []
    for level in levels:
        kind = pd.DataFrame({c: (frame[c].astype(str).to_numpy() if c in level else ANY)
                             for c in ("category_id", "event_type")}, index=range(len(frame)))
        parts.append(kind)
    kinds_frame = pd.concat(parts, ignore_index=True)
    codes, kinds = pd.MultiIndex.from_frame(kinds_frame).factorize()
    row = codes * cfg.groups + np.tile(group, len(levels))
    size = len(kinds) * cfg.groups
    hist_counts = np.zeros((size, n_bins))
    hist_exposure = np.zeros((size, n_bins))
    hist_background = np.zeros((size, n_bins))
    for b in range(n_bins):
        hist_counts[:, b] = np.bincount(row, np.tile(counts[:, b].astype(float), len(levels)), minlength=size)
        hist_exposure[:, b] = np.bincount(row, np.tile(exposure[:, b], len(levels)), minlength=size)
        hist_background[:, b] = np.bincount(row, np.tile(background[:, b], len(levels)), minlength=size)
    anchors = np.bincount(codes, np.tile(anchor, len(levels)).astype(float), minlength=len(kinds)).astype(np.int64)
    anchoring = np.tile(anchor, len(levels))
    user_codes = np.tile(pd.factorize(users)[0], len(levels))
    users_per_kind = (pd.Series(user_codes[anchoring]).groupby(codes[anchoring]).nunique()
                      .reindex(range(len(kinds)), fill_value=0))
    span = (seconds.max() - seconds.min()) / DAY_S if len(seconds) else 0.0
    shape = (len(kinds), cfg.groups, n_bins)
    exposures = np.stack([hist_exposure.reshape(shape), hist_background.reshape(shape)], axis=2)
    return Histograms(kinds, hist_counts.reshape(shape), exposures, anchors, users_per_kind.to_numpy(), edges, span)


def activity_exposure(category: np.ndarray, day: np.ndarray, edges: np.ndarray, window: np.ndarray,
                      end_day: float, smooth_days: int = 7) -> np.ndarray:
    """``[N, B]``: each anchor's exposure to its category's activity, ``∫ r(t_e + τ) dτ`` over each bin within
    its window, where ``r`` is the category's daily event count (all users, a centred ``smooth_days`` mean)
    divided by its mean. A category whose activity grows, falls or has seasons would otherwise shift the
    background under the decay (rising activity looks like slower decay)."""
    out = np.zeros((len(day), len(edges) - 1))
    first = math.floor(day.min()) if len(day) else 0
    n_days = max(int(math.ceil(end_day)) - first, 1) + int(math.ceil(edges[-1])) + 1
    kernel = np.ones(smooth_days) / smooth_days
    observed = int(math.ceil(end_day)) - first
    grid = np.arange(n_days + 1, dtype=float)
    codes, _ = pd.factorize(category)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(codes.max() + 2 if len(codes) else 1))
    for lo_i, hi_i in zip(bounds[:-1], bounds[1:]):
        mine = order[lo_i:hi_i]
        start = day[mine] - first                                                      # [n] anchor time in days
        daily = np.bincount(start.astype(np.int64), minlength=n_days)[:observed].astype(float)
        rate = (np.convolve(daily, kernel, mode="same")
                / np.convolve(np.ones(observed), kernel, mode="same"))                 # a mean at the edges too
        rate = np.maximum(rate / max(rate.mean(), 1e-12), 0.05)                       # relative activity, > 0
        rate = np.concatenate([rate, np.full(n_days - observed, rate[-smooth_days:].mean())])
        cumulative = np.concatenate([[0.0], np.cumsum(rate)])                          # ∫ r from `first`, at whole days
        lo = start[:, None] + np.minimum(edges[None, :-1], window[mine][:, None])
        hi = start[:, None] + np.minimum(edges[None, 1:], window[mine][:, None])
        out[mine] = np.interp(hi, grid, cumulative) - np.interp(lo, grid, cumulative)
    return out


# --- families as bin averages of the multiplier ---------------------------------------------------------

def _squash(z: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Map an unbounded parameter to (lo, hi)."""
    return lo + (hi - lo) * torch.sigmoid(z)


def _unsquash(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    p = np.clip((np.asarray(x, dtype=float) - lo) / (hi - lo), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


LOG_RATE = (math.log(1e-9), math.log(1e6))   # β and α, events per anchor-day
LOG_HALF = (math.log(MIN_HALF_LIFE), math.log(MAX_HALF_LIFE))
LOG_K = (math.log(1e-4), math.log(1e4))


class Family:
    """A decay family's bin-averaged multiplier ``[..., B]`` from unbounded parameters ``[..., P]``."""

    def __init__(self, name: str, edges: np.ndarray, cfg: FitConfig):
        self.name, self.cfg = name, cfg
        self.lo = torch.tensor(edges[:-1], dtype=torch.float64)
        self.hi = torch.tensor(edges[1:], dtype=torch.float64)
        self.n_params = {"exponential": 1, "logistic": 2, "period": cfg.period_buckets - 1}[name]

    def antiderivative(self, theta: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """∫_0^t m(τ) dτ for parameters ``[..., P]`` at ``t`` ``[B]``."""
        if self.name == "exponential":
            half = _squash(theta[..., :1], *LOG_HALF).exp()                     # [..., 1]
            return half / math.log(2.0) * -torch.expm1(-math.log(2.0) * t / half)
        if self.name == "logistic":
            log_k = _squash(theta[..., :1], *LOG_K)
            rate = math.log(3.0) / _squash(theta[..., 1:2], *LOG_HALF).exp()     # l, via a half-life scale
            softplus = torch.nn.functional.softplus
            return (1 + log_k.exp()) * (t - (softplus(log_k + rate * t) - softplus(log_k)) / rate)
        weights = self.weights(theta)                                           # [..., J]
        p = self.cfg.period_days
        full = torch.cumsum(weights * p, dim=-1)
        full = torch.cat([torch.zeros_like(full[..., :1]), full], dim=-1)       # [..., J + 1]
        j = torch.clamp(torch.floor(t / p).long(), max=weights.shape[-1] - 1)   # [B]
        start = torch.minimum(j.double() * p, t)
        return full[..., j] + weights[..., j] * (t - start)

    def weights(self, theta: torch.Tensor) -> torch.Tensor:
        """Period weights ``[..., J]``: 1, then cumulative products of sigmoids (never increasing)."""
        steps = torch.nn.functional.logsigmoid(theta)
        return torch.cat([torch.ones_like(theta[..., :1]), torch.cumsum(steps, -1).exp()], dim=-1)

    def bin_mean(self, theta: torch.Tensor) -> torch.Tensor:
        return (self.antiderivative(theta, self.hi) - self.antiderivative(theta, self.lo)) / (self.hi - self.lo)

    def initial(self, half_life: np.ndarray) -> np.ndarray:
        """Unbounded parameters ``[n, P]`` whose curve has about the given half-lives."""
        h = np.clip(half_life, MIN_HALF_LIFE * 2, MAX_HALF_LIFE / 2)
        if self.name == "exponential":
            return _unsquash(np.log(h), *LOG_HALF)[:, None]
        if self.name == "logistic":   # k = 1: half-life = ln 3 / l
            return np.stack([_unsquash(np.zeros_like(h), *LOG_K), _unsquash(np.log(h), *LOG_HALF)], axis=1)
        step = 0.5 ** (self.cfg.period_days / h)
        z = np.log(step / (1 - step + 1e-12))
        return np.repeat(z[:, None], self.n_params, axis=1)

    def row(self, theta: np.ndarray) -> dict:
        """The ``params.decay_parameters_fitted`` columns of one parameter vector."""
        t = torch.tensor(theta, dtype=torch.float64)
        if self.name == "exponential":
            return {"family": "exponential", "half_life_days": float(_squash(t[:1], *LOG_HALF).exp())}
        if self.name == "logistic":
            k = float(_squash(t[:1], *LOG_K).exp())
            l = math.log(3.0) / float(_squash(t[1:2], *LOG_HALF).exp())
            return {"family": "logistic", "half_life_days": decay.logistic_half_life(k, l), "logistic_k": k,
                    "logistic_l": l}
        weights = self.weights(t).numpy()
        return {"family": "period", "half_life_days": decay.period_half_life(weights, self.cfg.period_days),
                "period_days": self.cfg.period_days, "period_weights": ";".join(f"{w:.6g}" for w in weights)}


# --- fitting many independent problems at once ------------------------------------------------------------

def _nll(family: Family, theta: torch.Tensor, counts: torch.Tensor, exposure: torch.Tensor) -> torch.Tensor:
    """Poisson negative log-likelihood (without the constant) of one problem's bins, per follow-up event.
    ``theta``: squashed log β, log α, then the family's parameters."""
    beta = _squash(theta[..., :1], *LOG_RATE).exp()
    alpha = _squash(theta[..., 1:2], *LOG_RATE).exp()
    mean = beta * exposure[..., 1, :] + alpha * exposure[..., 0, :] * family.bin_mean(theta[..., 2:])
    nll = (mean - counts * torch.log(mean.clamp_min(1e-300))).sum(-1)
    return nll / (counts.sum(-1) + 1.0) + 1e-6 * theta[..., 2:].pow(2).sum(-1)


def _gradient_and_hessian(family: Family, theta: torch.Tensor, counts: torch.Tensor, exposure: torch.Tensor):
    """Per-problem loss ``[N]``, gradient ``[N, P]`` and Hessian ``[N, P, P]``: the problems are independent,
    so derivatives of the summed loss are the per-problem ones (one backward pass per parameter)."""
    theta = theta.detach().requires_grad_(True)
    loss = _nll(family, theta, counts, exposure)
    (gradient,) = torch.autograd.grad(loss.sum(), theta, create_graph=True)
    rows = [torch.autograd.grad(gradient[:, j].sum(), theta, retain_graph=True)[0] for j in range(theta.shape[1])]
    return loss.detach(), gradient.detach(), torch.stack(rows, 1)


def fit_problems(family: Family, counts: np.ndarray, exposure: np.ndarray, init: np.ndarray,
                 iterations: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Damped Newton (Levenberg-Marquardt) on each problem ``[N, B]`` at once; returns parameters
    ``[N, 2 + P]`` and the Poisson negative log-likelihood of each problem ``[N]``."""
    c = torch.as_tensor(counts, dtype=torch.float64)
    e = torch.as_tensor(exposure, dtype=torch.float64)
    theta = torch.as_tensor(init, dtype=torch.float64).clone()
    damping = torch.full((len(theta),), 1e-3, dtype=torch.float64)
    eye = torch.eye(theta.shape[1], dtype=torch.float64)
    for _ in range(iterations):
        loss, g, h = _gradient_and_hessian(family, theta, c, e)
        scale = h.diagonal(dim1=1, dim2=2).abs().clamp_min(1e-8)
        system = h + damping[:, None, None] * (torch.diag_embed(scale) + 1e-6 * eye)
        step = torch.nan_to_num(torch.linalg.solve(system, g.unsqueeze(-1)).squeeze(-1)).clamp(-5.0, 5.0)
        candidate = theta - step
        with torch.no_grad():
            new_loss = _nll(family, candidate, c, e)
        better = new_loss < loss - 1e-12
        theta = torch.where(better[:, None], candidate, theta)
        damping = torch.where(better, damping / 3, damping * 4).clamp(1e-9, 1e9)
        if bool(((g.abs().amax(-1) < 1e-7) | (damping >= 1e9)).all()):
            break
    with torch.no_grad():
        nll = _nll(family, theta, c, e) - 1e-6 * theta[:, 2:].pow(2).sum(-1)
    return theta.numpy(), (nll * (c.sum(-1) + 1.0)).numpy()


def _rates_init(counts: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """Starting β (the rate in the later half of the bins) and α (the excess in the first bins), squashed."""
    half = counts.shape[-1] // 2
    beta = (counts[..., half:].sum(-1) + 0.5) / (exposure[..., 1, half:].sum(-1) + 1e-9)
    early = (counts[..., :half].sum(-1) + 0.5) / (exposure[..., 0, :half].sum(-1) + 1e-9)
    alpha = np.maximum(early - beta, beta * 0.1)
    return np.stack([_unsquash(np.log(beta), *LOG_RATE), _unsquash(np.log(alpha), *LOG_RATE)], axis=-1)


def fit_family(name: str, counts: np.ndarray, exposure: np.ndarray, edges: np.ndarray, cfg: FitConfig,
               start_half_life: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best parameters and negative log-likelihood of each problem ``[N, B]`` for one family. Exponential
    starts from several half-lives and keeps the best; the others start from ``start_half_life``."""
    family = Family(name, edges, cfg)
    rates = _rates_init(counts, exposure)
    starts = ([np.full(len(counts), cfg.horizon_days * f) for f in (0.003, 0.03, 0.3, 3.0)]
              if start_half_life is None else [start_half_life])
    best_theta, best_nll = None, None
    for half_life in starts:
        theta, nll = fit_problems(family, counts, exposure, np.concatenate([rates, family.initial(half_life)], 1))
        if best_nll is None:
            best_theta, best_nll = theta, nll
        else:
            better = nll < best_nll
            best_theta[better], best_nll[better] = theta[better], nll[better]
    return best_theta, best_nll


def flat_nll(counts: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of the background alone (no decay at all), at its maximum β = counts / exposure."""
    beta = counts.sum(-1) / np.maximum(exposure[..., 1, :].sum(-1), 1e-12)
    mean = exposure[..., 1, :] * beta[..., None]
    return (mean - counts * np.log(np.maximum(mean, 1e-300))).sum(-1)


def half_lives(name: str, theta: np.ndarray, edges: np.ndarray, cfg: FitConfig) -> np.ndarray:
    family = Family(name, edges, cfg)
    return np.array([min(family.row(t[2:])["half_life_days"], MAX_HALF_LIFE) for t in theta])


# --- the per-kind table ------------------------------------------------------------------------------------

TABLE_COLUMNS = ["category_id", "event_type", "family", "half_life_days", "logistic_k", "logistic_l", "period_days",
                 "period_weights", "half_life_low", "half_life_high", "no_decay", "anchors", "users", "origin"]


def fit_kinds(events: pd.DataFrame, cutoff: pd.Timestamp,
              cfg: FitConfig = FitConfig()) -> tuple[pd.DataFrame, Histograms]:
    """The fitted decay of every kind, every category ('c', '*') and all events ('*', '*'), one row each
    (:data:`TABLE_COLUMNS`; also the held-out log-likelihood of each family ``heldout_<family>``, the
    fitted ``background_rate`` β and ``excess_rate`` α), and the histograms behind them.
    Raises :class:`FitError` when the events cannot give a fit."""
    before = events[events["ts"] < cutoff]
    if before.empty:
        raise FitError(f"no events before {cutoff:%Y-%m-%d %H:%M}: nothing to fit")
    if before["user_id"].nunique() < 2:
        raise FitError("the events come from a single user: a decay fit needs several")
    if before["ts"].nunique() < 2:
        raise FitError("all events share one timestamp: there is no time to see interest fade over")
    hist = follow_up_histograms(before, cutoff, cfg)
    if hist.anchors.sum() == 0:
        raise FitError(f"every event falls in the first {cfg.burn_in_days:g} days of the data (burn-in): too short a "
                       "span to fit")
    if hist.counts.sum() == 0:
        raise FitError(f"no user has two events in one category within {cfg.horizon_days:g} days: there is no "
                       "follow-up to fit a decay to")
    # Only rows with enough anchors are fitted (the global row always): the others take a pooled row's fit.
    fitted = np.flatnonzero((hist.anchors >= cfg.min_anchors) | hist.kinds.isin([(ANY, ANY)]))
    table = _fit_rows(hist.subset(fitted), cfg)
    sparse = np.setdiff1d(np.arange(len(hist.kinds)), fitted)
    placeholders = pd.DataFrame({"category_id": hist.kinds[sparse].get_level_values(0),
                                 "event_type": hist.kinds[sparse].get_level_values(1),
                                 "anchors": hist.anchors[sparse], "users": hist.users[sparse], "origin": "sparse"})
    table = pd.concat([table, placeholders], ignore_index=True) if len(sparse) else table
    for column in TABLE_COLUMNS:
        if column not in table:
            table[column] = None
    return shrink_sparse_kinds(table, cfg.min_anchors), hist


def _fit_rows(hist: Histograms, cfg: FitConfig) -> pd.DataFrame:
    """One row per kind of ``hist``: every family fitted, one chosen, its interval, the no-decay verdict."""
    from tqdm import tqdm

    counts, exposure, edges = hist.counts, hist.exposure, hist.edges
    total_c, total_e = counts.sum(1), exposure.sum(1)                             # [K, B], [K, 2, B]
    fits = {}
    for name in tqdm(cfg.families, desc="fit decay families", unit="family"):
        start = None if name == "exponential" else half_lives("exponential", fits["exponential"][0], edges, cfg)
        fits[name] = fit_family(name, total_c, total_e, edges, cfg, start)
    heldout = {name: heldout_log_likelihood(name, hist, cfg, fits) for name in cfg.families}   # [K, G] each
    chosen = choose_families(heldout)
    dispersion = {name: pearson_dispersion(Family(name, edges, cfg), fits[name][0], total_c, total_e)
                  for name in cfg.families}

    rows, intervals = [], bootstrap_half_lives(hist, fits, chosen, cfg)
    flat = flat_nll(total_c, total_e)
    for i, (category, event_type) in enumerate(hist.kinds):
        name = chosen[i]
        theta, nll = fits[name][0][i], fits[name][1][i]
        family = Family(name, edges, cfg)
        row = {"category_id": category, "event_type": event_type, **family.row(theta[2:])}
        ratio = 2.0 * (flat[i] - nll) / dispersion[name][i]
        half_life = min(row["half_life_days"], MAX_HALF_LIFE)
        left = float(family.bin_mean(torch.tensor(theta[2:]))[-1])   # interest left in the last bin
        no_decay = bool(half_life >= 0.5 * MAX_HALF_LIFE or ratio < NO_DECAY_LR or left > NO_DECAY_LEFT)
        row.update(half_life_days=half_life, half_life_low=intervals[i, 0], half_life_high=intervals[i, 1],
                   no_decay=no_decay, anchors=int(hist.anchors[i]), users=int(hist.users[i]), origin="fitted",
                   likelihood_ratio=float(ratio), dispersion=float(dispersion[name][i]),
                   background_rate=_rate(theta[0]), excess_rate=_rate(theta[1]),
                   **{f"heldout_{n}": float(heldout[n][i].sum()) for n in cfg.families})
        if no_decay:
            row.update(family="exponential", half_life_days=MAX_HALF_LIFE, logistic_k=None, logistic_l=None,
                       period_days=None, period_weights=None, half_life_low=None, half_life_high=None)
        rows.append(row)
    return pd.DataFrame(rows)


def _rate(z: float) -> float:
    """β or α (events per anchor-day) from its unbounded parameter."""
    return float(_squash(torch.tensor(z, dtype=torch.float64), *LOG_RATE).exp())


def pearson_dispersion(family: Family, theta: np.ndarray, counts: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """Pearson chi-square per degree of freedom of each fit ``[N]``, at least 1: how much more the counts
    vary than Poisson (users' activity is lumpy), by which likelihood differences are divided."""
    t = torch.as_tensor(theta, dtype=torch.float64)
    with torch.no_grad():
        mean = (_squash(t[:, :1], *LOG_RATE).exp() * torch.as_tensor(exposure[:, 1])
                + _squash(t[:, 1:2], *LOG_RATE).exp() * torch.as_tensor(exposure[:, 0]) * family.bin_mean(t[:, 2:]))
    mean = mean.numpy()
    used = exposure[:, 0] > 0
    chi2 = np.where(used, (counts - mean) ** 2 / np.maximum(mean, 1e-12), 0.0).sum(-1)
    return np.maximum(1.0, chi2 / np.maximum(used.sum(-1) - theta.shape[1], 1))


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
            nll = (_nll(family, t, c, e) - 1e-6 * t[..., 2:].pow(2).sum(-1)) * (c.sum(-1) + 1.0)
        out[:, test] = -nll.numpy()
    return out


def choose_families(heldout: dict[str, np.ndarray]) -> np.ndarray:
    """Per kind, the family with the best held-out log-likelihood if its gain over exponential is consistent
    across user groups (paired over groups: mean / standard error above ``FAMILY_Z``), else exponential."""
    names = list(heldout)
    totals = np.stack([heldout[n].sum(1) for n in names])               # [F, K]
    best = totals.argmax(0)
    gains = np.stack([heldout[n] - heldout["exponential"] for n in names])   # [F, K, G]
    gain = np.take_along_axis(gains, best[None, :, None], 0)[0]         # [K, G]
    error = gain.std(1, ddof=1) / math.sqrt(gain.shape[1])
    consistent = gain.mean(1) > FAMILY_Z * np.maximum(error, 1e-12)
    return np.where(consistent, np.array(names, dtype=object)[best], "exponential")


def bootstrap_half_lives(hist: Histograms, fits: dict, chosen: np.ndarray, cfg: FitConfig) -> np.ndarray:
    """95% percentile interval ``[K, 2]`` of each kind's half-life over resamples of user groups, refitting
    the kind's chosen family from its full-data fit."""
    rng = np.random.default_rng(cfg.seed)
    weights = rng.multinomial(cfg.groups, np.full(cfg.groups, 1.0 / cfg.groups), size=cfg.bootstrap)   # [R, G]
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
    parameters = ["family", "half_life_days", "logistic_k", "logistic_l", "period_days", "period_weights",
                  "half_life_low", "half_life_high", "no_decay"]
    table = table.reset_index(drop=True)
    keys = pd.MultiIndex.from_frame(table[["category_id", "event_type"]])
    position = pd.Series(np.arange(len(table)), index=keys)
    is_global = (table["category_id"] == ANY) & (table["event_type"] == ANY)
    sparse = (table["anchors"] < min_anchors) & ~is_global
    pooled = position.reindex(pd.MultiIndex.from_arrays([table["category_id"], np.full(len(table), ANY)])).to_numpy()
    pooled_ok = (table["event_type"] != ANY).to_numpy() & (table["anchors"].to_numpy()[pooled.astype(int)] >= min_anchors)
    source = np.where(pooled_ok, pooled, position[(ANY, ANY)]).astype(int)
    rows = np.flatnonzero(sparse.to_numpy())
    table = table.astype({column: object for column in parameters})
    table.loc[rows, parameters] = table.loc[source[rows], parameters].to_numpy()
    table.loc[rows, "origin"] = np.where(pooled_ok[rows], "category " + table.loc[rows, "category_id"].astype(str),
                                         "global")
    return table
