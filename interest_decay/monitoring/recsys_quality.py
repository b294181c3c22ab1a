"""Recommendation quality at rank k, computed with Evidently's recsys metrics (Evidently 0.7).

Input: each user's top-k list (``recommendations``), what each user actually did in the labelled
window (``relevant``, the truth) and the training-window interactions (``train_interactions``).
Output: ``quality.html`` (self-contained Evidently report) and ``quality.json`` (``{"summary", "evidently"}``)
in ``out_dir``, and a flat summary dict of floats at rank k.

Who is evaluated: every user who is in ``relevant`` and has recommendations. A user whose relevant
items are all outside the top k is a miss (0 for hit rate, recall, NDCG, MRR, MAP, precision).
Users without recommendations (cold start) and users without relevant items are left out.

How the rows given to Evidently look (``recommendations_type="rank"``): one row per (user, item) with
``rank`` and ``target`` (1 = the user interacted with the item in the labelled window, else 0):

* the user's top-k list (ranks 1..k; longer lists are cut at k), target 1 for the relevant ones;
* one row per relevant item that is *not* in the top k, with ``rank = NOT_RECOMMENDED_RANK``. Evidently
  only counts rows with ``rank <= k`` as recommended, but it needs these rows to know how many items
  are relevant: recall's and NDCG's denominators and MAP's divisor count them. (A NaN rank is not
  possible: Evidently's MRR loop fails on a float rank.)

Metrics (Evidently's definitions, per user, then the mean over evaluated users; R_u = relevant items):

* hit_rate: 1 if any relevant item is in the top k.
* mrr: 1 / rank of the first relevant item in the top k (0 if none).
* recall: |relevant in top k| / |R_u|.
* precision: |relevant in top k| / k (full lists; Evidently divides by min(list length, k)).
* ndcg: DCG@k / IDCG@k, DCG = sum over the top k of rel_i / log2(i + 1), IDCG = sum_{j=1}^{min(|R_u|, k)} 1/log2(j+1)
  (the standard binary-relevance NDCG).
* map: AP@k = (1 / |R_u|) * sum_{i<=k} precision@i * rel_i. Differs from the common
  1 / min(|R_u|, k) normalisation: a user with more than k relevant items cannot reach 1.
* personalization: 1 - mean over user pairs of |L_u ∩ L_v| / k (1 = no two lists share an item).
* popularity_bias_arp: per user, the mean over recommended items of the number of distinct training users
  of the item (items absent from training are skipped, not counted as 0); then the mean over users.
* novelty: per user, the mean over recommended items of -log2(share of training users who interacted with
  the item) (items absent from training are skipped); then the mean over users.
* coverage: share of the items seen in training that are recommended to at least one user.
* gini: Gini coefficient of recommendation counts over the items recommended at least once
  (0 = evenly spread; never-recommended items are not counted). Undefined (None) if one item only.
* diversity (only with ``item_features``): per user, the sum of the pairwise cosine distances of the
  top-k items' feature vectors divided by k (not by the number of pairs k(k-1)/2); mean over users.
* serendipity (only with ``item_features``): per user with a hit who is in training,
  1 - sum_{i in train_u, j in hits_u} (1 - cos_dist(i, j)) / |train_u|; mean over those users.

Novelty, popularity_bias_arp, coverage, gini and serendipity use ``train_interactions`` (Evidently's
``additional_data["current_train_data"]``); they are left out when it is empty.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from interest_decay.monitoring.tables import create_table

# Rank of a relevant item that is not in the top k: far beyond k (not k + 1), so that the HTML report's
# curves (drawn up to max(k, 10)) never show these items as found.
NOT_RECOMMENDED_RANK = 1_000_000_000
# summary key -> Evidently metric class name in snapshot.dict()["metrics"][i]["config"]["type"]
_TOP_K_KEYS = {
    "NDCG": "ndcg",
    "HitRate": "hit_rate",
    "RecallTopK": "recall",
    "PrecisionTopK": "precision",
    "MAP": "map",
    "MRR": "mrr",
}
_SINGLE_KEYS = {
    "Personalization": "personalization",
    "Novelty": "novelty",
    "Diversity": "diversity",
    "Serendipity": "serendipity",
}
_POPULARITY_KEYS = {"arp": "popularity_bias_arp", "coverage": "coverage", "gini": "gini"}


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(frame.columns)}")


def _evaluation_rows(recommendations: pd.DataFrame, relevant: pd.DataFrame, k: int) -> pd.DataFrame:
    """user_id, item_id, rank, target rows for Evidently (see the module docstring), sorted by user and rank."""
    recs = recommendations[["user_id", "item_id", "rank"]].copy()
    rank = recs["rank"]
    if not pd.api.types.is_numeric_dtype(rank) or rank.isna().any() or (rank % 1 != 0).any() or (rank < 1).any():
        raise ValueError("recommendations.rank must be whole numbers >= 1 (1 = first)")
    recs["rank"] = recs["rank"].astype("int64")
    if recs.duplicated(["user_id", "rank"]).any() or recs.duplicated(["user_id", "item_id"]).any():
        raise ValueError("recommendations has a user with a repeated rank or a repeated item")
    recs = recs[recs["rank"] <= k]
    # Evidently's precision, MAP and personalization assume exactly k items per user: with a shorter
    # list MAP repeats the last item's relevance (AP can exceed 1) and personalization can exceed 1.
    lengths = recs.groupby("user_id")["rank"].agg(["size", "max"])
    short = lengths[(lengths["size"] != k) | (lengths["max"] != k)]
    if len(short):
        raise ValueError(
            f"every user needs a full top-{k} list (ranks 1..{k}); {len(short)} user(s) do not, "
            f"e.g. {short.index[0]!r}. Evidently's precision, MAP and personalization assume full lists"
        )

    truth = relevant[["user_id", "item_id"]].drop_duplicates()
    truth = truth[truth["user_id"].isin(recs["user_id"])]
    if truth.empty:
        raise ValueError("no user in relevant has recommendations: nothing to evaluate")
    recs = recs[recs["user_id"].isin(truth["user_id"])]
    rows = recs.merge(truth.assign(target=1), on=["user_id", "item_id"], how="outer")
    rows["target"] = rows["target"].fillna(0).astype("int64")
    rows["rank"] = rows["rank"].fillna(NOT_RECOMMENDED_RANK).astype("int64")
    # Evidently's MAP reads "the last row with rank <= i" per user, so the rows must be in rank order.
    return rows.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)


def _value_at_k(metric: dict, k: int) -> float:
    """The k-th point of a top-k curve in snapshot.dict(): {"rank": {"0": r, ...}, "value": {"0": v, ...}}.

    The curve always starts at rank 1, so the k-th point by rank order is the value at k. The "rank"
    labels themselves are not used: Evidently 0.7.23 labels NDCG's and MRR's points one too high
    (it adds 1 to an index that is already 1-based), while HitRate/Recall/Precision/MAP are right.
    """
    points = sorted(zip(metric["value"]["rank"].values(), metric["value"]["value"].values()))
    if len(points) < k:
        raise RuntimeError(f"{metric['metric_name']}: Evidently returned {len(points)} points, fewer than k={k}")
    return points[k - 1][1]


def _summary(result: dict, k: int, users: int) -> dict:
    """Flat summary from snapshot.dict()["metrics"] (keys read: config.type, config.metric, value)."""
    summary: dict = {"k": k, "users": users}
    for metric in result["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]  # "evidently:metric_v2:NDCG" -> "NDCG"
        if kind in _TOP_K_KEYS:
            key, value = _TOP_K_KEYS[kind], _value_at_k(metric, k)
        elif kind in _SINGLE_KEYS:
            key, value = _SINGLE_KEYS[kind], metric["value"]
        elif kind == "PopularityBiasMetric":
            key, value = _POPULARITY_KEYS[metric["config"]["metric"]], metric["value"]
        else:
            continue
        value = float(value) if value is not None else None
        summary[key] = value if value is not None and math.isfinite(value) else None
    return summary


def recsys_report(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    train_interactions: pd.DataFrame,
    k: int,
    out_dir: Path,
    item_features: pd.DataFrame | None = None,
) -> dict:
    """recommendations: user_id, item_id, rank (1 = first), the top-k list per user;
    relevant: user_id, item_id of what each user actually did in the labelled window (the truth);
    train_interactions: user_id, item_id of the training window (for popularity bias / novelty / coverage).
    item_features (optional): item_id plus numeric feature columns (for diversity / serendipity).

    Runs Evidently's recsys metrics at k, saves out_dir/quality.html (self-contained) and
    out_dir/quality.json, returns a flat summary {"k", "users", "ndcg", "hit_rate", "recall", "precision",
    "map", "mrr", "personalization"[, "novelty", "popularity_bias_arp", "coverage", "gini"]
    [, "diversity"[, "serendipity"]]}: floats at rank k (None where Evidently's value is undefined).
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    _require_columns(recommendations, ("user_id", "item_id", "rank"), "recommendations")
    _require_columns(relevant, ("user_id", "item_id"), "relevant")
    _require_columns(train_interactions, ("user_id", "item_id"), "train_interactions")
    if recommendations.empty:
        raise ValueError("recommendations is empty: nothing to evaluate")
    if relevant.empty:
        raise ValueError("relevant is empty: there is no truth to evaluate against")

    rows = _evaluation_rows(recommendations, relevant, k)
    train = train_interactions[["user_id", "item_id"]].drop_duplicates()
    features: list[str] = []
    if item_features is not None:
        _require_columns(item_features, ("item_id",), "item_features")
        features = [column for column in item_features.columns if column != "item_id"]
        if not features or not all(pd.api.types.is_numeric_dtype(item_features[c]) for c in features):
            raise ValueError("item_features needs item_id plus at least one column, all numeric")
        if item_features["item_id"].duplicated().any():
            raise ValueError("item_features has a repeated item_id")
        needed = set(rows.loc[rows["rank"] <= k, "item_id"]) | set(train["item_id"])
        lacking = needed - set(item_features["item_id"])
        if lacking:
            raise ValueError(
                f"item_features lacks {len(lacking)} recommended/training item(s), e.g. {next(iter(lacking))!r}"
            )
        rows = rows.merge(item_features, on="item_id", how="left")
        train = train.merge(item_features, on="item_id", how="left")

    from evidently import DataDefinition, Dataset, Report
    from evidently.core.datasets import Recsys
    from evidently.metrics.recsys import (
        MAP,
        MRR,
        NDCG,
        Diversity,
        HitRate,
        Novelty,
        Personalization,
        PopularityBiasMetric,
        PrecisionTopK,
        RecallTopK,
        Serendipity,
    )

    has_train = not train.empty
    metrics = [NDCG(k=k), HitRate(k=k), RecallTopK(k=k), PrecisionTopK(k=k), MAP(k=k), MRR(k=k), Personalization(k=k)]
    if has_train:
        metrics += [PopularityBiasMetric(k=k, metric=m) for m in _POPULARITY_KEYS] + [Novelty(k=k)]
    if features:
        metrics.append(Diversity(k=k, item_features=features))
        if has_train:
            metrics.append(Serendipity(k=k, item_features=features))

    definition = DataDefinition(
        numerical_columns=["rank", "target", *features],
        categorical_columns=["user_id", "item_id"],
        ranking=[
            Recsys(
                user_id="user_id", item_id="item_id", target="target", prediction="rank", recommendations_type="rank"
            )
        ],
    )
    snapshot = Report(metrics).run(
        Dataset.from_pandas(rows, data_definition=definition),
        additional_data={"current_train_data": train} if has_train else None,
    )

    result = snapshot.dict()
    summary = _summary(result, k, users=int(rows["user_id"].nunique()))
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out_dir / "quality.html"))
    (out_dir / "quality.json").write_text(json.dumps({"summary": summary, "evidently": result}, indent=2, default=str))
    return summary


