"""The scale-out compose file (infra/scale-out/docker-compose.yml) is closed by default: every published port binds
to loopback unless the operator says otherwise, and the stack refuses to start without an API token or secrets."""

import re
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "infra" / "scale-out" / "docker-compose.yml"


def test_published_ports_bind_to_loopback_by_default():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published, "the stack publishes the UI and the API"
    for port in published:
        assert re.fullmatch(r"\$\{PUBLISH_ADDRESS:-127\.0\.0\.1\}:\d+:\d+", port), port


def test_the_api_token_and_secrets_are_required():
    compose = yaml.safe_load(COMPOSE.read_text())
    environment = compose["x-platform"]["environment"]
    for name in ("SERVE_API_TOKEN", "PGPASSWORD", "PSEUDONYM_KEY", "REDIS_PASSWORD"):
        assert environment[name].startswith(f"${{{name}:?"), name  # compose stops with the message when unset
    redis = compose["services"]["redis"]["command"]
    assert redis[redis.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    assert environment["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:${REDIS_PASSWORD}@")
    for service in ("serve", "airflow-api", "airflow-worker"):
        assert compose["services"][service]["environment"]["SERVE_API_TOKEN"] == environment["SERVE_API_TOKEN"]
