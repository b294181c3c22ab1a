"""Decay families: how much of an event's interest remains ``t`` days after it happened.

Every function maps elapsed time ``t`` (days, >= 0) to a multiplier in [0, 1]; interest is
``I0 * multiplier``. Arrays broadcast (NumPy). The first three equal 1 at t = 0 and never increase:

- exponential: ``e^(-k t)``, half-life ``ln 2 / k``.
- logistic (sigmoid): ``(1 + k) / (1 + k e^(l t))``. The source text prints ``I0 / (1 + k e^(-l t))``,
  which *grows* with t; this is the decaying form, scaled so it equals 1 at t = 0. Small ``k`` gives a
  plateau followed by a fast drop; large ``k`` tends to exponential decay at rate ``l``.
- period ("billing-period"): time is cut into periods of fixed length (day, week, month = 30 days)
  and every event in the j-th period back gets ``weights[j]``; the last weight holds beyond.

The repeat-purchase family is not monotone (SLRC / TAIW style, docs/decay-families.md):
``repeat(t) = (1 - π) 0.5^(t / h) + π exp(-((t - μ) / σ)² / 2)``: the need a purchase met fades at
half-life ``h``, and a share ``π`` of the interest comes back as a bump around the item's usual
repurchase interval ``μ`` (spread ``σ``). Interest in buying an item again is the sum of the kernel
over the user's latest purchases of it (``repeat_interest``).

The SQL twin of these functions is ``decay_multiplier`` (dbt macro ``create_decay_functions``); both
compute exponential decay as ``0.5 ** (t / half_life)``, take it to 0 after 1000 half-lives and
logistic decay to 0 once ``l t > 700`` (both below 1e-300 of I0; PostgreSQL raises an error on
float underflow instead of returning 0), so the two agree to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LN2 = math.log(2.0)
PERIOD_DAYS = {"day": 1.0, "week": 7.0, "month": 30.0}
LOGISTIC_EXPONENT_CAP = 700.0  # e^700 is near float64's limit; beyond it the multiplier is taken as 0
GAUSS_EXPONENT_CAP = 700.0  # exp(-700) ~ 1e-304: a bump this far out is taken as 0 (as in SQL)
HALF_LIVES_CAP = 1000.0  # after 1000 half-lives (2^-1000 ~ 1e-301) exponential decay is taken as 0
# A fitted "no decay" is stored as this half-life in days (0.5^(365 / 1e5) = 0.9975 after a year): finite, so
# every store and JSON answer carries it, and as good as none over any span of data.
NO_DECAY_HALF_LIFE = 1e5


def describe_half_life(half_life_days: float) -> str:
    """How explanations and reports name a half-life: 'half-life 2.5 days', or 'no decay'."""
    if half_life_days >= NO_DECAY_HALF_LIFE or math.isinf(half_life_days):
        return "no decay"
    return (
        f"half-life {half_life_days:.3g} days" if half_life_days >= 1 else f"half-life {half_life_days * 24:.3g} hours"
    )


def rate_from_half_life(half_life_days: float) -> float:
    """Exponential rate k (per day) whose half-life is ``half_life_days``; inf half-life gives 0."""
    if half_life_days <= 0:
        raise ValueError(f"half-life must be positive, got {half_life_days}")
    return 0.0 if math.isinf(half_life_days) else LN2 / half_life_days


def half_life_from_rate(k: float) -> float:
    """Half-life in days of exponential decay at rate ``k`` per day (inf for k = 0)."""
    if k < 0:
        raise ValueError(f"decay rate must be >= 0, got {k}")
    return math.inf if k == 0 else LN2 / k


def exponential(t, k: float):
    """``e^(-k t)``: the share of interest left after ``t`` days at rate ``k`` per day."""
    return np.exp(-k * np.asarray(t, dtype=float))


def exponential_half_life(t, half_life_days: float):
    """``0.5 ** (t / half_life)``: exponential decay given by its half-life (inf: no decay)."""
    if half_life_days <= 0:
        raise ValueError(f"half-life must be positive, got {half_life_days}")
    half_lives = np.asarray(t, dtype=float) / half_life_days
    return np.where(half_lives > HALF_LIVES_CAP, 0.0, np.power(0.5, np.minimum(half_lives, HALF_LIVES_CAP)))


def logistic(t, k: float, l: float):
    """``(1 + k) / (1 + k e^(l t))``: sigmoid decay, 1 at t = 0, falling to 0; needs k > 0, l >= 0."""
    if k <= 0 or l < 0:
        raise ValueError(f"logistic decay needs k > 0 and l >= 0, got k={k}, l={l}")
    exponent = l * np.asarray(t, dtype=float)
    with np.errstate(over="ignore"):
        value = (1.0 + k) / (1.0 + k * np.exp(np.minimum(exponent, LOGISTIC_EXPONENT_CAP)))
    return np.where(exponent > LOGISTIC_EXPONENT_CAP, 0.0, value)


def logistic_half_life(k: float, l: float) -> float:
    """Days until logistic decay reaches one half: ``ln((1 + 2k) / k) / l``."""
    return math.inf if l == 0 else math.log((1.0 + 2.0 * k) / k) / l


def period(t, weights: Sequence[float], period_days: float = 1.0):
    """Weight of the period that ``t`` days back falls into; ``weights[0]`` must be 1."""
    w = np.asarray(weights, dtype=float)
    if w.size == 0 or w[0] != 1.0 or np.any(np.diff(w) > 0) or np.any(w < 0):
        raise ValueError("period weights must start at 1 and never increase or go below 0")
    index = np.floor(np.asarray(t, dtype=float) / period_days).astype(int)
    return w[np.clip(index, 0, w.size - 1)]


def period_half_life(weights: Sequence[float], period_days: float = 1.0) -> float:
    """Days until period decay first falls to one half or below (inf if it never does)."""
    below = [j for j, w in enumerate(weights) if w <= 0.5]
    return below[0] * period_days if below else math.inf


def repeat(t, half_life_days: float, bump_weight: float, bump_mean_days: float, bump_sd_days: float):
    """``(1 - π) 0.5^(t / h) + π exp(-((t - μ) / σ)² / 2)`` with π = ``bump_weight``, μ = ``bump_mean_days``,
    σ = ``bump_sd_days``: the repeat-purchase kernel, in [0, 1]; ``h`` may be inf (the need never fades).
    μ and σ may be arrays (one per age: each purchase's item has its own bump)."""
    if not (
        half_life_days > 0
        and 0 <= bump_weight <= 1
        and np.all(np.asarray(bump_mean_days) >= 0)
        and np.all(np.asarray(bump_sd_days) > 0)
    ):
        raise ValueError(
            "repeat decay needs half_life_days > 0, 0 <= bump_weight <= 1, bump_mean_days >= 0 and "
            f"bump_sd_days > 0, got {half_life_days}, {bump_weight}, {bump_mean_days}, {bump_sd_days}"
        )
    t = np.asarray(t, dtype=float)
    offset = t - bump_mean_days
    z = np.where(np.abs(offset) < 1e-100 * bump_sd_days, 0.0, offset / bump_sd_days)  # at the peak (as SQL)
    exponent = 0.5 * z * z
    bump = np.where(exponent > GAUSS_EXPONENT_CAP, 0.0, np.exp(-np.minimum(exponent, GAUSS_EXPONENT_CAP)))
    return (1.0 - bump_weight) * exponential_half_life(t, half_life_days) + bump_weight * bump


def repeat_interest(
    purchase_ages_days,
    half_life_days: float,
    bump_weight: float,
    bump_mean_days: float,
    bump_sd_days: float,
    window_days: float,
    max_purchases: int,
) -> float:
    """Interest in buying an item again: the repeat kernel summed over the latest ``max_purchases`` purchases
    given (the bounded state the marts keep per user × item) that lie before now (age > 0) and no more than
    ``window_days`` back."""
    ages = np.sort(np.asarray(purchase_ages_days, dtype=float))[:max_purchases]
    ages = ages[(ages > 0) & (ages <= window_days)]
    return float(np.sum(repeat(ages, half_life_days, bump_weight, bump_mean_days, bump_sd_days)))


def multiplier(
    family: str,
    t,
    *,
    half_life_days: float | None = None,
    logistic_k: float | None = None,
    logistic_l: float | None = None,
    period_days: float | None = None,
    period_weights: Sequence[float] | None = None,
):
    """Decay multiplier of ``family`` with the parameters of a ``decay_parameters`` row."""
    if family == "exponential":
        return exponential_half_life(t, half_life_days)
    if family == "logistic":
        return logistic(t, logistic_k, logistic_l)
    if family == "period":
        return period(t, period_weights, period_days)
    raise ValueError(f"unknown decay family {family!r}; expected exponential, logistic or period")


def decayed_sum(event_ages_days, weights, k: float) -> float:
    """Exponentially decayed interest: ``sum(w_i * e^(-k * age_i))`` over events."""
    return float(np.sum(np.asarray(weights, dtype=float) * exponential(event_ages_days, k)))
