"""Gradient-boosted churn trees with the platform's science, and calibrated probabilities.

The trees (scikit-learn's ``HistGradientBoostingClassifier``: LightGBM's histogram algorithm, already in the lock,
so no second boosting library) read the churn features of ``models.pipeline.churn_data`` plus what the decay work
knows about a user (``science_features``):

- ``overdue``: days since the last purchase / the user's mean gap between purchases (how late they are against
  their own rhythm; > 1 = later than usual);
- ``interest_trend``: decayed events with the shortest half-life / with the longest (is interest rising or fading);
- ``monetary_per_occasion``: spend per purchase occasion; category breadth is ``distinct_categories`` already.

Probabilities are calibrated: the trees are fitted on 80% of the training users and an isotonic regression on the
other 20% maps their scores to observed churn rates (``fit_gbt``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression

CALIBRATION_SHARE = 0.2  # share of the training users held out for the isotonic calibration


def science_features(features: pd.DataFrame) -> pd.DataFrame:
    """``features`` (``user_features``) with ``overdue``, ``interest_trend`` and ``monetary_per_occasion``."""
    decayed = [c for c in features.columns if c.startswith("decayed_")]
    half_lives = sorted({float(c.rsplit("_h", 1)[1]) for c in decayed})
    out = features.copy()
    out["overdue"] = features["purchase_recency_days"] / features["purchase_gap_mean_days"].clip(lower=1.0)
    if half_lives:

        def total(h: float) -> pd.Series:
            return features[[c for c in decayed if float(c.rsplit("_h", 1)[1]) == h]].sum(axis=1)

        out["interest_trend"] = (total(half_lives[0]) + 0.01) / (total(half_lives[-1]) + 0.01)
    out["monetary_per_occasion"] = features["monetary"] / features["purchase_occasions"].clip(lower=1.0)
    return out


class CalibratedTrees:
    """Boosted trees + an isotonic map of their scores; ``predict_proba`` gives P(churn) ``[N]``."""

    def __init__(self, trees: HistGradientBoostingClassifier, calibration: IsotonicRegression, columns: list[str]):
        self.trees, self.calibration, self.columns = trees, calibration, columns

    def raw(self, features: pd.DataFrame) -> np.ndarray:
        return self.trees.predict_proba(science_features(features)[self.columns].to_numpy())[:, 1]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return self.calibration.predict(self.raw(features))

    def feature_importance(self, features: pd.DataFrame, churned: pd.Series, seed: int = 0) -> dict[str, float]:
        """Permutation importance on ``features`` (drop in ROC-AUC when a column is shuffled), the top reasons."""
        from sklearn.inspection import permutation_importance

        x = science_features(features)[self.columns].to_numpy()
        result = permutation_importance(
            self.trees, x, churned.to_numpy(), scoring="roc_auc", n_repeats=3, random_state=seed
        )
        return dict(sorted(zip(self.columns, map(float, result.importances_mean)), key=lambda kv: -kv[1]))


def fit_gbt(features: pd.DataFrame, churned: pd.Series, seed: int = 0) -> CalibratedTrees:
    """Trees on 80% of the users (early stopping on their own 10% validation), isotonic calibration on the rest."""
    x = science_features(features)
    columns = list(x.columns)
    rng = np.random.default_rng(seed)
    held = rng.random(len(x)) < CALIBRATION_SHARE
    y = churned.to_numpy().astype(int)
    if len(np.unique(y[~held])) < 2 or len(np.unique(y[held])) < 2:
        raise ValueError("too few users of one class to fit and calibrate the churn trees")
    trees = HistGradientBoostingClassifier(
        learning_rate=0.05, max_iter=300, max_leaf_nodes=15, min_samples_leaf=40, early_stopping=True, random_state=seed
    ).fit(x.loc[~held, columns].to_numpy(), y[~held])
    calibration = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
        trees.predict_proba(x.loc[held, columns].to_numpy())[:, 1], y[held]
    )
    return CalibratedTrees(trees, calibration, columns)
