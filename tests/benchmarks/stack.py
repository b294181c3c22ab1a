"""Shared pieces of the benchmarks: timing and percentiles, machine info, an isolated stack (own database,
temp state dir) built from synthetic data, and background processes that are always stopped by
process group."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from interest_decay import config as settings
from tests.conftest import PROJECT_ROOT, recreate_database, stack_env

BIN = Path(sys.executable).parent
RESULTS = PROJECT_ROOT / "bench-results"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_info() -> dict:
    info = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }
    try:
        models = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        info["cpu_model"] = models[0] if models else None
        mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        info["memory_gib"] = round(int(mem.split()[1]) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    return info


def summarize(seconds: list[float] | np.ndarray) -> dict:
    """Latency summary in milliseconds."""
    ms = np.asarray(seconds, dtype=float) * 1000.0
    return {
        "calls": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


def time_calls(fn: Callable[[int], object], calls: int, warmup: int = 50) -> list[float]:
    """Durations (s) of ``fn(i)`` for i in range(calls), after ``warmup`` untimed calls."""
    for i in range(warmup):
        fn(i)
    durations = []
    clock = time.perf_counter
    for i in range(calls):
        start = clock()
        fn(i)
        durations.append(clock() - start)
    return durations


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def write_result(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {path}")


def dbt(env: dict, *args: str) -> None:
    run = subprocess.run(
        [str(BIN / "dbt"), *args],
        cwd=PROJECT_ROOT / "dbt_project",
        env=settings.with_pseudonym_key_option(env),
        capture_output=True,
        text=True,
    )
    if run.returncode:
        raise RuntimeError(f"dbt {' '.join(args)} failed:\n{run.stdout[-4000:]}")


def build_feature_stack(
    work: Path, database: str, *, events: int, users: int, end: dt.datetime, seed: int = 0
) -> tuple[dict, str]:
    """Database ``database`` (recreated) with ``events`` synthetic events ingested and dbt run for the day
    ``end``, and a Feast registry applied in ``work/state``. Returns (environment, conninfo)."""
    from interest_decay.events.ingest import ingest
    from interest_decay.events.synthetic import generate, write_events

    conninfo = recreate_database(database)
    env = stack_env(work / "state", database)
    log(f"generating {events:,} events of {users:,} users, ending {end:%Y-%m-%d}")
    path = write_events(generate(events, n_users=users, end=end, seed=seed), work / "events.csv")
    log("ingest")
    ingest([path], conninfo)
    log("dbt seed + run of the marts behind the feature views")
    dbt(env, "seed")
    day = f"{end:%Y-%m-%d}"
    dbt(
        env,
        "run",
        "--select",
        "+user_interest_features",
        "+churn_features",
        "+item_popularity",
        "--vars",
        f'{{as_of: "{day}", as_of_start: "{day}"}}',
    )
    log("feast apply")
    run = subprocess.run(
        [str(BIN / "feast"), "-c", str(PROJECT_ROOT / "feature_repo"), "apply"], env=env, capture_output=True, text=True
    )
    if run.returncode:
        raise RuntimeError(f"feast apply failed:\n{(run.stdout + run.stderr)[-4000:]}")
    return env, conninfo


class Replicas:
    """``make serve REPLICAS=n`` (``infra/services.sh serve`` with ``SERVE_REPLICAS``): n one-worker ``bentoml
    serve`` processes behind nginx on ``port``. For ``load_level`` it is what ``Background`` is: ``group_pids``
    (nginx and every replica with their children) and ``stop``."""

    def __init__(self, env: dict, replicas: int, port: int, log_path: Path):
        self.env = {**env, "SERVE_REPLICAS": str(replicas), "SERVE_PORT": str(port)}
        self.args = ["infra/services.sh", "serve", f"SERVE_REPLICAS={replicas}"]
        self.run_dir = Path(env["DECAY_STATE_DIR"]) / "run"
        started = time.monotonic()
        run = subprocess.run(
            [str(PROJECT_ROOT / "infra" / "services.sh"), "serve"],
            env=self.env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        log_path.write_text(run.stdout + run.stderr)
        if run.returncode:
            self.stop()
            raise RuntimeError(f"infra/services.sh serve failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
        self.ready = time.monotonic() - started

    def group_pids(self) -> list[int]:
        import psutil

        pids = []
        for pid_file in [*sorted(self.run_dir.glob("serve-*.pid")), self.run_dir / "nginx.pid"]:
            try:
                leader = psutil.Process(int(pid_file.read_text()))
                pids += [leader.pid, *(child.pid for child in leader.children(recursive=True))]
            except (OSError, ValueError, psutil.Error):
                continue
        return pids

    def stop(self) -> None:
        subprocess.run(
            [str(PROJECT_ROOT / "infra" / "services.sh"), "stop", "serve"],
            env=self.env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            timeout=120,
        )


class Background:
    """A process in its own session (process group); ``stop`` ends it and all its descendants."""

    def __init__(self, args: list[str], env: dict, log_path: Path, cwd: Path | None = None):
        self.args, self.log_path = args, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as out:
            self.process = subprocess.Popen(
                args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _tree(self) -> list:
        """The process and its descendants (psutil.Process objects; BentoML's workers run in sessions of their own)."""
        import psutil

        try:
            leader = psutil.Process(self.process.pid)
            tree = [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return []
        return [p for p in tree if _alive(p)]

    def group_pids(self) -> list[int]:
        """Pids of the process and its descendants (the server and its workers)."""
        return [p.pid for p in self._tree()]

    def wait_http(self, url: str, timeout: float = 180.0) -> float:
        """Poll ``url`` until it answers 200; returns the seconds it took."""
        import requests

        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return time.monotonic() - start
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM to the process group, then to each descendant still there after 20 s; SIGKILL 10 s later."""
        import psutil

        tree = self._tree()  # taken before the leader goes: its children are re-parented when it exits
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        _, alive = psutil.wait_procs(tree, timeout=20)
        for signal_name in ("terminate", "kill"):
            for proc in alive:
                try:
                    getattr(proc, signal_name)()
                except psutil.Error:
                    pass
            _, alive = psutil.wait_procs(alive, timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _alive(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@contextmanager
def background(args: list[str], env: dict, log_path: Path, cwd: Path | None = None) -> Iterator[Background]:
    proc = Background(args, env, log_path, cwd)
    try:
        yield proc
    finally:
        proc.stop()


def today_midnight() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
