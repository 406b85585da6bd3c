"""Typo correction through an index: the words a typo may aim at, bucketed by length.

Only words within the edit limit can match, so a look-up compares against the few buckets
of nearby length, and rapidfuzz computes the optimal-string-alignment distance (a swap of
two letters counts once) in C.  The cost stays well under a millisecond at 200 stacks ×
100 environments (bench/parse_bench.py, docs/PERFORMANCE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rapidfuzz import process
from rapidfuzz.distance import OSA

from commands.registry import Kind
from llm import phrases as P

if TYPE_CHECKING:
    from llm.lexicon import Lexicon
    from llm.resolve import Resolver

MIN_LEN = 5
ENTITY_KINDS = (Kind.service, Kind.stack, Kind.env, Kind.vm, Kind.host)


def limit_for(word: str) -> int:
    """One edit for words of 5–7 letters, two for longer ones."""
    return 1 if len(word) < 8 else 2


@dataclass
class Vocabulary:
    """Single words the typo corrector may aim at, with what each means (command or entity)."""

    meanings: dict[str, tuple[str, str]] = field(default_factory=dict)
    _by_len: dict[int, list[str]] = field(default_factory=dict)
    short_names: list[str] = field(default_factory=list)  # inventory names of 3–5 letters
    short: frozenset[str] = frozenset()  # every known word (never a suspect)

    @classmethod
    def build(cls, resolver: Resolver, lexicon: Lexicon) -> Vocabulary:
        vocab = cls()
        for phrase, senses in lexicon.phrases.items():
            if " " not in phrase and len(phrase) >= MIN_LEN and max(s.strength for s in senses) >= 2:
                vocab.meanings.setdefault(phrase, ("command", senses[0].command))
        for kind in ENTITY_KINDS:
            for name in resolver.choices(kind):
                for w in resolver.words(kind, name):
                    if " " not in w and len(w) >= MIN_LEN:
                        vocab.meanings.setdefault(w, ("entity", w))
        for phrase, cmds in lexicon.past.items():
            if " " not in phrase:
                vocab.meanings.setdefault(phrase, ("past", cmds[0]))
        for w in vocab.meanings:
            vocab._by_len.setdefault(len(w), []).append(w)
        names = {w for kind in ENTITY_KINDS for name in resolver.choices(kind) for w in resolver.words(kind, name)}
        vocab.short_names = sorted(w for w in names if 3 <= len(w) <= MIN_LEN and " " not in w)
        vocab.short = frozenset(w for w in (*names, *lexicon.phrases, *lexicon.object_verbs, *lexicon.past)
                                if " " not in w)
        return vocab

    def suspect(self, word: str) -> str | None:
        """A word of 4–6 letters one edit from exactly one short inventory name ("chatt", "reds"): too
        short to correct, but a change that names it is asked about rather than run."""
        if not 4 <= len(word) <= 6 or word in P.FILLER or not word.isalpha() or word in self.short \
                or word in P.NEVER_CORRECT or word in P.FUNCTION_WORDS:
            return None
        found = {w for w in self.short_names if OSA.distance(word, w) <= 1}
        return next(iter(found)) if len(found) == 1 else None

    def correct(self, word: str) -> str | None:
        """The one vocabulary word within reach of `word`, or None (never for short or common words)."""
        if len(word) < MIN_LEN or word in P.NEVER_CORRECT or word in P.FILLER or word in P.FUNCTION_WORDS \
                or not word.isascii() \
                or any(c.isdigit() for c in word) or word in self.meanings:
            return None
        limit = limit_for(word)
        near = [w for n in range(len(word) - limit, len(word) + limit + 1) for w in self._by_len.get(n, ())]
        found = process.extract(word, near, scorer=OSA.distance, score_cutoff=limit, limit=None)
        if not found:
            return None
        best = min(d for _, d, _ in found)
        # a word that only adds a prefix is another word, not a typo ("unreachable" is not "reachable")
        found = [f for f in found if not (word.endswith(f[0]) and len(word) > len(f[0]))]
        if not found:
            return None
        best = min(d for _, d, _ in found)
        meanings = {self.meanings[w] for w, d, _ in found if d == best}
        others = {self.meanings[w] for w, d, _ in found if d > best} - meanings
        if len(meanings) != 1 or (others and best > 1):
            return None
        return min(w for w, d, _ in found if d == best)
