"""Counts in replies read as sentences (infra/wording.py), and no reply is built with a '(s)' plural."""

from __future__ import annotations

import re
import tokenize
from pathlib import Path

from infra.wording import agrees, counted, plural

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("bot", "commands", "infra", "llm")  # every text a reply, a CLI line or a log line is built from


def test_counts_take_the_noun_and_verb_they_need() -> None:
    assert counted(1, "request") == "1 request"
    assert counted(0, "request") == "0 requests"
    assert counted(3, "snapshot") == "3 snapshots"
    assert plural(2, "checkpoint") == "checkpoints" and plural(1, "checkpoint") == "checkpoint"
    assert f"{counted(1, 'request')} {agrees(1, 'waits', 'wait')}" == "1 request waits"
    assert f"{counted(2, 'request')} {agrees(2, 'waits', 'wait')}" == "2 requests wait"


def _strings(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module (f-strings included), with their line numbers."""
    with path.open("rb") as f:
        return [(t.start[0], t.string) for t in tokenize.tokenize(f.readline) if t.type == tokenize.STRING]


def test_no_text_is_built_with_a_bracketed_plural() -> None:
    found = [f"{p.relative_to(ROOT)}:{line}" for top in SOURCES for p in sorted((ROOT / top).rglob("*.py"))
             if p.name != "wording.py" for line, literal in _strings(p) if re.search(r"[a-z]\(s\)", literal)]
    assert found == [], f"use infra.wording's counted/plural/agrees instead: {found}"
