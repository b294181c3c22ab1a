"""Releasing a trained model: package the service with it (a bento), then check the running server took it.

The pipeline's ``build_bento`` and ``deploy`` steps; ``make rollback`` builds the same way from the shell.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from interest_decay import config as settings
from serving.deployment import wait_until_serving

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def build_bento(model_tag: str, churn_model_tag: str) -> str:
    """``bentoml build`` of ``serving/bentofile.yaml`` with these two models; returns the bento's tag."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "bentoml"),
            "build",
            "-f",
            str(PROJECT_ROOT / "serving/bentofile.yaml"),
            "--output",
            "tag",
            str(PROJECT_ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=settings.environment(MODEL_TAG=model_tag, CHURN_MODEL_TAG=churn_model_tag),
    )
    return result.stdout.strip().split("__tag__:")[-1]


def replica_urls(url: str, token: str | None = None) -> list[str]:
    """The URLs that reach each server behind ``url``: the replicas nginx lists at ``/replicas`` (``make serve``
    with replicas, docs/serving-api.md), else ``url`` itself (one server answers 404 there)."""
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = url.rstrip("/")
    response = requests.get(f"{base}/replicas", headers=headers, timeout=10)
    if response.status_code == 200 and response.headers.get("content-type", "").startswith("application/json"):
        return [base + path for path in response.json()["replicas"]]
    return [base]


def check_serving(champion: str, bento: str) -> dict:
    """Wait until the running server (``SERVE_URL``) serves ``champion``, every replica of it when nginx
    fronts several: each follows the registry and swaps models without downtime, and this raises when one
    could not load it (the previous model keeps serving there). Without SERVE_URL nothing runs to check
    (``make serve`` starts the champion)."""
    config = settings.get()
    if not config.serve_url:
        logging.getLogger(__name__).info(
            "SERVE_URL not set: no running server to check; bento %s, champion %s", bento, champion
        )
        return {"bento": bento, "champion": champion, "checked": False}
    token = config.serve_api_token.get_secret_value() if config.serve_api_token is not None else None
    urls = replica_urls(config.serve_url, token)
    states = [wait_until_serving(url, champion, config.deploy_timeout_seconds, token) for url in urls]
    return {
        "bento": bento,
        "champion": champion,
        "checked": True,
        "servers_checked": len(urls),
        "deployed_at": max(state["deployed_at"] for state in states),
    }
