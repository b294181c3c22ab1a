"""The report of ``make evaluate`` (``models.harness.evaluate``): evaluation.json, evaluation.md and the plots.

Tables of every method's test metrics with 95% bootstrap intervals, the paired gains over the best baseline, the
data-quality counts, the fitted parameters of the decay models (per kind) and of the repeat family, and PNGs:
NDCG@10 per method, the fitted decay curves, the sequence models' training curves, the repeat kernels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from models.fitting import repeat_report
from models.harness.decay_data import DAY_S
from models.harness.decay_fit import DecayRanker, bound_flag


def best_of_kind(task: dict, kind: str) -> str | None:
    """Name of the method of ``kind`` with the best validation NDCG@10."""
    names = [n for n, r in task["methods"].items() if r["kind"] == kind]
    return max(names, key=lambda n: task["methods"][n]["validation_ndcg@10"]) if names else None


def jsonable(value):
    """Plain JSON: infinities as the string "inf", NaN as null, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else ("inf" if math.isinf(value) else float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_outputs(
    summary: dict,
    decay_models: dict,
    events: pd.DataFrame,
    out: Path,
    cfg: dict,
    trained: dict | None = None,
    repeat_models: dict | None = None,
) -> None:
    """evaluation.json, the plots and evaluation.md into ``out``; ``trained``: rankers with a per-epoch
    loss ``history`` (the sequence models) get a training-curve plot; ``repeat_models``: a kernel plot each."""

    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(jsonable(summary), indent=2))
    top = events["category_id"].value_counts().index[: cfg["report"]["top_categories"]].tolist()
    plots = [plot_metrics(task, out / f"ndcg_{target}.png") for target, task in summary["tasks"].items()]
    plots += [plot_decay_curves(ranker, top, out / f"decay_curves_{name}.png") for name, ranker in decay_models.items()]
    plots += [
        plot_training_curve(ranker, out / f"training_curve_{name}.png") for name, ranker in (trained or {}).items()
    ]
    plots += [ranker.plot_kernels(out / f"repeat_kernels_{name}.png") for name, ranker in (repeat_models or {}).items()]
    (out / "evaluation.md").write_text(markdown(summary, decay_models, [p.name for p in plots], cfg, repeat_models))


# --- report -------------------------------------------------------------------------------------------


def plot_training_curve(ranker, path: Path) -> Path:
    """Training loss per epoch and, when the ranker held out each user's last target, its NDCG@10 (right axis)
    with the kept epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    epochs = range(1, len(ranker.history) + 1)
    ax.plot(epochs, ranker.history, marker="o", label="training loss")
    ax.set(xlabel="epoch", ylabel="cross-entropy", title=f"{ranker.name}: training curve (test refit)")
    held_out = getattr(ranker, "held_out_history", None)
    if held_out:
        right = ax.twinx()
        right.plot(range(1, len(held_out) + 1), held_out, marker="s", color="tab:orange", label="held-out NDCG@10")
        right.axvline(ranker.best_epoch, color="grey", linestyle=":", label=f"kept: epoch {ranker.best_epoch}")
        right.set_ylabel("held-out last target NDCG@10")
        lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="center right")
    else:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _number(value) -> str:
    """Metrics as .1234, counts with thousands separators, other numbers to 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞"
        if abs(value) < 1:
            return f"{value:.4f}".replace("0.", ".", 1)
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _params(params: dict) -> str:
    return ", ".join(f"{k}={_number(float(v)) if isinstance(v, (int, float)) else v}" for k, v in params.items()) or "—"


PROTOCOL_NAMES = {"time": "time window", "next-basket": "next basket", "loo": "leave-one-out"}


def table_caption(summary: dict, task: dict) -> str:
    """What produced a task's tables: protocol, split and whether the users' own items were left out."""
    protocol = summary.get("protocol", "time")
    cut = summary["cutoffs"]
    split = (
        "last target test, the one before validation"
        if protocol == "loo"
        else f"test [{cut['test'][:10]}, {cut['end'][:10]}], validation [{cut['validation'][:10]}, {cut['test'][:10]})"
    )
    masking = "left out" if task.get("exclude_seen") else "ranked"
    reason = task.get("exclude_seen_reason")
    return (
        f"*Protocol: {PROTOCOL_NAMES.get(protocol, protocol)}; {split}; the users' own train items {masking}"
        + (f" ({reason})" if reason else "")
        + ".*"
    )


