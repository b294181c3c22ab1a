"""Offline comparison: baselines and the fitted decay model on one events file, under one time split.

CLI: ``python -m models.harness.evaluate --events PATH [PATH ...] [--dataset project|online-retail|taobao|movielens]
[--protocol time|next-basket|loo] [--exclude-seen auto|on|off] [--out DIR] [--cutoff ISO] [--validation-cutoff ISO]
[--seed N] [--methods a,b,...]`` (see ``--help``).

Steps: read (raw datasets through ``interest_decay.events.adapters``) → clean as staging does (drops counted) →
split at the test cutoff T and the validation cutoff V → per task (next item, next category) and method:
fit every grid point on [.., V), score on [V, T), refit the best NDCG@10 on [.., T), score on [T, end] →
``evaluation.md``, ``evaluation.json`` and PNG plots in ``--out``. Nothing is tuned on the test window.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from interest_decay import config as settings
from interest_decay.events import adapters
from interest_decay.events.schema import EventSchemaError
from models.fitting.repeat_decay import RepeatRanker
from models.harness import audiences, baselines, ranking
from models.harness.decay_fit import DecayRanker, bound_flag
from models.harness.evaluate_report import best_of_kind, method_table, table_caption, write_outputs
from models.harness.sequence import SequenceRanker
from models.pipeline.registry import git_commit
from models.pipeline.served_ranker import ItemRankerMethod

DEFAULT_CONFIG = Path(__file__).with_name("evaluate.yaml")
DATASETS = ("project", "online-retail", "taobao", "movielens")


@dataclass(frozen=True)
class Method:
    factory: Callable[..., ranking.Ranker]  # keyword arguments from evaluate.yaml -> an unfitted ranker
    kind: str  # "baseline", "decay" (the fitted decay model), "repeat" (the
    # repeat-purchase family) or "model"
    own_items: bool = False  # ranks only the user's own items (ties aside): not applicable when they are left out
    stops_early: bool = False  # the factory takes exclude_seen: its early stopping ranks as the evaluation does

    def make(self, params: dict, exclude_seen: bool) -> ranking.Ranker:
        """An unfitted ranker of ``params`` (a grid point), told whether the users' own items are left out."""
        return self.factory(**params, **({"exclude_seen": exclude_seen} if self.stops_early else {}))


# Rankers compared, by the name evaluate.yaml configures them under. Register further models here
# and give them a methods entry in evaluate.yaml.
RANKERS: dict[str, Method] = {
    "popular_30d": Method(baselines.PopularRecent, "baseline"),
    "popular_all": Method(baselines.PopularAllTime, "baseline"),
    "history": Method(baselines.UserHistory, "baseline", own_items=True),
    "history_decay": Method(baselines.UserHistory, "baseline", own_items=True),
    "item_knn": Method(baselines.ItemKNN, "baseline"),
    "history_ties_30d": Method(baselines.HistoryRecentTies, "baseline", own_items=True),
    "stan": Method(baselines.STAN, "baseline"),
    "decay_exponential": Method(DecayRanker, "decay"),
    "decay_logistic": Method(DecayRanker, "decay"),
    "decay_period": Method(DecayRanker, "decay"),
    "repeat": Method(RepeatRanker, "repeat", own_items=True),
    "sasrec": Method(SequenceRanker, "baseline", stops_early=True),
    "gru4rec": Method(SequenceRanker, "baseline", stops_early=True),
    "neural_decay": Method(SequenceRanker, "model", stops_early=True),
    "item_ranker": Method(ItemRankerMethod, "model"),
}


def load_config(path: Path = DEFAULT_CONFIG) -> dict:
    return yaml.safe_load(Path(path).read_text())


# --- input --------------------------------------------------------------------------------------------


def read_dataset(paths: list[Path], dataset: str) -> tuple[pd.DataFrame, pd.Series]:
    """Rows in the event schema, and per row a dataset rule's drop reason (null: none), over all ``paths``.

    Online Retail's rule: a line with UnitPrice <= 0 is no sale (the reference protocol drops it); the
    adapter keeps every input row in order, so the price column lines up with its output.
    """
    frames, reasons = [], []
    for path in paths:
        if dataset == "project":
            frame = ranking.read_events(path)
            reason = pd.Series(pd.NA, index=frame.index, dtype="string")
        elif dataset == "online-retail":
            frame = adapters.online_retail(path)
            price = pd.read_parquet(path, columns=["UnitPrice"])["UnitPrice"]
            reason = pd.Series(pd.NA, index=frame.index, dtype="string").mask(
                (price <= 0).to_numpy(), "free line (UnitPrice <= 0, reference protocol)"
            )
        else:
            frame = adapters.ADAPTERS[dataset](path)
            reason = pd.Series(pd.NA, index=frame.index, dtype="string")
        frames.append(frame)
        reasons.append(reason)
    return pd.concat(frames, ignore_index=True), pd.concat(reasons, ignore_index=True)


