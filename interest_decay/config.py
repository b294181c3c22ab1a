"""Settings from the environment, with the same defaults as ``infra/env.sh``.

Nothing here connects or creates anything: callers ask for a value when they need it.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def env(name: str, default: str) -> str:
    """The environment's value of ``name``, or ``default`` when unset or empty."""
    return os.environ.get(name) or default


def state_dir() -> Path:
    """Where the local stack keeps its files (Airflow home, Feast stores, reports...)."""
    return Path(env("DECAY_STATE_DIR", str(PROJECT_ROOT / ".state")))


def reports_dir() -> Path:
    return Path(env("REPORTS_DIR", str(state_dir() / "reports")))


def feast_repo_path() -> Path:
    return Path(env("FEAST_REPO_PATH", str(PROJECT_ROOT / "feature_repo")))


def dbt_schema() -> str:
    """Schema that dbt builds its models into (raw events live in schema ``raw``)."""
    return env("DBT_SCHEMA", "analytics")


def pg_conninfo(database: str | None = None) -> str:
    """libpq connection string for the platform's PostgreSQL database."""
    parts = {
        "host": env("PGHOST", "127.0.0.1"),
        "port": env("PGPORT", "55432"),
        "user": env("PGUSER", "decay"),
        "dbname": database or env("PGDATABASE", "interest"),
    }
    password = os.environ.get("PGPASSWORD")
    if password:
        parts["password"] = password
    return " ".join(f"{key}={value}" for key, value in parts.items())


def model_name() -> str:
    """Name of the recommender in the BentoML model store."""
    return env("MODEL_NAME", "interest_recommender")
