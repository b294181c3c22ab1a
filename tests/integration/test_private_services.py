"""The private PostgreSQL cluster (infra/postgres.sh) asks every connection for its password, and the
generated secrets (infra/env.sh) are files only their owner can read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from interest_decay import config

pytestmark = pytest.mark.postgres

PRIVATE = config.get().pghost in ("127.0.0.1", "localhost") and "PGDATA" in os.environ
needs_private_cluster = pytest.mark.skipif(
    not PRIVATE, reason="PostgreSQL is another server (PGHOST), not this checkout's private cluster"
)


@needs_private_cluster
def test_a_connection_without_the_password_is_refused(monkeypatch):
    with psycopg.connect(config.pg_conninfo("postgres")) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    for user in (config.get().pguser, "postgres"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(f"host={config.get().pghost} port={config.get().pgport} user={user} dbname=postgres")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(config.pg_conninfo("postgres"), password="guessed")


@needs_private_cluster
def test_the_generated_secrets_are_private_files():
    folder = Path(os.environ["PGDATA"]).parent
    found = [
        folder / n for n in ("postgres.password", "postgres-admin.password", "pseudonym.key") if (folder / n).exists()
    ]
    assert folder / "postgres-admin.password" in found
    for path in found:
        info = path.stat()
        assert info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o600, path


def test_raw_events_are_readable_by_the_loader_role_only(fresh_db):
    """Schema raw (raw user ids) belongs to the role that loads and stages (PGUSER) and grants nothing to others:
    no other role, PUBLIC included, may use it."""
    from interest_decay.events.ingest import ensure_raw_schema

    _, conninfo = fresh_db
    with psycopg.connect(conninfo, autocommit=True) as conn:
        ensure_raw_schema(conn)
        owner, acl = conn.execute(
            "select pg_get_userbyid(nspowner), nspacl::text from pg_namespace where nspname = 'raw'"
        ).fetchone()
        assert owner == config.get().pguser
        assert acl is None or all(entry.startswith(f"{owner}=") for entry in acl.strip("{}").split(","))
        assert not conn.execute("select has_schema_privilege('public', 'raw', 'usage')").fetchone()[0]
        assert not conn.execute("select has_table_privilege('public', 'raw.events', 'select')").fetchone()[0]
