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
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
]
# One pass over the text instead of one per pattern: every message and audit field goes through here.
TOKENS = re.compile("|".join(f"(?:{p.pattern})" for p in PATTERNS))
KEY_VALUE = re.compile(
    r"(?i)\b([A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|AUTH)[A-Z0-9_]*)"
    r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;]+)")
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@]+:)([^@\s/]+)(@)")
# Anything the three patterns could touch, in one search: most texts (table cells, replies) hold none,
# and then that search is all they cost.
MAYBE = re.compile("|".join(f"(?:{p.pattern})" if not p.pattern.startswith("(?i)") else f"(?i:{p.pattern[4:]})"
                            for p in (TOKENS, KEY_VALUE, URL_CREDENTIALS)))


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
        if not MAYBE.search(value):
            return value
        value = TOKENS.sub(MASK, value)
        value = KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", value)
        return URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", value)

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
