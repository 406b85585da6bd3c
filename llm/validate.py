"""Validation of any plan against the registry and the inventory.

Every route (grammar, LLM, slash command) ends here.  A plan leaves either complete
with canonical values, or with `command: null` / a `clarify` question.  Nothing a
model returns reaches a handler without passing through `validate`.
"""

from __future__ import annotations

import re
from typing import Any

from rapidfuzz.distance import OSA

from commands.registry import Arg, CommandSpec, Kind, Registry
from infra.status import status_of
from infra.wording import join_choices
from llm.fuzzy import limit_for
from llm.plan import Plan
from llm.resolve import Resolver
from llm.values import STATUSES, WORD, id_ref, normalize_duration

_KIND_NOUN = {Kind.env: "environment", Kind.stack: "stack", Kind.service: "service",
              Kind.vm: "VM", Kind.host: "GPU host"}
MAX_TEXT_ARG = 500
# Values that pick what is acted on (a snapshot, a git ref, a revision, a request) without being
# inventory names: an inferred plan may use them only when the user's words contain them.
SAID_KINDS = frozenset({Kind.word, Kind.request, Kind.schedule})


class Invalid(Exception):
    """An argument value that cannot be used, with the question to ask instead."""


def noun(kind: Kind) -> str:
    return _KIND_NOUN.get(kind, kind.value)


def article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def unknown_name(resolver: Resolver, kind: Kind, word: str) -> str:
    if kind is Kind.vm and resolver.resolve(Kind.env, word) and not resolver.resolve(Kind.vm, word):
        env = resolver.resolve(Kind.env, word)
        # (true of the hosted server and of a console's local engine alike: no `vm` behind the environment)
        return (f"{env} is a Docker environment with no Proxmox guest behind it, so there is no VM of it to "
                f"snapshot, restore or report on. VMs: {join_choices(resolver.choices(Kind.vm))}.")
    choices = resolver.choices(kind)
    near = close_to(word, choices)
    guess = f" Did you mean '{near}'?" if near else ""
    return (f"I don't know {article(noun(kind))} called '{word}'.{guess} "
            f"{_plural_heading(noun(kind))}: {join_choices(choices)}.")


def close_to(word: str, choices: list[str]) -> str | None:
    """The one choice a letter or two from `word` ('helo' for hello), to name in the question: a hint the
    user confirms by saying it again, never a name acted on (so short words count too, unlike the typo
    index that rewrites what is parsed)."""
    w = word.lower()
    if len(w) < 3:
        return None
    reach = limit_for(w)  # the typo index's reach: one edit under 8 letters, two from 8
    near = [c for c in choices if abs(len(c) - len(w)) <= reach and OSA.distance(w, c.lower()) <= reach]
    return near[0] if len(near) == 1 else None


def _plural_heading(name: str) -> str:
    """'Stacks', 'VMs', 'GPU hosts': str.capitalize() would lower an initialism ('Vms')."""
    return name[:1].upper() + name[1:] + "s"


def question(resolver: Resolver, arg: Arg, args: dict[str, Any]) -> str:
    """The clarify question for a missing required argument, naming the choices."""
    choices: list[str] = []
    if arg.kind is Kind.env:
        stack = args.get("stack") or (resolver.stack_for(args["service"]) if args.get("service") else None)
        choices = resolver.envs_for_stack(stack) if stack else resolver.choices(Kind.env)
    elif arg.kind is Kind.service and args.get("stack"):
        choices = list(resolver.config.stack_services.get(args["stack"], ())) or resolver.choices(arg.kind)
    elif arg.kind.is_entity:
        choices = resolver.choices(arg.kind)
    if choices:
        return f"Which {noun(arg.kind)}: {join_choices(choices)}?"
    return f"What {arg.name}? ({arg.help or arg.kind.value})"


