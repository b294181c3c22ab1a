"""Champion / challenger over the BentoML model store.

The champion of a model name is the tag the service packages by default. Every promotion appends to
``$BENTOML_HOME/champions.json`` (``{name: [{"tag", "promoted_at", "reason"}, ...]}``, newest last),
so ``rollback`` can restore the previous champion. A challenger is promoted only when it beats the
champion on the *same* test window by the configured margin (``gate``); the first model of a name
is promoted when it beats the most-popular baseline.

CLI (``make rollback``): ``python -m models.pipeline.registry champion|history|rollback [--name NAME]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
from pathlib import Path

from interest_decay import config as settings


def git_commit() -> str:
    """The checkout's commit, recorded with every trained model and report ("unknown" outside git)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=settings.PROJECT_ROOT
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _path() -> Path:
    return settings.bentoml_home() / "champions.json"


def _read() -> dict[str, list[dict]]:
    path = _path()
    return json.loads(path.read_text()) if path.exists() else {}


def _write(history: dict[str, list[dict]]) -> None:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(history, indent=2))
    tmp.replace(path)  # atomic: a reader sees the old or the new file, never half of one


def champion(name: str | None = None) -> str | None:
    """Tag of the current champion of ``name`` (default the recommender), or None."""
    entries = _read().get(name or settings.model_name(), [])
    return entries[-1]["tag"] if entries else None


def history(name: str | None = None) -> list[dict]:
    return list(_read().get(name or settings.model_name(), []))


def promote(tag: str, reason: str, name: str | None = None) -> None:
    data = _read()
    data.setdefault(name or settings.model_name(), []).append(
        {"tag": tag, "promoted_at": dt.datetime.now(dt.UTC).isoformat(), "reason": reason}
    )
    _write(data)


def rollback(name: str | None = None) -> str:
    """Drop the current champion; the previous one is champion again. Returns its tag."""
    name = name or settings.model_name()
    data = _read()
    entries = data.get(name, [])
    if len(entries) < 2:
        raise ValueError(
            f"no previous champion of {name} to roll back to ({len(entries)} promotion(s) recorded in {_path()})"
        )
    entries.pop()
    _write(data)
    return entries[-1]["tag"]


def gate(challenger: dict, incumbent: dict, metric: str, margin: float) -> tuple[bool, str]:
    """Promote when ``challenger[metric] >= incumbent[metric] * (1 + margin)`` and it is > 0.

    Both dicts are metric dicts measured on the same users and window. Returns (promote, why)."""
    new, old = challenger.get(metric), incumbent.get(metric)
    if new is None or old is None:
        return False, f"{metric} missing (challenger {new}, incumbent {old})"
    needed = old * (1 + margin)
    verdict = new > 0 and new >= needed
    relation = ">=" if verdict else "<"
    return verdict, f"{metric} {new:.4f} {relation} {needed:.4f} (incumbent {old:.4f}, margin {margin:+.1%})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.pipeline.registry", description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        choices=["champion", "history", "rollback"],
        help="show the champion, list the promotions, or restore the previous champion",
    )
    parser.add_argument("--name", default=None, help="model name (default $MODEL_NAME, interest_recommender)")
    args = parser.parse_args(argv)
    if args.command == "champion":
        print(champion(args.name) or "no champion yet")
    elif args.command == "history":
        for entry in history(args.name):
            print(f"{entry['promoted_at']}  {entry['tag']}  {entry['reason']}")
    else:
        try:
            print(rollback(args.name))
        except ValueError as error:
            parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()
