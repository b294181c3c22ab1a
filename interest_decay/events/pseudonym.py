"""Keyed pseudonyms of user ids: ``HMAC-SHA256(key, user_id)``, first 32 hex digits.

Staging (dbt) replaces every user id with its pseudonym, so marts, Feast and models never hold a
raw id; the service pseudonymises the id a caller sends before it looks anything up. The key comes
from ``PSEUDONYM_KEY`` (``infra/env.sh`` generates a random one, kept beside the private cluster's data);
without the key the pseudonyms cannot be linked back to users.
"""

from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_HEX_DIGITS = 32


def pseudonym_key() -> str:
    from interest_decay import config

    secret = config.get().pseudonym_key
    key = secret.get_secret_value() if secret is not None else ""
    if not key:
        raise RuntimeError(
            "PSEUDONYM_KEY is not set: the key that pseudonymises user ids must come from the "
            "environment (infra/env.sh generates one for the local stack)"
        )
    return key


def pseudonymise(user_id: str, key: str | None = None) -> str:
    """The pseudonym of ``user_id`` under ``key`` (default: ``$PSEUDONYM_KEY``); same as the dbt staging."""
    digest = hmac.new((key or pseudonym_key()).encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_HEX_DIGITS]
