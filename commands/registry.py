"""The command registry: each command declared once.

A `CommandSpec` holds everything about a command (arguments, whether it changes a
system, help, examples, handler).  The grammar, `help`, the LLM tool schema and the
chat platforms' slash commands are all derived from it, so adding a command means
adding one decorated function.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
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


# A user argument's value for whoever asks ("audit user=me", "what did I approve" → approver=me).
ME = "me"


class Whose(StrEnum):
    """Whose requests a request argument can name (for `Candidates`)."""

    own = "own"        # the asker's own (withdraw)
    others = "others"  # other people's (approve, deny: nobody decides their own)
    anyone = "anyone"  # any (cancel: the engine checks who may)


@dataclass(frozen=True)
class Candidates:
    """The requests a request argument can name: when it is left out ("deny that one"), the question that
    asks for it lists them, so nobody has to run `pending` first.  Listed, never picked: the person says
    the id."""

    statuses: tuple[str, ...]  # infra.status values
    whose: Whose
    heading: str  # "Waiting for a decision"
    listed_by: str  # the read that lists them all ("pending")


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
    # Plain language (compiled by llm/lexicon.py): words that introduce the value ("called X", "ref X"),
    # nouns that follow it ("the X snapshot"), the shape a bare value has anywhere in the text (a regex,
    # e.g. a version), and words that stand for a value (("failed", "failed"), ("waiting", "pending_approval")).
    cues: tuple[str, ...] = ()
    cues_after: tuple[str, ...] = ()
    shape: str | None = None
    values: tuple[tuple[str, str], ...] = ()
    candidates: Candidates | None = None  # a request argument: which requests it can name (Candidates)
    # A user argument naming who decided (approved or denied), not who asked: plain language fills it only
    # from a question about a decision ("what did bob approve", "requests denied by carol"); a bare name
    # fills the command's other user argument.
    decided_by: bool = False


@dataclass(frozen=True)
class Phrasing:
    """How people ask for a command in plain language, declared beside its handler.

    llm/lexicon.py compiles every command's phrasing into one lexicon; the plain-language
    reader (llm/nl.py) knows no command by name.  Phrases are lower case, written after
    contraction expansion ("do not"); a multi-word verb whose last word is a particle
    ("push out", "bring up") may also be split around its target ("push chat out").
    """

    # Verbs and verb phrases that ask for the command ("bounce", "push out", "roll back").
    verbs: tuple[str, ...] = ()
    # Nouns naming the command's action or its output ("deployment", "logs", "snapshot"). A noun asks
    # for the command only when no other verb governs it ("the chat deploy" vs "undo the chat deploy").
    nouns: tuple[str, ...] = ()
    # Weak words, used only when nothing stronger is present ("busy", "running").
    hints: tuple[str, ...] = ()
    # Past forms: a report of something done, or (in a question) something to look up in the audit log.
    past: tuple[str, ...] = ()
    # A decision's past form asks about the requests it decided, by the status they reached ("who approved
    # the deploy on prod" is `audit env=rumpleprod status=approved`, whoever approved by button or by typing;
    # the audit has no row of its own for a button's approval): the status value, else None.
    past_status: str | None = None
    # Verbs that ask for this command when their object is a noun of one of `objects` (command names,
    # or "*" for any command's noun; the command's own nouns always count): rollback's "undo" takes
    # deploy's "deployment", approve's "approve" takes any request ("approve alice's deploy").
    object_verbs: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    # Arguments that must be given for `object_verbs` to ask for this command: "cancel the running deploy
    # r-1a2b3c4d" is a cancel, "call off the web deploy" (no request named) is not ours to guess.
    object_needs: tuple[str, ...] = ()
    # Patterns with argument slots, StackStorm-style: "give {service} a kick on {env}".
    formats: tuple[str, ...] = ()
    # Verbs that, aimed at a whole machine rather than the command's target, ask for something the
    # command does not do ("reboot the dev vm" is not a service restart).
    machine_verbs: tuple[str, ...] = ()
    # This command answers questions about what happened (who/when/did + a past form); its
    # Kind.command argument takes the command asked about.
    answers_past: bool = False
    # This command answers how-to questions ("how do I roll back"); its first argument takes the topic.
    answers_howto: bool = False
    # This command answers yes/no questions about the state of what it takes, whatever word asks
    # ("is the portainer agent connected on dev?", "is everything green on staging?"); between several,
    # the targets named decide.
    answers_state: bool = False
    # Saying it does it: a decision on a named request is the act itself, said in the first person
    # ("approving r-…, diff looks good", "I'm denying r-… because prod is frozen"), not a heads-up of the
    # speaker's own plan (a future one still is: "I'm going to deny r-…"); an apology with it is addressed
    # to the requester ("deny r-…, sorry"), not a retraction.
    performative: bool = False


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
    # A typed `/ops NAME` subcommand on Discord (which allows 25 per level, see discord_slash); every
    # command stays reachable in plain text and through `/ops ask` either way.
    slash: bool = True
    phrasing: Phrasing = field(default_factory=Phrasing)

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

    def describe(self, args: dict[str, Any]) -> str:
        """The canonical one-line form of a plan ("restart n8n rumpledev tail=…")."""
        parts = [self.name]
        for a in self.args:
            v = args.get(a.name)
            if v is None:
                continue
            if a.positional and a.required:
                parts.append(str(v))
            else:
                text = str(v)
                parts.append(f'{a.name}="{text}"' if " " in text else f"{a.name}={text}")
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
ENTRY_POINTS = "chatops.commands"
_loaded = False
_plugins: set[str] = set()


class PluginError(Exception):
    """A team command module that cannot be loaded, with the module and the reason."""


def command(name: str, *, summary: str, args: tuple[Arg, ...] = (), changes: bool = False,
            examples: tuple[str, ...] = (), words: tuple[str, ...] = (), role: str | None = None,
            confirm: bool | None = None, approval: bool = True, backend: str | None = None,
            details: str = "", preview: Preview | None = None, notice: str = "outcomes",
            schedulable: bool = True, on_alert: bool = False, slash: bool = True,
            phrasing: Phrasing | None = None,
            registry: Registry | None = None) -> Callable[[Handler], Handler]:
    """Declare a command; the handler is returned unchanged so it stays testable."""

    def deco(fn: Handler) -> Handler:
        (registry or REGISTRY).add(CommandSpec(
            name=name, summary=summary, handler=fn, args=args, changes=changes,
            examples=examples, words=words, role=role,
            confirm=changes if confirm is None else confirm, approval=approval,
            backend=backend, details=details or inspect.cleandoc(fn.__doc__ or ""), preview=preview,
            notice=notice, schedulable=schedulable, on_alert=on_alert, slash=slash,
            phrasing=phrasing or Phrasing()))
        return fn

    return deco


def registry(plugins: Iterable[str] = ()) -> Registry:
    """The registry with every command module imported (once), then the team's plugin modules
    (config `plugins:`) and the installed entry points of the group `chatops.commands`."""
    global _loaded
    if not _loaded:
        for mod in _MODULES:
            importlib.import_module(mod)
        _loaded = True
        load_entry_points(REGISTRY)
    for name in plugins:
        load_plugin(name, REGISTRY)
    return REGISTRY


def load_plugin(name: str, into: Registry) -> None:
    """Import a team command module once; its `@command` declarations register themselves. A module
    that defines `register(registry)` is called with the registry instead (for a registry of its own)."""
    key = f"{id(into)}:{name}"
    if key in _plugins:
        return
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # an import error in a team's module must name the module
        raise PluginError(f"plugin '{name}' cannot be loaded: {type(exc).__name__}: {exc}") from exc
    hook = getattr(module, "register", None)
    if callable(hook):
        try:
            hook(into)
        except ValueError as exc:
            raise PluginError(f"plugin '{name}': {exc}") from exc
    _plugins.add(key)


def load_entry_points(into: Registry) -> None:
    """Plugins installed as packages: entry points of the group `chatops.commands` (a module name)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINTS):
        load_plugin(ep.value.split(":")[0], into)
