"""Block Kit rendering of a Reply, kept inside Slack's limits.

Slack rejects a message with more than 50 blocks, a section text over 3000 characters,
more than 10 fields or a header over 150 characters (`invalid_blocks`), so everything
here is cut to size and whatever does not fit goes into a file uploaded next to it.
Status shows as an emoji in the first line (emoji survive notifications, colours don't).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.render.text import render as render_text
from bot.render.text import table as table_text
from bot.request import Attachment, Reply, Table, Tone

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_HEADER = 150
MAX_BUTTON_LABEL = 75
MAX_CONTEXT_ELEMENTS = 10
MAX_TEXT = 40000
# Above this the reply text goes into a file and the message shows its beginning.
LONG_TEXT = 2800
SHOWN_OF_LONG = 1500
# Short, single-line field values go side by side; others get a section of their own.
SHORT_FIELD = 120

EMOJI = {Tone.info: "", Tone.success: ":white_check_mark:", Tone.warning: ":warning:",
         Tone.error: ":x:", Tone.pending: ":hourglass_flowing_sand:", Tone.question: ":grey_question:"}

ACTION_PREFIX = "chatops_"
_SLACK_ID = re.compile(r"\bslack:([UW][A-Z0-9]{2,})\b")


@dataclass
class SlackMessage:
    """What chat.postMessage / chat.update / chat.postEphemeral get, plus files to upload."""

    text: str
    blocks: list[dict[str, Any]]
    files: list[Attachment] = field(default_factory=list)


def escape(text: str) -> str:
    """Slack's three control characters; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(actor_id: str) -> str:
    """`slack:U123` → `<@U123>` (a ping); other platforms' ids as code."""
    m = _SLACK_ID.fullmatch(actor_id)
    return f"<@{m.group(1)}>" if m else f"`{escape(actor_id)}`"


def mrkdwn(text: str) -> str:
    """Escaped text in which Slack user ids become mentions."""
    return _SLACK_ID.sub(lambda m: f"<@{m.group(1)}>", escape(text))


def chunks(text: str, limit: int) -> list[str]:
    """Split at line ends where possible, never exceeding `limit`."""
    out: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut <= 0:
            cut = limit
        out.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text or not out:
        out.append(text)
    return out


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_SECTION] or " "}}


def context(*elements: str) -> dict[str, Any]:
    return {"type": "context",
            "elements": [{"type": "mrkdwn", "text": e[:MAX_SECTION]} for e in elements[:MAX_CONTEXT_ELEMENTS]]}


def _code(text: str) -> str:
    # A literal ``` would end the preformatted block early.
    return "```\n" + escape(text.replace("```", "'''")) + "\n```"


def _slug(text: str, default: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]
    return s or default


def _table_blocks(t: Table, files: list[Attachment]) -> list[dict[str, Any]]:
    full = table_text(t)
    head = f"*{mrkdwn(t.title)}*\n" if t.title else ""
    budget = MAX_SECTION - len(head) - 16
    if len(escape(full)) + 8 <= budget:
        return [section(head + _code(full))]
    # Too long for one section: show the rows that fit and attach the whole table.
    name = f"{_slug(t.title, 'table')}.txt"
    files.append(Attachment(name, full.encode(), "text/plain", t.title or "table"))
    lines = full.splitlines()
    shown: list[str] = []
    for line in lines:
        if len(escape("\n".join([*shown, line]))) + 8 > budget - 80:
            break
        shown.append(line)
    more = len(lines) - len(shown)
    return [section(head + _code("\n".join(shown))),
            context(f"… {more} more lines; the whole table is in `{name}`.")]


def _field_blocks(fields: list[tuple[str, str]]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    short: list[dict[str, Any]] = []

    def flush() -> None:
        for i in range(0, len(short), MAX_FIELDS):
            blocks.append({"type": "section", "fields": short[i:i + MAX_FIELDS]})
        short.clear()

    for key, value in fields:
        if len(value) <= SHORT_FIELD and "\n" not in value:
            short.append({"type": "mrkdwn", "text": f"*{mrkdwn(key)}*\n{mrkdwn(value) or ' '}"[:MAX_FIELD]})
            continue
        flush()
        body = mrkdwn(value)
        for n, part in enumerate(chunks(body, MAX_SECTION - len(key) - 8)):
            blocks.append(section((f"*{mrkdwn(key)}*\n" if n == 0 else "") + part))
    flush()
    return blocks


def _buttons(reply: Reply) -> dict[str, Any]:
    elements = []
    seen: dict[str, int] = {}
    for b in reply.buttons[:25]:
        # Action ids are unique within a block: a second button of one kind gets a suffix (`chatops_run.1`).
        n = seen.get(b.action, 0)
        seen[b.action] = n + 1
        action_id = f"{ACTION_PREFIX}{b.action}" + (f".{n}" if n else "")
        el: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": b.label[:MAX_BUTTON_LABEL]},
                              "action_id": action_id, "value": b.value}
        if b.style in ("primary", "danger"):
            el["style"] = b.style
        elements.append(el)
    return {"type": "actions", "block_id": f"chatops:{reply.request_id or 'x'}"[:255], "elements": elements}


