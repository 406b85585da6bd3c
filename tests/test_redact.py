"""infra/redact.py: every credential shape is masked, in one pass, and plain text is left alone."""

from __future__ import annotations

import pytest

from bot.redaction import redact_reply
from bot.request import Reply, Table
from infra.api_tokens import new_token
from infra.redact import KEY_NAMES, MASK, Redactor

SHAPES = {
    "slack": "xoxb-1234567890-abcdefghij",
    "slack app": "xapp-1-A0123456789-abcdef",
    "github": "ghp_" + "a1B2" * 6,
    "openai": "sk-" + "Ab1_" * 5,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "discord": "M" + "a" * 23 + ".AbCdEf." + "x" * 27,
    "proxmox": "PVEAPIToken=root@pam!ci=0f0e0d0c-aaaa-bbbb-cccc-0123456789ab",
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----",
    "chatops api token": new_token(),  # made by the bot's own generator, so a change of shape is caught here
    "portainer": "ptr_" + "Zx9+/aQ1" * 5 + "=",
    "grafana": "glsa_" + "Q7w" * 10 + "_0a1b2c3d",
    "hugging face": "hf_" + "AbCdEfGhIj" * 3 + "Kl12",
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


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_clean_finds_a_credential_in_any_one_of_many_texts(kind: str) -> None:
    texts = [f"cell {i}" for i in range(100)]
    assert Redactor().clean(texts)
    texts[57] = f"note: {SHAPES[kind]} end"
    assert not Redactor().clean(texts)
    assert not Redactor().clean(["a", "DB_PASSWORD=x", "b"]) and not Redactor().clean(["postgres://u:p@h/d"])
    assert not Redactor(["hunter2-value"]).clean(["ok", "it is hunter2-value"])


def test_a_table_with_one_secret_cell_among_hundreds_is_masked_there_only() -> None:
    rows = [[f"r{i}", "running", str(i)] for i in range(200)]
    rows[123][1] = f"token {SHAPES['github']}"
    reply = redact_reply(Redactor(), Reply("t", tables=[Table(["id", "state", "n"], rows, "title")]))
    cells = reply.tables[0].rows
    assert cells[123][1] == f"token {MASK}" and SHAPES["github"] not in str(reply.tables)
    assert cells[0] == ["r0", "running", "0"] and cells[199][2] == "199"


@pytest.mark.parametrize("name", KEY_NAMES)
def test_every_key_name_is_masked_in_any_case_of_its_letters(name: str) -> None:
    for spelled in (name, name.lower(), name.title(), f"MY_{name.swapcase()}_FILE"):
        line = f"set {spelled}=s3cr3t-{spelled} and go"
        out = Redactor().text(line)
        assert "s3cr3t" not in out and MASK in out, (spelled, out)
        assert not Redactor().clean(["x", line])


def test_the_key_prefilter_never_skips_a_text_the_key_pattern_would_mask() -> None:
    """`_names_a_key` decides whether KEY_VALUE runs at all: it may say yes too often, never too rarely."""
    import random

    from infra.redact import KEY_VALUE, _names_a_key

    rng = random.Random(15)
    parts = [*KEY_NAMES, *(k.lower() for k in KEY_NAMES), "db_", "_2", "x", "K", "\u212a", "ı", " ", "  ", "\t",
             "=", ":", " = ", ",", ";", '"', "'", "v4lue", "é", "İ", "\n", "\0", "-", "token", "auth"]
    matched = 0
    for _ in range(20000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(1, 8)))
        if KEY_VALUE.search(text):
            matched += 1
            assert _names_a_key(text), repr(text)
    assert matched > 1000  # the generator does reach the pattern


def test_a_table_that_names_keys_without_values_is_checked_in_one_pass() -> None:
    """`help` lists commands about tokens and passwords; no cell holds `name=value`, so nothing is masked
    and the table is not redacted cell by cell."""
    r = Redactor()
    cells = ["api token create NAME", "rotate the password", "auth: see docs/safety.md", "secret"]
    assert r.clean(cells[:2] + cells[3:])
    assert not r.clean(cells)  # `auth:` followed by a value is a key the pattern masks
    assert r.text("auth: see docs") == f"auth: {MASK} docs"