def method_table(task: dict, caption: str = "") -> str:
    """Markdown table of a task's test results, one row per method; ``caption`` (``table_caption``) above it."""
    head = (
        "| method | chosen on validation | val NDCG@10 | HR@10 | HR@20 | Recall@20 | NDCG@10 [95% CI] | MRR@20 "
        "| coverage@10 | category diversity@10 | exposure Gini@10 | seconds |"
    )
    lines = [
        f"**{task['target']}**: {task['test']['users']:,} test users, catalogue {task['test']['catalogue']:,}",
        *([caption] if caption else []),
        "",
        head,
        "|" + "---|" * 12,
    ]
    for r in task["methods"].values():
        low, high = r["ndcg@10_ci"]
        lines.append(
            f"| {r['label']} | {_params(r['tuned'])} | {_number(r['validation_ndcg@10'])} "
            f"| {_number(r['hr@10'])} | {_number(r['hr@20'])} | {_number(r['recall@20'])} "
            f"| {_number(r['ndcg@10'])} [{_number(low)}, {_number(high)}] | {_number(r['mrr@20'])} "
            f"| {_number(r['coverage@10'])} | {_number(r['category_diversity@10'])} "
            f"| {_number(r['exposure_gini@10'])} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def plot_metrics(task: dict, path: Path) -> Path:
    """Bar chart of test NDCG@10 with 95% bootstrap intervals, one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = task["methods"]
    means = np.array([r["ndcg@10"] for r in rows.values()])
    errors = np.abs(np.array([r["ndcg@10_ci"] for r in rows.values()]).T - means)
    colours = [
        {"baseline": "tab:grey", "decay": "tab:blue", "repeat": "tab:purple"}.get(r["kind"], "tab:green")
        for r in rows.values()
    ]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.2))
    ax.barh(list(rows), means, xerr=errors, color=colours)
    ax.invert_yaxis()
    ax.set(xlabel="test NDCG@10 (95% bootstrap CI)", title=f"Next {task['target'].removesuffix('_id')}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def quality_table(quality: dict) -> str:
    rows = [("rows read", quality["rows_read"])]
    rows += [(f"dropped: {reason}", n) for reason, n in quality["dropped"].items()]
    rows += [
        (
            "duplicates (equal in every column)" + (", dropped" if quality["duplicates_dropped"] else ", kept"),
            quality["duplicates"],
        ),
        ("events kept", quality["events"]),
        ("users", quality["users"]),
        ("items", quality["items"]),
        ("categories", quality["categories"]),
        ("event types", ", ".join(f"{k} {v:,}" for k, v in quality["event_types"].items())),
        ("span", f"{quality['first_ts']} .. {quality['last_ts']}"),
        ("events over a day before the 0.1% time quantile (stray early events)", quality["events_before_span_start"]),
        ("value present", f"{quality['value_present_share']:.1%}"),
        ("most events of one user", f"{quality['max_events_per_user']:,} ({quality['top_user_share']:.1%} of all)"),
        ("busiest day / median day", f"{quality['max_day_over_median_day']:.1f}×"),
        ("items seen under several categories", quality["items_with_several_categories"]),
    ]
    return "\n".join(
        ["| what | count |", "|---|---|"]
        + [f"| {k} | {v:,} |" if isinstance(v, int) else f"| {k} | {v} |" for k, v in rows]
    )


def gains_table(task: dict, caption: str = "") -> str:
    """Gains over the best baseline; the best decay model (by validation) first, in words; ``caption`` above the
    table."""
    lines = []
    best = best_of_kind(task, "decay")
    for g in task["gains"]:
        if g["method"] == best:
            lines += [
                f"Best decay model (by validation): **{task['methods'][best]['label']}**; test NDCG@10 "
                f"{g['gain']:+.1%} [{g['ci'][0]:+.1%}, {g['ci'][1]:+.1%}] relative to the best baseline "
                f"(by validation), {task['methods'][g['versus']]['label']}.",
                "",
            ]
    lines += [
        *([caption, ""] if caption else []),
        "| method | vs best baseline (by validation) | NDCG@10 gain [95% paired-bootstrap CI] |",
        "|---|---|---|",
    ]
    for g in task["gains"]:
        lines.append(
            f"| {task['methods'][g['method']]['label']} | {task['methods'][g['versus']]['label']} "
            f"| {g['gain']:+.1%} [{g['ci'][0]:+.1%}, {g['ci'][1]:+.1%}] |"
        )
    return "\n".join(lines)


def parameter_table(ranker: DecayRanker, n: int) -> str:
    """The global rows and the ``n`` (category, event type) rows with the most train events, as fitted."""
    table = ranker.half_life_table()
    table["at a bound"] = [bound_flag(h) or "" for h in table["half_life_days"]]
    support = ranker.support.rename("train events").reset_index()
    table = table.merge(support, on=["category_id", "event_type"], how="left")
    shown = pd.concat(
        [table[table["category_id"] == "*"], table[table["category_id"] != "*"].nlargest(n, "train events")]
    )
    columns = [
        "category_id",
        "event_type",
        "half_life_days",
        "logistic_k",
        "logistic_l",
        "period_weights",
        "train events",
        "at a bound",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in shown[columns].itertuples(index=False):
        cells = [_number(v) if v is None or isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bound_text(at_bound: list[dict]) -> str:
    """One sentence on the kinds whose fitted half-life ended at a bound of its range."""
    if not at_bound:
        return "No fitted half-life ends at a bound of its range."
    counts = pd.Series([k["bound"] for k in at_bound]).value_counts()
    return (
        f"{len(at_bound)} kind(s) end at a bound of the half-life range ("
        + ", ".join(f"{n} at the {bound}" for bound, n in counts.items())
        + "): the data does not fix them there; at the lower bound the family fades at once (often: nobody repeats "
        "what they did, so the decay model has nothing to decay and ranks like most-popular); at the upper bound "
        "it does not decay."
    )


def repeat_text(task: dict) -> str:
    """The task's repeat rate, whether users' own items were left out and why, and the methods that could not
    run because of it."""
    if "repeat_rate" not in task:
        return ""
    text = (
        f"Repeat rate in train: {task['repeat_rate']:.1%} of target interactions repeat an item of an earlier day; "
        f"users' own items {'left out of' if task['exclude_seen'] else 'kept in'} their rankings "
        f"({task['exclude_seen_reason']})."
    )
    for name, why in task.get("not_applicable", {}).items():
        text += f" `{name}`: not applicable ({why})."
    return text


def audience_text(result: dict, top: int) -> list[str]:
    """The ad-audience section: pooled precision / recall per method and size, then the ``top`` categories with the
    most responders at the smallest size."""
    sizes = list(next(iter(result["overall"].values())))
    if not sizes:
        return [
            "## Ad audiences",
            "",
            f"Nobody bought or carted within {result['window_days']:g} days of the cutoff.",
            "",
        ]
    head = "| method | " + " | ".join(f"precision@{n} | recall@{n}" for n in sizes) + " |"
    lines = [
        "## Ad audiences",
        "",
        f"Each category's audience is its N highest-scoring users at the test cutoff; a response is a buy or cart in "
        f"the category within {result['window_days']:g} days. Interest half-life {result['half_life_days']:g} days "
        "(chosen on validation precision@1000). Overall = pooled over categories.",
        "",
        head,
        "|---|" + "---|---|" * len(sizes),
    ]
    for method, by_size in result["overall"].items():
        cells = " | ".join(f"{_number(m['precision'])} | {_number(m['recall'])}" for m in by_size.values())
        lines.append(f"| {method} | {cells} |")
    rows = pd.DataFrame(result["categories"])
    if not rows.empty:
        first = rows["size"].iloc[0]
        small = rows[rows["size"] == first]
        biggest = small.groupby("category_id")["buyers"].first().nlargest(top).index
        lines += [
            "",
            f"Largest categories, N = {first} (precision / recall):",
            "",
            "| category | responders | " + " | ".join(result["overall"]) + " |",
            "|---|---|" + "---|" * len(result["overall"]),
        ]
        for category in biggest:
            part = small[small["category_id"] == category].set_index("method")
            cells = " | ".join(
                f"{_number(part.loc[m, 'precision'])} / {_number(part.loc[m, 'recall'])}" for m in result["overall"]
            )
            lines.append(f"| {category} | {int(part['buyers'].iloc[0])} | {cells} |")
    return lines + [""]


def training_text(task: dict) -> list[str]:
    """One line per sequence model: the epochs it ran before early stopping and the one it kept (test refit)."""
    lines = [
        f"- {r['label']}: {r['training']['epochs_run']} epochs run, epoch {r['training']['best_epoch']} kept "
        f"(held-out last-target NDCG@10 {_number(max(r['training']['held_out_ndcg@10']))})"
        for r in task["methods"].values()
        if r.get("training")
    ]
    return ["Early stopping (test refit):", "", *lines, ""] if lines else []


def split_text(summary: dict, cut: dict) -> str:
    """How the run split the data, in the words of its protocol (``ranking.PROTOCOLS``)."""
    common = (
        " Full ranking over the train catalogue (whether users' own items are left out: each task says); ties by "
        "all-time train popularity, then id. Hyperparameters and the best method of each kind are chosen on "
        "validation NDCG@10, then refitted on the test split's train part; the test targets are used once."
    )
    protocol = summary.get("protocol", "time")
    if protocol == "loo":
        return (
            "Protocol: leave-one-out by time (RecBole's). Each user's target events in time order: the last is the "
            "test target, the one before it the validation target, the rest train; users with fewer than "
            f"{summary['config']['loo']['min_interactions']} are left out. Relevant: the one target item." + common
        )
    window = (
        f"Test: train before T = {cut['test']}, window [T, {cut['end']}). Validation: train before V = "
        f"{cut['validation']}, window [V, T). Evaluated users have at least one train event and one target in the "
        "window; relevant = "
    )
    if protocol == "next-basket":
        return (
            "Protocol: next basket. "
            + window
            + "the items of their first basket in the window (target events sharing its first timestamp)."
            + common
        )
    return "Protocol: time window. " + window + "their distinct window targets." + common


def markdown(summary: dict, decay_models: dict, plots: list[str], cfg: dict, repeat_models: dict | None = None) -> str:
    """evaluation.md: data quality, split, per-task results, gains, fitted parameters, plots."""
    cut = summary["cutoffs"]
    parts = [
        f"# Offline evaluation: {', '.join(Path(p).name for p in summary['inputs'])}",
        "",
        f"Dataset reader: `{summary['dataset']}`; commit `{summary['git_commit'][:12]}`; seed {summary['seed']}; "
        f"wall time {summary['wall_seconds']:.0f} s.",
        "",
        "## Data quality",
        "",
        "Cleaning mirrors dbt staging; every dropped row is counted by its first failing rule.",
        "",
        quality_table(summary["quality"]),
        "",
        "## Split",
        "",
        f"Targets: {', '.join(summary['target_event_types'])} events. " + split_text(summary, cut),
        "",
    ]
    for task in summary["tasks"].values():
        parts += [
            f"## Next {task['target'].removesuffix('_id')}",
            "",
            f"Validation: {task['validation']['users']:,} users, mean {task['validation']['mean_relevant']:.1f} "
            f"relevant; test: mean {task['test']['mean_relevant']:.1f} relevant. " + repeat_text(task),
            "",
            method_table(task, table_caption(summary, task)),
            "",
            gains_table(task, table_caption(summary, task)),
            "",
            *training_text(task),
        ]
    if summary.get("audiences"):
        parts += audience_text(summary["audiences"], cfg["report"]["top_categories"])
    for name, ranker in decay_models.items():
        parts += [
            f"## Fitted parameters: {name}",
            "",
            parameter_table(ranker, cfg["report"]["table_categories"]),
            "",
            bound_text(summary.get("fits_at_a_bound", {}).get(name, [])),
            "",
            f"Training loss (mean negative log-likelihood per basket) {ranker.final_loss:.4f} after "
            f"{len(ranker.losses)} Adam epochs and {ranker.config['polish_steps']} L-BFGS iterations."
            if ranker.losses
            else "No target baskets in the training window: not fitted.",
            "",
        ]
    for name, ranker in (repeat_models or {}).items():
        parts += [f"## Fitted parameters: {name}", "", repeat_report.render(ranker.params, []), ""]
    parts += ["## Plots", ""] + [f"- [{p}]({p})" for p in plots] + [""]
    return "\n".join(parts)


def plot_decay_curves(
    ranker: DecayRanker, categories: Sequence[str], path: Path, event_type: str | None = None
) -> Path:
    """PNG of the fitted decay curves of ``categories`` and the global row, for one event type (default: the
    most common) over the span of the train events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    event_type = event_type or ranker.support.groupby(level="event_type").sum().idxmax()
    span = max((ranker.index.event_seconds.max() - ranker.index.event_seconds.min()) / DAY_S, 1.0)
    ages = np.linspace(0.0, span, 200)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(ages, ranker.curve("*", event_type, ages), color="black", linestyle="--", label="global")
    for category in categories:
        if (category, event_type) in ranker.support.index:
            ax.plot(ages, ranker.curve(category, event_type, ages), label=str(category)[:24])
    ax.set(
        xlabel="age of the event (days)",
        ylabel="decay multiplier",
        ylim=(0, 1.05),
        title=f"Fitted {ranker.config['family']} decay, {event_type} events",
    )
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
