"""Churn risk: will a user buy nothing in the next ``horizon_days``? A small MLP on decayed activity
features, compared with a recency-frequency logistic regression and the classic BG/NBD and Pareto/NBD models
(``models.pipeline.btyd``: expected purchases in the horizon, Platt-scaled on the training labels) and
gradient-boosted trees on the same features plus overdue-ness and interest trend (``models.pipeline.churn_gbt``,
isotonic-calibrated).

**Label** (the semantics of the mart ``user_activity``): at a cutoff T, every user with at least one
event before T is in the population; ``churned`` is true when the user has no purchase in
[T, T + horizon). As in the mart, the label is unknown (here: an error) when T + horizon lies after the
latest event of the data. One difference: the mart's cutoffs are UTC midnights (its ``as_of`` days);
here T is any instant, and the default T is the latest event minus the horizon, floored to midnight,
so it is also a day the mart could have. Cleaning applies staging's rules (``interest_decay.events.rules``):
each dropped row is counted under the rule that failed first; exact duplicates are dropped too.

**Features** at T, from the events before T only (``user_features``): decayed counts per event type
(``sum 0.5^(age / h)`` for each half-life h), days since the last event and the last purchase, event
and purchase counts, purchase occasions (distinct purchase instants: one invoice), monetary value (sum
of purchase values: the quantity for Online Retail), tenure, distinct items and categories, and mean /
standard deviation of the gaps between purchase occasions. The model sees them as sign(x)·log(1 + |x|),
standardised with the training users' mean and deviation.

**Evaluation** (``compare_churn``): train on labels at T_train = T - horizon (features before T_train,
labels in [T_train, T)), test at T (features before T, labels in [T, T + horizon)), so no test label is
seen in training. ROC-AUC, PR-AUC (average precision) and Brier score with percentile CIs from a
user-level bootstrap of the test users, and the paired-bootstrap CI of the AUC difference.

CLI: ``python -m models.pipeline.churn --events PATH [--dataset online-retail|taobao] [--horizon-days N] [--out DIR]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from tqdm import tqdm

from interest_decay import config as settings
from models.pipeline import btyd
from models.pipeline.churn_data import (  # noqa: F401 (re-exported)
    DAY,
    STAGED_EVENT_COLUMNS,
    churn_dataset,
    churn_labels,
    clean_events,
    staged_events,
    staged_frame,
    user_features,
)
from models.pipeline.churn_evaluation import bootstrap, curves, plot_churn
from models.pipeline.churn_gbt import fit_gbt
from models.pipeline.persistence import Persisted
from models.pipeline.registry import git_commit

DEFAULT_CONFIG = Path(__file__).with_name("churn.yaml")


def load_config(path: Path = DEFAULT_CONFIG, overrides: dict | None = None) -> dict:
    """churn.yaml, plus ``half_lives_days`` from dbt's var churn_half_lives_days, then ``overrides``."""
    cfg = yaml.safe_load(Path(path).read_text())
    cfg["half_lives_days"] = list(settings.dbt_vars()["churn_half_lives_days"])
    cfg.update(overrides or {})
    return cfg


def default_horizon_days() -> int:
    """dbt's var churn_horizon_days: the horizon of the mart's labels, the DAG's default and the CLI's."""
    return int(settings.dbt_vars()["churn_horizon_days"])


# --- models ---------------------------------------------------------------------------------------


