"""A training run's test window in the offline harness's protocol (``models.harness.ranking``): the served model and
the champion (their top lists, given) against most-popular, history, history + ties and STAN, fitted through the
same code ``make evaluate`` runs.

Train = the staged events before the test window; relevant = each user's distinct target items (purchases where
the data has any) in the window; users = those with history and a target in the window; full ranking over the
catalogue; NDCG@10 with a paired bootstrap interval of each method against history + ties. Hyperparameters are
``evaluate.yaml``'s fixed ones (no validation grid: a daily run stays cheap); STAN takes its defaults.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from models.harness import baselines, ranking

FLOOR = "history_ties_30d"
SERVED = "served_model"
POPULAR = "popular_30d"
HARNESS_CONFIG = Path(__file__).parents[1] / "harness" / "evaluate.yaml"


def methods() -> dict:
    """Name -> unfitted baseline, with evaluate.yaml's fixed parameters."""
    config = yaml.safe_load(HARNESS_CONFIG.read_text())
    params = {name: (spec or {}).get("params") or {} for name, spec in config["methods"].items()}
    return {
        POPULAR: baselines.PopularRecent(**params[POPULAR]),
        "history": baselines.UserHistory(**params["history"]),
        FLOOR: baselines.HistoryRecentTies(**params[FLOOR]),
        "stan": baselines.STAN(),
    }


def harness_events(staged: pd.DataFrame) -> pd.DataFrame:
    """Staged events (``event_ts``) in the harness's columns (``ts``, ``value``)."""
    return staged.rename(columns={"event_ts": "ts"}).assign(
        ts=lambda f: pd.to_datetime(f["ts"], utc=True), value=np.nan
    )[["user_id", "item_id", "category_id", "event_type", "ts", "value"]]


def compare(
    history: pd.DataFrame,
    test_events: pd.DataFrame,
    test_start,
    test_end,
    k: int = 10,
    measured: Mapping[str, Callable[[list[str]], list[list[str]]]] | None = None,
) -> tuple[dict, dict]:
    """Metrics of each method on the window [test_start, test_end) (staged events before it and in it), NDCG@k
    of each against history + ties with its paired 95% interval; a method that cannot fit says why. ``measured``
    maps names (the served model, the champion) to functions giving top item ids (at least 20) of users at
    ``test_start``: they are measured first. Returns the comparison and the lists behind it: ``users``,
    ``relevant`` (their target items), each measured method's lists and ``popular`` (most-popular's)."""
    events = harness_events(pd.concat([history, test_events], ignore_index=True))
    split = ranking.make_split(events, pd.Timestamp(test_start), pd.Timestamp(test_end), ranking.target_types(events))
    out: dict = {"users": len(split.users), "catalogue": len(split.train.items), "methods": {}}
    users = [str(user) for user in split.users]
    lists: dict = {"users": users, "relevant": split.relevant, "popular": []}
    if not len(split.users):
        out["skipped"] = "no user with history bought anything in the test window"
        return out, {**lists, **{name: [] for name in measured or {}}}
    column = ranking.METRICS.index(f"ndcg@{k}")
    indices = ranking.bootstrap_indices(len(split.users))
    per_user = {}
    for name, top in (measured or {}).items():
        started = time.perf_counter()
        lists[name] = top(users)
        values = np.array([ranking.user_metrics(top, relevant) for top, relevant in zip(lists[name], split.relevant)])
        per_user[name] = values[:, column]
        out["methods"][name] = {
            **{metric: float(values[:, i].mean()) for i, metric in enumerate(ranking.METRICS)},
            "seconds": time.perf_counter() - started,
        }
    for name, ranker in methods().items():
        started = time.perf_counter()
        try:
            result = ranking.evaluate(ranker.fit(split.train), split)
        except ValueError as error:
            out["methods"][name] = {"skipped": str(error)}
            continue
        if name == POPULAR:
            lists["popular"] = [split.train.items[row].tolist() for row in result.top]
        per_user[name] = result.per_user[:, column]
        out["methods"][name] = {
            **{metric: float(result.per_user[:, i].mean()) for i, metric in enumerate(ranking.METRICS)},
            "seconds": time.perf_counter() - started,
        }
    if FLOOR in per_user:
        for name, values in per_user.items():
            gain = ranking.relative_gain(values, per_user[FLOOR], indices)
            out["methods"][name][f"ndcg@{k}_over_{FLOOR}"] = {"ratio": 1 + gain[0], "ci95": [1 + gain[1], 1 + gain[2]]}
    return out, lists


def render(comparison: dict, k: int = 10) -> list[str]:
    """Markdown lines of the comparison for the run's evaluation report."""
    lines = [
        "",
        "## The test window in the harness protocol",
        "",
        f"{comparison['users']} users who bought in the window; catalogue {comparison['catalogue']} items; "
        "relevant = their distinct purchases in it (models/pipeline/comparison.py).",
    ]
    if comparison.get("skipped"):
        return [*lines, "", f"Not measured: {comparison['skipped']}."]
    lines += ["", f"| method | NDCG@{k} | HR@{k} | Recall@20 | × history + ties [95% CI] |", "|---|---|---|---|---|"]
    for name, values in comparison["methods"].items():
        if "skipped" in values:
            lines.append(f"| {name} | not fitted: {values['skipped']} | | | |")
            continue
        ratio = values.get(f"ndcg@{k}_over_{FLOOR}")
        versus = f"{ratio['ratio']:.3f} [{ratio['ci95'][0]:.3f}, {ratio['ci95'][1]:.3f}]" if ratio else "—"
        lines.append(
            f"| {name} | {values[f'ndcg@{k}']:.4f} | {values[f'hr@{k}']:.4f} | {values['recall@20']:.4f} | {versus} |"
        )
    return lines
