"""The deterministic route: the canonical form `COMMAND ARG… key=value`.

Targets may come with or without "on/in/to/from/for" and in any order; each
positional argument takes the next words that resolve to its kind through the
inventory.  A word that resolves to nothing makes the plan `command: null` with a
question naming the choices: the parser never guesses a target.
"""

from __future__ import annotations

from typing import Any

from commands.registry import Arg, CommandSpec, Kind, Registry
from infra.wording import join_choices
from llm.plan import Plan
from llm.resolve import Resolver
from llm.tokens import KV, Token, tokenize
from llm.validate import article, noun, unknown_name, validate

FILLER = frozenset({"on", "in", "to", "from", "for", "the", "at", "of", "please", "stack", "service",
                    "env", "environment", "vm", "host", "a", "an", "my", "our"})
LEADERS = frozenset({"/ops", "ops", "!ops", "/chatops", "chatops"})
MAX_TEXT = 2000
__all__ = ["KV", "LEADERS", "MAX_TEXT", "Token", "parse_arguments", "parse_explicit", "tokenize"]


def _command_at(tokens: list[Token], registry: Registry) -> tuple[str | None, int]:
    for n in (2, 1):
        if len(tokens) >= n:
            cmd = registry.command_for_word(" ".join(t.low for t in tokens[:n]))
            if cmd:
                return cmd, n
    return None, 0


def _match_entity(tokens: list[Token], i: int, kind: Kind, resolver: Resolver) -> tuple[str, int] | None:
    """Longest run of words from i that names an entity of `kind`."""
    for n in range(min(resolver.max_words, len(tokens) - i), 0, -1):
        phrase = " ".join(t.low for t in tokens[i:i + n])
        name = resolver.resolve(kind, phrase)
        if name:
            return name, n
    return None


def _other_kind(word: str, resolver: Resolver, wanted: list[Arg]) -> str | None:
    """Explain a word that names something of another kind ("chat is a stack")."""
    for kind in (Kind.stack, Kind.service, Kind.env, Kind.vm):
        name = resolver.resolve(kind, word)
        if name and all(a.kind is not kind for a in wanted):
            need = wanted[0].kind
            if kind is Kind.env and need is Kind.vm:
                return unknown_name(resolver, Kind.vm, word)
            hint = ""
            if kind is Kind.stack and need is Kind.service:
                hint = f" Its services: {join_choices(list(resolver.config.stack_services.get(name, ())))}."
            return (f"'{word}' is {article(noun(kind))}, not {article(noun(need))}.{hint} "
                    f"Which {noun(need)} do you mean?")
    return None


def clash(arg: Arg, before: Any, now: str, resolver: Resolver) -> str | None:
    """A second, different value for an argument: ask which one rather than let the last one win."""
    if before is None:
        return None

    def same(v: Any) -> str:
        text = str(v).strip()
        return (resolver.resolve(arg.kind, text) or text.lower()) if arg.kind.is_entity else text

    if same(before) == same(now):
        return None
    return (f"That gives {arg.name} twice ({before} and {now}); which {arg.name} do you mean? "
            "Say it once, please.")


def parse_explicit(text: str, resolver: Resolver, registry: Registry) -> Plan:
    """Parse the canonical form; an unrecognised first word gives `command: null`."""
    if len(text) > MAX_TEXT:
        return Plan.unknown(f"That message is too long ({len(text)} characters, at most {MAX_TEXT}).")
    tokens = tokenize(text)
    while tokens and tokens[0].low in LEADERS:
        tokens = tokens[1:]
    if not tokens:
        return Plan.unknown("Say 'help' to see what I can do.")
    cmd, used = _command_at(tokens, registry)
    if cmd is None:
        return Plan.unknown(None)
    return parse_arguments(registry[cmd], tokens[used:], resolver, registry, text=text,
                           after=tokens[used - 1].outer_end)


def parse_arguments(spec: CommandSpec, tokens: list[Token], resolver: Resolver,
                    registry: Registry, *, text: str | None = None, after: int = 0) -> Plan:
    """Arguments of one command; free text is taken verbatim from `text` (the tokens' own message),
    from the end of the word before it (`after` for the first) to the end of the message."""
    args: dict[str, Any] = {}
    pending = [a for a in spec.args if a.positional]
    unknown: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        kv = KV.match(tok.raw) if tok.kv else None
        if kv:
            key = kv.group(1).lower().replace("-", "_")
            if spec.arg(key) is None:
                names = ", ".join(a.name for a in spec.args) or "none"
                return Plan.unknown(f"'{spec.name}' has no argument '{key}' (arguments: {names}).",
                                    attempted=spec.name)
            twice = clash(spec.arg(key), args.get(key), kv.group(2), resolver)  # type: ignore[arg-type]
            if twice:
                return Plan.unknown(twice, attempted=spec.name)
            args[key] = kv.group(2)
            arg_kv = spec.arg(key)
            if arg_kv is not None and arg_kv.kind is Kind.text and text is not None:
                # reason=load testing: free text runs to the next key=value or the end, as written
                stop = next((t.outer_start for t in tokens[i + 1:] if t.kv), len(text))
                value = text[tok.outer_start + len(kv.group(1)) + 1:stop].strip()
                if value[:1] in "\"'“" and value[-1:] in "\"'”" and len(value) >= 2:
                    value = value[1:-1]
                args[key] = value
                pending = [a for a in pending if a.name != key]
                i = next((k for k in range(i + 1, len(tokens)) if tokens[k].kv), len(tokens))
                continue
            pending = [a for a in pending if a.name != key]
            i += 1
            continue
        entity_args = [a for a in pending if a.kind.is_entity]
        hit = None
        for arg in entity_args:
            m = _match_entity(tokens, i, arg.kind, resolver)
            if m:
                hit = (arg, m)
                break
        if hit:
            arg, (name, n) = hit
            args[arg.name] = name
            pending.remove(arg)
            i += n
            continue
        plain = [a for a in pending if not a.kind.is_entity]
        if any(a.kind is Kind.vm for a in entity_args) and resolver.resolve(Kind.env, tok.low) \
                and not resolver.resolve(Kind.vm, tok.low):
            # "restore rumple base": the hosted server is not a guest; never read it as a snapshot name.
            return Plan.unknown(unknown_name(resolver, Kind.vm, tok.raw), attempted=spec.name)
        if tok.low in FILLER and not (plain and plain[0].kind is Kind.text and not entity_args):
            i += 1
            continue
        if plain:
            arg = plain[0]
            if arg.kind is Kind.text:
                begin = tokens[i - 1].outer_end if i else after
                args[arg.name] = (text[begin:].strip() if text is not None
                                  else " ".join(t.raw for t in tokens[i:])).lstrip("—–:;, ").strip()
                i = len(tokens)
            else:
                args[arg.name] = tok.raw
                i += 1
            pending.remove(arg)
            continue
        unknown.append(tok.raw)
        i += 1
    if unknown:
        word = " ".join(unknown)
        wanted = [a for a in pending if a.kind.is_entity]
        if wanted:
            other = _other_kind(word, resolver, wanted)
            clarify = other or unknown_name(resolver, wanted[0].kind, word)
        else:
            clarify = f"I didn't understand '{word}' in that '{spec.name}' request. Usage: {spec.usage}"
        return Plan.unknown(clarify, attempted=spec.name)
    return validate(Plan(spec.name, args), resolver, registry)
