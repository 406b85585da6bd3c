"""The command registry: each command declared once.

A `CommandSpec` holds everything about a command (arguments, whether it changes a
system, help, examples, handler).  The grammar, `help`, the LLM tool schema and the
chat platforms' slash commands are all derived from it, so adding a command means
adding one decorated function.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.request import Reply
    from commands.context import Context


class Kind(StrEnum):
    """What an argument's value is; entity kinds resolve through the inventory."""

    env = "env"
    stack = "stack"
    service = "service"
    vm = "vm"
    host = "host"
    integer = "integer"
    duration = "duration"
    word = "word"  # a single token such as a snapshot name or git ref
    text = "text"  # the rest of the line
    request = "request"
    schedule = "schedule"
    user = "user"
    command = "command"
    status = "status"

    @property
    def is_entity(self) -> bool:
        return self in ENTITY_KINDS


ENTITY_KINDS = frozenset({Kind.env, Kind.stack, Kind.service, Kind.vm, Kind.host})


@dataclass(frozen=True)
class Arg:
    name: str
    kind: Kind
    required: bool = True
    help: str = ""
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    # Positional arguments can be given without `key=`; others only as key=value.
    positional: bool = True


Handler = Callable[["Context", dict[str, Any]], Awaitable["Reply"]]
Preview = Callable[["Context", dict[str, Any]], Awaitable[list[str]]]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    summary: str
    handler: Handler
    args: tuple[Arg, ...] = ()
    changes: bool = False
    examples: tuple[str, ...] = ()
    # Extra command words the explicit grammar accepts ("vm status" for vm-status).
    words: tuple[str, ...] = ()
    # Role required beyond the default for its risk (admin for locks, approver to approve).
    role: str | None = None
    # Changing commands are confirmed and approved on protected targets unless told not to.
    confirm: bool = True
    approval: bool = True
    # The infra backend it needs, for `health` and "not configured" answers.
    backend: str | None = None
    details: str = ""
    preview: Preview | None = None
    # What its outcome is announced as in the ops channel (infra.config.Notice): outcomes, freezes.
    notice: str = "outcomes"
    # Whether "... at 22:00" / "... every night" may schedule it.
    schedulable: bool = True
    # Offered as a button on an alert whose labels fill its arguments (status, logs, restart).
    on_alert: bool = False
    # A typed `/ops NAME` subcommand on Discord (which allows 25); without one, `/ops ask` reaches it.
    slash: bool = True

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)

    @property
    def required(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.required)

    @property
    def usage(self) -> str:
        parts = [self.name]
        for a in self.args:
            if a.positional:
                parts.append(a.name.upper() if a.required else f"[{a.name.upper()}]")
            else:
                parts.append(f"[{a.name}=…]")
        return " ".join(parts)

    @property
    def needed_role(self) -> str:
        if self.role:
            return self.role
        return "operator" if self.changes else "viewer"


@dataclass
class Registry:
    """Collects command specs; rejects duplicate names and words."""

    _specs: dict[str, CommandSpec] = field(default_factory=dict)
    _words: dict[str, str] = field(default_factory=dict)

    def add(self, spec: CommandSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"command '{spec.name}' is declared twice")
        for word in (spec.name, *spec.words):
            key = word.lower()
            if key in self._words:
                raise ValueError(f"command word '{word}' already belongs to '{self._words[key]}'")
            self._words[key] = spec.name
        names = [a.name for a in spec.args]
        if len(set(names)) != len(names):
            raise ValueError(f"command '{spec.name}' declares an argument twice")
        self._specs[spec.name] = spec

    def get(self, name: str) -> CommandSpec | None:
        return self._specs.get(name)

    def __getitem__(self, name: str) -> CommandSpec:
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[CommandSpec]:
        return iter(self._specs.values())

    def names(self) -> list[str]:
        return list(self._specs)

    def command_for_word(self, word: str) -> str | None:
        return self._words.get(word.lower())

    @property
    def words(self) -> dict[str, str]:
        return dict(self._words)


REGISTRY = Registry()

_MODULES = ("commands.admin", "commands.audit", "commands.stacks", "commands.services",
            "commands.vms", "commands.gpu", "commands.schedules")
_loaded = False


def command(name: str, *, summary: str, args: tuple[Arg, ...] = (), changes: bool = False,
            examples: tuple[str, ...] = (), words: tuple[str, ...] = (), role: str | None = None,
            confirm: bool | None = None, approval: bool = True, backend: str | None = None,
            details: str = "", preview: Preview | None = None, notice: str = "outcomes",
            schedulable: bool = True, on_alert: bool = False, slash: bool = True,
            registry: Registry | None = None) -> Callable[[Handler], Handler]:
    """Declare a command; the handler is returned unchanged so it stays testable."""

    def deco(fn: Handler) -> Handler:
        (registry or REGISTRY).add(CommandSpec(
            name=name, summary=summary, handler=fn, args=args, changes=changes,
            examples=examples, words=words, role=role,
            confirm=changes if confirm is None else confirm, approval=approval,
            backend=backend, details=details or (fn.__doc__ or "").strip(), preview=preview,
            notice=notice, schedulable=schedulable, on_alert=on_alert, slash=slash))
        return fn

    return deco


def registry() -> Registry:
    """The registry with every command module imported (once)."""
    global _loaded
    if not _loaded:
        for mod in _MODULES:
            importlib.import_module(mod)
        _loaded = True
    return REGISTRY
