"""Decay families as bin averages of their multiplier, the Poisson likelihood of follow-up histograms,
and a damped Newton solver that fits many independent histograms at once (``models.fitting.decay_kinds`` uses it).

A problem is one histogram ``[B]`` of follow-up counts with its exposures ``[2, B]`` (plain, and weighted by
the category's activity); its parameters are the squashed log background rate β, log excess rate α, then
the family's parameters. The mean count of bin b is ``β·exposure[1, b] + α·exposure[0, b]·mean(m over b)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from interest_decay import decay
from models.fitting.follow_ups import FitConfig

MAX_HALF_LIFE = decay.NO_DECAY_HALF_LIFE  # days; the stored half-life of "no decay"
MIN_HALF_LIFE = 1e-3  # days (86 s)


def squash(z: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Map an unbounded parameter to (lo, hi)."""
    return lo + (hi - lo) * torch.sigmoid(z)


def unsquash(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    p = np.clip((np.asarray(x, dtype=float) - lo) / (hi - lo), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


LOG_RATE = (math.log(1e-9), math.log(1e6))  # β and α, events per anchor-day
LOG_HALF = (math.log(MIN_HALF_LIFE), math.log(MAX_HALF_LIFE))
# The logistic shape k: the dbt test assert_decay_parameters_valid refuses k < 1e-3 (such a curve is exponential
# in all but name, and its rows would fail the run), so the fit stays inside it.
MIN_LOGISTIC_K = 1e-3
LOG_K = (math.log(MIN_LOGISTIC_K), math.log(1e4))


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
            half = squash(theta[..., :1], *LOG_HALF).exp()  # [..., 1]
            return half / math.log(2.0) * -torch.expm1(-math.log(2.0) * t / half)
        if self.name == "logistic":
            log_k = squash(theta[..., :1], *LOG_K)
            rate = math.log(3.0) / squash(theta[..., 1:2], *LOG_HALF).exp()  # l, via a half-life scale
            softplus = torch.nn.functional.softplus
            return (1 + log_k.exp()) * (t - (softplus(log_k + rate * t) - softplus(log_k)) / rate)
        weights = self.weights(theta)  # [..., J]
        p = self.cfg.period_days
        full = torch.cumsum(weights * p, dim=-1)
        full = torch.cat([torch.zeros_like(full[..., :1]), full], dim=-1)  # [..., J + 1]
        j = torch.clamp(torch.floor(t / p).long(), max=weights.shape[-1] - 1)  # [B]
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
            return unsquash(np.log(h), *LOG_HALF)[:, None]
        if self.name == "logistic":  # k = 1: half-life = ln 3 / l
            return np.stack([unsquash(np.zeros_like(h), *LOG_K), unsquash(np.log(h), *LOG_HALF)], axis=1)
        step = 0.5 ** (self.cfg.period_days / h)
        z = np.log(step / (1 - step + 1e-12))
        return np.repeat(z[:, None], self.n_params, axis=1)

    def row(self, theta: np.ndarray) -> dict:
        """The ``params.decay_parameters_fitted`` columns of one parameter vector."""
        t = torch.tensor(theta, dtype=torch.float64)
        if self.name == "exponential":
            return {"family": "exponential", "half_life_days": float(squash(t[:1], *LOG_HALF).exp())}
        if self.name == "logistic":
            k = float(squash(t[:1], *LOG_K).exp())
            l = math.log(3.0) / float(squash(t[1:2], *LOG_HALF).exp())
            return {
                "family": "logistic",
                "half_life_days": decay.logistic_half_life(k, l),
                "logistic_k": k,
                "logistic_l": l,
            }
        weights = self.weights(t).numpy()
        return {
            "family": "period",
            "half_life_days": decay.period_half_life(weights, self.cfg.period_days),
            "period_days": self.cfg.period_days,
            "period_weights": ";".join(f"{w:.6g}" for w in weights),
        }


def poisson_nll(family: Family, theta: torch.Tensor, counts: torch.Tensor, exposure: torch.Tensor) -> torch.Tensor:
    """Poisson negative log-likelihood (without the constant) of one problem's bins, per follow-up event.
    ``theta``: squashed log β, log α, then the family's parameters."""
    beta = squash(theta[..., :1], *LOG_RATE).exp()
    alpha = squash(theta[..., 1:2], *LOG_RATE).exp()
    mean = beta * exposure[..., 1, :] + alpha * exposure[..., 0, :] * family.bin_mean(theta[..., 2:])
    nll = (mean - counts * torch.log(mean.clamp_min(1e-300))).sum(-1)
    return nll / (counts.sum(-1) + 1.0) + 1e-6 * theta[..., 2:].pow(2).sum(-1)


def _gradient_and_hessian(family: Family, theta: torch.Tensor, counts: torch.Tensor, exposure: torch.Tensor):
    """Per-problem loss ``[N]``, gradient ``[N, P]`` and Hessian ``[N, P, P]``: the problems are independent,
    so derivatives of the summed loss are the per-problem ones (one backward pass per parameter)."""
    theta = theta.detach().requires_grad_(True)
    loss = poisson_nll(family, theta, counts, exposure)
    (gradient,) = torch.autograd.grad(loss.sum(), theta, create_graph=True)
    rows = [torch.autograd.grad(gradient[:, j].sum(), theta, retain_graph=True)[0] for j in range(theta.shape[1])]
    return loss.detach(), gradient.detach(), torch.stack(rows, 1)


def fit_problems(
    family: Family, counts: np.ndarray, exposure: np.ndarray, init: np.ndarray, iterations: int = 80
) -> tuple[np.ndarray, np.ndarray]:
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
            new_loss = poisson_nll(family, candidate, c, e)
        better = new_loss < loss - 1e-12
        theta = torch.where(better[:, None], candidate, theta)
        damping = torch.where(better, damping / 3, damping * 4).clamp(1e-9, 1e9)
        if bool(((g.abs().amax(-1) < 1e-7) | (damping >= 1e9)).all()):
            break
    with torch.no_grad():
        nll = poisson_nll(family, theta, c, e) - 1e-6 * theta[:, 2:].pow(2).sum(-1)
    return theta.numpy(), (nll * (c.sum(-1) + 1.0)).numpy()


def _rates_init(counts: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """Starting β (the rate in the later half of the bins) and α (the excess in the first bins), squashed."""
    half = counts.shape[-1] // 2
    beta = (counts[..., half:].sum(-1) + 0.5) / (exposure[..., 1, half:].sum(-1) + 1e-9)
    early = (counts[..., :half].sum(-1) + 0.5) / (exposure[..., 0, :half].sum(-1) + 1e-9)
    alpha = np.maximum(early - beta, beta * 0.1)
    return np.stack([unsquash(np.log(beta), *LOG_RATE), unsquash(np.log(alpha), *LOG_RATE)], axis=-1)


def fit_family(
    name: str,
    counts: np.ndarray,
    exposure: np.ndarray,
    edges: np.ndarray,
    cfg: FitConfig,
    start_half_life: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best parameters and negative log-likelihood of each problem ``[N, B]`` for one family. Exponential
    starts from several half-lives and keeps the best; the others start from ``start_half_life``."""
    family = Family(name, edges, cfg)
    rates = _rates_init(counts, exposure)
    starts = (
        [np.full(len(counts), cfg.horizon_days * f) for f in (0.003, 0.03, 0.3, 3.0)]
        if start_half_life is None
        else [start_half_life]
    )
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


def rate_value(z: float) -> float:
    """β or α (events per anchor-day) from its unbounded parameter."""
    return float(squash(torch.tensor(z, dtype=torch.float64), *LOG_RATE).exp())


def pearson_dispersion(family: Family, theta: np.ndarray, counts: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """Pearson chi-square per degree of freedom of each fit ``[N]``, at least 1: how much more the counts
    vary than Poisson (users' activity is lumpy), by which likelihood differences are divided."""
    t = torch.as_tensor(theta, dtype=torch.float64)
    with torch.no_grad():
        mean = squash(t[:, :1], *LOG_RATE).exp() * torch.as_tensor(exposure[:, 1]) + squash(
            t[:, 1:2], *LOG_RATE
        ).exp() * torch.as_tensor(exposure[:, 0]) * family.bin_mean(t[:, 2:])
    mean = mean.numpy()
    used = exposure[:, 0] > 0
    chi2 = np.where(used, (counts - mean) ** 2 / np.maximum(mean, 1e-12), 0.0).sum(-1)
    return np.maximum(1.0, chi2 / np.maximum(used.sum(-1) - theta.shape[1], 1))
