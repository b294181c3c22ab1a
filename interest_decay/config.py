"""Every setting of the platform, read from the environment in one typed place (pydantic-settings).

``Settings`` is the single source of each variable's default; ``infra/env.sh`` (the shell's copy, for the
make targets and scripts) must agree with it (``tests/unit/test_config.py``), and ``docs/configuration.md``'s
table is generated from it: ``python -m interest_decay.config --write-docs``. Nothing here connects or
creates anything; callers ask for a value when they need it (``get()`` reads the environment afresh, so a
changed variable is seen at once).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCS = PROJECT_ROOT / "docs" / "configuration.md"
DBT_PROJECT = PROJECT_ROOT / "dbt_project" / "dbt_project.yml"
STATE = "<state>"  # how the docs write a default under DECAY_STATE_DIR


class Settings(BaseSettings):
    """One field per environment variable (upper-case name = variable); an empty variable counts as unset."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", case_sensitive=False)

    # state and outputs
    decay_state_dir: Path = Field(
        PROJECT_ROOT / ".state",
        description="Airflow home, Feast stores, BentoML home, reports, logs and pid files (`.state` in the checkout)",
    )
    reports_dir: Path | None = Field(None, description="run reports (default `<state>/reports`)")
    events_dir: Path | None = Field(None, description="the DAG's default events folder (default `<state>/events`)")
    events_earliest_day: dt.date = Field(
        dt.date(1990, 1, 1),
        description="events before this day (UTC) are rejects ('timestamp before EVENTS_EARLIEST_DAY (day)'), "
        "alike in dbt staging, `/events`, `make ingest` and the harness's cleaning; public logs of the 1990s "
        "are older than a later default would allow",
    )
    # PostgreSQL
    pghost: str = Field(
        "127.0.0.1", description="the platform's PostgreSQL; another host than the loopback starts no private cluster"
    )
    pgport: int = Field(55432, description="its port")
    pguser: str = Field("decay", description="its user")
    pgdatabase: str = Field("interest", description="its database")
    pgpassword: SecretStr | None = Field(None, description="its password (none: the private cluster trusts loopback)")
    dbt_schema: str = Field("analytics", description="schema of the dbt models (raw events are in `raw`)")
    pseudonym_key: SecretStr | None = Field(
        None,
        description="key of the user-id pseudonyms (infra/env.sh makes a "
        "random one, kept beside the private cluster's data dir)",
    )
    # Feast
    feast_repo_path: Path = Field(PROJECT_ROOT / "feature_repo", description="the Feast repository")
    feast_registry_path: Path | None = Field(
        None, description="Feast file registry (default `<state>/feast/registry.db`)"
    )
    feast_materialize_chunk_days: int = Field(7, ge=1, description="days per Feast materialization chunk")
    feast_online_store: str = Field("sqlite", description="`sqlite` (embedded) or `redis` (the Redis below)")
    redis_host: str = Field("127.0.0.1", description="Redis of the online store (FEAST_ONLINE_STORE=redis)")
    redis_port: int = Field(56379, description="its port (infra/redis.sh starts a private one there)")
    redis_db: int = Field(0, ge=0, description="its database number")
    redis_password: SecretStr | None = Field(
        None,
        description="its password (infra/env.sh makes a random one, mode 0600 in the state dir, which the private "
        "Redis requires; empty: a Redis that asks for none)",
    )
    # models and serving
    model_name: str = Field("interest_recommender", description="name of the recommender in the BentoML store")
    bentoml_home: Path | None = Field(None, description="BentoML model store (default `<state>/bentoml`)")
    model_tag: str | None = Field(None, description="recommender a bento packages (default: the champion, else latest)")
    churn_model_tag: str = Field("churn_model:latest", description="churn model a bento packages")
    serve_workers: int | None = Field(None, ge=1, description="serving worker processes (default: one per core)")
    serve_torch_threads: int = Field(
        1, ge=1, description="torch threads per serving worker (1: a request's model is small; more spin idle cores)"
    )
    serve_api_token: SecretStr | None = Field(None, description="bearer token the service requires (unset: no auth)")
    serve_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="largest request body the service reads; a larger one gets a 413"
    )
    serve_tracing_sample_rate: str | None = Field(
        None,
        description="share of requests BentoML traces, 0 to 1 "
        "(unset/0: its tracing middleware is skipped, ~0.25 ms a request)",
    )
    serve_access_log: str | None = Field(
        None,
        description="1/true/yes/on: BentoML logs a line per request (~0.04 ms "
        "a request); off, counts and latencies are still in `/metrics`",
    )
    model_reload_seconds: float = Field(10.0, ge=0, description="how often the server checks for a new champion")
    prediction_log_seconds: float = Field(
        5.0, ge=0, description="how often the server writes served predictions (0: off)"
    )
    prediction_log_max_rows: int = Field(100_000, ge=1, description="bound of the prediction log's buffer")
    # orchestration and monitoring
    interest_pipeline_schedule: str = Field("@daily", description="schedule of the DAG interest_pipeline")
    serve_url: str | None = Field(None, description="server the DAG's deploy task checks (unset: no check)")
    deploy_timeout_seconds: float = Field(120.0, gt=0, description="how long the deploy task waits for the champion")
    drift_share_threshold: float = Field(0.5, gt=0, le=1, description="share of drifted columns that counts as drift")

    @property
    def state_dir(self) -> Path:
        return self.decay_state_dir

    def under_state(self, value: Path | None, *parts: str) -> Path:
        return value if value is not None else self.decay_state_dir.joinpath(*parts)


