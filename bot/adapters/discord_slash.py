"""The `/ops` slash command tree, derived from the command registry.

Each registry command becomes a typed `/ops <command>` subcommand: argument kinds become
option types (integers with their bounds, status with fixed choices), required options
come first as Discord demands, help texts become option descriptions, and inventory
kinds autocomplete from the Resolver.  `/ops ask` takes plain language, because a
Discord command that has subcommands cannot itself take options.
"""

from __future__ import annotations

import asyncio
import inspect
import keyword
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Optional, Protocol

import discord
from discord import app_commands

from commands.registry import Arg, CommandSpec, Kind, Registry
from infra.db.store import AuditStore
from llm.resolve import Resolver
from llm.values import STATUSES

log = logging.getLogger("chatops.discord")

GROUP_NAME = "ops"
ASK_NAME = "ask"
MORE_NAME = "more"
MAX_SUBCOMMANDS = 25
MAX_CHOICES = 25
DESCRIPTION = 100
TEXT_OPTION_MAX = 500
ASK_MAX = 6000  # Discord's own bound on a string option

# (interaction, command name or None for plain language, args, the text for the audit log)
OnRequest = Callable[[discord.Interaction[Any], str | None, dict[str, Any], str], Awaitable[None]]
Choice = app_commands.Choice


def _clip(text: str, limit: int = DESCRIPTION) -> str:
    text = " ".join(text.split()) or "…"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _py_name(name: str) -> str:
    py = name.replace("-", "_")
    if not py.isidentifier() or keyword.iskeyword(py) or py == "interaction":
        py += "_"
    return py


def _annotation(arg: Arg) -> Any:
    if arg.kind is Kind.integer:
        if arg.minimum is None and arg.maximum is None:
            return int
        return app_commands.Range[int, arg.minimum, arg.maximum]
    if arg.kind is Kind.text:
        return app_commands.Range[str, 1, TEXT_OPTION_MAX]
    return str


def audit_text(command: str, args: dict[str, Any]) -> str:
    """The slash invocation as one line, e.g. `/ops deploy stack=chat env=rumpletest`."""
    parts = [f"/{GROUP_NAME} {command}"]
    for k, v in args.items():
        text = str(v)
        parts.append(f'{k}="{text}"' if " " in text else f"{k}={text}")
    return " ".join(parts)


class Source(Protocol):
    """Where suggestions come from: the engine, whose resolver follows the configuration in force."""

    @property
    def resolver(self) -> Resolver: ...

    registry: Registry
    store: AuditStore


class Suggestions:
    """Autocomplete from the inventory (and, for request ids, from pending requests)."""

    def __init__(self, source: Source) -> None:
        self.source = source

    @property
    def resolver(self) -> Resolver:
        return self.source.resolver  # read at each use: a reloaded config is suggested at once

    @property
    def registry(self) -> Registry:
        return self.source.registry

    @property
    def store(self) -> AuditStore:
        return self.source.store

    def names(self, kind: Kind, current: str, within: list[str] | None = None) -> list[Choice[str]]:
        cur = " ".join(current.lower().split())
        names = self.resolver.choices(kind)
        if within is not None:
            names = [n for n in names if n in within] or names
        ranked: list[tuple[int, str]] = []
        for n in names:
            spellings = self.resolver.words(kind, n) or [n.lower()]
            if not cur or n.lower().startswith(cur):
                ranked.append((0, n))
            elif any(w.startswith(cur) for w in spellings):
                ranked.append((1, n))
            elif any(cur in w for w in spellings):
                ranked.append((2, n))
        ranked.sort(key=lambda p: p[0])
        return [Choice(name=n, value=n) for _, n in ranked[:MAX_CHOICES]]

    def for_arg(self, arg: Arg) -> Callable[[discord.Interaction[Any], str], Awaitable[list[Choice[str]]]]:
        async def complete(interaction: discord.Interaction[Any], current: str) -> list[Choice[str]]:
            ns = interaction.namespace
            within: list[str] | None = None
            stack = self.resolver.resolve(Kind.stack, str(ns.stack)) if getattr(ns, "stack", None) else None
            if arg.kind is Kind.env and stack:
                within = self.resolver.envs_for_stack(stack)
            elif arg.kind is Kind.service and stack:
                within = list(self.resolver.config.stack_services.get(stack, ()))
            return self.names(arg.kind, current, within)

        async def commands(interaction: discord.Interaction[Any], current: str) -> list[Choice[str]]:
            cur = current.lower().strip()
            return [Choice(name=n, value=n) for n in self.registry.names() if cur in n][:MAX_CHOICES]

        async def requests(interaction: discord.Interaction[Any], current: str) -> list[Choice[str]]:
            rows = await asyncio.to_thread(self.store.pending)
            cur = current.lower().strip()
            out = []
            for r in rows:
                label = _clip(f"{r.id}: {r.command} {r.env or r.target or ''} by {r.actor} ({r.status})")
                if cur in label.lower():
                    out.append(Choice(name=label, value=r.id))
            return out[:MAX_CHOICES]

        if arg.kind is Kind.command:
            return commands
        if arg.kind is Kind.request:
            return requests
        return complete


