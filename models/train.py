"""Train, evaluate and register the interest recommender: config -> seed -> data -> model -> fit -> evaluate.

CLI: ``python -m models.train --as-of 2026-11-28`` (see ``--help``). Needs the dbt marts built and
Feast applied for that window. Writes metrics.json and training_curve.png under
``$REPORTS_DIR/<as_of>/`` and, unless ``--no-register``, the model into the BentoML model store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from interest_decay import config as settings
from models.data import (
    FEATURE_SERVICE,
    Vocabulary,
    Windows,
    build_vocabulary,
    feature_matrix,
    load_events,
    most_popular,
    point_in_time_features,
)
from models.metrics import evaluate_rankings
from models.registry import git_commit

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


def run(as_of: dt.date, cfg: dict | None = None, register: bool = True, half_life_days: float = 7.0) -> dict:
    """Train on labels before the test window, evaluate on it against most-popular, register the model."""
    import psycopg
    from feast import FeatureStore

    from models.recommender import InterestRecommender

    cfg = cfg or load_config()
    seed_everything(cfg["seed"])
    windows = Windows.from_config(dt.datetime.combine(as_of, dt.time(), dt.UTC), cfg)
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
    store = FeatureStore(repo_path=str(settings.feast_repo_path()))
    entity_df = pd.DataFrame(
        {
            "user_id": labels.user_id.values,
            "item_id": labels.item_id.values,
            "event_timestamp": pd.to_datetime(labels.event_ts.values, utc=True),
        }
    )
    train = point_in_time_features(store, entity_df).dropna(subset=["total_interest"])
    x_train = feature_matrix(vocab, train)
    y_train = train["item_id"].map(vocab.item_index).to_numpy(dtype=np.int64)

    model = InterestRecommender(len(vocab.categories), len(vocab.items), cfg["embedding_dim"], cfg["dropout"])
    losses = fit(model, x_train, y_train, cfg)

    relevant = test_events.groupby("user_id")["item_id"].agg(set)
    test_users = pd.DataFrame({"user_id": relevant.index, "event_timestamp": pd.Timestamp(windows.test_start)})
    test = point_in_time_features(store, test_users).dropna(subset=["total_interest"])
    k = cfg["top_k"]
    model_ranked = rank_items(model, vocab, feature_matrix(vocab, test), 2 * k)
    popular_ranked = [vocab.popular_items[: 2 * k]] * len(test)
    truth = [relevant[u] for u in test["user_id"]]
    metrics = {
        "model": evaluate_rankings(zip(model_ranked, truth), k, len(vocab.items)),
        "most_popular": evaluate_rankings(zip(popular_ranked, truth), k, len(vocab.items)),
    }
    summary = {
        "as_of": str(as_of),
        "windows": {name: f"{value:%Y-%m-%d}" for name, value in vars(windows).items()},
        "train_examples": int(len(y_train)),
        "items": len(vocab.items),
        "categories": len(vocab.categories),
        "final_train_loss": losses[-1] if losses else None,
        "metrics": metrics,
        "decay": {"family": "exponential", "half_life_days": half_life_days},
        "feature_service": FEATURE_SERVICE,
        "git_commit": git_commit(),
        "hyperparameters": cfg,
    }
    out = settings.reports_dir() / str(as_of)
    out.mkdir(parents=True, exist_ok=True)
    plot_training_curve(losses, out / "training_curve.png")
    # The served model must also know the popularity of the latest window for its fallback.
    if len(test_events):
        vocab.popular_items = most_popular(test_events)
    summary["quality"] = (
        recommendation_quality(
            test["user_id"].tolist(), model_ranked, truth, labels[["user_id", "item_id"]], min(k, len(vocab.items)), out
        )
        if len(test)
        else None
    )
    if register:
        summary["model_tag"] = register_model(model, vocab, summary)
        summary["promotion"] = decide_promotion(summary["model_tag"], metrics, test, truth, cfg)
        from interest_decay.monitoring.recsys_quality import record_quality

        if summary["quality"]:
            with psycopg.connect(settings.pg_conninfo()) as conn:
                record_quality(conn, as_of, summary["model_tag"], summary["quality"], out / "quality.html")
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary


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

    from models import registry
    from models.recommender import InterestRecommender

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


CHURN_MODEL_NAME = "churn_model"
STAGED_EVENT_COLUMNS = ("user_id", "item_id", "category_id", "event_type", "event_ts", "value")


def staged_events(before: dt.datetime) -> pd.DataFrame:
    """All staged events before ``before`` in the columns of the churn model (``ts``, ``value``)."""
    import psycopg

    with psycopg.connect(settings.pg_conninfo()) as conn, conn.cursor() as cur:
        cur.execute(
            f"select {', '.join(STAGED_EVENT_COLUMNS)} "
            f"from {settings.dbt_schema()}.stg_behaviour__events where event_ts < %s",
            (before,),
        )
        return staged_frame(cur.fetchall())


def staged_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of ``STAGED_EVENT_COLUMNS`` as the event frame the churn model reads, sorted by ``ts``."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type", "ts", "value"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["value"] = frame["value"].astype(float)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def train_churn(as_of: dt.date, horizon_days: int, register: bool = True, seed: int = 0) -> dict:
    """Churn-risk model for ``as_of``: compared with the recency-frequency baseline at cutoff
    ``as_of - horizon`` (trained one horizon earlier), then refit on the latest labels
    (features before ``as_of - horizon``, purchases in the horizon after) and registered."""
    from models import churn

    end = dt.datetime.combine(as_of, dt.time(), dt.UTC)
    events = staged_events(end)
    cutoff = pd.Timestamp(end) - pd.Timedelta(days=horizon_days)
    comparison = churn.compare_churn(
        events, cutoff=cutoff, horizon_days=horizon_days, seed=seed, observed_until=pd.Timestamp(end)
    )
    cfg = comparison["config"]
    features, churned = churn.churn_dataset(events, cutoff, horizon_days, cfg["half_lives_days"], pd.Timestamp(end))
    model, _ = churn.fit_model(features, churned, cfg, seed)
    out = settings.reports_dir() / str(as_of)
    out.mkdir(parents=True, exist_ok=True)
    (out / "churn.json").write_text(json.dumps({k: v for k, v in comparison.items() if k != "curves"}, indent=2))
    churn.plot_churn(comparison, out)
    summary = {
        "as_of": str(as_of),
        "horizon_days": horizon_days,
        "metrics": comparison["metrics"],
        "roc_auc_difference": comparison["roc_auc_difference"],
        "train_users": int(len(churned)),
        "report": str(out / "churn.json"),
    }
    if register:
        import bentoml

        metadata = {
            "as_of": str(as_of),
            "horizon_days": horizon_days,
            "train_cutoff": cutoff.isoformat(),
            "metrics": comparison["metrics"],
            "git_commit": git_commit(),
            "hyperparameters": cfg,
        }
        with bentoml.models.create(CHURN_MODEL_NAME, metadata=metadata) as bento_model:
            model.save(Path(bento_model.path))
        summary["model_tag"] = str(bento_model.tag)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--as-of", type=dt.date.fromisoformat, required=True, help="UTC day the run is as of, YYYY-MM-DD"
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="hyperparameter YAML (default models/config.yaml)"
    )
    parser.add_argument(
        "--half-life-days",
        type=float,
        default=7.0,
        help="half-life the features were computed with (dbt var half_life_days; default 7)",
    )
    parser.add_argument("--no-register", action="store_true", help="do not save the model to the BentoML model store")
    args = parser.parse_args(argv)
    summary = run(
        args.as_of, load_config(args.config), register=not args.no_register, half_life_days=args.half_life_days
    )
    print(json.dumps({"metrics": summary["metrics"], "model_tag": summary.get("model_tag")}, indent=2))


if __name__ == "__main__":
    main()
