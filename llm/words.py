"""The words of a message, and what a reading finds in them (llm/nl.py, llm/shape.py).

`words_of` turns tokens (llm/tokens.py) into words with contractions expanded; a `Hit` is a
command phrase with every command it may mean, a `Mention` a run of words naming inventory
entities.  The helpers say what a value looks like and how free text is trimmed; none of
them knows a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from commands.registry import Kind
from llm import phrases as P
from llm.lexicon import Sense, Strength
from llm.tokens import Token

# a time of day ("22:00", "3am", "10.30pm"): a schedule (a stage before the parser may take it one day)
CLOCK = re.compile(r"^([01]?\d|2[0-3])([:.][0-5]\d)?\s*(am|pm)$|^([01]?\d|2[0-3]):[0-5]\d$", re.I)
TIME_BEFORE = P.TIME_BEFORE  # words of time before a clause or a noun phrase (phrases.py)
# cue words of free text that stay part of it ("until the demo is over")
CONJUNCTION_CUES = ("since", "until", "during", "while")
_POLITE_EDGE = r"(please|pls|plz|thanks|thank you|thx|ty|cheers|kindly|sorry)"


@dataclass
class Word:
    """A word of the message after contraction expansion; `tok` indexes the source token."""

    raw: str
    low: str
    tok: int
    quoted: bool = False
    boundary: bool = False  # a clause ends after it
    line: int = 0


@dataclass
class Hit:
    """A command phrase found in the text, with every command it may mean."""

    senses: list[Sense]
    start: int
    end: int
    is_noun: bool = False  # used as a noun ("the chat deploy"): a request only if nothing else governs it
    format_args: dict[str, Any] = field(default_factory=dict)

    @property
    def strength(self) -> Strength:
        return max(s.strength for s in self.senses)

    @property
    def commands(self) -> list[str]:
        top = self.strength
        return [s.command for s in self.senses if s.strength == top]

    @property
    def asked(self) -> bool:
        """Whether it stands as a verb that asks ("restart …"), not a noun or a hint ("the restart")."""
        return self.strength is Strength.verb and not self.is_noun


@dataclass
class Mention:
    """A run of words naming inventory entities, by kind."""

    names: dict[Kind, str]
    start: int
    end: int
    phrase: str
    fuzzy: bool = False


def words_of(tokens: list[Token]) -> list[Word]:
    """Words with contractions expanded and possessives dropped; each keeps its source token."""
    out: list[Word] = []
    for i, t in enumerate(tokens):
        if t.kv:
            out.append(Word(t.raw, t.low, i, t.quoted, t.boundary, t.line))
            continue
        raw = t.raw.replace("’", "'").replace("‘", "'")
        low = raw.lower()
        if low == "its" and i + 1 < len(tokens) and not t.boundary and _copula_after(tokens[i + 1].low):
            low = "it's"  # "restart nginx asap its 502ing", "approve r-6b0d its the pg conn fix": "it is"
        if low in P.CONTRACTIONS:
            parts = P.CONTRACTIONS[low].split()
            for k, w in enumerate(parts):
                out.append(Word(w, w, i, t.quoted, t.boundary and k == len(parts) - 1, t.line))
            continue
        if low.endswith("'s") and len(low) > 2:
            raw, low = raw[:-2], low[:-2]
        raw = raw.strip("'")
        if raw:
            out.append(Word(raw, raw.lower(), i, t.quoted, t.boundary, t.line))
    # a line break ends a clause, as a full stop would ("restart grafana on test\nthe dashboards are blank")
    return [replace(w, boundary=True) if not w.boundary and k + 1 < len(out) and out[k + 1].line != w.line else w
            for k, w in enumerate(out)]


# what follows "its" when it stands for "it's" ("its the pg fix", "its down"), not a possessive ("its logs")
_AFTER_ITS = frozenset({"the", "a", "an", "just", "only", "still", "not", "been", "down", "up", "back", "broken",
                        "dead", "slow", "fine", "ok", "okay", "urgent", "for", "because", "about", "all", "probably",
                        "prob", "def", "definitely", "really", "super", "pretty", "so", "too", "kinda", "already",
                        "now", "done", "gone", "stuck", "out", "over", "totally", "completely", "at", "on", "in"})


def _copula_after(word: str) -> bool:
    return word in _AFTER_ITS or (len(word) > 4 and word.endswith("ing"))


def identifier(word: str) -> bool:
    """A word that looks like a value (a name, a version, an id): digits, '-', '_', '.' or '/' inside."""
    return bool(re.search(r"\d|[a-z][-_./][a-z0-9]", word.lower()))


def polite_trim(text: str) -> str:
    """Free text without the politeness around it ("please", "thanks!"): no reason is only "please"."""
    text = re.sub(rf"^\s*{_POLITE_EDGE}\b[\s,.!:;-]*", "", text, flags=re.I)
    return re.sub(rf"[\s,;-]*\b{_POLITE_EDGE}[.!]*$", "", text, flags=re.I).strip()


def without_cue(text: str, cues: tuple[str, ...]) -> str:
    """Free text without the word that introduced it ("because of the incident" → "the incident"); a
    conjunction stays part of it ("until the demo is over")."""
    for cue in sorted(cues, key=len, reverse=True):
        m = re.match(rf"^{re.escape(cue)}\b:?\s+", text, flags=re.I)
        if m is None:
            continue
        if cue in CONJUNCTION_CUES:
            return text
        return re.sub(r"^(to|is|of|with)\s+", "", text[m.end():], flags=re.I)
    return text


def looks_like_value(word: str, written: bool = False) -> bool:
    """A value is never politeness, an article or a pronoun ("restore the dev vm pls" names no snapshot).
    In plain language no function word or filler is one either; in the canonical form (`written`), where
    a person typed the value in its place, a word such as "after" may be a name."""
    low = P.CONTRACTIONS.get(word.lower(), word.lower())
    if written:
        return low not in P.NOT_VALUES and not CLOCK.match(low)
    low = word.lower()
    return low not in P.FUNCTION_WORDS and low not in P.FILLER and low not in P.NOT_VALUES and not CLOCK.match(low) \
        and P.CONTRACTIONS.get(low, low) not in P.FUNCTION_WORDS
