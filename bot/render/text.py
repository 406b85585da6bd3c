"""Terminal rendering of a Reply (console adapter, `chatops run`)."""

from __future__ import annotations

from bot.request import Reply, Table, Tone

_MARK = {Tone.info: "", Tone.success: "✔ ", Tone.warning: "! ", Tone.error: "✘ ",
         Tone.pending: "… ", Tone.question: "? "}


def table(t: Table, max_width: int = 60) -> str:
    cells = [[c.replace("\n", " ")[:max_width] for c in row] for row in [t.columns, *t.rows]]
    widths = [max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(len(t.columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    head = [t.title] if t.title else []
    return "\n".join(head + lines)


def render(reply: Reply) -> str:
    out = []
    if reply.title:
        out.append(f"== {reply.title} ==")
    out.append(_MARK.get(reply.tone, "") + reply.text)
    for key, value in reply.fields:
        first, *rest = value.splitlines() or [""]
        out.append(f"  {key}: {first}")
        out.extend(f"    {line}" for line in rest)
    for t in reply.tables:
        out.append(table(t))
    for a in reply.attachments:
        out.append(f"[attachment {a.filename}, {len(a.content)} bytes]")
    if reply.buttons:
        out.append("  [" + "] [".join(f"{b.label}" for b in reply.buttons) + "]")
    if reply.request_id:
        out.append(f"(request {reply.request_id})")
    return "\n".join(out)


def render_progress(reply: Reply) -> str:
    """One progress step of a running request: the line alone (its request id is on the final reply)."""
    return _MARK.get(reply.tone, "") + reply.text
