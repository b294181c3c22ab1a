"""Train, evaluate and register the served recommender, the item ranker: config -> seed -> data -> model -> fit ->
evaluate -> gate.

The model is ``models.pipeline.item_ranker`` trained by the same code ``make evaluate`` runs, on the staged events
before the run's test window, and measured on that window in the harness protocol (``models.pipeline.comparison``)
with exactly the function ``/recommend`` calls (``models.pipeline.served_ranker.RankerPackage.rank``). It is
promoted only when it beats both the champion and the best baseline there (``decide_promotion``). The registered
package holds the item side of its state at ``as_of``.

CLI: ``python -m models.pipeline.train --as-of 2026-11-28`` (see ``--help``). Needs the dbt marts built for that
window. Writes metrics.json and training_curve.png under ``$REPORTS_DIR/<as_of>/`` and, unless ``--no-register``,
the model into the BentoML model store.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from interest_decay import config as settings
from models.harness import ranking
from models.harness.metrics import evaluate_rankings
from models.pipeline.comparison import SERVED, compare, harness_events
from models.pipeline.data import Vocabulary, Windows, load_events
from models.pipeline.item_ranker import ItemRanker, RankerConfig, fit_item_ranker
from models.pipeline.item_signals import SIGNALS
from models.pipeline.registry import git_commit
from models.pipeline.served_ranker import KIND, RankerPackage

DEFAULT_CONFIG = Path(__file__).with_name("config.yaml")
FEATURE_SERVICE = "item_ranker_v1"
CHAMPION = "champion"


def load_config(path: Path = DEFAULT_CONFIG, overrides: dict | None = None) -> dict:
    cfg = yaml.safe_load(Path(path).read_text())
    cfg.update(overrides or {})
    return cfg


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def plot_training_curve(losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(losses) + 1), losses, marker="o")
    ax.set(xlabel="epoch", ylabel="training loss (listwise cross-entropy)", title="Item ranker training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass
class RunData:
    """What one training run reads from the staged events: history before the test window, the test
    window's events and the (sampled) events of the training window (the quality report's reference)."""

    windows: Windows
    history: pd.DataFrame
    test_events: pd.DataFrame
    labels: pd.DataFrame


def load_run_data(windows: Windows, cfg: dict) -> RunData:
    """Staged events split at the test window; at most ``max_train_examples`` label events (seeded sample)."""
    import psycopg

    schema = settings.dbt_schema()
    with psycopg.connect(settings.pg_conninfo()) as conn:
        history = load_events(conn, schema, None, windows.test_start)
        test_events = load_events(conn, schema, windows.test_start, windows.as_of)
    if history.empty:
        raise ValueError(f"no events before {windows.test_start:%Y-%m-%d}: nothing to train on")
    labels = history[history.event_ts >= windows.train_start]
    if len(labels) > cfg["max_train_examples"]:
        labels = labels.sample(cfg["max_train_examples"], random_state=cfg["seed"]).sort_values("event_ts")
    return RunData(windows, history, test_events, labels)


def decay_parameters_used() -> dict:
    """The decay the run's features were computed with (``int_event_kind_parameters``): kinds per family,
    the exponential kinds' half-lives (min, median, max) and how many of them do not decay."""
    import psycopg

    from interest_decay.decay import NO_DECAY_HALF_LIFE

    with psycopg.connect(settings.pg_conninfo()) as conn:
        rows = conn.execute(
            f"select family, half_life_days from {settings.dbt_schema()}.int_event_kind_parameters"
        ).fetchall()
    half_lives = sorted(h for family, h in rows if family == "exponential" and h is not None)
    families = pd.Series([family for family, _ in rows], dtype=object).value_counts()
    return {
        "source": "int_event_kind_parameters",
        "kinds": len(rows),
        "families": {family: int(n) for family, n in families.items()},
        "half_life_days": (
            {"min": half_lives[0], "median": float(np.median(half_lives)), "max": half_lives[-1]}
            if half_lives
            else None
        ),
        "no_decay_kinds": sum(h >= NO_DECAY_HALF_LIFE for h in half_lives),
    }


