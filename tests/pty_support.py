"""Driving `chatops console` through a real pseudo-terminal, read back as a person sees it.

pexpect gives the program a pty of a chosen size; pyte (a VT100 emulator) replays what it
wrote, so `screen()` is the terminal's text: wrapped where the terminal wraps, colours and
cursor moves applied.  `readonly()` runs a command with folders made read-only the way a
hardened unit does it (a read-only bind mount in a private mount namespace when root,
since root ignores file modes; plain file modes otherwise).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pyte

from .conftest import ROOT

PROMPT_ENV = {"TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}


def clean_env(**extra: str) -> dict[str, str]:
    drop = ("DATABASE_URL", "CHATOPS_CONFIG", "DOCKER_HOST", "XDG_DATA_HOME", "XDG_STATE_HOME", "COLUMNS",
            "LINES", "NO_COLOR", "CHATOPS_STATE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PROMPT_ENV)
    env.update(extra)
    return env


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 80, rows: int = 40) -> None:
        self.cols = cols
        self.screen_ = pyte.HistoryScreen(cols, rows, history=20000, ratio=0.001)
        self.stream = pyte.ByteStream(self.screen_)
        self.raw = b""
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, dimensions=(rows, cols), cwd=str(ROOT),
                                   timeout=30)

    def _pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.1)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return
            self.raw += data
            self.stream.feed(data)

    def screen(self) -> str:
        rows = [[line[x].data for x in range(self.cols)] for line in self.screen_.history.top]
        lines = ["".join(r).rstrip() for r in rows] + [line.rstrip() for line in self.screen_.display]
        return "\n".join(lines)

    def text(self) -> str:
        """Everything written, escapes removed (for checks that don't care about layout)."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]|\r", "",
                      self.raw.decode("utf-8", "replace"))

    def wait_for(self, pattern: str, timeout: float = 60.0, after: int = 0) -> re.Match[str]:
        """Wait until `pattern` is on screen (below screen offset `after`, in characters)."""
        end = time.monotonic() + timeout
        while True:
            # Lines joined with a space: words a terminal wrapped still match a sentence.
            found = re.search(pattern, self.screen()[after:].replace("\n", " "))
            if found:
                return found
            if time.monotonic() > end or not self.child.isalive():
                raise AssertionError(f"{pattern!r} did not appear; screen:\n{self.screen()[-4000:]}")
            self._pump(0.2)

    def mark(self) -> int:
        """Where the current prompt line starts: what comes from the next input on lies after it."""
        shown = self.screen().rstrip()
        return shown.rfind("\n") + 1

    def type(self, line: str) -> None:
        self.child.send(line + "\r")
        self._pump(0.2)

    def ctrl_c(self) -> None:
        self.child.sendintr()
        self._pump(0.2)

    def close(self) -> int:
        if self.child.isalive():
            self.child.sendeof()
            self._pump(1.0)
            if self.child.isalive():
                self.child.sendeof()
        self.child.expect(pexpect.EOF, timeout=60)
        self.stream.feed(self.child.before or b"")
        self.child.close()
        return self.child.exitstatus or 0


def console_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "console", *args]


def words(text: str) -> Counter[str]:
    return Counter(text.split())


def missing_words(expected: str, screen: str) -> list[str]:
    """Words of `expected` that the screen lacks (as many times as expected has them)."""
    have = words(screen)
    return [w for w, n in words(expected).items() if have[w] < n]


@contextmanager
def readonly(*folders: Path) -> Iterator[list[str]]:
    """A command prefix under which `folders` are read-only (for root too)."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        binds = " && ".join(f"mount --bind -o ro '{f}' '{f}'" for f in folders)
        yield ["unshare", "-m", "sh", "-c", f"{binds} && exec \"$@\"", "sh"]
        return
    modes = {f: f.stat().st_mode for f in folders}
    for f in folders:
        f.chmod(0o555)
    try:
        yield []
    finally:
        for f, mode in modes.items():
            f.chmod(mode)
