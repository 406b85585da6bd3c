"""Discord rendering of a Reply: embeds, files and approval buttons within Discord's limits.

Discord rejects a whole message when one limit is broken (6000 characters over all embeds,
25 fields, 1024 per field value, 4096 per description, 2000 of content, 10 embeds, 10 files),
so everything that does not fit moves into an attached text file instead of being cut off
silently: the reader always sees that more exists and where it is.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import discord

from bot.render.text import table as text_table
from bot.request import Action, Button, Reply, Table, Tone
from infra.wording import counted

# Discord's documented limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
EMBED_TOTAL = 6000
EMBED_TITLE = 256
EMBED_DESCRIPTION = 4096
EMBED_FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER_TEXT = 2048
CONTENT = 2000
EMBEDS_PER_MESSAGE = 10
FILES_PER_MESSAGE = 10
FILE_BYTES = 10 * 1024 * 1024
CUSTOM_ID = 100
BUTTON_LABEL = 80

COLOURS = {Tone.info: 0x5865F2, Tone.success: 0x57F287, Tone.warning: 0xFEE75C, Tone.error: 0xED4245,
           Tone.pending: 0xF0B232, Tone.question: 0x5865F2}
_MARK = {Tone.success: "✅ ", Tone.warning: "⚠️ ", Tone.error: "❌ ", Tone.pending: "⏳ ", Tone.question: "❓ "}
_STYLE = {"primary": discord.ButtonStyle.primary, "danger": discord.ButtonStyle.danger,
          "default": discord.ButtonStyle.secondary}

# What a decision button carries: "chatops:" + Button.value ("action:request_id:plan_hash").
CUSTOM_ID_PREFIX = "chatops:"
CUSTOM_ID_TEMPLATE = (rf"chatops:(?P<action>{'|'.join(Action)}):(?P<rid>[a-z0-9-]{{1,20}}):"
                      r"(?P<digest>[0-9a-f]{0,64})")


@dataclass(frozen=True)
class FileData:
    """Attachment bytes kept apart from discord.File, which is single-use (closed after a send)."""

    filename: str
    content: bytes
    description: str = ""

    def to_file(self) -> discord.File:
        return discord.File(io.BytesIO(self.content), filename=self.filename,
                            description=self.description[:1024] or None)


@dataclass
class Rendered:
    """Everything one Discord message needs; `files()` makes fresh File objects per send."""

    content: str | None
    embeds: list[discord.Embed]
    attachments: list[FileData] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    ephemeral: bool = False
    mention_ids: list[int] = field(default_factory=list)

    def files(self) -> list[discord.File]:
        return [a.to_file() for a in self.attachments]

    def view(self) -> discord.ui.View | None:
        return decision_view(self.buttons) if self.buttons else None

    @property
    def allowed_mentions(self) -> discord.AllowedMentions:
        """Only the approvers named on the card are pinged; never @everyone or roles."""
        return discord.AllowedMentions(everyone=False, roles=False, replied_user=False,
                                       users=[discord.Object(i) for i in self.mention_ids])


def clip(text: str, limit: int, tail: str = "…") -> str:
    return text if len(text) <= limit else text[: max(0, limit - len(tail))] + tail


def discord_user_ids(identities: list[str]) -> list[int]:
    """`discord:123` → 123; identities on other platforms cannot be pinged here."""
    out = []
    for ident in identities:
        platform, _, uid = ident.partition(":")
        if platform == "discord" and uid.isdigit():
            out.append(int(uid))
    return out


def _code(text: str) -> str:
    return "```\n" + text.replace("```", "ʼʼʼ") + "\n```"


def _slug(text: str, fallback: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]
    return s or fallback


class _Builder:
    """Fills embeds in order and spills to files whenever a limit would be broken."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.files: list[FileData] = []
        self.notes: list[str] = []
        colour = COLOURS.get(reply.tone, COLOURS[Tone.info])
        self.main = discord.Embed(colour=colour)
        self.embeds = [self.main]
        self.colour = colour

    def attach(self, name: str, content: str, description: str = "") -> str:
        base, dot, ext = name.rpartition(".")
        taken = {f.filename for f in self.files}
        candidate, n = name, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}{dot}{ext}", n + 1
        self.files.append(FileData(candidate, content.encode(), description))
        return candidate

    def total(self) -> int:
        return sum(len(e) for e in self.embeds)

    def room(self) -> int:
        return EMBED_TOTAL - self.total()

    def describe(self) -> None:
        r = self.reply
        if r.title:
            self.main.title = clip(r.title, EMBED_TITLE)
        text = _MARK.get(r.tone, "") + r.text
        if len(text) > EMBED_DESCRIPTION - 200:
            name = self.attach("reply.txt", r.text, "the full reply")
            text = clip(text, EMBED_DESCRIPTION - 200) + f"\n*(the full text is attached as {name})*"
        self.main.description = text or "\u200b"
        if r.request_id:
            self.main.set_footer(text=clip(f"request {r.request_id}", FOOTER_TEXT))

    def field(self, name: str, value: str, *, inline: bool = False) -> bool:
        """Add a field if it fits; False when the embed or message budget is spent."""
        name = clip(name or "\u200b", FIELD_NAME)
        value = value if value.strip() else "—"
        if len(self.main.fields) >= EMBED_FIELDS or len(name) + min(len(value), FIELD_VALUE) > self.room() - 100:
            return False
        if len(value) > FIELD_VALUE:
            fname = self.attach(f"{_slug(name, 'field')}.txt", value, name)
            suffix = f"\n*(full value in {fname})*"
            value = clip(value, FIELD_VALUE - len(suffix)) + suffix
        self.main.add_field(name=name, value=value, inline=inline)
        return True

    def fields(self) -> None:
        overflow: list[tuple[str, str]] = []
        for name, value in self.reply.fields:
            if overflow or not self.field(name, value, inline=len(value) <= 40 and "\n" not in value):
                overflow.append((name, value))
        if overflow:
            fname = self.attach("fields.txt", "\n".join(f"{k}: {v}" for k, v in overflow))
            self.notes.append(f"{counted(len(overflow), 'more field')} in {fname}")

    def table(self, n: int, t: Table) -> None:
        text = text_table(Table(t.columns, t.rows), max_width=60)
        name = t.title or (f"table {n}" if len(self.reply.tables) > 1 else "table")
        block = _code(text)
        if len(block) <= FIELD_VALUE and self.field(name, block):
            return
        if (len(block) <= EMBED_DESCRIPTION and len(self.embeds) < EMBEDS_PER_MESSAGE
                and len(block) + len(name) < self.room() - 100):
            self.embeds.append(discord.Embed(title=clip(name, EMBED_TITLE), description=block,
                                             colour=self.colour))
            return
        fname = self.attach(f"{_slug(t.title, 'table')}.txt", text_table(t, max_width=10_000), name)
        summary = f"{counted(len(t.rows), 'row')} attached as {fname}"
        if not self.field(name, summary):
            self.notes.append(f"{name}: {summary}")

    def attachments(self) -> None:
        for a in self.reply.attachments:
            if len(a.content) > FILE_BYTES:
                self.notes.append(f"{a.filename} ({len(a.content) // 1024} KiB) is over Discord's "
                                  f"{FILE_BYTES // 1024 // 1024} MiB file limit and was not sent")
                continue
            self.files.append(FileData(a.filename, a.content, a.title))
            if a.mime.startswith("image/") and self.main.image.url is None:
                self.main.set_image(url=f"attachment://{a.filename}")

    def finish(self) -> None:
        if len(self.files) > FILES_PER_MESSAGE:
            dropped = self.files[FILES_PER_MESSAGE:]
            self.files = self.files[:FILES_PER_MESSAGE]
            names = ", ".join(f.filename for f in dropped)
            self.notes.append(f"{counted(len(dropped), 'more file')} not sent: {names}")
        if self.notes:
            note = "\n".join(f"*{n}*" for n in self.notes)
            desc = self.main.description or ""
            budget = min(EMBED_DESCRIPTION, len(desc) + self.room()) - len(note) - 1
            self.main.description = clip(desc, max(budget, 0)) + "\n" + note