def get() -> Settings:
    """The settings as the environment gives them now."""
    return Settings()


def state_dir() -> Path:
    """Where the local stack keeps its files (Airflow home, Feast stores, reports...)."""
    return get().decay_state_dir


def reports_dir() -> Path:
    s = get()
    return s.under_state(s.reports_dir, "reports")


def events_dir() -> Path:
    s = get()
    return s.under_state(s.events_dir, "events")


def feast_repo_path() -> Path:
    return get().feast_repo_path


def feast_registry_path() -> Path:
    s = get()
    return s.under_state(s.feast_registry_path, "feast", "registry.db")


def bentoml_home() -> Path:
    s = get()
    return s.under_state(s.bentoml_home, "bentoml")


def dbt_schema() -> str:
    """Schema that dbt builds its models into (raw events live in schema ``raw``)."""
    return get().dbt_schema


def pg_conninfo(database: str | None = None) -> str:
    """libpq connection string for the platform's PostgreSQL database."""
    s = get()
    parts = {"host": s.pghost, "port": s.pgport, "user": s.pguser, "dbname": database or s.pgdatabase}
    if s.pgpassword is not None:
        parts["password"] = s.pgpassword.get_secret_value()
    return " ".join(f"{key}={value}" for key, value in parts.items())


# dbt's SQL reads the pseudonym key from this session setting (macros/pseudonymise.sql), which the connection sets
# from PGOPTIONS: the key is never part of a statement, so it is in no compiled SQL, rendered field or server log.
PSEUDONYM_KEY_SETTING = "interest_decay.pseudonym_key"


def with_pseudonym_key_option(env: dict[str, str]) -> dict[str, str]:
    """``env`` whose ``PGOPTIONS`` hands its ``PSEUDONYM_KEY`` to every PostgreSQL session as
    ``interest_decay.pseudonym_key`` (other options kept; a key given before is replaced). Without a key,
    ``env`` unchanged (dbt then stops with "PSEUDONYM_KEY is not set for this connection")."""
    key = env.get("PSEUDONYM_KEY")
    if not key:
        return dict(env)
    given = re.sub(r"-c\s*" + re.escape(PSEUDONYM_KEY_SETTING) + r"=(?:\\.|\S)*", "", env.get("PGOPTIONS", ""))
    escaped = key.replace("\\", "\\\\").replace(" ", "\\ ")
    return {**env, "PGOPTIONS": f"{given.strip()} -c {PSEUDONYM_KEY_SETTING}={escaped}".strip()}


def model_name() -> str:
    """Name of the recommender in the BentoML model store."""
    return get().model_name


def dbt_vars() -> dict:
    """dbt's vars (``dbt_project/dbt_project.yml``): the home of the settings dbt and Python share (the churn
    horizon and half-lives, the repeat family's bounded state)."""
    import yaml

    return yaml.safe_load(DBT_PROJECT.read_text())["vars"]


def environment(**overrides: str) -> dict[str, str]:
    """This process's environment with ``overrides``: for a child process that must see the same settings."""
    return {**os.environ, **overrides}


# --- the generated documentation ---------------------------------------------------------------------------

BEGIN, END = "<!-- settings table: python -m interest_decay.config --write-docs -->", "<!-- end of settings table -->"


def _default(name: str, field) -> str:
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, Path):
        value = value.relative_to(PROJECT_ROOT) if value.is_relative_to(PROJECT_ROOT) else value
    return f"`{value}`"


def markdown_table() -> str:
    """The table of every variable: name, default, meaning."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        lines.append(f"| `{name.upper()}` | {_default(name, field)} | {field.description} |")
    return "\n".join(lines)


def documented(text: str) -> str:
    """``text`` with the part between the settings-table markers replaced by :func:`markdown_table`."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{DOCS} lacks the markers {BEGIN} ... {END}")
    return pattern.sub(lambda _: f"{BEGIN}\n{markdown_table()}\n{END}", text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m interest_decay.config", description=__doc__.split("\n")[0])
    parser.add_argument("--write-docs", action="store_true", help=f"regenerate the table in {DOCS.name}")
    args = parser.parse_args(argv)
    if args.write_docs:
        DOCS.write_text(documented(DOCS.read_text()))
        print(f"wrote {DOCS}")
    else:
        print(markdown_table())


if __name__ == "__main__":
    main()
