"""End to end: ``make serve REPLICAS=2`` (``infra/services.sh serve`` with ``SERVE_REPLICAS``) on the stack's bento:
two one-worker ``bentoml serve`` replicas behind nginx. Concurrent requests through nginx reach both replicas;
``/replicas`` lists a route to each, through which the deploy check finds each serving the model; when one
replica stops, nginx sends every request to the other; ``stop serve`` leaves nothing running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import PROJECT_ROOT
from tests.e2e.stack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SERVICES = str(PROJECT_ROOT / "infra" / "services.sh")


def recommend_requests_served(url: str) -> float:
    """BentoML's request counter of /recommend on one replica (its /metrics)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(float(n) for n in re.findall(r'request_total\{[^}]*endpoint="/recommend"[^}]*\} ([0-9.e+]+)', text))


def test_replicas_behind_nginx_share_the_load_and_outlive_one_replica(stack, served):
    from serving.deployment import wait_until_serving
    from serving.release import replica_urls

    env, _ = stack
    served_url = served
    port = free_port()
    serve_env = {**env, "SERVE_REPLICAS": "2", "SERVE_PORT": str(port)}
    run_dir = Path(env["DECAY_STATE_DIR"]) / "run"
    started = subprocess.run([SERVICES, "serve"], env=serve_env, capture_output=True, text=True, timeout=600)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        url = f"http://127.0.0.1:{port}"
        replica_pids = sorted(run_dir.glob("serve-*.pid"))
        replica_ports = re.findall(r"server 127\.0\.0\.1:(\d+)", (run_dir / "nginx.conf").read_text())
        assert len(replica_pids) == len(replica_ports) == 2 and str(port) not in replica_ports

        def ask(i: int) -> int:
            response = requests.post(f"{url}/recommend", json={"user_id": f"u{i % 50}", "k": 5}, timeout=30)
            return response.status_code if response.ok and len(response.json()["items"]) == 5 else -1

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(ask, range(200))) == {200}
        # each replica counts its own requests (a BentoML home of its own: its own Prometheus directory);
        # least_conn spreads the concurrent requests over both
        served = [recommend_requests_served(f"http://127.0.0.1:{p}") for p in replica_ports]
        assert sum(served) == 200 and min(served) >= 40, served

        # /replicas lists a route to each replica: the deploy task checks every one serves the champion
        urls = replica_urls(url)
        assert urls == [f"{url}/replica/1", f"{url}/replica/2"]
        assert [recommend_requests_served(u) for u in urls] == served
        model = requests.post(f"{url}/recommend", json={"user_id": "u1", "k": 1}, timeout=30).json()["model"]
        assert [wait_until_serving(u, model, timeout_seconds=30)["model"] for u in urls] == [model, model]
        assert replica_urls(served_url) == [served_url]  # one server: itself
        # a body over nginx's 1 MB default reaches the service: its own limit (16 MiB) and its JSON messages apply
        big = requests.post(f"{url}/recommend", json={"user_id": "x" * 2_000_000}, timeout=30)
        assert big.status_code == 400 and big.headers["content-type"].startswith("application/json"), big.text[:200]

        os.killpg(int(replica_pids[0].read_text()), signal.SIGTERM)  # one replica goes away
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{replica_ports[0]}/readyz", timeout=2)
                time.sleep(0.5)
            except requests.ConnectionError:
                break
        else:
            pytest.fail("the stopped replica still answers")
        assert [ask(i) for i in range(20)] == [200] * 20  # nginx skips it
    finally:
        stopped = subprocess.run(
            [SERVICES, "stop", "serve"], env=serve_env, capture_output=True, text=True, timeout=120
        )
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not list(run_dir.glob("serve*.pid")) and not (run_dir / "nginx.pid").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