class ChurnModel(Persisted, nn.Module):
    """MLP from raw user features ``[B, F]`` to the log-odds of churn ``[B]``.

    The input transform (signed log1p, then standardisation with the buffers ``feature_mean`` /
    ``feature_std``, set from training data by ``fit_standardisation``) lives inside the model, so
    ``save`` / ``load`` (hparams JSON + state_dict, buffers included) carry everything ``predict`` needs.
    ``predict`` is Platt-calibrated: sigmoid(``platt_scale`` · logit + ``platt_bias``), the two fitted on users
    held out of training (``fit_platt``; 1 and 0, i.e. the raw sigmoid, until then).
    Churn has no items: ``full_sort_predict`` returns the one churn probability per user.
    """

    def __init__(self, feature_names: list[str], hidden_dims: list[int] = (32, 16), dropout: float = 0.1):
        super().__init__()
        self.hparams = {"feature_names": list(feature_names), "hidden_dims": list(hidden_dims), "dropout": dropout}
        n_features = len(feature_names)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))
        self.register_buffer("platt_scale", torch.tensor(1.0))
        self.register_buffer("platt_bias", torch.tensor(0.0))
        layers, width = [], n_features
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.layers = nn.Sequential(*layers, nn.Linear(width, 1))

    @staticmethod
    def transform(x: torch.Tensor) -> torch.Tensor:
        """sign(x)·log(1 + |x|): tames the heavy tails of counts, days and money."""
        return torch.sign(x) * torch.log1p(x.abs())

    def fit_standardisation(self, x: torch.Tensor) -> None:
        transformed = self.transform(x)
        self.feature_mean.copy_(transformed.mean(0))
        std = transformed.std(0, unbiased=False)
        self.feature_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))  # constant feature: centred only

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input ``[B, F]``: transformed raw features, standardised (0 = the training mean)."""
        return (self.transform(x) - self.feature_mean) / self.feature_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.standardised(x)).squeeze(-1)

    def calibrated(self, logits: torch.Tensor) -> torch.Tensor:
        """Churn probabilities from the network's logits (Platt scaling)."""
        return torch.sigmoid(self.platt_scale * logits + self.platt_bias)

    @torch.no_grad()
    def fit_platt(self, x: torch.Tensor, churned: torch.Tensor) -> None:
        """Fit the Platt scale and bias on held-out users ``x`` / ``churned`` (1-D logistic regression of the
        labels on the logits, with scikit-learn's default L2 penalty, which keeps a small or separable held-out set
        from an unbounded scale); a held-out set of one class leaves them as they are."""
        if churned.min() == churned.max():
            return
        logits = self.forward(x).numpy().astype(float).reshape(-1, 1)
        fitted = LogisticRegression().fit(logits, churned.numpy())
        self.platt_scale.fill_(float(fitted.coef_[0, 0]))
        self.platt_bias.fill_(float(fitted.intercept_[0]))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Models saved before Platt scaling load with the raw sigmoid."""
        defaults = {"platt_scale": torch.tensor(1.0), "platt_bias": torch.tensor(0.0)}
        return super().load_state_dict({**defaults, **state_dict}, strict, assign)

    def calculate_loss(self, x: torch.Tensor, churned: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of the labels ``[B]`` (1 = churned)."""
        return nn.functional.binary_cross_entropy_with_logits(self.forward(x), churned.float())

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated churn probability ``[B]``."""
        return self.calibrated(self.forward(x))

    def full_sort_predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(x)


def feature_tensor(features: pd.DataFrame, feature_names: list[str]) -> torch.Tensor:
    return torch.from_numpy(features[feature_names].to_numpy(dtype=np.float32))


def fit_model(features: pd.DataFrame, churned: pd.Series, cfg: dict, seed: int) -> tuple[ChurnModel, list[float]]:
    """Adam on BCE over the training users but a held-out share (``calibration_share``, stratified by label),
    on which the Platt scaling is then fitted; returns the model (eval mode) and each epoch's mean loss.

    Runs on one CPU thread: batches of ~100 users x ~30 features gain nothing from intra-op threads,
    and on a busy machine the extra threads only wait (measured 14x slower with 2 threads under load).
    """
    held_out = calibration_users(churned, cfg["calibration_share"], seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, losses = _fit(features[~held_out], churned[~held_out], cfg, seed)
        if held_out.any():
            names = model.hparams["feature_names"]
            labels = torch.from_numpy(churned[held_out].to_numpy(np.float32))
            model.fit_platt(feature_tensor(features[held_out], names), labels)
        return model, losses
    finally:
        torch.set_num_threads(threads)


def calibration_users(churned: pd.Series, share: float, seed: int) -> np.ndarray:
    """Mask of the users held out for calibration: ``share`` of each label's users, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(churned), dtype=bool)
    for label in (False, True):
        where = np.flatnonzero(churned.to_numpy() == label)
        mask[rng.choice(where, int(round(share * len(where))), replace=False)] = True
    return mask


