"""Models benchmark: training cost and serving-ready inference, fp32 against dynamic int8 quantization.
Writes bench-results/models.json.

- training: seconds per epoch per 1M events of the neural decay model and of the fitted parametric
  decay model, on UCI Online Retail before 2011-11-01 (the evaluation protocol's training set);
- inference: the served model's scoring of one user's candidates (the item ranker, µs, ≥ 1,000 calls) and
  ``full_sort_predict`` of the neural decay model, fp32 against ``torch.ao.quantization.quantize_dynamic``
  (int8 Linear layers), the fp32 call being the floor;
- quality: the neural model's test NDCG@10 (reference protocol) fp32 against int8;
- the item ranker (``models.pipeline.item_ranker``): its test NDCG@10 in the reference protocol against the
  strongest baseline (history, ties by 30-day popularity) fitted in the same run, as a ratio with its paired 95%
  bootstrap interval (goal: 1.10, ``against_goals``), its fit seconds, ``full_sort_predict`` for one user and
  ``rank`` for one user (the function ``/recommend`` calls, from the user's tables to the top 10).

Run: ``make bench BENCHES=models`` (``python -m tests.benchmarks.bench_models``); needs ../shared/data.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tests.benchmarks.stack import RESULTS, log, machine_info, summarize, time_calls, write_result
from tests.conftest import SHARED_DATA

RETAIL = SHARED_DATA / "online_retail" / "online_retail.parquet"
TEST_CUTOFF = pd.Timestamp("2011-11-01", tz="UTC")


def retail_split():
    from models.harness import evaluate, ranking

    frame, reasons = evaluate.read_dataset([RETAIL], "online-retail")
    events, _ = ranking.clean_events(frame, reasons)
    end = events["ts"].max() + pd.Timedelta(seconds=1)
    return ranking.make_split(events, TEST_CUTOFF, end, ranking.target_types(events))


def quantized(model: torch.nn.Module) -> torch.nn.Module:
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear}, dtype=torch.qint8)


def per_call(fn, calls: int) -> dict:
    with torch.no_grad():
        stats = summarize(time_calls(lambda i: fn(), calls))
    return {"p50_us": stats["p50_ms"] * 1000, "p99_us": stats["p99_ms"] * 1000, "calls": calls}


def neural(split, epochs: int, calls: int) -> dict:
    from models.harness import ranking
    from models.harness.sequence import SequenceRanker

    started = time.perf_counter()
    ranker = SequenceRanker({"epochs": epochs, "patience": 0}).fit(split.train)
    seconds = time.perf_counter() - started
    per_million = seconds / epochs / (len(split.train.events) / 1e6)
    fp32 = ranker.model
    int8 = quantized(fp32)
    batch = ranker._windows.batch(np.array([0]))
    quality = {}
    for name, model in (("fp32", fp32), ("int8", int8)):
        ranker.model = model
        result = ranking.evaluate(ranker, split)
        quality[name] = float(result.per_user[:, ranking.METRICS.index("ndcg@10")].mean())
    ranker.model = fp32
    latency = {
        "fp32": per_call(lambda: fp32.full_sort_predict(batch), calls),
        "int8": per_call(lambda: int8.full_sort_predict(batch), calls),
    }
    return {
        "train_events": len(split.train.events),
        "epochs": epochs,
        "fit_seconds": seconds,
        "seconds_per_epoch_per_1m_events": per_million,
        "full_sort_predict_one_user": latency,
        "int8_over_fp32_p50": latency["int8"]["p50_us"] / latency["fp32"]["p50_us"],
        "test_ndcg@10": quality,
        "ndcg_change_int8": quality["int8"] - quality["fp32"],
    }


def parametric(split, epochs: int) -> dict:
    from models.harness.decay_fit import DecayRanker

    started = time.perf_counter()
    DecayRanker(family="exponential", epochs=epochs, polish_steps=0).fit(split.train)
    seconds = time.perf_counter() - started
    return {
        "epochs": epochs,
        "fit_seconds": seconds,
        "seconds_per_epoch_per_1m_events": seconds / epochs / (len(split.train.events) / 1e6),
    }


ITEM_RANKER_GOAL = 1.10  # × the NDCG@10 of history, ties by 30-day popularity (issue: served recommender)


def item_ranker(split, calls: int) -> dict:
    from models.harness import baselines, ranking
    from models.pipeline.item_signals import SIGNALS, assemble_state, signals_at
    from models.pipeline.served_ranker import ItemRankerMethod

    metric = ranking.METRICS.index("ndcg@10")
    floor = ranking.evaluate(baselines.HistoryRecentTies(30, 1e-3).fit(split.train), split).per_user[:, metric]
    started = time.perf_counter()
    ranker = ItemRankerMethod().fit(split.train)
    seconds = time.perf_counter() - started
    ndcg = ranking.evaluate(ranker, split).per_user[:, metric]
    gain = ranking.relative_gain(ndcg, floor, ranking.bootstrap_indices(len(split.users)))
    package, cutoff = ranker.package, split.train.cutoff
    tables = package.user_tables(split.train.events, cutoff, [split.users[0]])
    state = assemble_state(*tables, package.items, package.popular, cutoff, cutoff, package.neighbourhood)
    rows = signals_at(state, cutoff)
    signals = torch.as_tensor(rows[list(SIGNALS)].to_numpy(np.float32))
    columns = torch.as_tensor(package.fallback.index.get_indexer(rows["item_id"]))
    fallback = torch.as_tensor(package.fallback.to_numpy(np.float32))
    where = torch.zeros(len(rows), dtype=torch.long), columns
    latency = per_call(lambda: package.model.full_sort_predict(signals, *where, fallback, 1), calls)
    rank = per_call(lambda: package.rank(*tables, cutoff, cutoff, 10), max(calls // 10, 100))
    return {
        "fit_seconds": seconds,
        "test_ndcg@10": float(ndcg.mean()),
        "floor_history_ties_30d_ndcg@10": float(floor.mean()),
        "ratio": float(ndcg.mean() / floor.mean()),
        "ratio_95ci": [1 + gain[1], 1 + gain[2]],
        "candidates_one_user": len(rows),
        "full_sort_predict_one_user": latency,
        "rank_one_user": rank,
    }


def served_recommender(calls: int) -> dict:
    """The served model (the item ranker) at its served size: 60 candidates of one user, random weights."""
    from models.pipeline.item_ranker import ItemRanker, RankerConfig
    from models.pipeline.item_signals import SIGNALS

    torch.manual_seed(0)
    model = ItemRanker(hidden=RankerConfig.hidden, members=RankerConfig.members).eval()
    x = torch.randn(60, len(SIGNALS))
    int8 = quantized(model)
    latency = {
        "fp32": per_call(lambda: model.predict(x), calls),
        "int8": per_call(lambda: int8.predict(x), calls),
    }
    with torch.no_grad():
        same_top10 = set(torch.topk(model.predict(x), 10).indices.tolist()) == set(
            torch.topk(int8.predict(x), 10).indices.tolist()
        )
    return {
        "shape": {"candidates": 60, "signals": len(SIGNALS), **model.hparams},
        "full_sort_predict_one_user": latency,
        "int8_over_fp32_p50": latency["int8"]["p50_us"] / latency["fp32"]["p50_us"],
        "same_top10_for_a_random_user": same_top10,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_models", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="training epochs timed per model (default 3)")
    parser.add_argument("--calls", type=int, default=2000, help="timed full_sort_predict calls (default 2000)")
    parser.add_argument("--out", type=Path, default=RESULTS / "models.json")
    args = parser.parse_args(argv)
    if not RETAIL.exists():
        raise SystemExit(f"{RETAIL} is absent: this benchmark trains on UCI Online Retail (../shared/data)")
    torch.set_num_threads(2)
    started = time.perf_counter()
    result = {
        "benchmark": "models",
        "command": "make bench BENCHES=models",
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d"),
    }
    log("served recommender: fp32 vs int8")
    result["served_recommender"] = served_recommender(args.calls)
    log("reading Online Retail")
    split = retail_split()
    log("neural decay model: training, fp32 vs int8")
    result["neural_decay"] = neural(split, args.epochs, args.calls)
    log("parametric decay model: training")
    result["parametric_decay"] = parametric(split, args.epochs)
    log("item ranker: training, test NDCG@10 against history + ties")
    result["item_ranker"] = item_ranker(split, args.calls)
    result["against_goals"] = {
        "item_ranker_ndcg_over_history_ties": {
            "measured": result["item_ranker"]["ratio"],
            "ci95": result["item_ranker"]["ratio_95ci"],
            "goal": ITEM_RANKER_GOAL,
            "met": result["item_ranker"]["ratio"] >= ITEM_RANKER_GOAL,
        }
    }
    result["wall_seconds"] = time.perf_counter() - started
    write_result(args.out, result)


if __name__ == "__main__":
    main()
