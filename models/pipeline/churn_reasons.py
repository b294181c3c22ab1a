"""Why a user's churn risk is what it is: the three features that move it most.

For each feature, the user's value is replaced by the typical one (the training users' mean of the model's input,
i.e. 0 after standardisation) and the calibrated probability computed again; the feature's effect is the user's
probability minus that one. The three largest effects in size are the reasons, each saying whether the feature
raises or lowers the risk. One forward pass over ``users × features`` rows, so a request of 1,000 users stays cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

LABELS = {
    "recency_days": "days since the last event",
    "purchase_recency_days": "days since the last purchase",
    "tenure_days": "days since the first event",
    "event_count": "events",
    "purchase_count": "purchases",
    "purchase_occasions": "purchase occasions",
    "monetary": "money spent",
    "distinct_items": "distinct items",
    "distinct_categories": "distinct categories",
    "purchase_gap_mean_days": "mean days between purchases",
    "purchase_gap_std_days": "spread of the days between purchases",
}
DECAYED = re.compile(r"decayed_(\w+)_h([\d.]+)")


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float  # the user's
    typical: float  # the training users' (the inverse transform of the input mean)
    effect: float  # the user's probability minus the one with the typical value, in [-1, 1]

    @property
    def text(self) -> str:
        direction = "raises" if self.effect > 0 else "lowers"
        return (
            f"{label(self.feature)}: {self.value:,.3g} (typical {self.typical:,.3g}) {direction} the risk by "
            f"{abs(self.effect) * 100:.1f} points"
        )


def label(feature: str) -> str:
    """A feature's name for people (``decayed_view_h7`` → "views, decayed with a 7-day half-life")."""
    decayed = DECAYED.fullmatch(feature)
    if decayed:
        return f"{decayed.group(1)} events, decayed with a {decayed.group(2)}-day half-life"
    return LABELS.get(feature, feature.replace("_", " "))


@torch.no_grad()
def churn_reasons(model, features: pd.DataFrame, k: int = 3) -> list[list[Reason]]:
    """The ``k`` features that move each user's calibrated churn probability most (``features``: rows of the
    model's raw inputs, in its ``feature_names``), largest effect first."""
    names = model.hparams["feature_names"]
    raw = torch.from_numpy(features[names].to_numpy(np.float32))
    z = model.standardised(raw)
    users, n = z.shape
    probability = model.calibrated(model.layers(z).squeeze(-1))
    typical_z = z.unsqueeze(1).repeat(1, n, 1)  # [users, feature replaced, features]
    typical_z[:, torch.arange(n), torch.arange(n)] = 0.0
    replaced = model.calibrated(model.layers(typical_z.reshape(users * n, n)).squeeze(-1)).reshape(users, n)
    effects = (probability.unsqueeze(1) - replaced).numpy().astype(float)
    typical = torch.sign(model.feature_mean) * torch.expm1(model.feature_mean.abs())
    values = raw.numpy().astype(float)
    out = []
    for row in range(users):
        top = np.argsort(-np.abs(effects[row]), kind="stable")[:k]
        out.append([Reason(names[j], float(values[row, j]), float(typical[j]), float(effects[row, j])) for j in top])
    return out
