"""Redaction of a whole reply: every part a platform shows, not just its text.

Handlers put backend answers into titles, fields, table cells and files as well as the
text; the engine passes each reply through here on its way out, so a credential in
any of them is masked however the adapter renders it.
"""

from __future__ import annotations

from dataclasses import replace

from bot.request import Attachment, Reply, Table
from infra.redact import Redactor

# Files whose bytes are text (logs, tables, JSON); images and other binaries stay as they are.
TEXT_MIMES = ("text/", "application/json", "application/x-ndjson", "application/yaml")


def redact_attachment(r: Redactor, a: Attachment) -> Attachment:
    content = a.content
    if a.mime.startswith(TEXT_MIMES):
        content = r.text(a.content.decode("utf-8", "replace")).encode()
    return replace(a, filename=r.text(a.filename), title=r.text(a.title), content=content)


def _redact_table(r: Redactor, t: Table) -> Table:
    rows = [[str(c) for c in row] for row in t.rows]
    if r.clean([*t.columns, t.title, *(c for row in rows for c in row)]):
        return Table(list(t.columns), rows, t.title)
    return Table([r.text(c) for c in t.columns], [[r.text(c) for c in row] for row in rows], r.text(t.title))


def redact_reply(r: Redactor, reply: Reply) -> Reply:
    """The same reply with secrets masked in its text, title, fields, tables, buttons, files and notices."""
    reply.text = r.text(reply.text)
    reply.title = r.text(reply.title)
    reply.fields = [(r.text(k), r.text(v)) for k, v in reply.fields]
    reply.tables = [_redact_table(r, t) for t in reply.tables]
    reply.buttons = [replace(b, label=r.text(b.label)) for b in reply.buttons]
    reply.attachments = [redact_attachment(r, a) for a in reply.attachments]
    reply.relays = [replace(n, reply=redact_reply(r, n.reply)) for n in reply.relays]
    return reply