def run(as_of: dt.date, cfg: dict | None = None, register: bool = True) -> dict:
    """Train on the events before the test window, measure on it against the baselines and the champion, register
    the model packaged at ``as_of`` and promote it when it beats both."""
    cfg = cfg or load_config()
    seed_everything(cfg["seed"])
    windows = Windows.from_config(dt.datetime.combine(as_of, dt.time(), dt.UTC), cfg)
    data = load_run_data(windows, cfg)
    start, k = pd.Timestamp(windows.test_start), cfg["top_k"]
    ranker_cfg = ranker_config(cfg)
    train = harness_events(data.history)
    types = ranking.target_types(train)
    model = fit_item_ranker(train, start, ranker_cfg)
    measured = {SERVED: RankerPackage.build(model, train, start, ranker_cfg, types).top_items(train, start)}
    incumbent = registry_champion()
    if incumbent is not None:
        champion_model = champion_ranker(incumbent)
        if champion_model is not None:
            measured[CHAMPION] = RankerPackage.build(champion_model, train, start, ranker_cfg, types).top_items(
                train, start
            )
    harness, lists = compare(data.history, data.test_events, start, windows.as_of, k, measured)
    test_users, truth = lists["users"], lists["relevant"]
    n_items = harness["catalogue"]
    metrics = {
        "model": evaluate_rankings(zip(lists[SERVED], truth), k, n_items),
        "most_popular": evaluate_rankings(zip(lists["popular"], truth), k, n_items),
    }
    summary = {
        "as_of": str(as_of),
        "windows": {name: f"{value:%Y-%m-%d}" for name, value in vars(windows).items()},
        "model_kind": KIND,
        "train_examples": int(model.training_rows),
        "items": n_items,
        "final_train_loss": model.training_losses[-1] if model.training_losses else None,
        "metrics": metrics,
        "harness": harness,
        "decay": decay_parameters_used(),
        "feature_service": FEATURE_SERVICE,
        "git_commit": git_commit(),
        "hyperparameters": {**cfg, "ranker": dataclasses.asdict(ranker_cfg)},  # as resolved (no nulls)
    }
    out = settings.reports_dir() / str(as_of)
    out.mkdir(parents=True, exist_ok=True)
    plot_training_curve(model.training_losses, out / "training_curve.png")
    summary["quality"] = (
        recommendation_quality(
            list(test_users), lists[SERVED], truth, data.labels[["user_id", "item_id"]], min(k, n_items), out
        )
        if len(test_users)
        else None
    )
    if register:
        everything = harness_events(pd.concat([data.history, data.test_events], ignore_index=True))
        package = RankerPackage.build(model, everything, pd.Timestamp(windows.as_of), ranker_cfg, types)
        summary["model_tag"] = register_model(package, summary)
        summary["promotion"] = decide_promotion(summary["model_tag"], harness, incumbent, cfg)
        record_run_quality(summary, out)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary


def ranker_config(cfg: dict) -> RankerConfig:
    """The ranker's hyperparameters of ``config.yaml``; label windows left null span the test window's days."""
    values = {**cfg["ranker"]}
    for key in ("window_days", "step_days"):
        if values.get(key) is None:
            values[key] = float(cfg["eval_days"])
    return RankerConfig(**values)


def registry_champion() -> str | None:
    from models.pipeline import registry

    return registry.champion()


def champion_ranker(tag: str) -> ItemRanker | None:
    """The champion's model, to be measured on this run's window with this run's item side; None when the
    champion is not an item ranker or reads other signals (a retired kind or version: the gate then has the
    baselines only)."""
    import bentoml

    path = Path(bentoml.models.get(tag).path)
    if not RankerPackage.is_package(path):
        return None
    model = ItemRanker.load(path)
    return model if model.hparams["n_signals"] == len(SIGNALS) else None  # other signals: a retired version