QUALITY_DDL = """
create schema if not exists monitoring;
create table if not exists monitoring.quality_runs (
    as_of date not null,
    model text not null,
    k int not null,
    users int not null,
    ndcg float8, hit_rate float8, recall float8, mrr float8, map float8, personalization float8,
    novelty float8, popularity_bias_arp float8, coverage float8, gini float8,
    report_path text not null,
    computed_at timestamptz not null default now(),
    primary key (as_of, model)
)
"""
QUALITY_COLUMNS = (
    "k",
    "users",
    "ndcg",
    "hit_rate",
    "recall",
    "mrr",
    "map",
    "personalization",
    "novelty",
    "popularity_bias_arp",
    "coverage",
    "gini",
)


def record_quality(conn, as_of, model: str, summary: dict, report_path: Path) -> None:
    """Upsert the summary row of one quality check in ``monitoring.quality_runs`` (one per as_of and model)."""
    with conn.transaction(), conn.cursor() as cur:
        create_table(cur, QUALITY_DDL)
        cur.execute("delete from monitoring.quality_runs where as_of = %s and model = %s", (as_of, model))
        cur.execute(
            f"insert into monitoring.quality_runs (as_of, model, {', '.join(QUALITY_COLUMNS)}, report_path) "
            f"values (%s, %s, {', '.join(['%s'] * len(QUALITY_COLUMNS))}, %s)",
            (as_of, model, *(summary.get(c) for c in QUALITY_COLUMNS), str(report_path)),
        )
