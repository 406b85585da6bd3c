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
from typing import Any, Optional

import discord
from discord import app_commands

from commands.registry import Arg, CommandSpec, Kind, Registry
from infra.db.store import AuditStore
from llm.resolve import Resolver
from llm.values import STATUSES

log = logging.getLogger("chatops.discord")

GROUP_NAME = "ops"
ASK_NAME = "ask"
MAX_SUBCOMMANDS = 25
MAX_CHOICES = 25
DESCRIPTION = 100
TEXT_OPTION_MAX = 500

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


class Suggestions:
    """Autocomplete from the inventory (and, for request ids, from pending requests)."""

    def __init__(self, resolver: Resolver, registry: Registry, store: AuditStore) -> None:
        self.resolver, self.registry, self.store = resolver, registry, store

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


def ops_group(registry: Registry, on_request: OnRequest, suggest: Suggestions) -> app_commands.Group:
    """`/ops ask TEXT` plus one subcommand per registry command (Discord allows 25 in all)."""
    group = app_commands.Group(name=GROUP_NAME, description="Run the team's infrastructure from chat")

    @app_commands.describe(text="what you want, e.g. 'restart n8n on dev' or 'status prod'")
    async def ask(interaction: discord.Interaction[Any], text: str) -> None:
        await on_request(interaction, None, {}, text)

    group.add_command(app_commands.Command(name=ASK_NAME, description="Ask in plain language", callback=ask))
    skipped = []
    for spec in registry:
        if not spec.slash:
            continue
        if spec.name == ASK_NAME or len(group.commands) >= MAX_SUBCOMMANDS:
            skipped.append(spec.name)
            continue
        group.add_command(subcommand(spec, on_request, suggest))
    if skipped:
        log.warning("no /%s subcommand for %s (Discord allows %d per command); use /%s %s",
                    GROUP_NAME, ", ".join(skipped), MAX_SUBCOMMANDS, GROUP_NAME, ASK_NAME)
    return group
