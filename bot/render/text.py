"""Terminal rendering of a Reply (console adapter, `chatops run`), with rich.

Two modes, chosen by the adapter: for a terminal, everything is wrapped to its width
(never cut: a long cell wraps inside its column, a long word folds) and tones may be
coloured; for a pipe or a CI log (`width=None`), nothing is wrapped or coloured, so
each table row stays one greppable line.  `table()` is the plain monospace table the
Slack and Discord renderers put in code blocks.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from rich import box
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Table as RichTable
from rich.text import Text

from bot.request import Reply, Table, Tone

_MARK = {Tone.info: "", Tone.success: "✔ ", Tone.warning: "! ", Tone.error: "✘ ",
         Tone.pending: "… ", Tone.question: "? "}
_STYLE = {Tone.success: "green", Tone.warning: "yellow", Tone.error: "bold red", Tone.pending: "cyan",
          Tone.question: "bold blue"}
# A header underline per column and nothing else: reads like `docker ps`, copies cleanly.
_PLAIN_BOX = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)
_TTY_BOX = box.Box("    \n    \n ─  \n    \n    \n    \n    \n    \n")
UNBOUNDED = 1_000_000  # "no wrapping": wider than any line we make


def _console(width: int | None, color: bool) -> Console:
    return Console(file=io.StringIO(), width=width or UNBOUNDED, force_terminal=color,
                   color_system="standard" if color else None, no_color=not color, highlight=False,
                   markup=False, emoji=False, soft_wrap=False, legacy_windows=False)


def _finish(console: Console) -> str:
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in out.rstrip("\n").split("\n"))


def _cells(t: Table) -> list[list[str]]:
    n = len(t.columns)
    return [[str(c) for c in row[:n]] + [""] * (n - len(row)) for row in t.rows]


def _longest_words(t: Table) -> list[int]:
    """Per column, the longest word: the narrowest it can be without breaking a word."""
    out = []
    for i, name in enumerate(t.columns):
        words = [w for row in [[name], *([r[i]] for r in _cells(t))] for cell in row for w in cell.split()]
        out.append(max((cell_len(w) for w in words), default=1))
    return out


def _fits(t: Table, width: int | None) -> bool:
    return width is None or sum(_longest_words(t)) + 2 * (len(t.columns) - 1) <= width


def _rich_table(t: Table, color: bool, width: int | None = None) -> RichTable:
    rt = RichTable(box=_TTY_BOX if color else _PLAIN_BOX, show_edge=False, pad_edge=False,
                   padding=(0, 1), header_style="bold" if color else "", collapse_padding=True)
    floors = _longest_words(t) if width is not None else [0] * len(t.columns)
    for name, floor in zip(t.columns, floors, strict=True):
        rt.add_column(name, overflow="fold", no_wrap=False, min_width=floor or None)
    for cells in _cells(t):
        rt.add_row(*cells)
    return rt


def _cards(t: Table, color: bool) -> RenderableType:
    """A table too wide for the terminal, as one block per row (first column as its heading)."""
    grid = RichTable.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for n, cells in enumerate(_cells(t)):
        if n:
            grid.add_row("", "")
        grid.add_row(Text(f"{t.columns[0]}:", style="bold" if color else ""),
                     Text(cells[0], style="bold" if color else ""))
        for name, value in zip(t.columns[1:], cells[1:], strict=True):
            if value:
                grid.add_row(f"  {name}:", value)
    return grid


def _any_table(t: Table, color: bool, width: int | None) -> RenderableType:
    return _rich_table(t, color, width) if _fits(t, width) else _cards(t, color)


def table(t: Table, max_width: int | None = None) -> str:
    """A plain monospace table, one line per row.

    With `max_width`, longer cells are shortened to that many characters and end in '…',
    so a reader can see that something was left out; without it nothing is shortened.
    """
    rows = [[c.replace("\n", " ") for c in row] for row in t.rows]
    if max_width is not None:
        rows = [[c if len(c) <= max_width else c[:max_width - 1] + "…" for c in row] for row in rows]
    console = _console(None, False)
    if t.title:
        console.print(Text(t.title))
    console.print(_rich_table(Table(t.columns, rows), False))
    return _finish(console)


def _fields(fields: list[tuple[str, str]]) -> RenderableType:
    grid = RichTable.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in fields:
        grid.add_row(f"  {key}:", value)
    return grid


def render(reply: Reply, width: int | None = None, color: bool = False, *, buttons: bool = True,
           saved: Mapping[str, str] | None = None) -> str:
    """The reply as text: wrapped to `width` (a terminal) or unwrapped (`None`: pipes, logs).

    `buttons=False` leaves out buttons the caller offers another way (the console asks
    "Run it? [y/N]" itself); `saved` maps an attachment's file name to where it was written.
    """
    console = _console(width, color)
    if reply.title:
        console.print(Text(f"== {reply.title} ==", style="bold" if color else ""))
    console.print(Text(_MARK.get(reply.tone, "") + reply.text, style=_STYLE.get(reply.tone, "") if color else ""),
                  overflow="fold")
    if reply.fields:
        console.print(_fields(reply.fields))
    for t in reply.tables:
        if t.title:
            console.print(Text(t.title, style="bold" if color else ""))
        console.print(_any_table(t, color, width))
    for a in reply.attachments:
        where = (saved or {}).get(a.filename)
        note = f": {where}" if where else ""
        console.print(Text(f"[attachment {a.filename}, {len(a.content)} bytes{note}]"), overflow="fold")
    if buttons and reply.buttons:
        console.print(Text("  [" + "] [".join(b.label for b in reply.buttons) + "]"))
    if reply.request_id:
        console.print(Text(f"(request {reply.request_id})", style="dim" if color else ""))
    return _finish(console)


def progress_line(reply: Reply, width: int | None = None, color: bool = False) -> str:
    """A progress update: one marked line (wrapped in a terminal), no request trailer."""
    console = _console(width, color)
    console.print(Text(_MARK.get(reply.tone, "") + reply.text, style=_STYLE.get(reply.tone, "") if color else ""),
                  overflow="fold")
    return _finish(console)
