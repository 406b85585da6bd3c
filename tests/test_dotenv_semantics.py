"""A stack's `.env` is read the way Compose reads it (the old hand-written parser disagreed).

Compose's own `config` resolves the values (infra/compose.py `resolve`): these are the cases
where the hand-written parser gave another answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.compose import StackSource, read_dotenv, resolve

DOTENV = r"""# cases where a naive KEY=VALUE reader goes wrong
INLINE=unquoted value # a comment, not part of the value
ESCAPED="line one\nline two"
REFERENCE=${INLINE}-suffix
DEFAULTED=${NOT_SET_ANYWHERE:-fallback}
SINGLE='literal ${INLINE} \n'
export EXPORTED=exported-value
MULTI="first
second"
QUOTED_HASH="pass#word"
"""

EXPECTED = {
    "INLINE": "unquoted value",            # hand parser: "unquoted value # a comment, not part of the value"
    "ESCAPED": "line one\nline two",       # hand parser: a backslash and an n
    "REFERENCE": "unquoted value-suffix",  # hand parser: "${INLINE}-suffix"
    "DEFAULTED": "fallback",               # hand parser: "${NOT_SET_ANYWHERE:-fallback}"
    "SINGLE": "literal ${INLINE} \\n",     # single quotes: nothing expanded or unescaped
    "EXPORTED": "exported-value",
    "MULTI": "first\nsecond",              # hand parser: '"first' (and 'second"' lost)
    "QUOTED_HASH": "pass#word",
}


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackSource:
    monkeypatch.delenv("INLINE", raising=False)
    (tmp_path / ".env").write_text(DOTENV)
    env = "".join(f"      {k}: ${{{k}}}\n" for k in EXPECTED)
    content = f"services:\n  app:\n    image: chatops-busybox:1\n    environment:\n{env}"
    (tmp_path / "compose.yaml").write_text(content)
    return StackSource("dotenv", tmp_path, content)


async def test_values_are_what_compose_makes_of_the_file(stack: StackSource) -> None:
    got = await resolve("dotenvcase", stack)
    assert got.dotenv == EXPECTED
    # The same values Compose gives the container (the model writes `$` as `$$`).
    env = got.model["services"]["app"]["environment"]
    assert {k: v.replace("$$", "$") for k, v in env.items()} == EXPECTED


async def test_the_shell_environment_wins_as_in_compose(stack: StackSource, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INLINE", "from-the-shell")
    got = await resolve("dotenvcase", stack)
    assert got.dotenv["INLINE"] == "from-the-shell" and got.dotenv["REFERENCE"] == "from-the-shell-suffix"


def test_python_dotenv_reading_for_masking_has_the_comment_and_escape_rules(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(DOTENV)
    values = read_dotenv(tmp_path / ".env")
    assert values["INLINE"] == "unquoted value" and values["ESCAPED"] == "line one\nline two"
    assert values["MULTI"] == "first\nsecond" and values["QUOTED_HASH"] == "pass#word"