# --- tuning and testing -----------------------------------------------------------------------------


def grid_points(spec: dict) -> list[dict]:
    """Every combination of ``spec['grid']`` merged over ``spec['params']`` (one point without a grid)."""
    grid = spec.get("grid") or {}
    fixed = spec.get("params") or {}
    return [{**fixed, **dict(zip(grid, values))} for values in itertools.product(*grid.values())]


def tune(method: Method, spec: dict, validation: ranking.Split, exclude_seen: bool = False) -> tuple[dict, list]:
    """The grid point with the best validation NDCG@10 (first of equals), and every point's score."""
    scores = []
    for point in grid_points(spec):
        ranker = method.make(point, exclude_seen).fit(validation.train)
        scores.append((point, ranking.evaluate(ranker, validation, exclude_seen=exclude_seen).mean("ndcg@10")))
    best = max(scores, key=lambda s: s[1])[0]
    return best, scores


def summarise(result: ranking.Result, split: ranking.Split, indices: np.ndarray, categories) -> dict:
    """Means, 95% bootstrap intervals, coverage and diversity of one method's test result."""
    n_items = len(split.train.items)
    out = {}
    for m, metric in enumerate(ranking.METRICS):
        out[metric] = result.mean(metric)
        out[f"{metric}_ci"] = ranking.confidence_interval(result.per_user[:, m], indices)
    out["coverage@10"] = ranking.coverage(result, n_items)
    out["exposure_gini@10"] = ranking.exposure_gini(result, n_items)
    out["category_diversity@10"] = ranking.category_diversity(result, categories) if categories is not None else None
    return out


def task_splits(
    events: pd.DataFrame, types: list[str], protocol: str, cutoffs: tuple, end: pd.Timestamp, cfg: dict
) -> tuple[ranking.Split, ranking.Split]:
    """(validation, test) of one task's events under ``protocol`` (``ranking.PROTOCOLS``): "time" (every target in
    the window after the cutoff), "next-basket" (the first basket after it) or "loo" (leave-one-out by time)."""
    if protocol == "loo":
        return ranking.leave_one_out(events, types, cfg["loo"]["min_interactions"])
    test_cutoff, validation_cutoff = cutoffs
    validation = ranking.make_split(events, validation_cutoff, test_cutoff, types)
    test = ranking.make_split(events, test_cutoff, end, types)
    if protocol == "next-basket":
        validation, test = (ranking.first_baskets(s, events, types) for s in (validation, test))
    return validation, test


def exclude_seen_rule(cfg: dict, repeats: float) -> tuple[bool, str]:
    """Whether to leave each user's own items out of their ranking, and why: ``exclude_seen`` on / off, or auto:
    on when the train repeat rate is below ``auto_exclude_below`` (a log where nobody does the same item twice,
    such as ratings, has nothing to gain from ranking seen items)."""
    setting, floor = cfg.get("exclude_seen", "auto"), cfg.get("auto_exclude_below", 0.01)
    if setting == "auto":
        on = repeats < floor
        return on, f"auto: train repeat rate {repeats:.2%} {'<' if on else '>='} {floor:.0%}"
    return bool(setting), f"set {'on' if setting else 'off'}"