def coerce(resolver: Resolver, registry: Registry, arg: Arg, value: Any) -> Any:
    """Canonical value for one argument, or raise Invalid with the question to ask."""
    if value is None:
        return None
    if arg.kind.is_entity:
        name = resolver.resolve(arg.kind, str(value))
        if name is None:
            raise Invalid(unknown_name(resolver, arg.kind, str(value)))
        return name
    if arg.kind is Kind.integer:
        try:
            n = int(str(value).strip())
        except ValueError:
            raise Invalid(f"{arg.name} must be a whole number, not '{value}'.") from None
        if (arg.minimum is not None and n < arg.minimum) or (arg.maximum is not None and n > arg.maximum):
            raise Invalid(f"{arg.name} must be between {arg.minimum} and {arg.maximum}, not {n}.")
        return n
    if arg.kind is Kind.duration:
        d = normalize_duration(str(value))
        if d is None:
            raise Invalid(f"{arg.name} takes a duration like 15m, 2h, 1d or an ISO date, not '{value}'.")
        return d
    if arg.kind is Kind.request:
        ref = id_ref(str(value), "r")
        if ref is None:
            raise Invalid(f"'{value}' is not a request id (they look like r-1a2b3c4d; the first 4 digits do).")
        return ref
    if arg.kind is Kind.schedule:
        ref = id_ref(str(value), "s")
        if ref is None:
            raise Invalid(f"'{value}' is not a schedule id (they look like s-1a2b3c4d; 'schedules' lists them).")
        return ref
    if arg.kind is Kind.status:
        status = status_of(str(value))
        if status is None:
            raise Invalid(f"status must be one of {join_choices(list(STATUSES))}, or a word like pending, "
                          f"waiting, running or done; not '{str(value)[:40]}'.")
        return status.value
    if arg.kind is Kind.command:
        found = registry.command_for_word(str(value).strip())
        if found is None:
            raise Invalid(f"I don't know a command called '{value}'. Commands: {', '.join(registry.names())}.")
        return found
    if arg.kind is Kind.word:
        v = str(value).strip()
        if not WORD.match(v):
            raise Invalid(f"{arg.name} '{v[:40]}' must be one word of letters, digits, '-', '_' or '.'.")
        return v
    if arg.kind is Kind.user:
        v = str(value).strip()
        if not re.match(r"^[\w.@:-]{1,128}$", v):
            raise Invalid(f"'{v[:40]}' is not a user id.")
        return v
    v = str(value).strip()  # free text is kept as the person wrote it
    if len(v) > MAX_TEXT_ARG:
        raise Invalid(f"{arg.name} is too long ({len(v)} characters, at most {MAX_TEXT_ARG}).")
    return v


def _named(resolver: Resolver, kind: Kind, name: str, low: str) -> bool:
    # "gpu host" names the alias "gpu-host" and "open-webui" the alias "open webui": the grammar reads
    # a hyphen and a space alike, so the check does too
    return any(f" {w} " in low or f" {w.replace('-', ' ')} " in low for w in resolver.words(kind, name))


def mentioned(resolver: Resolver, kind: Kind, name: str, text: str) -> bool:
    """Whether the user's own words name this entity the way the grammar resolves names: by name or
    alias, a stack by its only-stack service ("deploy n8n" → workflows), a service by its stack when the
    stack has only that one, an environment by its VM's name and a VM by its environment's."""
    low = " " + re.sub(r"[^a-z0-9.-]+", " ", text.lower().replace("-", " - ")).replace(" - ", "-") + " "
    low = " " + " ".join(low.split()) + " "
    if _named(resolver, kind, name, low):
        return True
    services = resolver.config.stack_services
    inv = resolver.config.inventory
    if kind is Kind.stack:
        return any(resolver.stack_for(s) == name and _named(resolver, Kind.service, s, low)
                   for s in services.get(name, ()))
    if kind is Kind.service:
        return any(list(svcs) == [name] and _named(resolver, Kind.stack, stack, low)
                   for stack, svcs in services.items())
    if kind is Kind.env:
        vm = inv.environments[name].vm if name in inv.environments else None
        return bool(vm) and _named(resolver, Kind.vm, str(vm), low)
    if kind is Kind.vm:
        return any(e.vm == name and _named(resolver, Kind.env, env, low) for env, e in inv.environments.items())
    if kind is Kind.host:
        return any(n == name and _named(resolver, k, n, low) for k in (Kind.env, Kind.vm)
                   for n in resolver.choices(k))
    return False


