"""infra/redact.py: every credential shape is masked, in one pass, and plain text is left alone."""

from __future__ import annotations

import pytest

from infra.redact import MASK, Redactor

SHAPES = {
    "slack": "xoxb-1234567890-abcdefghij",
    "slack app": "xapp-1-A0123456789-abcdef",
    "github": "ghp_" + "a1B2" * 6,
    "openai": "sk-" + "Ab1_" * 5,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "discord": "M" + "a" * 23 + ".AbCdEf." + "x" * 27,
    "proxmox": "PVEAPIToken=root@pam!ci=0f0e0d0c-aaaa-bbbb-cccc-0123456789ab",
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----",
}


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_each_credential_shape_is_masked(kind: str) -> None:
    secret = SHAPES[kind]
    out = Redactor().text(f"before {secret} after")
    assert secret not in out and out == f"before {MASK} after"


def test_two_different_shapes_side_by_side_are_both_masked() -> None:
    line = f"{SHAPES['slack']} {SHAPES['github']},{SHAPES['openai']}"
    assert Redactor().text(line) == f"{MASK} {MASK},{MASK}"


def test_key_values_url_credentials_and_known_secrets() -> None:
    r = Redactor(["hunter2-value"])
    out = r.text("DB_PASSWORD=s3cret postgres://bob:pw@db/x token: abc hunter2-value ok")
    assert out == f"DB_PASSWORD={MASK} postgres://bob:{MASK}@db/x token: {MASK} {MASK} ok"


def test_plain_text_is_unchanged() -> None:
    text = "restart nginx on rumpledev; sk- is a prefix, xoxb alone too, eyJ short.x.y"
    assert Redactor().text(text) == text
