"""Train, evaluate and register the interest recommender: config -> seed -> data -> model -> fit -> evaluate.

CLI: ``python -m models.pipeline.train --as-of 2026-11-28`` (see ``--help``). Needs the dbt marts built and
Feast applied for that window. Writes metrics.json and training_curve.png under
``$REPORTS_DIR/<as_of>/`` and, unless ``--no-register``, the model into the BentoML model store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from interest_decay import config as settings
from models.harness.metrics import evaluate_rankings
from models.pipeline.comparison import compare
from models.pipeline.data import (
    FEATURE_SERVICE,
    Vocabulary,
    Windows,
    build_vocabulary,
    feature_matrix,
    load_events,
    most_popular,
    point_in_time_features,
)
from models.pipeline.registry import git_commit

DEFAULT_CONFIG = Path(__file__).with_name("config.yaml")


def load_config(path: Path = DEFAULT_CONFIG, overrides: dict | None = None) -> dict:
    cfg = yaml.safe_load(Path(path).read_text())
    cfg.update(overrides or {})
    return cfg


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(model, x: np.ndarray, y: np.ndarray, cfg: dict) -> list[float]:
    """Adam on full-catalogue cross-entropy; returns the mean training loss of each epoch."""
    import torch
    from tqdm import tqdm

    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(cfg["seed"])
    losses = []
    model.train()
    for _ in tqdm(range(cfg["epochs"]), desc="training", unit="epoch"):
        order = torch.randperm(len(y_t), generator=generator)
        total = 0.0
        for start in range(0, len(order), cfg["batch_size"]):
            batch = order[start : start + cfg["batch_size"]]
            loss = model.calculate_loss(x_t[batch], y_t[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        losses.append(total / max(len(y_t), 1))
    model.eval()
    return losses


def rank_items(model, vocab: Vocabulary, x: np.ndarray, k: int) -> list[list[str]]:
    """Top-k item ids per row of ``x`` by model score."""
    import torch

    with torch.no_grad():
        scores = model.full_sort_predict(torch.from_numpy(x))
    top = torch.topk(scores, min(k, scores.shape[1]), dim=1).indices.numpy()
    return [[vocab.items[i] for i in row] for row in top]


def plot_training_curve(losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(losses) + 1), losses, marker="o")
    ax.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="Interest recommender training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass
class RunData:
    """What one training run reads from the staged events: history before the test window, the test
    window's events, the vocabulary and the (sampled) label events of the training window."""

    windows: Windows
    history: pd.DataFrame
    test_events: pd.DataFrame
    vocab: Vocabulary
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
    vocab = build_vocabulary(history, history[history.event_ts >= windows.popular_start])
    labels = history[history.event_ts >= windows.train_start]
    if len(labels) > cfg["max_train_examples"]:
        labels = labels.sample(cfg["max_train_examples"], random_state=cfg["seed"]).sort_values("event_ts")
    return RunData(windows, history, test_events, vocab, labels)


def train_model(store, data: RunData, cfg: dict):
    """The recommender fitted on the point-in-time features of each label event; returns it, the loss per
    epoch and the number of training examples."""
    from models.pipeline.recommender import InterestRecommender

    entity_df = pd.DataFrame(
        {
            "user_id": data.labels.user_id.values,
            "item_id": data.labels.item_id.values,
            "event_timestamp": pd.to_datetime(data.labels.event_ts.values, utc=True),
        }
    )
    train = point_in_time_features(store, entity_df).dropna(subset=["total_interest"])
    x_train = feature_matrix(data.vocab, train)
    y_train = train["item_id"].map(data.vocab.item_index).to_numpy(dtype=np.int64)
    vocab = data.vocab
    model = InterestRecommender(len(vocab.categories), len(vocab.items), cfg["embedding_dim"], cfg["dropout"])
    return model, fit(model, x_train, y_train, cfg), len(y_train)


def test_rankings(store, model, data: RunData, k: int) -> tuple[pd.DataFrame, list[list[str]], list[set], dict]:
    """The test window's users with their features at its start, the model's top ``2k`` per user, the items
    each bought in the window, and the metrics of the model and of most-popular."""
    relevant = data.test_events.groupby("user_id")["item_id"].agg(set)
    test_users = pd.DataFrame({"user_id": relevant.index, "event_timestamp": pd.Timestamp(data.windows.test_start)})
    test = point_in_time_features(store, test_users).dropna(subset=["total_interest"])
    vocab = data.vocab
    model_ranked = rank_items(model, vocab, feature_matrix(vocab, test), 2 * k)
    popular_ranked = [vocab.popular_items[: 2 * k]] * len(test)
    truth = [relevant[u] for u in test["user_id"]]
    metrics = {
        "model": evaluate_rankings(zip(model_ranked, truth), k, len(vocab.items)),
        "most_popular": evaluate_rankings(zip(popular_ranked, truth), k, len(vocab.items)),
    }
    return test, model_ranked, truth, metrics


