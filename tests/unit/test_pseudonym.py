"""User-id pseudonyms: HMAC-SHA256 known answer, keyed, and a clear error without a key."""

import pytest

from interest_decay.pseudonym import pseudonymise


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
