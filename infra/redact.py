"""Secret redaction for anything that goes to chat or the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "[redacted]"
PATTERNS = [
    re.compile(r"xox[abprs]-[A-Za-z0-9-]{8,}"),                  # Slack tokens
    re.compile(r"xapp-[A-Za-z0-9-]{8,}"),                        # Slack app tokens
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),                   # GitHub tokens
    re.compile(r"sk-[A-Za-z0-9_-]{16,}"),                        # OpenAI-style keys
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # JWTs
    re.compile(r"[MN][A-Za-z\d]{23,25}\.[\w-]{6}\.[\w-]{27,}"),  # Discord bot tokens
    re.compile(r"PVEAPIToken=[^\s]+"),                           # Proxmox auth header
    re.compile(r"chatops_[A-Za-z0-9_-]{20,}"),                   # this bot's own API tokens (infra/api_tokens.py)
    re.compile(r"ptr_[A-Za-z0-9+/=_-]{20,}"),                    # Portainer access tokens
    re.compile(r"glsa_[A-Za-z0-9_]{20,}"),                       # Grafana service-account tokens
    re.compile(r"hf_[A-Za-z0-9]{30,}"),                          # Hugging Face tokens (model downloads for vLLM)
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
]
# One pass over the text instead of one per pattern: every message and audit field goes through here.
TOKENS = re.compile("|".join(f"(?:{p.pattern})" for p in PATTERNS))
# Names whose value is a secret (`DB_PASSWORD=…`, `token: …`), in any case of their ASCII letters (ASCII
# only, so that `_KEY_HINT`, run on the lowercased text, finds every name this pattern can match).
KEY_NAMES = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "API_KEY", "ACCESS_KEY", "PRIVATE_KEY", "AUTH")
KEY_VALUE = re.compile(
    rf"(?ai)\b([A-Z0-9_]*(?:{'|'.join(KEY_NAMES)})[A-Z0-9_]*)"
    r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;]+)")
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@]+:)([^@\s/]+)(@)")
# What KEY_VALUE needs, looked for in the lowercased text without the case-blind flag: a key name,
# the rest of its word, then `=` or `:`.  It finds every text KEY_VALUE can match (lowercasing maps
# more characters onto ASCII letters than the pattern's ASCII-only case folding does, never fewer),
# at a fraction of the cost: the case-blind pattern costs about 80 ns a character, and most texts
# name no key, or name one ("token", "password reset") with no value after it.
_KEY_HINT = re.compile(rf"(?:{'|'.join(k.lower() for k in KEY_NAMES)})[a-z0-9_]*\s*[=:]")


def _names_a_key(value: str) -> bool:
    """Whether KEY_VALUE could match (False: it cannot)."""
    return _KEY_HINT.search(value.lower()) is not None


def mask_credentials(value: str) -> str:
    """Token shapes and URL passwords only: for the bot's own diagnostics (`chatops doctor`), whose
    lines name settings ("SLACK_BOT_TOKEN: invalid_auth") that the key=value rule would mask."""
    value = TOKENS.sub(MASK, value)
    if "://" in value:
        value = URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", value)
    return value


class Redactor:
    """Masks known secret values and anything that looks like a credential."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def add(self, values: Iterable[str]) -> None:
        self.secrets = sorted({*self.secrets, *(v for v in values if v and len(v) >= 6)},
                              key=len, reverse=True)

    def text(self, value: str) -> str:
        for s in self.secrets:
            value = value.replace(s, MASK)
        value = TOKENS.sub(MASK, value)
        if _names_a_key(value):
            value = KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", value)
        if "://" in value:
            value = URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", value)
        return value

    def clean(self, texts: Iterable[str]) -> bool:
        """Whether none of `texts` holds anything `text` would mask, in one pass over them all (a
        table of a few hundred cells is then one search, not one per cell).  Joined by NUL, which no
        pattern needs and every word boundary allows, so a match inside one text is found here."""
        joined = "\0".join(texts)
        return (TOKENS.search(joined) is None and not _names_a_key(joined) and "://" not in joined
                and not any(s in joined for s in self.secrets))

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def secret_values(*models: BaseModel | None) -> list[str]:
    """Every SecretStr value inside the given (nested) pydantic models."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, SecretStr):
            out.append(v.get_secret_value())
        elif isinstance(v, BaseModel):
            for name in type(v).model_fields:
                walk(getattr(v, name))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)

    for m in models:
        walk(m)
    return out