def served_top(store, model, vocab: Vocabulary, at: dt.datetime, n: int = 20) -> Callable[[list[str]], list]:
    """The model's top ``n`` item ids for users at instant ``at`` (their point-in-time features, as the service
    would read them then); a user without features gets the most popular items, as the service answers."""

    def top(users: list[str]) -> list[list[str]]:
        frame = point_in_time_features(store, pd.DataFrame({"user_id": users, "event_timestamp": pd.Timestamp(at)}))
        known = frame.dropna(subset=["total_interest"])
        ranked = dict(zip(known["user_id"], rank_items(model, vocab, feature_matrix(vocab, known), n)))
        return [ranked.get(user, vocab.popular_items[:n]) for user in users]

    return top


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
    """Train on labels before the test window, evaluate on it against most-popular, register the model."""
    from feast import FeatureStore

    cfg = cfg or load_config()
    seed_everything(cfg["seed"])
    windows = Windows.from_config(dt.datetime.combine(as_of, dt.time(), dt.UTC), cfg)
    data = load_run_data(windows, cfg)
    store = FeatureStore(repo_path=str(settings.feast_repo_path()))
    model, losses, n_train = train_model(store, data, cfg)
    k = cfg["top_k"]
    test, model_ranked, truth, metrics = test_rankings(store, model, data, k)
    summary = {
        "as_of": str(as_of),
        "windows": {name: f"{value:%Y-%m-%d}" for name, value in vars(windows).items()},
        "train_examples": int(n_train),
        "items": len(data.vocab.items),
        "categories": len(data.vocab.categories),
        "final_train_loss": losses[-1] if losses else None,
        "metrics": metrics,
        "harness": compare(
            data.history,
            data.test_events,
            windows.test_start,
            windows.as_of,
            k,
            served_top(store, model, data.vocab, windows.test_start),
        ),
        "decay": decay_parameters_used(),
        "feature_service": FEATURE_SERVICE,
        "git_commit": git_commit(),
        "hyperparameters": cfg,
    }
    out = settings.reports_dir() / str(as_of)
    out.mkdir(parents=True, exist_ok=True)
    plot_training_curve(losses, out / "training_curve.png")
    # The served model must also know the popularity of the latest window for its fallback.
    if len(data.test_events):
        data.vocab.popular_items = most_popular(data.test_events)
    summary["quality"] = (
        recommendation_quality(
            test["user_id"].tolist(),
            model_ranked,
            truth,
            data.labels[["user_id", "item_id"]],
            min(k, len(data.vocab.items)),
            out,
        )
        if len(test)
        else None
    )
    if register:
        register_and_promote(model, data.vocab, summary, test, truth, cfg, out)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary


def register_and_promote(model, vocab: Vocabulary, summary: dict, test, truth, cfg: dict, out: Path) -> None:
    """Into the model store, through the champion gate; the recommendation quality into PostgreSQL."""
    import psycopg

    from interest_decay.monitoring.recsys_quality import record_quality

    summary["model_tag"] = register_model(model, vocab, summary)
    summary["promotion"] = decide_promotion(summary["model_tag"], summary["metrics"], test, truth, cfg)
    if summary["quality"]:
        with psycopg.connect(settings.pg_conninfo()) as conn:
            record_quality(
                conn,
                dt.date.fromisoformat(summary["as_of"]),
                summary["model_tag"],
                summary["quality"],
                out / "quality.html",
            )


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


def decide_promotion(tag: str, metrics: dict, test: pd.DataFrame, truth: list[set], cfg: dict) -> dict:
    """Promote ``tag`` when it beats the champion on this run's test window (the champion is scored
    on the same users and features now), or, with no champion yet, the most-popular baseline."""
    import bentoml

    from models.pipeline import registry
    from models.pipeline.recommender import InterestRecommender

    k, margin = cfg["top_k"], cfg["promotion_margin"]
    metric = f"ndcg@{k}"
    incumbent_tag = registry.champion()
    if incumbent_tag is None:
        promote, why = registry.gate(metrics["model"], metrics["most_popular"], metric, margin)
        incumbent_tag, incumbent = "most_popular", metrics["most_popular"]
    else:
        stored = bentoml.models.get(incumbent_tag)
        old_vocab = Vocabulary.from_json(json.loads(Path(stored.path_of("vocabulary.json")).read_text()))
        old_model = InterestRecommender.load(Path(stored.path))
        ranked = rank_items(old_model, old_vocab, feature_matrix(old_vocab, test), 2 * k)
        incumbent = evaluate_rankings(zip(ranked, truth), k, len(old_vocab.items))
        promote, why = registry.gate(metrics["model"], incumbent, metric, margin)
    if promote:
        registry.promote(tag, why)
    return {
        "promoted": promote,
        "reason": why,
        "incumbent": incumbent_tag,
        "incumbent_metrics": incumbent,
        "champion": registry.champion(),
    }


def register_model(model, vocab: Vocabulary, summary: dict) -> str:
    """Save the model, its vocabulary and its metrics into the BentoML model store; returns the tag."""
    import bentoml

    metadata = {
        "as_of": summary["as_of"],
        "windows": summary["windows"],
        "decay": summary["decay"],
        "feature_service": summary["feature_service"],
        "git_commit": summary["git_commit"],
        "hyperparameters": summary["hyperparameters"],
        "metrics": summary["metrics"],
    }
    with bentoml.models.create(
        settings.model_name(), metadata=metadata, labels={"feature_service": FEATURE_SERVICE}
    ) as bento_model:
        model.save(Path(bento_model.path))
        Path(bento_model.path_of("vocabulary.json")).write_text(json.dumps(vocab.to_json()))
    return str(bento_model.tag)


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