def run_task(
    events: pd.DataFrame,
    target: str,
    cutoffs: tuple,
    end: pd.Timestamp,
    cfg: dict,
    names: list[str],
    protocol: str = "time",
) -> tuple[dict, dict]:
    """Tune, refit and test every method on one task; returns the task summary and the fitted test rankers."""
    from tqdm import tqdm

    task_events = ranking.retarget(events, target)
    types = ranking.target_types(events)
    validation, test = task_splits(task_events, types, protocol, cutoffs, end, cfg)
    if not len(validation.users) or not len(test.users):
        raise ranking.NotEnoughEvents(
            f"the {protocol} protocol leaves no {'validation' if not len(validation.users) else 'test'} user for "
            f"next {target.removesuffix('_id')}"
            + (
                f": every user has fewer than {cfg['loo']['min_interactions']} target events (loo.min_interactions "
                "in the config)"
                if protocol == "loo"
                else ": move the cutoffs (--cutoff, --validation-cutoff) so both windows hold targets"
            )
        )
    indices = ranking.bootstrap_indices(len(test.users), cfg["bootstrap_resamples"], cfg["seed"])
    categories = ranking.item_categories(events, test.train.items) if target == "item_id" else None
    repeats = ranking.repeat_rate(test.train.events, types)
    exclude, why = exclude_seen_rule(cfg, repeats)
    rows, results, fitted, not_applicable = {}, {}, {}, {}
    for name in tqdm(names, desc=f"methods ({target})", unit="method"):
        method, spec = RANKERS[name], cfg["methods"].get(name, {})
        if exclude and method.own_items:
            not_applicable[name] = "ranks the user's own items, which are left out (exclude_seen)"
            continue
        started = time.perf_counter()
        try:
            best, scores = tune(method, spec, validation, exclude)
            ranker = method.make(best, exclude).fit(test.train)
        except ValueError as error:  # a method that can't be fitted on this data says why; the others run
            not_applicable[name] = f"could not be fitted: {error}"
            continue
        results[name] = ranking.evaluate(ranker, test, exclude_seen=exclude)
        fitted[name] = ranker
        rows[name] = {
            "label": ranker.name,
            "kind": method.kind,
            "params": best,
            "tuned": {k: best[k] for k in spec.get("grid") or {}},
            "validation_ndcg@10": max(s for _, s in scores),
            "validation_grid": [{"params": p, "ndcg@10": s} for p, s in scores],
            "seconds": time.perf_counter() - started,
            **summarise(results[name], test, indices, categories),
        }
        if getattr(ranker, "held_out_history", None):  # a sequence model that stopped early on held-out NDCG@10
            rows[name]["training"] = {
                "epochs_run": len(ranker.history),
                "best_epoch": ranker.best_epoch,
                "held_out_ndcg@10": ranker.held_out_history,
            }
    return {
        "target": target,
        "validation": validation.describe(),
        "test": test.describe(),
        "repeat_rate": repeats,
        "exclude_seen": exclude,
        "exclude_seen_reason": why,
        "not_applicable": not_applicable,
        "methods": rows,
        "gains": gains(rows, results, indices),
    }, fitted


def gains(rows: dict, results: dict, indices: np.ndarray) -> list[dict]:
    """Test NDCG@10 gain of every non-baseline method over the best baseline (chosen on validation)."""
    baseline_names = [n for n, r in rows.items() if r["kind"] == "baseline"]
    if not baseline_names:
        return []
    best = max(baseline_names, key=lambda n: rows[n]["validation_ndcg@10"])
    column = ranking.METRICS.index("ndcg@10")
    out = []
    for name, row in rows.items():
        if row["kind"] != "baseline":
            gain, low, high = ranking.relative_gain(
                results[name].per_user[:, column], results[best].per_user[:, column], indices
            )
            out.append({"method": name, "kind": row["kind"], "versus": best, "gain": gain, "ci": [low, high]})
    return out


# --- the run ------------------------------------------------------------------------------------------


