"""Evaluation report of a training run, as markdown: the served model (the item ranker) against most-popular, the
promotion gate's verdict, then the run's test window in the harness protocol (``models.pipeline.comparison``): the
served model and the champion against most-popular, history, history + ties and STAN."""

from __future__ import annotations

from pathlib import Path

from interest_decay import config as settings
from models.pipeline import comparison


def render(
    as_of: str, model_tag: str, metrics: dict[str, dict], promotion: dict | None = None, harness: dict | None = None
) -> str:
    if not metrics["model"]["users"]:
        return (
            f"# Evaluation, as of {as_of}\n\nModel: `{model_tag}`. No test users: nobody with interest features "
            "had events in the test window, so nothing was measured.\n"
        )
    names = [key for key in next(iter(metrics.values())) if key != "users"]
    lines = [
        f"# Evaluation, as of {as_of}",
        "",
        f"Model: `{model_tag}`; test users: {metrics['model']['users']}.",
        "",
        "| method | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for method, values in metrics.items():
        lines.append(f"| {method} | " + " | ".join(f"{values.get(n, float('nan')):.4f}" for n in names) + " |")
    base, ours = metrics["most_popular"], metrics["model"]
    key = next(n for n in names if n.startswith("ndcg"))
    if base.get(key):
        lines += ["", f"{key}: model / most-popular = {ours[key] / base[key]:.3f}."]
    if promotion:
        verdict = "promoted to champion" if promotion["promoted"] else "not promoted; the champion stays"
        lines += [
            "",
            f"Promotion gate on the same test window (the best baseline and the champion): {verdict} "
            f"({promotion['reason']}). Champion now: `{promotion['champion']}`.",
        ]
    if harness:
        lines += comparison.render(harness)
    lines += ["", "Training curve: `training_curve.png`; drift: `drift.html`."]
    return "\n".join(lines) + "\n"


def write_evaluation_report(
    as_of: str, model_tag: str, metrics: dict[str, dict], promotion: dict | None = None, harness: dict | None = None
) -> Path:
    out = settings.reports_dir() / as_of / "evaluation.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(as_of, model_tag, metrics, promotion, harness))
    return out
