"""User-id pseudonyms: HMAC-SHA256 known answer, keyed, and a clear error without a key; where
infra/env.sh keeps a generated key."""

import subprocess

import pytest

from interest_decay.events.pseudonym import pseudonymise
from tests.conftest import PROJECT_ROOT

ENV_SH = PROJECT_ROOT / "infra" / "env.sh"


def test_rfc4231_known_answer():
    # RFC 4231, test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?").
    assert pseudonymise("what do ya want for nothing?", key="Jefe") == "5bdcc146bf60754e6a042426089575c7"


def test_other_key_other_pseudonym():
    assert pseudonymise("u1", key="a") != pseudonymise("u1", key="b")
    assert len(pseudonymise("u1", key="a")) == 32


def test_missing_key_is_a_readable_error(monkeypatch):
    monkeypatch.delenv("PSEUDONYM_KEY", raising=False)
    with pytest.raises(RuntimeError, match="PSEUDONYM_KEY is not set"):
        pseudonymise("u1")


def _key_from_env_sh(tmp_path, **env) -> str:
    """PSEUDONYM_KEY as infra/env.sh sets it, in a clean environment with the given variables."""
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PROJECT_ROOT": str(tmp_path / "checkout"),
        "PGDATA": str(tmp_path / "cluster" / "pgdata"),
        "DECAY_STATE_DIR": str(tmp_path / "state"),
    }
    run = subprocess.run(
        ["bash", "-c", f'. {ENV_SH} && printf %s "$PSEUDONYM_KEY"'],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout


def test_env_sh_keeps_the_key_beside_the_private_cluster(tmp_path):
    key = _key_from_env_sh(tmp_path)
    assert len(key) == 64 and (tmp_path / "cluster" / "pseudonym.key").read_text() == key
    # A new checkout (new state dir) at the same place finds the same cluster, and its key.
    assert _key_from_env_sh(tmp_path, DECAY_STATE_DIR=str(tmp_path / "new-state")) == key
    assert (tmp_path / "cluster" / "pseudonym.key").stat().st_mode & 0o077 == 0
    assert _key_from_env_sh(tmp_path, PSEUDONYM_KEY="given") == "given"


def test_env_sh_moves_a_key_kept_in_the_state_dir(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "pseudonym.key").write_text("older")
    assert _key_from_env_sh(tmp_path) == "older"
    assert (tmp_path / "cluster" / "pseudonym.key").read_text() == "older"
    assert not (tmp_path / "state" / "pseudonym.key").exists()


def test_env_sh_keeps_the_key_in_the_state_dir_for_another_server(tmp_path):
    key = _key_from_env_sh(tmp_path, PGHOST="db.example.org")
    assert (tmp_path / "state" / "pseudonym.key").read_text() == key
    assert not (tmp_path / "cluster").exists()


def test_env_sh_refuses_a_key_file_others_could_read_or_have_planted(tmp_path):
    """The key's path is predictable: a key file readable by others, or owned by another user, is refused
    with a sentence saying why (sourcing env.sh fails), never used."""
    import os

    key_file = tmp_path / "cluster" / "pseudonym.key"
    key = _key_from_env_sh(tmp_path)
    key_file.chmod(0o644)
    with pytest.raises(subprocess.CalledProcessError) as refused:
        _key_from_env_sh(tmp_path)
    assert "refusing the pseudonym key" in refused.value.stderr and "mode 0600" in refused.value.stderr
    key_file.chmod(0o600)
    assert _key_from_env_sh(tmp_path) == key
    if os.geteuid() == 0:  # as root (CI): a file of another user, mode 0600, is refused too
        os.chown(key_file, 65534, -1)
        with pytest.raises(subprocess.CalledProcessError) as refused:
            _key_from_env_sh(tmp_path)
        assert "refusing the pseudonym key" in refused.value.stderr