def subcommand(spec: CommandSpec, on_request: OnRequest, suggest: Suggestions) -> app_commands.Command[Any, ..., Any]:
    """One typed `/ops <name>` command whose options mirror the spec's arguments."""
    params = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=discord.Interaction)]
    names: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    renames: dict[str, str] = {}
    autocomplete: dict[str, Any] = {}
    choices: dict[str, list[Choice[str]]] = {}
    for arg in sorted(spec.args, key=lambda a: not a.required):  # Discord: required options first
        py = _py_name(arg.name)
        names[py] = arg.name
        if py != arg.name:
            renames[py] = arg.name
        ann = _annotation(arg)
        params.append(inspect.Parameter(
            py, inspect.Parameter.KEYWORD_ONLY,
            annotation=ann if arg.required else Optional[ann],  # noqa: UP045 (a runtime typing object)
            default=inspect.Parameter.empty if arg.required else None))
        help_text = arg.help or arg.kind.value
        if arg.default is not None:
            help_text += f" (default {arg.default})"
        descriptions[py] = _clip(help_text)
        if arg.kind is Kind.status:
            choices[py] = [Choice(name=s, value=s) for s in STATUSES[:MAX_CHOICES]]
        elif arg.kind.is_entity or arg.kind in (Kind.command, Kind.request):
            autocomplete[py] = suggest.for_arg(arg)

    async def callback(interaction: discord.Interaction[Any], **values: Any) -> None:
        args = {names[k]: v for k, v in values.items() if v is not None}
        await on_request(interaction, spec.name, args, audit_text(spec.name, args))

    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__discord_app_commands_param_description__ = descriptions  # type: ignore[attr-defined]
    if renames:
        callback.__discord_app_commands_param_rename__ = renames  # type: ignore[attr-defined]
    if choices:
        callback.__discord_app_commands_param_choices__ = choices  # type: ignore[attr-defined]
    if autocomplete:
        callback.__discord_app_commands_param_autocomplete__ = autocomplete  # type: ignore[attr-defined]
    return app_commands.Command(name=spec.name, description=_clip(spec.summary), callback=callback)


def ops_group(registry: Registry, on_request: OnRequest, suggest: Suggestions,
              text_limit: int = ASK_MAX) -> app_commands.Group:
    """`/ops ask TEXT` plus one subcommand per registry command.

    Discord allows 25 options per level: past 24 commands (ask takes one place, `more` another)
    the rest go one level down, `/ops more NAME`, so a new or team command is never dropped.
    `text_limit` (limits.max_text_chars) is declared on `ask`, so Discord stops longer text
    in the box instead of the bot refusing it after it was sent.
    """
    group = app_commands.Group(name=GROUP_NAME, description="Run the team's infrastructure from chat")
    limit = max(1, min(text_limit, ASK_MAX))

    async def ask(interaction: discord.Interaction[Any], text: str) -> None:
        await on_request(interaction, None, {}, text)

    ask.__annotations__["text"] = app_commands.Range[str, 1, limit]  # a bound known only at run time
    ask = app_commands.describe(text="what you want, e.g. 'restart n8n on dev' or 'status prod'")(ask)

    group.add_command(app_commands.Command(name=ASK_NAME, description="Ask in plain language", callback=ask))
    specs = [spec for spec in registry if spec.slash and spec.name not in (ASK_NAME, MORE_NAME)]
    room = MAX_SUBCOMMANDS - 1  # beside ask
    if len(specs) > room:
        room -= 1  # and beside more
    for spec in specs[:room]:
        group.add_command(subcommand(spec, on_request, suggest))
    rest = specs[room:]
    if rest:
        more = app_commands.Group(name=MORE_NAME, description="More commands", parent=group)
        for spec in rest[:MAX_SUBCOMMANDS]:
            more.add_command(subcommand(spec, on_request, suggest))
        dropped = [spec.name for spec in rest[MAX_SUBCOMMANDS:]]
        if dropped:
            log.warning("no /%s subcommand for %s (Discord allows %d per level); use /%s %s",
                        GROUP_NAME, ", ".join(dropped), MAX_SUBCOMMANDS, GROUP_NAME, ASK_NAME)
    return group


def all_subcommands(group: app_commands.Group) -> list[app_commands.Command[Any, ..., Any]]:
    """Every typed subcommand of `/ops`, at either level."""
    out: list[app_commands.Command[Any, ..., Any]] = []
    for cmd in group.commands:
        if isinstance(cmd, app_commands.Group):
            out.extend(all_subcommands(cmd))
        else:
            out.append(cmd)
    return out
