"""Keyed fingerprints: enough to say "DB_PASSWORD changed", never the value.

A recorded revision keeps the shape of the Compose model it deployed, with every
environment value and inline file replaced by an HMAC-SHA256 under a key that lives
outside the database (`CHATOPS_FINGERPRINT_KEY`, else a key file in the bot's state
folder), so neither a reader of the `deployments` table nor a backup can test guesses
against it.  Each fingerprint names its key (`fp:KEYID:…`): one made under another key
is "cannot compare", never a false "changed".
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("chatops.fingerprint")
KEY_ENV = "CHATOPS_FINGERPRINT_KEY"
KEY_FILE = "fingerprint.key"
PREFIX = "fp:"
MASK = "[redacted]"


def state_dir() -> Path:
    """The bot's own state folder: CHATOPS_DATA_DIR, systemd's STATE_DIRECTORY, else the user data dir."""
    for var in ("CHATOPS_DATA_DIR", "STATE_DIRECTORY"):
        value = os.environ.get(var)
        if value:
            return Path(value.split(":")[0])
    from platformdirs import user_data_dir

    return Path(user_data_dir("chatops"))


def _key_from_file(folder: Path) -> bytes:
    file = folder / KEY_FILE
    try:
        return bytes.fromhex(file.read_text().strip())
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another replica made it first
        return bytes.fromhex(file.read_text().strip())
    with os.fdopen(fd, "w") as out:
        out.write(key.hex() + "\n")
    return key


@functools.lru_cache(maxsize=1)
def fingerprint_key() -> bytes:
    """The key: $CHATOPS_FINGERPRINT_KEY, else `fingerprint.key` in the state folder (made once)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    folder = state_dir()
    try:
        return _key_from_file(folder)
    except (OSError, ValueError) as exc:
        log.warning("no lasting fingerprint key (%s: %s); set %s so that revisions recorded before a "
                    "restart can be compared", folder / KEY_FILE, exc, KEY_ENV)
        return secrets.token_bytes(32)


def key_id(key: bytes | None = None) -> str:
    return hashlib.sha256(b"chatops-fingerprint-key\0" + (key or fingerprint_key())).hexdigest()[:8]


def fingerprint(value: str, key: bytes | None = None) -> str:
    k = key or fingerprint_key()
    return f"{PREFIX}{key_id(k)}:{hmac.new(k, value.encode(), hashlib.sha256).hexdigest()[:32]}"


def is_fingerprint(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX) and value.count(":") == 2


def same(stored: Any, value: Any) -> bool | None:
    """Whether a recorded value (fingerprint or, in old rows, plain) equals `value`; None: can't tell."""
    if stored is None or value is None:
        return stored is value
    if is_fingerprint(stored):
        kid = str(stored).split(":")[1]
        if kid != key_id():
            return None
        return hmac.compare_digest(str(stored), fingerprint(str(value)))
    return bool(stored == value)


def _scrub(value: Any, secrets_: list[str]) -> Any:
    if isinstance(value, str):
        for s in secrets_:
            value = value.replace(s, MASK)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets_) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets_) for v in value]
    return value


def stored_model(model: Mapping[str, Any], secret_values: Iterable[str] = ()) -> dict[str, Any]:
    """The model as it may be stored: environment values and inline file contents fingerprinted,
    and any other occurrence of a secret (`secret_values`: the `.env` values) masked, except in
    image references (which the revision records anyway)."""
    out = copy.deepcopy(dict(model))
    found: set[str] = set(v for v in secret_values if v)
    images = {}
    for name, svc in (out.get("services") or {}).items():
        images[name] = svc.get("image")
        env = svc.get("environment")
        if isinstance(env, dict):
            for key, value in env.items():
                if value is None or is_fingerprint(value):
                    continue
                env[key] = fingerprint(str(value))
    for kind in ("configs", "secrets"):
        for entry in (out.get(kind) or {}).values():
            if isinstance(entry, dict) and isinstance(entry.get("content"), str) \
                    and not is_fingerprint(entry["content"]):
                entry["content"] = fingerprint(entry["content"])
    # Long enough to be a secret and not a word of the model itself ("true", "1", "no").
    masks = sorted({f for v in found if len(v) >= 6 for f in (v, v.replace("$", "$$"))}, key=len, reverse=True)
    if not masks:
        return out
    clean: dict[str, Any] = _scrub(out, masks)
    for name, image in images.items():
        if image is not None:
            clean["services"][name]["image"] = image
    return clean
