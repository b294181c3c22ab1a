"""Decay: the families (``families``: exponential, logistic, period, repeat purchase; the SQL twins are the dbt
macros of ``create_decay_functions``) and ``reference``, which recomputes whole marts from events in Python.

The families are this package's namespace, so ``from interest_decay import decay; decay.exponential(...)``.
"""

from interest_decay.decay.families import (
    GAUSS_EXPONENT_CAP,
    HALF_LIVES_CAP,
    LN2,
    LOGISTIC_EXPONENT_CAP,
    NO_DECAY_HALF_LIFE,
    PERIOD_DAYS,
    decayed_sum,
    describe_half_life,
    exponential,
    exponential_half_life,
    half_life_from_rate,
    logistic,
    logistic_half_life,
    multiplier,
    period,
    period_half_life,
    rate_from_half_life,
    repeat,
    repeat_interest,
)

__all__ = [
    "GAUSS_EXPONENT_CAP",
    "HALF_LIVES_CAP",
    "LN2",
    "LOGISTIC_EXPONENT_CAP",
    "NO_DECAY_HALF_LIFE",
    "PERIOD_DAYS",
    "decayed_sum",
    "describe_half_life",
    "exponential",
    "exponential_half_life",
    "half_life_from_rate",
    "logistic",
    "logistic_half_life",
    "multiplier",
    "period",
    "period_half_life",
    "rate_from_half_life",
    "repeat",
    "repeat_interest",
]
