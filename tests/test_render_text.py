"""The terminal renderer: wraps to the width it is given, never cuts, plain without a terminal."""

from __future__ import annotations

import pytest

from bot.render.text import render, table
from bot.request import Attachment, Button, Reply, Table, Tone
from tests.pty_support import missing_words

LONG = "reachability of every backend: Docker hosts, Proxmox, GPU source, LLM, database and more words"


def card() -> Reply:
    return Reply("I understood: deploy hello local. Run it?", tone=Tone.question, title="Confirm",
                 fields=[("Command", "deploy hello local"),
                         ("What will happen", "hello on local (project chatops-local-hello, compose sha256 "
                                              "8a436454e517, git 477016d5ed3c)\n+ add hello (busybox:1.36.1)")],
                 tables=[Table(["usage", "what it does", "kind"], [["health", LONG, "read"]])],
                 buttons=[Button("Run it", "confirm", "r-1"), Button("Cancel", "cancel", "r-1")],
                 attachments=[Attachment("worker-dev-logs.txt", b"x" * 10)], request_id="r-1a2b3c4d")


@pytest.mark.parametrize("width", [40, 80, 200])
def test_wraps_to_the_width_and_keeps_every_word(width: int) -> None:
    out = render(card(), width, buttons=False, saved={"worker-dev-logs.txt": "saved to /tmp/x/r-1-w.txt"})
    assert max(len(line) for line in out.splitlines()) <= width
    for whole in (LONG, "hello on local (project chatops-local-hello, compose sha256 8a436454e517, git "
                        "477016d5ed3c)", "I understood: deploy hello local. Run it?"):
        assert not missing_words(whole, out), (whole, out)
    assert "[Run it]" not in out and "saved to /tmp/x/r-1-w.txt" in out
    assert "\x1b" not in out


def test_plain_is_one_line_per_row_and_colour_only_when_asked() -> None:
    out = render(card(), None)
    assert any(LONG in line and line.startswith("health") for line in out.splitlines())
    assert "\x1b" not in out and "[Run it] [Cancel]" in out
    assert "\x1b[" in render(card(), 80, color=True)


def test_too_wide_tables_become_one_block_per_row() -> None:
    t = Table([f"column{i}" for i in range(9)], [[f"value-{i}-{'x' * 8}" for i in range(9)]])
    out = render(Reply("rows", tables=[t]), 60)
    assert "column0:   value-0-xxxxxxxx" in out and "  column8: value-8-xxxxxxxx" in out
    assert max(len(line) for line in out.splitlines()) <= 60


def test_plain_table_marks_what_it_shortens() -> None:
    t = Table(["a", "b"], [["x" * 70, "y"]])
    assert "x" * 70 in table(t)
    short = table(t, max_width=60)
    assert "x" * 59 + "…" in short and "x" * 60 not in short