def decide_promotion(tag: str, harness: dict, incumbent_tag: str | None, cfg: dict) -> dict:
    """Promote ``tag`` when its NDCG@top_k on the run's test window beats the best baseline's (most-popular,
    history, history + ties, STAN) and the champion's on the same users, each by ``promotion_margin``. The
    reason names both comparisons; the report shows it."""
    from models.pipeline import registry

    metric, margin = f"ndcg@{cfg['top_k']}", cfg["promotion_margin"]
    methods = harness.get("methods", {})
    baselines = {n: v for n, v in methods.items() if n not in (SERVED, CHAMPION) and metric in v}
    if SERVED not in methods or not baselines:
        return {
            "promoted": False,
            "reason": f"not measured: {harness.get('skipped') or 'no baseline could be fitted on the window'}",
            "incumbent": None,
            "incumbent_metrics": None,
            "champion": registry.champion(),
        }
    ours = {metric: methods[SERVED][metric]}
    best = max(baselines, key=lambda n: baselines[n][metric])
    promote, why = registry.gate(ours, {metric: baselines[best][metric]}, metric, margin)
    reasons = [f"{why} against the best baseline {best}"]
    incumbent, incumbent_metrics = best, baselines[best]
    if CHAMPION in methods:
        beats, why_champion = registry.gate(ours, {metric: methods[CHAMPION][metric]}, metric, margin)
        promote = promote and beats
        reasons.append(f"{why_champion} against the champion {incumbent_tag}")
        incumbent, incumbent_metrics = incumbent_tag, methods[CHAMPION]
    elif incumbent_tag is not None:
        reasons.append(f"the champion {incumbent_tag} is no item ranker of these signals: not measured")
    if promote:
        registry.promote(tag, "; ".join(reasons))
    return {
        "promoted": promote,
        "reason": "; ".join(reasons),
        "incumbent": incumbent,
        "best_baseline": best,
        "incumbent_metrics": incumbent_metrics,
        "champion": registry.champion(),
    }


def record_run_quality(summary: dict, out: Path) -> None:
    """The run's recommendation quality (Evidently) into PostgreSQL, for the monitoring dashboards."""
    import psycopg

    from interest_decay.monitoring.recsys_quality import record_quality

    if summary["quality"]:
        with psycopg.connect(settings.pg_conninfo()) as conn:
            record_quality(
                conn,
                dt.date.fromisoformat(summary["as_of"]),
                summary["model_tag"],
                summary["quality"],
                out / "quality.html",
            )


def register_model(package: RankerPackage, summary: dict) -> str:
    """Save the package (model, item side, fallback order) and the vocabulary the service filters with into the
    BentoML model store; returns the tag."""
    import bentoml

    items = package.items
    vocab = Vocabulary(
        items=package.fallback.index.tolist(),
        categories=sorted(items["category_id"].unique().tolist()),
        item_category=items["category_id"].to_dict(),
        popular_items=package.fallback.index[:100].tolist(),
    )
    metadata = {
        "kind": KIND,
        "as_of": summary["as_of"],
        "windows": summary["windows"],
        "decay": summary["decay"],
        "feature_service": summary["feature_service"],
        "git_commit": summary["git_commit"],
        "hyperparameters": summary["hyperparameters"],
        "metrics": summary["metrics"],
    }
    with bentoml.models.create(
        settings.model_name(), metadata=metadata, labels={"feature_service": FEATURE_SERVICE, "kind": KIND}
    ) as bento_model:
        package.save(Path(bento_model.path))
        Path(bento_model.path_of("vocabulary.json")).write_text(json.dumps(vocab.to_json()))
    return str(bento_model.tag)


def recommendation_quality(
    users: list[str], ranked: list[list[str]], truth: list[set], train_interactions: pd.DataFrame, k: int, out_dir: Path
) -> dict:
    """Evidently's recsys metrics of the model's top-k lists on the test window (``quality.html`` /
    ``quality.json`` in ``out_dir``): accuracy and beyond-accuracy (personalization, novelty, popularity
    bias, coverage, Gini), with the training window's interactions as the popularity reference."""
    from interest_decay.monitoring.recsys_quality import recsys_report

    recommendations = pd.DataFrame(
        [(user, item, rank + 1) for user, items in zip(users, ranked) for rank, item in enumerate(items[:k])],
        columns=["user_id", "item_id", "rank"],
    )
    relevant = pd.DataFrame(
        [(user, item) for user, items in zip(users, truth) for item in items], columns=["user_id", "item_id"]
    )
    return recsys_report(recommendations, relevant, train_interactions, k, out_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.pipeline.train", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--as-of", type=dt.date.fromisoformat, required=True, help="UTC day the run is as of, YYYY-MM-DD"
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="hyperparameter YAML (default models/pipeline/config.yaml)"
    )
    parser.add_argument("--no-register", action="store_true", help="do not save the model to the BentoML model store")
    args = parser.parse_args(argv)
    summary = run(args.as_of, load_config(args.config), register=not args.no_register)
    print(json.dumps({"metrics": summary["metrics"], "model_tag": summary.get("model_tag")}, indent=2))


if __name__ == "__main__":
    main()
