"""How ``models.pipeline.churn`` measures the churn model against its baseline: ROC-AUC, PR-AUC and Brier score with
percentile intervals from one shared user bootstrap, ROC and calibration curves, and their plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def metric_values(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"roc_auc": roc_auc_score(y, p), "pr_auc": average_precision_score(y, p), "brier": np.mean((p - y) ** 2)}


def bootstrap(y: np.ndarray, probabilities: dict[str, np.ndarray], n_resamples: int, level: float, seed: int) -> dict:
    """Metrics of every method with percentile CIs from one shared user bootstrap, and the paired
    CI of the ROC-AUC difference ``model - baseline``. Resamples with a single class are skipped."""
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in probabilities}
    for _ in range(n_resamples):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():
            continue
        for name, p in probabilities.items():
            draws[name].append(metric_values(y[rows], p[rows]))
    tails = [100 * (1 - level) / 2, 100 * (1 + level) / 2]

    def interval(values) -> list[float]:
        return [float(v) for v in np.percentile(values, tails)]

    metrics = {
        name: {
            metric: {"value": float(value), "ci": interval([d[metric] for d in draws[name]])}
            for metric, value in metric_values(y, p).items()
        }
        for name, p in probabilities.items()
    }
    difference = np.array([m["roc_auc"] - b["roc_auc"] for m, b in zip(draws["model"], draws["baseline"])])
    return {
        "metrics": metrics,
        "roc_auc_difference": {
            "value": metrics["model"]["roc_auc"]["value"] - metrics["baseline"]["roc_auc"]["value"],
            "ci": interval(difference),
        },
        "resamples_used": len(difference),
    }


def curves(y: np.ndarray, probabilities: dict[str, np.ndarray], bins: int) -> dict:
    """ROC points and calibration bins (mean prediction, observed churn rate) per method, for plotting."""
    out = {}
    for name, p in probabilities.items():
        fpr, tpr, _ = roc_curve(y, p)
        observed, predicted = calibration_curve(y, p, n_bins=bins)
        out[name] = {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            "calibration_predicted": predicted.tolist(),
            "calibration_observed": observed.tolist(),
        }
    return out


def plot_churn(result: dict, out_dir: Path) -> Path:
    """ROC curves and calibration curves of both methods side by side; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, (roc, calibration) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, curve in result["curves"].items():
        auc = result["metrics"][name]["roc_auc"]["value"]
        roc.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {auc:.3f})")
        calibration.plot(curve["calibration_predicted"], curve["calibration_observed"], marker="o", label=name)
    for ax in (roc, calibration):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        ax.legend()
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test users")
    calibration.set(xlabel="predicted churn probability", ylabel="observed churn rate", title="Calibration")
    fig.suptitle(f"Churn within {result['horizon_days']} days of {result['test_cutoff'][:10]}")
    fig.tight_layout()
    path = out_dir / "churn.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
