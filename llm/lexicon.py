"""The lexicon: every command's declared phrasing (commands/registry.py `Phrasing`), compiled once.

Nothing here names a command: the tables are built from the registry, so a plugin's
command is understood in plain language as soon as it is registered.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from enum import IntEnum

from commands.registry import Arg, CommandSpec, Kind, Registry
from infra.status import STATUS_WORDS, Status
from llm import phrases as P


class Strength(IntEnum):
    """How strongly a phrase asks for its command."""

    hint = 1  # "busy", "running": only when nothing stronger is present
    noun = 2  # "logs", "snapshot", "deployment": a request unless another verb governs it
    verb = 3  # "bounce", "push out": asks for the command


@dataclass(frozen=True)
class Sense:
    command: str
    strength: Strength


@dataclass(frozen=True)
class Slot:
    """One piece of a format: a literal word or an argument slot."""

    word: str | None = None
    arg: Arg | None = None


@dataclass(frozen=True)
class Format:
    command: str
    slots: tuple[Slot, ...]
    text: str


_SLOT = re.compile(r"^\{([a-z_]+)\}$")
# The words people use for a request's status, from the one table of them (infra/status.py).
STATUS_VALUES: tuple[tuple[str, str], ...] = tuple(
    [(s.value.replace("_", " "), s.value) for s in Status]
    + [(w.replace("_", " "), s.value) for w, s in STATUS_WORDS.items()])


def gerund(verb: str) -> str:
    """The -ing form of an English verb: bounce → bouncing, stop → stopping, deploy → deploying."""
    if verb.endswith("ing"):
        return verb
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        return verb[:-1] + "ing"
    vowels = "aeiou"
    if len(verb) <= 4 and len(verb) >= 3 and verb[-1] not in vowels + "wxy" and verb[-2] in vowels \
            and verb[-3] not in vowels:
        return verb + verb[-1] + "ing"  # stop → stopping, ship → shipping
    return verb + "ing"


def _norm(phrase: str) -> str:
    words: list[str] = []
    for w in phrase.lower().split():
        words.extend(P.CONTRACTIONS.get(w, w).split())
    return " ".join(words)


@dataclass
class Lexicon:
    # phrase → every sense it has ("revert" is both rollback and restore; the targets decide)
    phrases: dict[str, list[Sense]] = field(default_factory=dict)
    # (verb, particle) → commands, for split particle verbs ("push chat out", "bring n8n back up")
    particles: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # past form → commands ("restarted" → restart)
    past: dict[str, list[str]] = field(default_factory=dict)
    # noun → commands whose nouns it is
    nouns: dict[str, list[str]] = field(default_factory=dict)
    # object verb → [(command, commands whose nouns it takes)]
    object_verbs: dict[str, list[tuple[str, frozenset[str]]]] = field(default_factory=dict)
    machine_verbs: dict[str, list[str]] = field(default_factory=dict)
    # command → the commands whose nouns its object verbs take (its own always)
    objects: dict[str, frozenset[str]] = field(default_factory=dict)
    # command → arguments its object verbs need given ("cancel the deploy r-…", not "cancel the deploy")
    object_needs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    formats: list[Format] = field(default_factory=list)
    answers_past: str | None = None
    answers_howto: str | None = None
    answers_state: tuple[str, ...] = ()
    performative: frozenset[str] = frozenset()
    max_words: int = 1
    value_words: frozenset[str] = frozenset()
    # the cue words of every free-text argument ("description", "because"), longest first
    text_cues: tuple[str, ...] = ()
    # nouns that say which value of a shaped argument is meant ("version", "branch", "revision")
    value_nouns: frozenset[str] = frozenset()
    specs: dict[str, CommandSpec] = field(default_factory=dict)

    @classmethod
    def compile(cls, registry: Registry) -> Lexicon:
        lex = cls()
        for spec in registry:
            lex._add_spec(spec)
        # the -ing form of every declared verb asks too ("mind bouncing the proxy?"), unless it is a phrase
        # of its own already ("restarting" is declared; "logging" is a noun of logs)
        for spec in registry:
            for verb in spec.phrasing.verbs:
                words = _norm(verb).split()
                form = " ".join([gerund(words[0]), *words[1:]])
                if form != _norm(verb) and form not in lex.phrases:
                    lex._sense(form, spec.name, Strength.verb)
        for verb, governed in list(lex.object_verbs.items()):
            words = verb.split()
            form = " ".join([gerund(words[0]), *words[1:]])
            if form not in lex.object_verbs and form not in lex.phrases:
                lex.object_verbs[form] = list(governed)  # "taking a snapshot"
        # every word that stands for some argument's value (never read as a typo of another word)
        lex.value_words = frozenset(w for spec in registry for a in spec.args for w, _ in cls.values_of(a))
        lex.value_nouns = frozenset(_norm(c) for spec in registry for a in spec.args
                                    if a.kind is Kind.word and a.shape for c in a.cues
                                    if " " not in c and len(c) > 2 and c not in ("from", "to", "at", "with", "off"))
        lex.text_cues = tuple(sorted({_norm(c) for spec in registry for a in spec.args if a.kind is Kind.text
                                      for c in a.cues}, key=len, reverse=True))
        lex.max_words = max([len(p.split()) for p in (*lex.phrases, *lex.object_verbs, *lex.past)] or [1])
        return lex

    def _sense(self, phrase: str, command: str, strength: Strength) -> None:
        phrase = _norm(phrase)
        senses = self.phrases.setdefault(phrase, [])
        for i, s in enumerate(senses):
            if s.command == command:
                senses[i] = Sense(command, max(s.strength, strength))
                return
        senses.append(Sense(command, strength))

    def _add_spec(self, spec: CommandSpec) -> None:
        ph = spec.phrasing
        self.specs[spec.name] = spec
        own = Strength.verb if spec.changes else Strength.noun
        for word in (spec.name, *spec.words):
            self._sense(word, spec.name, own)
        for verb in ph.verbs:
            self._sense(verb, spec.name, Strength.verb)
            words = _norm(verb).split()
            if len(words) >= 2 and words[-1] in P.SPLIT_PARTICLES:
                self.particles.setdefault((words[0], words[-1]), []).append(spec.name)
        for noun in ph.nouns:
            self._sense(noun, spec.name, Strength.noun)
            self.nouns.setdefault(_norm(noun), []).append(spec.name)
        for hint in ph.hints:
            self._sense(hint, spec.name, Strength.hint)
        for past in ph.past:
            self.past.setdefault(_norm(past), []).append(spec.name)
        objects = frozenset((spec.name, *ph.objects))
        self.objects[spec.name] = objects
        for verb in ph.object_verbs:
            self.object_verbs.setdefault(_norm(verb), []).append((spec.name, objects))
        if ph.object_needs:
            unknown = [a for a in ph.object_needs if spec.arg(a) is None]
            if unknown:
                raise ValueError(f"command '{spec.name}': object_needs names no argument '{unknown[0]}'")
            self.object_needs[spec.name] = ph.object_needs
        for verb in ph.machine_verbs:
            self.machine_verbs.setdefault(_norm(verb), []).append(spec.name)
        for fmt in ph.formats:
            self.formats.append(self._format(spec, fmt))
        if ph.answers_past:
            self.answers_past = spec.name
        if ph.answers_howto:
            self.answers_howto = spec.name
        if ph.answers_state:
            self.answers_state += (spec.name,)
        if ph.performative:
            self.performative |= {spec.name}

    @staticmethod
    def _format(spec: CommandSpec, fmt: str) -> Format:
        slots: list[Slot] = []
        for word in _norm(fmt).split():
            m = _SLOT.match(word)
            if m:
                arg = spec.arg(m.group(1))
                if arg is None:
                    raise ValueError(f"command '{spec.name}': format '{fmt}' names no argument '{m.group(1)}'")
                slots.append(Slot(arg=arg))
            else:
                slots.append(Slot(word=word))
        return Format(spec.name, tuple(slots), fmt)

    # -- look-ups ------------------------------------------------------------
    def senses(self, phrase: str) -> list[Sense]:
        return self.phrases.get(phrase, [])

    def governs(self, verb: str, noun_command: str) -> list[str]:
        """Commands that `verb` asks for when its object is a noun of `noun_command`."""
        return [cmd for cmd, objects in self.object_verbs.get(verb, [])
                if noun_command in objects or "*" in objects]

    def takes(self, command: str, nouns_of: list[str]) -> bool:
        """Whether `command` declares a noun of one of `nouns_of` among its objects (rollback takes a deploy)."""
        objects = self.objects.get(command, frozenset())
        return "*" in objects or any(n in objects for n in nouns_of)

    def is_noun(self, phrase: str) -> bool:
        return phrase in self.nouns

    def command_words(self) -> set[str]:
        """Single-word verbs and past forms of some command (never read as unknown names)."""
        words = {p for table in (self.past, self.object_verbs, self.machine_verbs) for p in table if " " not in p}
        words.update(v for v, _ in self.particles)
        return words

    @staticmethod
    def values_of(arg: Arg) -> tuple[tuple[str, str], ...]:
        """Words that stand for a value of `arg`: its own declared ones, and for a status every word
        infra/status.py maps to one ("failing" → failed, "waiting" → pending_approval)."""
        return arg.values + STATUS_VALUES if arg.kind is Kind.status else arg.values

    @staticmethod
    @functools.cache
    def shape_of(arg: Arg) -> re.Pattern[str]:
        """An argument's declared value shape, compiled once."""
        return re.compile(rf"^({arg.shape})$", re.I)

    def arg_kinds(self, command: str) -> set[Kind]:
        return {a.kind for a in self.specs[command].args}