def run(
    paths: list[Path],
    dataset: str,
    out: Path,
    cfg: dict,
    names: list[str],
    cutoff: pd.Timestamp | None = None,
    validation_cutoff: pd.Timestamp | None = None,
    protocol: str = "time",
) -> dict:
    """Read, clean, split, compare, write the report; returns the summary written to evaluation.json."""
    import torch

    started = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    for name in names:
        if name in cfg["methods"] and RANKERS[name].kind == "decay":
            cfg["methods"][name].setdefault("params", {})["seed"] = cfg["seed"]
    frame, reasons = read_dataset(paths, dataset)
    events, quality = ranking.clean_events(frame, reasons, cfg["drop_duplicates"])
    ranking.require_events(events, quality)
    split_cfg = cfg["split"]
    default_test, default_validation = ranking.default_cutoffs(
        events, split_cfg["test_fraction"], split_cfg["max_test_days"], split_cfg["max_validation_days"]
    )
    cutoffs = (cutoff or default_test, validation_cutoff or default_validation)
    if not cutoffs[1] < cutoffs[0]:
        raise ValueError(f"validation cutoff {cutoffs[1]} must be before the test cutoff {cutoffs[0]}")
    end = events["ts"].max() + pd.Timedelta(seconds=1)
    tasks, fitted = {}, {}
    for target in cfg["tasks"]:
        tasks[target], fitted[target] = run_task(events, target, cutoffs, end, cfg, names, protocol)
    summary = {
        "inputs": [str(p) for p in paths],
        "dataset": dataset,
        "quality": quality,
        "protocol": protocol,
        "cutoffs": {"test": str(cutoffs[0]), "validation": str(cutoffs[1]), "end": str(end)},
        "target_event_types": ranking.target_types(events),
        "tasks": tasks,
        "seed": cfg["seed"],
        "git_commit": git_commit(),
        "config": cfg,
    }
    decay_models = {n: r for n, r in fitted.get("item_id", {}).items() if RANKERS[n].kind == "decay"}
    summary["fitted_parameters"] = {n: r.half_life_table().to_dict("records") for n, r in decay_models.items()}
    summary["fits_at_a_bound"] = {  # (category, event type) kinds whose half-life ended at a bound of its range
        n: [
            {key: row[key] for key in ("category_id", "event_type")} | {"bound": bound_flag(row["half_life_days"])}
            for row in rows
            if bound_flag(row["half_life_days"])
        ]
        for n, rows in summary["fitted_parameters"].items()
    }
    repeat_models = {n: r for n, r in fitted.get("item_id", {}).items() if RANKERS[n].kind == "repeat"}
    summary["repeat_parameters"] = {n: r.summary() for n, r in repeat_models.items()}
    if protocol != "loo" and "audiences" in cfg:  # who buys after the cutoff: needs the cutoffs of a time split
        spec = cfg["audiences"]
        sizes = [None if n == "all" else int(n) for n in spec["sizes"]]
        summary["audiences"] = audiences.evaluate_audiences(
            events, cutoffs[0], cutoffs[1], sizes, spec["window_days"], spec["half_lives"]
        )
    summary["wall_seconds"] = time.perf_counter() - started
    curves = {n: r for n, r in fitted.get("item_id", {}).items() if getattr(r, "history", None)}
    write_outputs(summary, decay_models, events, out, cfg, curves, repeat_models)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.harness.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--events",
        type=Path,
        nargs="+",
        required=True,
        help="events file(s), concatenated: project schema (CSV/Parquet) or a raw dataset (--dataset)",
    )
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default="project",
        help="how to read --events: project schema (default), or a raw dataset through its adapter",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder (default $REPORTS_DIR/evaluate/<stem of the first file>)"
    )
    parser.add_argument("--cutoff", type=pd.Timestamp, default=None, help="test cutoff T, ISO 8601 (UTC if no zone)")
    parser.add_argument(
        "--validation-cutoff",
        type=pd.Timestamp,
        default=None,
        help="validation cutoff V < T, ISO 8601 (default T − the test window, at most 31 days)",
    )
    parser.add_argument(
        "--protocol",
        choices=ranking.PROTOCOLS,
        default="time",
        help="time: every target in the window after the cutoff (default); next-basket: the user's first basket "
        "after it; loo: leave-one-out by time (last interaction test, the one before validation); "
        "docs/models-and-evaluation.md compares them",
    )
    parser.add_argument(
        "--exclude-seen",
        choices=("auto", "on", "off"),
        default=None,
        help="leave each user's own train items out of their ranking (default: evaluate.yaml's exclude_seen, "
        "auto: on when the train repeat rate is below 1%%)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed (default: evaluate.yaml's)")
    parser.add_argument(
        "--methods", default=None, help=f"comma-separated methods (default all configured): {', '.join(RANKERS)}"
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML of grids and settings")
    parser.add_argument(
        "--write-params",
        action="store_true",
        help="write the best decay model's parameters into params.decay_parameters_fitted (PostgreSQL)",
    )
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    if args.seed is not None:
        cfg["seed"] = args.seed
    if args.exclude_seen is not None:
        cfg["exclude_seen"] = {"auto": "auto", "on": True, "off": False}[args.exclude_seen]
    names = args.methods.split(",") if args.methods else [n for n in cfg["methods"] if n in RANKERS]
    unknown = [n for n in names if n not in RANKERS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(RANKERS)}")
    out = args.out or settings.reports_dir() / "evaluate" / args.events[0].stem
    utc = [t if t is None or t.tzinfo else t.tz_localize("UTC") for t in (args.cutoff, args.validation_cutoff)]
    try:
        summary = run(args.events, args.dataset, out, cfg, names, *utc, protocol=args.protocol)
    except (EventSchemaError, OSError, ranking.NotEnoughEvents) as error:  # a file that is no usable events
        parser.exit(2, f"error: {error}\n")
    if args.write_params:
        write_best_parameters(summary)
    print("\n\n".join(method_table(task, table_caption(summary, task)) for task in summary["tasks"].values()))
    print(f"wrote {out / 'evaluation.md'} ({summary['wall_seconds']:.0f} s)")


def write_best_parameters(summary: dict) -> None:
    """Upsert the parameters of the item task's best decay model (by validation) into PostgreSQL."""
    import psycopg

    from models.harness.decay_fit import write_parameters

    best = best_of_kind(summary["tasks"]["item_id"], "decay")
    if best is None:
        raise SystemExit("--write-params: no decay model was evaluated on the item task")
    with psycopg.connect(settings.pg_conninfo()) as conn:
        n = write_parameters(
            conn, pd.DataFrame(summary["fitted_parameters"][best]), fitted_by=f"models.harness.evaluate:{best}"
        )
    print(f"wrote {n} parameter rows of {best} into params.decay_parameters_fitted")


if __name__ == "__main__":
    main()