def headline(reply: Reply) -> str:
    mark = EMOJI.get(reply.tone, "")
    return f"{mark} {reply.text}".strip() if mark else reply.text


def render(reply: Reply, *, asked: str | None = None, keep: list[dict[str, Any]] | None = None,
           note: str | None = None, buttons: bool = True) -> SlackMessage:
    """The message for a reply.

    `asked` is a context line on top (who asked what, for slash commands whose text Slack
    does not show); `keep` are blocks of an earlier card kept above the outcome (an
    approval card updated in place); `note` is a context line such as "Approved by …".
    """
    files: list[Attachment] = []
    head: list[dict[str, Any]] = list(keep or [])
    if asked:
        head.insert(0, context(asked))
    body: list[dict[str, Any]] = []
    if reply.title:
        title = (f"{EMOJI.get(reply.tone, '')} {reply.title}").strip()
        body.append({"type": "header", "text": {"type": "plain_text", "text": title[:MAX_HEADER], "emoji": True}})
    if note:
        body.append(context(note))
    text = reply.text
    if len(text) > LONG_TEXT:
        files.append(Attachment("output.txt", text.encode(), "text/plain", "full output"))
        cut = text.rfind("\n", 0, SHOWN_OF_LONG)
        text = text[: cut if cut > 0 else SHOWN_OF_LONG] + "\n… (the full output is in `output.txt`)"
    mark = "" if reply.title else EMOJI.get(reply.tone, "")
    for n, part in enumerate(chunks(mrkdwn(text), MAX_SECTION - 40)):
        body.append(section(f"{mark} {part}".strip() if n == 0 and mark else part))
    body.extend(_field_blocks(reply.fields))
    for t in reply.tables:
        body.extend(_table_blocks(t, files))
    for a in reply.attachments:
        files.append(a)
    # Who must act and the buttons survive any cut of the body.
    tail: list[dict[str, Any]] = []
    slack_mentions = [mention(m) for m in reply.mentions if m.startswith("slack:")]
    if reply.mentions:
        who = " ".join(slack_mentions) if slack_mentions else "(none of them has a Slack id in the config)"
        tail.append(section(f"*{escape(reply.mention_label)}:* {who}"[:MAX_SECTION]))
    if buttons and reply.buttons:
        tail.append(_buttons(reply))
    foot = [f"request `{reply.request_id}`"] if reply.request_id else []
    if files:
        foot.append("attached: " + ", ".join(f"`{escape(f.filename)}`" for f in files))
    if foot:
        tail.append(context(" · ".join(foot)))
    room = MAX_BLOCKS - len(head) - len(tail)
    if len(body) > room:
        # Keep what fits, say so, and attach the whole reply as text.
        files.append(Attachment("reply.txt", render_text(reply).encode(), "text/plain", "whole reply"))
        body = [*body[: max(room - 1, 0)], context("… more than Slack shows in one message; see `reply.txt`.")]
    blocks = (head + body + tail)[:MAX_BLOCKS]
    fallback = headline(reply)
    if reply.title:
        fallback = f"{reply.title}: {fallback}"
    return SlackMessage(text=notification(fallback, slack_mentions), blocks=blocks, files=files)


def notification(text: str, mentions: list[str] | None = None) -> str:
    """The top-level `text` (notifications, screen readers): short, escaped, mentions at the end."""
    short = text if len(text) <= 300 else text[:300] + "…"
    return " ".join([mrkdwn(short), *(mentions or [])])


def render_progress(lines: list[str], *, request_id: str | None, keep: list[dict[str, Any]] | None = None,
                    note: str | None = None, asked: str | None = None) -> SlackMessage:
    """A running request: the steps reported so far (the newest last)."""
    shown = lines[-15:]
    body = "\n".join(f"• {mrkdwn(line)}" for line in shown)
    if len(lines) > len(shown):
        body = f"… {len(lines) - len(shown)} earlier steps\n" + body
    text = f"{EMOJI[Tone.pending]} Running" + (f" `{request_id}`" if request_id else "") + "\n" + body
    blocks: list[dict[str, Any]] = [*([context(asked)] if asked else []), *(keep or [])]
    if note:
        blocks.append(context(note))
    blocks.extend(section(c) for c in chunks(text, MAX_SECTION))
    return SlackMessage(text=notification(f"Running {request_id or ''}: {shown[-1] if shown else ''}"),
                        blocks=blocks[:MAX_BLOCKS])
