"""The pipeline's ``fit_decay`` step: fit every kind's decay from the staged events, store it, report it.

Reads the staged events before the run's test window, fits them with :mod:`models.fitting.decay_kinds`, and
replaces the rows of ``params.decay_parameters_fitted`` (which ``int_decay_parameters`` prefers over the
seed's defaults) in one transaction; then fits the repeat-purchase family on the staged purchases
(:mod:`models.fitting.repeat_decay`) into ``params.repeat_parameters_fitted`` (read by ``int_repeat_parameters``). A
fit that fails keeps the stored parameters and says why in the log and the report; the run goes on. Writes
``decay.md``, ``decay.json``, one PNG per fitted kind (``decay_curves/``) and ``repeat_kernels.png`` into the
run's report folder.

CLI: ``python -m models.fitting.fit_decay --as-of YYYY-MM-DD [--mode always|weekly|never]`` fits the staged events
like the DAG's task; ``python -m models.fitting.fit_decay --events PATH [--dataset online-retail] --cutoff ISO`` fits an
events file and writes the report only (see ``--help``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from interest_decay import config as settings
from interest_decay import decay
from models.fitting import repeat_decay, repeat_report
from models.fitting.decay_kinds import TABLE_COLUMNS, fit_kinds
from models.fitting.follow_ups import ANY, FitConfig, FitError, Histograms

TABLE = "params.decay_parameters_fitted"
MODES = ("always", "weekly", "never")
REFIT_DAYS = 7  # mode weekly: refit when the stored fit's cutoff is this many days or more before the run's
log = logging.getLogger(__name__)


def staged_events(conn, schema: str, cutoff: dt.datetime) -> pd.DataFrame:
    """The staged events before ``cutoff`` (user pseudonyms, categories, event types, UTC times)."""
    with conn.cursor() as cur:
        cur.execute(
            f"select user_id, category_id, event_type, event_ts from {schema}.stg_behaviour__events "
            "where event_ts < %s",
            (cutoff,),
        )
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=["user_id", "category_id", "event_type", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


@dataclass(frozen=True)
class Target:
    """A parameters table the step replaces: its name, the columns the fit gives, the key that orders its rows."""

    name: str
    columns: list
    key: list


KINDS = Target(TABLE, TABLE_COLUMNS, ["category_id", "event_type"])
REPEAT = Target("params.repeat_parameters_fitted", repeat_decay.TABLE_COLUMNS, ["item_id"])


def stored_fit(conn, target: Target = KINDS) -> pd.DataFrame:
    """The stored rows of ``target``, in its columns plus ``fit_cutoff``."""
    with conn.cursor() as cur:
        cur.execute(
            f"select {', '.join(target.columns)}, fit_cutoff from {target.name} order by {', '.join(target.key)}"
        )
        return pd.DataFrame(cur.fetchall(), columns=target.columns + ["fit_cutoff"])


def _comparable(table: pd.DataFrame, target: Target) -> list[tuple]:
    frame = table[target.columns + ["fit_cutoff"]].sort_values(target.key)
    return [
        tuple(
            None
            if v is None or (isinstance(v, float) and math.isnan(v))
            else (float(v) if isinstance(v, (float, np.floating)) else (int(v) if isinstance(v, np.integer) else v))
            for v in row
        )
        for row in frame.astype(object).itertuples(index=False)
    ]


def store(
    conn,
    table: pd.DataFrame,
    cutoff: dt.datetime,
    fitted_by: str = "interest_pipeline.fit_decay",
    target: Target = KINDS,
) -> bool:
    """Replace every stored row of ``target`` by ``table`` in one transaction; returns False (and writes nothing)
    when the stored rows already hold the same parameters from the same cutoff, so a re-run of the same interval
    changes nothing (a later cutoff is written even with equal parameters: ``weekly`` counts from it)."""
    if _comparable(stored_fit(conn, target), target) == _comparable(table.assign(fit_cutoff=cutoff.date()), target):
        return False
    columns = target.columns + ["fit_cutoff", "fitted_by"]
    rows = [
        tuple(
            None if isinstance(v, float) and math.isnan(v) else (v.item() if isinstance(v, np.generic) else v)
            for v in row
        )
        + (cutoff.date(), fitted_by)
        for row in table[target.columns].astype(object).itertuples(index=False)
    ]
    with conn.transaction():
        conn.execute(f"lock table {target.name} in exclusive mode")
        conn.execute(f"delete from {target.name}")
        with conn.cursor() as cur:
            cur.executemany(
                f"insert into {target.name} ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))})", rows
            )
    return True


def due(mode: str, stored: pd.DataFrame, cutoff: dt.datetime) -> tuple[bool, str]:
    """Whether this run fits, and why (mode always / weekly / never)."""
    if mode not in MODES:
        raise ValueError(f"fit_decay must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "never":
        return False, "fit_decay = never: the stored parameters are kept"
    last = stored["fit_cutoff"].dropna().max() if len(stored) else None
    if mode == "weekly" and last is not None and (cutoff.date() - last).days < REFIT_DAYS:
        return False, f"fit_decay = weekly: the stored fit (events before {last}) is less than {REFIT_DAYS} days old"
    return True, f"fit_decay = {mode}: fitting on the events before {cutoff:%Y-%m-%d}"


# --- report -------------------------------------------------------------------------------------------------


def _interval(row) -> str:
    if row["no_decay"]:
        return "no decay"
    low, high = row["half_life_low"], row["half_life_high"]
    ci = f" [{low:.3g}, {high:.3g}]" if low == low and high == high else ""
    return f"{row['half_life_days']:.3g}{ci}"


def render(table: pd.DataFrame | None, status: str, cutoff: dt.datetime) -> str:
    """``decay.md``: how the run decided, then the half-life table with intervals."""
    lines = [f"# Fitted decay, events before {cutoff:%Y-%m-%d}", "", status, ""]
    if table is None:
        return "\n".join(lines)
    fitted = table[table["origin"] == "fitted"]
    lines += [
        f"{len(fitted)} of {len(table)} rows fitted on their own events; "
        f"{int(table['no_decay'].sum())} say no decay; the others take a pooled fit (origin).",
        "",
        "Half-life in days with its 95% bootstrap interval over user groups. Follow-ups are a user's later "
        "events in the same category; the family is chosen per row on held-out likelihood.",
        "",
        "| category | event type | family | half-life (days) [95% CI] | anchors | users | origin |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in table.sort_values(["category_id", "event_type"]).iterrows():
        lines.append(
            f"| {row['category_id']} | {row['event_type']} | {row['family']} | {_interval(row)} | "
            f"{int(row['anchors']):,} | {int(row['users']):,} | {row['origin']} |"
        )
    return "\n".join(lines + ["", "Decay curves: `decay_curves/<category>__<event type>.png`", ""])


def plot_kind(row: pd.Series, hist: Histograms, path: Path) -> Path:
    """The fitted multiplier against the measured one: (follow-up rate per bin − background) / α."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    i = hist.kinds.get_loc((row["category_id"], row["event_type"]))
    counts, (exposure, background) = hist.counts[i].sum(0), hist.exposure[i].sum(0)
    middle = np.sqrt(np.maximum(hist.edges[:-1], hist.edges[1] / 2) * hist.edges[1:])
    seen = exposure > 0
    measured = (counts[seen] - row["background_rate"] * background[seen]) / exposure[seen] / row["excess_rate"]
    ages = np.geomspace(hist.edges[1] / 2, hist.edges[-1], 200)
    weights = [float(w) for w in row["period_weights"].split(";")] if isinstance(row["period_weights"], str) else None
    curve = decay.multiplier(
        row["family"],
        ages,
        half_life_days=row["half_life_days"],
        logistic_k=row["logistic_k"],
        logistic_l=row["logistic_l"],
        period_days=row["period_days"],
        period_weights=weights,
    )
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.scatter(middle[seen], measured, s=10, color="grey", label="measured: (rate − background) / excess")
    ax.plot(ages, curve, color="C0", label=f"{row['family']}, {decay.describe_half_life(row['half_life_days'])}")
    ax.set(
        xscale="log",
        xlabel="days after the event",
        ylabel="interest left",
        ylim=(-0.1, 1.3),
        title=f"{'all categories' if row['category_id'] == ANY else 'category ' + str(row['category_id'])}, "
        f"{'all' if row['event_type'] == ANY else row['event_type']} events ({int(row['anchors']):,})",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


@dataclass
class RepeatFit:
    """What the step did with the repeat-purchase family: the fit (None: none or failed), its grid, and why."""

    status: str
    params: repeat_decay.RepeatParameters | None = None
    scores: list | None = None


def write_report(
    out: Path,
    table: pd.DataFrame | None,
    hist: Histograms | None,
    status: str,
    cutoff: dt.datetime,
    repeat: RepeatFit | None = None,
) -> Path:
    """``decay.md``, ``decay.json`` and, after a fit, ``decay_curves/*.png`` (one per row fitted on its own) and
    ``repeat_kernels.png``."""
    out.mkdir(parents=True, exist_ok=True)
    markdown = render(table, status, cutoff)
    summary = {
        "cutoff": cutoff.isoformat(),
        "status": status,
        "rows": [] if table is None else json.loads(table.to_json(orient="records")),
    }
    if repeat is not None:
        markdown += "\n" + (
            repeat_report.render(repeat.params, repeat.scores)
            if repeat.params is not None
            else f"## Repeat-purchase family\n\n{repeat.status}\n"
        )
        summary["repeat"] = {
            "status": repeat.status,
            **(repeat_report.as_json(repeat.params, repeat.scores) if repeat.params is not None else {}),
        }
        if repeat.params is not None:
            repeat_report.plot_kernels(repeat.params, out / "repeat_kernels.png")
    (out / "decay.md").write_text(markdown)
    (out / "decay.json").write_text(json.dumps(summary, indent=2))
    if table is not None and hist is not None:
        curves = out / "decay_curves"
        curves.mkdir(exist_ok=True)
        for _, row in table[table["origin"] == "fitted"].iterrows():
            name = f"{row['category_id']}__{row['event_type']}".replace(ANY, "all").replace("/", "_")
            plot_kind(row, hist, curves / f"{name}.png")
    return out / "decay.md"


# --- the step -----------------------------------------------------------------------------------------------


def staged_purchases(conn, schema: str, cutoff: dt.datetime) -> pd.DataFrame:
    """The staged purchases before ``cutoff`` with their items (what the repeat family is fitted on)."""
    with conn.cursor() as cur:
        cur.execute(
            f"select user_id, item_id, category_id, event_type, event_ts from {schema}.stg_behaviour__events "
            "where event_type = 'purchase' and event_ts < %s",
            (cutoff,),
        )
        frame = pd.DataFrame(cur.fetchall(), columns=["user_id", "item_id", "category_id", "event_type", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.sort_values("ts", kind="stable", ignore_index=True)


def fit_repeat(purchases: pd.DataFrame, cutoff: dt.datetime, conn=None) -> RepeatFit:
    """Fit the repeat family and, with ``conn``, store it; a fit that fails keeps the stored rows."""
    try:
        params, scores = repeat_decay.fit_repeat(purchases, pd.Timestamp(cutoff), repeat_decay.RepeatConfig.load())
    except repeat_decay.RepeatFitError as error:
        return RepeatFit(f"The repeat fit failed, so its stored parameters are kept: {error}.")
    status = f"Repeat family fitted on {len(purchases):,} purchases"
    if conn is not None:
        changed = store(conn, params.table(), cutoff, target=REPEAT)
        status += f": {len(params.bumps) + 1:,} rows stored." if changed else ": the stored rows are the same."
    return RepeatFit(status + ".", params, scores)


def run(as_of: dt.date, cutoff: dt.datetime, mode: str = "always", cfg: FitConfig | None = None) -> dict:
    """Fit (when ``mode`` says so), store and report; a fit that fails keeps the stored parameters."""
    import psycopg

    cfg = cfg or FitConfig.load()
    out = settings.reports_dir() / as_of.isoformat()
    with psycopg.connect(settings.pg_conninfo()) as conn:
        fit, reason = due(mode, stored_fit(conn), cutoff)
        table = hist = repeat = None
        if fit:
            repeat = fit_repeat(staged_purchases(conn, settings.dbt_schema(), cutoff), cutoff, conn)
            log.info("fit_decay: %s", repeat.status)
            events = staged_events(conn, settings.dbt_schema(), cutoff)
            try:
                table, hist = fit_kinds(events, pd.Timestamp(cutoff), cfg)
            except FitError as error:
                reason = f"The fit failed, so the stored parameters are kept: {error}."
            else:
                changed = store(conn, table, cutoff)
                reason += (
                    f" ({len(events):,} events): {len(table)} rows stored."
                    if changed
                    else f" ({len(events):,} events): the stored parameters are the same; nothing written."
                )
        log.info("fit_decay: %s", reason)
    report = write_report(out, table, hist, reason, cutoff, repeat)
    return {
        "fitted": table is not None,
        "reason": reason,
        "report": str(report),
        "rows": 0 if table is None else len(table),
        "repeat_fitted": repeat is not None and repeat.params is not None,
    }


def fit_file(
    paths: list[Path], dataset: str, cutoff: pd.Timestamp | None, out: Path, cfg: FitConfig | None = None
) -> Path:
    """Fit an events file (cleaned as staging does, dataset rules as ``make evaluate``) and write the report;
    the cutoff defaults to the day after the last event."""
    from models.harness.evaluate import read_dataset
    from models.harness.ranking import clean_events

    frame, reasons = read_dataset(paths, dataset)
    events, _ = clean_events(frame, reasons)
    cutoff = cutoff if cutoff is not None else events["ts"].max().floor("D") + pd.Timedelta(days=1)
    table, hist = fit_kinds(events, cutoff, cfg or FitConfig.load())
    files = paths[0].name + (" and more" if len(paths) > 1 else "")
    status = f"Fitted on {files}: {(events['ts'] < cutoff).sum():,} events."
    repeat = fit_repeat(events[events["event_type"] == "purchase"], cutoff.to_pydatetime())
    return write_report(out, table, hist, status, cutoff.to_pydatetime(), repeat)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.fitting.fit_decay", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--as-of", type=dt.date.fromisoformat, help="the run's day, YYYY-MM-DD (fits the staged events)"
    )
    parser.add_argument(
        "--test-days",
        type=int,
        default=7,
        help="days before as_of left out of the fit (the run's test window; default 7)",
    )
    parser.add_argument("--mode", choices=MODES, default="always", help="always (default), weekly or never")
    parser.add_argument("--events", type=Path, nargs="+", help="fit these files instead (report only, nothing stored)")
    parser.add_argument(
        "--dataset",
        choices=("project", "online-retail", "taobao"),
        default="project",
        help="format of --events (default: the project's event schema)",
    )
    parser.add_argument(
        "--cutoff",
        type=pd.Timestamp,
        default=None,
        help="with --events: fit the events before this time (ISO 8601, UTC; default: all)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="with --events: report folder (default $REPORTS_DIR/decay/<stem of the first file>)",
    )
    parser.add_argument(
        "--min-gap-days",
        type=float,
        default=None,
        help="with --events: follow-ups this close count as the same visit (default: decay_kinds.yaml)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.events:
        cutoff = args.cutoff
        if cutoff is not None and cutoff.tzinfo is None:
            cutoff = cutoff.tz_localize("UTC")
        out = args.out or settings.reports_dir() / "decay" / args.events[0].stem
        try:
            overrides = {} if args.min_gap_days is None else {"min_gap_days": args.min_gap_days}
            print(f"report: {fit_file(args.events, args.dataset, cutoff, out, FitConfig.load(**overrides))}")
        except FitError as error:
            raise SystemExit(f"{args.events[0]}: {error}") from None
        return
    if args.as_of is None:
        parser.error("give --as-of (fit the staged events) or --events (fit a file)")
    cutoff = dt.datetime.combine(args.as_of - dt.timedelta(days=args.test_days), dt.time(), dt.UTC)
    result = run(args.as_of, cutoff, args.mode)
    print(f"{result['reason']}\nreport: {result['report']}")


if __name__ == "__main__":
    main()
