"""Decay families: how much of an event's interest remains ``t`` days after it happened.

Every function maps elapsed time ``t`` (days, >= 0) to a multiplier in [0, 1] that equals 1 at
t = 0 and never increases; interest is ``I0 * multiplier``. Arrays broadcast (NumPy).

- exponential: ``e^(-k t)``, half-life ``ln 2 / k``.
- logistic (sigmoid): ``(1 + k) / (1 + k e^(l t))``. The source text prints ``I0 / (1 + k e^(-l t))``,
  which *grows* with t; this is the decaying form, scaled so it equals 1 at t = 0. Small ``k`` gives a
  plateau followed by a fast drop; large ``k`` tends to exponential decay at rate ``l``.
- period ("billing-period"): time is cut into periods of fixed length (day, week, month = 30 days)
  and every event in the j-th period back gets ``weights[j]``; the last weight holds beyond.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

LN2 = math.log(2.0)
PERIOD_DAYS = {"day": 1.0, "week": 7.0, "month": 30.0}


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


def logistic(t, k: float, l: float):
    """``(1 + k) / (1 + k e^(l t))``: sigmoid decay, 1 at t = 0, falling to 0; needs k > 0, l >= 0."""
    if k <= 0 or l < 0:
        raise ValueError(f"logistic decay needs k > 0 and l >= 0, got k={k}, l={l}")
    return (1.0 + k) / (1.0 + k * np.exp(l * np.asarray(t, dtype=float)))


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


def decayed_sum(event_ages_days, weights, k: float) -> float:
    """Exponentially decayed interest: ``sum(w_i * e^(-k * age_i))`` over events."""
    return float(np.sum(np.asarray(weights, dtype=float) * exponential(event_ages_days, k)))
