"""A command's examples in the team's own names.

Examples are declared once on each command in the canonical grammar, naming the
shipped inventory (`deploy chat rumpletest`).  A team whose inventory has no `chat` or
`rumpletest` should not be shown commands that cannot work for them: each name of an
environment, stack, service, VM or GPU host that the configured inventory does not know
is swapped for one it does, and an example that still does not parse is left out.
"""

from __future__ import annotations

import shlex
import threading
from collections import OrderedDict
from collections.abc import Callable

from commands.registry import Arg, CommandSpec, Kind, Registry
from infra.config import Config
from llm.grammar import FILLER, parse_explicit
from llm.plan import Plan
from llm.resolve import Resolver


def samples(config: Config, changes: bool) -> dict[Kind, str]:
    """One name of each kind from the configured inventory (an unprotected one for changes)."""
    inv = config.inventory
    out: dict[Kind, str] = {}

    def pick(names: list[str], protected: Callable[[str], bool]) -> str | None:
        open_ = [n for n in names if not protected(n)]
        chosen = open_ if changes and open_ else names
        return chosen[0] if chosen else None

    env = pick(list(inv.environments), config.env_protected)
    vm = pick(list(inv.vms), config.vm_protected)
    # the first stack that has services: its file alone is read (checked for changes), not every stack's
    service = next((svc for svcs in config.stack_services.values() for svc in svcs), None)
    for kind, name in ((Kind.env, env), (Kind.vm, vm), (Kind.stack, next(iter(inv.stacks), None)),
                       (Kind.service, service),
                       (Kind.host, next(iter(inv.gpu_hosts), None))):
        if name:
            out[kind] = name
    return out


def _entity(tokens: list[str], i: int, kind: Kind, resolver: Resolver) -> int:
    """How many tokens from i name an entity of `kind` in this inventory (0: none)."""
    for n in range(min(resolver.max_words, len(tokens) - i), 0, -1):
        if resolver.resolve(kind, " ".join(tokens[i:i + n]).lower()):
            return n
    return 0


def _quote(token: str) -> str:
    key, sep, value = token.partition("=")
    if sep and " " in value:
        return f'{key}="{value}"'
    return shlex.quote(token) if " " in token else token


def localise(example: str, spec: CommandSpec, resolver: Resolver, names: dict[Kind, str]) -> str | None:
    """The example with unknown names swapped for known ones; None when no name of that kind exists."""
    try:
        tokens = shlex.split(example)
    except ValueError:
        return None
    words = next((w for w in sorted((spec.name, *spec.words), key=len, reverse=True)
                  if [t.lower() for t in tokens[:len(w.split())]] == w.lower().split()), None)
    if words is None:
        return None
    out, i = tokens[:len(words.split())], len(words.split())
    pending: list[Arg] = [a for a in spec.args if a.positional]
    while i < len(tokens):
        tok = tokens[i]
        key, sep, value = tok.partition("=")
        arg = spec.arg(key.lower()) if sep else None
        if arg is not None:
            pending = [a for a in pending if a.name != arg.name]
            if arg.kind.is_entity and not _entity([value], 0, arg.kind, resolver):
                if arg.kind not in names:
                    return None
                tok = f"{key}={names[arg.kind]}"
            out.append(tok)
            i += 1
            continue
        if tok.lower() in FILLER or not pending:
            out.append(tok)
            i += 1
            continue
        arg = pending.pop(0)
        if arg.kind is Kind.text:
            out.extend(tokens[i:])
            break
        if arg.kind.is_entity:
            n = _entity(tokens, i, arg.kind, resolver)
            if n:
                out.extend(tokens[i:i + n])
                i += n
                continue
            if arg.kind not in names:
                return None
            tok = names[arg.kind]
        out.append(tok)
        i += 1
    return " ".join(_quote(t) for t in out)


# (command, the names swapped in) -> (resolver, registry, spec, examples): `help` and every "say e.g. …"
# hint ask again for the same few; each is worked out again only when a name it used changes (a stack
# file's first service) or the config is reloaded (a new resolver).
_MEMO: OrderedDict[tuple[str, tuple[tuple[Kind, str], ...]],
                   tuple[Resolver, Registry, CommandSpec, list[str]]] = OrderedDict()
MEMO_SIZE = 256
_MEMO_LOCK = threading.Lock()  # validate and help may ask from worker threads


def examples_for(spec: CommandSpec, config: Config, resolver: Resolver, registry: Registry) -> list[str]:
    """The spec's examples as they work with this inventory, each checked by the canonical grammar."""
    names = samples(config, spec.changes)
    key = (spec.name, tuple(names.items()))
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
        if hit is not None and hit[0] is resolver and hit[1] is registry and hit[2] is spec:
            _MEMO.move_to_end(key)
            return list(hit[3])
    out = _localised(spec, resolver, registry, names)
    with _MEMO_LOCK:
        _MEMO[key] = (resolver, registry, spec, out)
        if len(_MEMO) > MEMO_SIZE:
            _MEMO.popitem(last=False)
    return list(out)


def _localised(spec: CommandSpec, resolver: Resolver, registry: Registry, names: dict[Kind, str]) -> list[str]:
    out: list[str] = []
    for example in spec.examples:
        local = localise(example, spec, resolver, names)
        if local is None or local in out:
            continue
        plan: Plan = parse_explicit(local, resolver, registry)
        if plan.command == spec.name and plan.complete:
            out.append(local)
    return out


def sample_requests(config: Config, resolver: Resolver, registry: Registry,
                    commands: tuple[str, ...] = ("status", "restart")) -> list[str]:
    """A few requests that work here, for "say e.g. …" hints."""
    out = []
    for name in commands:
        spec = registry.get(name)
        found = examples_for(spec, config, resolver, registry) if spec else []
        if found:
            out.append(found[0])
    return out