def render(reply: Reply) -> Rendered:
    """A Reply as one Discord message; always within Discord's limits."""
    b = _Builder(reply)
    b.describe()
    b.fields()
    for n, t in enumerate(reply.tables, 1):
        b.table(n, t)
    b.attachments()
    b.finish()
    ids = discord_user_ids(reply.mentions)
    content = None
    if ids:
        content = clip(f"{reply.mention_label}: " + " ".join(f"<@{i}>" for i in ids), CONTENT)
    return Rendered(content=content, embeds=b.embeds, attachments=b.files, buttons=list(reply.buttons),
                    ephemeral=reply.private, mention_ids=ids)


def status_line(text: str, tone: Tone = Tone.pending) -> discord.Embed:
    return discord.Embed(description=clip(_MARK.get(tone, "") + text, EMBED_DESCRIPTION),
                         colour=COLOURS.get(tone, COLOURS[Tone.info]))


# -- decision buttons -------------------------------------------------------------------

@runtime_checkable
class DecisionHandler(Protocol):
    """What the client behind a decision button must offer (the Discord adapter's bot does)."""

    async def decide(self, interaction: discord.Interaction[Any], action: str, request_id: str,
                     digest: str) -> None: ...


def custom_id(button: Button) -> str:
    cid = CUSTOM_ID_PREFIX + button.value
    if len(cid) > CUSTOM_ID:
        raise ValueError(f"custom id {cid!r} is longer than Discord's {CUSTOM_ID} characters")
    return cid


class DecisionButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CUSTOM_ID_TEMPLATE):
    """A decision button (an `Action`) whose custom id is the whole state it needs.

    discord.py matches every component click against the template, so a button posted
    before a restart (or by another bot process) still reaches `decide` without the view
    being registered again; the request itself lives in the database.
    """

    def __init__(self, action: str, request_id: str, digest: str, label: str = "",
                 style: discord.ButtonStyle = discord.ButtonStyle.secondary) -> None:
        self.action, self.request_id, self.digest = action, request_id, digest
        cid = custom_id(Button(label, action, request_id, digest))
        super().__init__(discord.ui.Button(label=clip(label or action.capitalize(), BUTTON_LABEL),
                                           style=style, custom_id=cid))

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> DecisionButton:
        label = getattr(item, "label", None) or ""
        style = getattr(item, "style", discord.ButtonStyle.secondary)
        return cls(match["action"], match["rid"], match["digest"], label, style)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client = interaction.client
        if not isinstance(client, DecisionHandler):
            await interaction.response.send_message("This bot cannot handle that button.", ephemeral=True)
            return
        await client.decide(interaction, self.action, self.request_id, self.digest)


def decision_view(buttons: list[Button]) -> discord.ui.View:
    """A timeout-free view (buttons must outlive the process); rows of at most five."""
    view = discord.ui.View(timeout=None)
    for i, b in enumerate(buttons[:25]):
        item = DecisionButton(b.action, b.request_id, b.plan_hash, b.label,
                              _STYLE.get(b.style, discord.ButtonStyle.secondary))
        item.row = i // 5
        view.add_item(item)
    return view
