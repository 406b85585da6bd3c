"""Automation tokens: made once, stored only as a hash, looked up in constant time.

A token is 256 random bits, so a plain SHA-256 of it is enough to store (there is nothing to
guess that a slow hash would protect); the config holds `sha256:HEX`, never the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from infra.config import Config

PREFIX = "chatops_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def identify(config: Config, token: str | None) -> str | None:
    """The `api:NAME` identity a bearer token belongs to, or None."""
    if not token:
        return None
    digest = token_hash(token.strip())
    found = None
    for name, entry in config.inventory.api_tokens.items():
        if hmac.compare_digest(digest, entry.hash):  # every entry compared: no early exit to time
            found = name
    return f"api:{found}" if found else None