def _fit(features: pd.DataFrame, churned: pd.Series, cfg: dict, seed: int) -> tuple[ChurnModel, list[float]]:
    torch.manual_seed(seed)
    model = ChurnModel(list(features.columns), cfg["hidden_dims"], cfg["dropout"])
    x, y = feature_tensor(features, model.hparams["feature_names"]), torch.from_numpy(churned.to_numpy(np.float32))
    model.fit_standardisation(x)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in tqdm(range(cfg["epochs"]), desc="churn model", unit="epoch"):
        order, total = torch.randperm(len(y), generator=generator), 0.0
        for start in range(0, len(order), cfg["batch_size"]):
            batch = order[start : start + cfg["batch_size"]]
            loss = model.calculate_loss(x[batch], y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        losses.append(total / len(y))
    return model.eval(), losses


def model_probabilities(model: ChurnModel, features: pd.DataFrame) -> np.ndarray:
    with torch.no_grad():
        return model.predict(feature_tensor(features, model.hparams["feature_names"])).numpy().astype(float)


def baseline_inputs(features: pd.DataFrame) -> np.ndarray:
    """The recency-frequency baseline's inputs ``[B, 2]``: days since the last event, log(1 + event count)."""
    return np.column_stack([features["recency_days"], np.log1p(features["event_count"])])


def fit_baseline(features: pd.DataFrame, churned: pd.Series):
    """Standardised logistic regression on recency and log frequency (scikit-learn)."""
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(baseline_inputs(features), churned.to_numpy())


# --- evaluation (the metrics, intervals and plot: models/pipeline/churn_evaluation.py) ----------------------


def default_cutoff(events: pd.DataFrame, horizon_days: float) -> pd.Timestamp:
    """The latest midnight whose horizon the data covers: floor(last event - horizon)."""
    return (events["ts"].max() - horizon_days * DAY).floor("D")


def compare_churn(
    events: pd.DataFrame,
    cutoff: pd.Timestamp | None = None,
    horizon_days: int | None = None,
    seed: int = 0,
    config: dict | None = None,
    observed_until: pd.Timestamp | None = None,
) -> dict:
    """Train the churn model and the baseline at ``cutoff - horizon``, test both at ``cutoff``.

    ``events`` are clean events (``clean_events``); ``config`` overrides keys of ``churn.yaml``.
    Returns a JSON-serialisable summary: windows, users, churn rates, metrics with CIs, AUC difference,
    training seconds, loss history and the curves ``plot_churn`` draws.
    """
    cfg = load_config(overrides=config)
    horizon_days = default_horizon_days() if horizon_days is None else horizon_days
    cutoff = pd.Timestamp(cutoff) if cutoff is not None else default_cutoff(events, horizon_days)
    train_cutoff = cutoff - horizon_days * DAY
    history = (train_cutoff - events["ts"].min()) / DAY
    if history < horizon_days:  # the training users' features need at least one horizon of past behaviour
        raise ValueError(
            f"the training cutoff {train_cutoff:%Y-%m-%d} (test cutoff − horizon) has {max(history, 0):.0f} days of "
            f"events before it; churn needs at least the horizon ({horizon_days} days): move the cutoff later or "
            "shorten the horizon"
        )
    x_train, y_train = churn_dataset(events, train_cutoff, horizon_days, cfg["half_lives_days"])
    x_test, y_test = churn_dataset(events, cutoff, horizon_days, cfg["half_lives_days"], observed_until)
    for name, labels in (("training", y_train), ("test", y_test)):
        if labels.nunique() < 2:
            raise ValueError(f"the {name} users at this cutoff are all one class; churn cannot be learned or scored")

    started = time.perf_counter()
    model, losses = fit_model(x_train, y_train, cfg, seed)
    model_seconds = time.perf_counter() - started
    started = time.perf_counter()
    baseline = fit_baseline(x_train, y_train)
    baseline_seconds = time.perf_counter() - started

    y = y_test.to_numpy(dtype=float)
    probabilities = {
        "model": model_probabilities(model, x_test),
        "baseline": baseline.predict_proba(baseline_inputs(x_test))[:, 1],
    }
    classic, not_applicable, seconds = {}, {}, {"model": model_seconds, "baseline": baseline_seconds}
    started = time.perf_counter()
    try:  # gradient-boosted trees on the features and the decay science, isotonic-calibrated
        trees = fit_gbt(x_train, y_train, seed)
        probabilities["gbt"] = trees.predict_proba(x_test)
        seconds["gbt"] = time.perf_counter() - started
    except ValueError as error:
        not_applicable["gbt"] = str(error)
    for name in btyd.MODELS:  # BG/NBD and Pareto/NBD: expected purchases in the horizon, Platt-scaled on training
        started = time.perf_counter()
        try:
            probabilities[name], classic[name] = btyd.churn_probabilities(
                name, events, train_cutoff, y_train, cutoff, y_test.index, horizon_days
            )
        except ValueError as error:  # e.g. nobody with a repeat purchase: said, the others are compared
            not_applicable[name] = str(error)
            continue
        seconds[name] = time.perf_counter() - started
    return {
        "horizon_days": horizon_days,
        "train_cutoff": train_cutoff.isoformat(),
        "test_cutoff": cutoff.isoformat(),
        "train_users": len(y_train),
        "test_users": len(y_test),
        "train_churn_rate": float(y_train.mean()),
        "test_churn_rate": float(y.mean()),
        "features": model.hparams["feature_names"],
        **bootstrap(y, probabilities, cfg["bootstrap_resamples"], cfg["ci_level"], seed),
        "ci_level": cfg["ci_level"],
        "train_seconds": seconds,
        "classic_models": classic,
        "not_applicable": not_applicable,
        "loss_history": losses,
        "config": cfg,
        "seed": seed,
        "curves": curves(y, probabilities, cfg["calibration_bins"]),
    }


# --- the pipeline's train_churn step ------------------------------------------------------------


CHURN_MODEL_NAME = "churn_model"


def train_churn(as_of: dt.date, horizon_days: int, register: bool = True, seed: int = 0) -> dict:
    """Churn-risk model for ``as_of``: compared with the recency-frequency baseline at cutoff
    ``as_of - horizon`` (trained one horizon earlier), then refit on the latest labels
    (features before ``as_of - horizon``, purchases in the horizon after) and registered."""
    end = dt.datetime.combine(as_of, dt.time(), dt.UTC)
    events = staged_events(end)
    cutoff = pd.Timestamp(end) - pd.Timedelta(days=horizon_days)
    comparison = compare_churn(
        events, cutoff=cutoff, horizon_days=horizon_days, seed=seed, observed_until=pd.Timestamp(end)
    )
    cfg = comparison["config"]
    features, churned = churn_dataset(events, cutoff, horizon_days, cfg["half_lives_days"], pd.Timestamp(end))
    model, _ = fit_model(features, churned, cfg, seed)
    out = settings.reports_dir() / str(as_of)
    out.mkdir(parents=True, exist_ok=True)
    (out / "churn.json").write_text(json.dumps({k: v for k, v in comparison.items() if k != "curves"}, indent=2))
    plot_churn(comparison, out)
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


# --- CLI ------------------------------------------------------------------------------------------


def churn_table(result: dict) -> str:
    """The comparison as a text table: every method's metrics (ROC-AUC with its CI and its paired difference to the
    recency-frequency baseline)."""
    rows = [
        f"{'method':<11}{'ROC-AUC [95% CI]':<22}{'vs baseline [CI]':<24}{'PR-AUC':>7}{'Brier':>7}{'ECE':>7}"
        f"{'lift10%':>8}{'capt10%':>8}{'lift5%':>7}{'capt5%':>7}"
    ]
    for name, m in result["metrics"].items():
        auc = m["roc_auc"]
        diff = result["roc_auc_differences"].get(name)
        versus = f"{diff['value']:+.3f} [{diff['ci'][0]:+.3f}, {diff['ci'][1]:+.3f}]" if diff else "—"
        rows.append(
            f"{name:<11}{auc['value']:.3f} [{auc['ci'][0]:.3f}, {auc['ci'][1]:.3f}]    {versus:<24}"
            f"{m['pr_auc']['value']:>7.3f}{m['brier']['value']:>7.3f}{m['ece']['value']:>7.3f}"
            f"{m['lift_top10']['value']:>8.2f}{m['capture_top10']['value']:>8.3f}"
            f"{m['lift_top5']['value']:>7.2f}{m['capture_top5']['value']:>7.3f}"
        )
    return "\n".join(rows)


def read_events(paths: list[Path], dataset: str | None) -> pd.DataFrame:
    """Events from project-schema CSV / Parquet files, or raw dataset files through their adapter."""
    if dataset:
        from interest_decay.events.adapters import ADAPTERS

        return pd.concat([ADAPTERS[dataset](path) for path in paths], ignore_index=True)
    from models.harness.ranking import read_events as read_file

    return pd.concat([read_file(path) for path in paths], ignore_index=True)


def main(argv: list[str] | None = None) -> None:
    from interest_decay.config import reports_dir
    from interest_decay.events.adapters import ADAPTERS

    parser = argparse.ArgumentParser(
        prog="python -m models.pipeline.churn",
        description=(
            "Train the churn-risk model and the recency-frequency baseline at cutoff - horizon, test both at the "
            "cutoff; write churn.json and churn.png."
        ),
    )
    parser.add_argument(
        "--events",
        type=Path,
        nargs="+",
        required=True,
        help="events file(s): project schema (.csv/.parquet), or raw files of --dataset",
    )
    parser.add_argument(
        "--dataset",
        choices=sorted(ADAPTERS),
        default=None,
        help="read the raw dataset through interest_decay.events.adapters (default: project schema)",
    )
    parser.add_argument(
        "--horizon-days",
        type=int,
        default=default_horizon_days(),
        help=f"churn horizon in days (default {default_horizon_days()}: dbt var churn_horizon_days)",
    )
    parser.add_argument(
        "--cutoff",
        type=pd.Timestamp,
        default=None,
        help="test cutoff, ISO 8601 UTC (default: midnight before the last event - horizon)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of training and bootstrap (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default $REPORTS_DIR/churn)")
    args = parser.parse_args(argv)

    from interest_decay.events.schema import EventSchemaError

    try:
        events, dropped = clean_events(read_events(args.events, args.dataset))
    except (EventSchemaError, OSError) as error:  # a file that is no usable events: one sentence, no traceback
        parser.exit(2, f"error: {error}\n")
    print(f"{len(events):,} clean events; dropped {dropped}")
    cutoff = args.cutoff.tz_localize("UTC") if args.cutoff is not None and args.cutoff.tz is None else args.cutoff
    try:
        result = compare_churn(events, cutoff, args.horizon_days, args.seed) | {"dropped_rows": dropped}
    except ValueError as error:  # too little history, a label window past the data, one class: one sentence
        parser.exit(2, f"error: {error}\n")
    out = args.out or reports_dir() / "churn"
    plot = plot_churn(result, out)
    (out / "churn.json").write_text(json.dumps(result, indent=2))
    print(f"test users {result['test_users']:,} at {result['test_cutoff']}, churn rate {result['test_churn_rate']:.3f}")
    print(churn_table(result))
    print(f"wrote {out / 'churn.json'} and {plot}")


if __name__ == "__main__":
    main()