def example_of(spec: CommandSpec, resolver: Resolver, registry: Registry) -> str:
    """One example of the command in the configured inventory's names (commands/examples.py), else its usage:
    a team without `chat` or `rumpletest` is never told to say 'deploy chat rumpletest'."""
    from commands.examples import examples_for  # it parses with llm.grammar, which imports this module

    found = examples_for(spec, resolver.config, resolver, registry)
    return found[0] if found else spec.usage


def said(value: Any, text: str) -> bool:
    """Whether the user's own words contain this exact value as a word of its own."""
    v = re.escape(str(value).strip().lower())
    return bool(v) and re.search(rf"(?<![\w.-]){v}(?![\w-]|\.\w)", text.lower()) is not None


def validate(plan: Plan, resolver: Resolver, registry: Registry, *, text: str | None = None,
             default_env: str | None = None, require_mentioned: bool = False) -> Plan:
    """Check a plan against registry and inventory; return the canonical plan or a clarify.

    The result keeps the route's statistics (`usage`): what the model cost is counted whatever
    validation makes of its answer."""
    out = _validate(plan, resolver, registry, text=text, default_env=default_env,
                    require_mentioned=require_mentioned)
    if out.usage is None:
        out.usage = plan.usage
    return out


def _validate(plan: Plan, resolver: Resolver, registry: Registry, *, text: str | None,
              default_env: str | None, require_mentioned: bool) -> Plan:
    if plan.command is None:
        return plan
    spec = registry.get(plan.command)
    if spec is None:
        return Plan.unknown(f"I don't know the command '{plan.command}'. Try 'help'.",
                            source=plan.source)
    args: dict[str, Any] = {}
    for key, value in plan.args.items():
        arg = spec.arg(key)
        if arg is None:
            names = ", ".join(a.name for a in spec.args) or "none"
            return Plan.unknown(f"'{spec.name}' has no argument '{key}' (arguments: {names}).",
                                source=plan.source, attempted=spec.name)
        if value in (None, ""):
            continue
        try:
            args[key] = coerce(resolver, registry, arg, value)
        except Invalid as exc:
            return Plan.unknown(str(exc), source=plan.source, attempted=spec.name)
        if require_mentioned and arg.kind.is_entity and text is not None and not (
                mentioned(resolver, arg.kind, args[key], text)
                or (arg.kind is Kind.env and args[key] == default_env)):
            return Plan.unknown(
                f"You didn't name {article(noun(arg.kind))}; I won't guess '{args[key]}'. "
                f"Which {noun(arg.kind)}: {join_choices(resolver.choices(arg.kind))}?",
                source=plan.source, attempted=spec.name)
        if require_mentioned and arg.kind in SAID_KINDS and text is not None and not said(args[key], text):
            return Plan.unknown(
                f"You didn't say '{args[key]}'; I won't pick {article(arg.name)} for you. "
                f"Say the {arg.name} you mean, e.g. '{example_of(spec, resolver, registry)}'.",
                source=plan.source, attempted=spec.name)
    if "service" in args and spec.arg("stack"):
        stack = resolver.stack_for(args["service"], args.get("stack"))
        if args.get("stack") and stack is None:
            return Plan.unknown(f"The {args['stack']} stack has no service {args['service']}.",
                                source=plan.source, attempted=spec.name)
    if spec.arg("env") and spec.arg("env").required and "env" not in args and default_env:  # type: ignore[union-attr]
        args["env"] = default_env
    for arg in spec.required:
        if arg.name not in args:
            return Plan(spec.name, args, plan.source, question(resolver, arg, args),
                        min(plan.confidence, 0.5), spec.name)
    return Plan(spec.name, args, plan.source, None, plan.confidence, spec.name)
