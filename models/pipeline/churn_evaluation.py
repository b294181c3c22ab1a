"""How ``models.pipeline.churn`` measures the churn models against each other, the way marketers do: ROC-AUC, PR-AUC,
Brier score, expected calibration error, lift and capture rate of the top 10% and 5% most at risk, with percentile
intervals from one shared user bootstrap; ROC and reliability curves, and their plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

TOP_SHARES = {"top10": 0.10, "top5": 0.05}  # the shares of users a marketer targets, most at risk first
ECE_BINS = 10


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ over equal-width probability bins of (users in the bin / N) · |mean prediction − churn rate in it|."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, p, bins) - np.bincount(which, y, bins))
    return float(gap.sum() / max(counts.sum(), 1))


def top_share(y: np.ndarray, p: np.ndarray, share: float) -> tuple[float, float]:
    """(lift, capture) of the ``share`` of users with the highest P(churn) (ties by input order): their churn rate /
    the overall rate, and the share of all churners they hold."""
    n = max(int(round(share * len(y))), 1)
    top = y[np.argsort(-p, kind="stable")[:n]]
    rate, churners = y.mean(), y.sum()
    return (float(top.mean() / rate) if rate else float("nan")), (float(top.sum() / churners) if churners else 0.0)


def metric_values(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier, expected calibration error, and lift / capture rate of the top 10% and 5%."""
    out = {
        "roc_auc": roc_auc_score(y, p),
        "pr_auc": average_precision_score(y, p),
        "brier": np.mean((p - y) ** 2),
        "ece": expected_calibration_error(y, p),
    }
    for name, share in TOP_SHARES.items():
        out[f"lift_{name}"], out[f"capture_{name}"] = top_share(y, p, share)
    return out


def bootstrap(y: np.ndarray, probabilities: dict[str, np.ndarray], n_resamples: int, level: float, seed: int) -> dict:
    """Metrics of every method with percentile CIs from one shared user bootstrap, and the paired CI of each
    method's ROC-AUC difference to the baseline (``model - baseline`` also alone, as before). Resamples with a
    single class are skipped."""
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
    differences = {}  # every method's ROC-AUC minus the baseline's, paired over the same resamples
    for name in probabilities:
        if name != "baseline":
            paired = [m["roc_auc"] - b["roc_auc"] for m, b in zip(draws[name], draws["baseline"])]
            value = metrics[name]["roc_auc"]["value"] - metrics["baseline"]["roc_auc"]["value"]
            differences[name] = {"value": value, "ci": interval(paired)}
    return {
        "metrics": metrics,
        "roc_auc_difference": differences["model"],
        "roc_auc_differences": differences,
        "resamples_used": len(draws["baseline"]),
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
