"""The plain-language route: ordinary team-channel phrasings → a plan, or an honest "no".

`parse_plain` runs the canonical grammar first (confidence 1.0) and, when that does
not give a command, reads the text as people write it: synonyms, fillers, targets in
any order, counts and durations.  It refuses rather than guesses: negations, reports
of the past, people's own plans, how-to questions (→ help), unsupported requests and
unknown or missing names give `command: null` or a `clarify` question naming the
choices.  Every target in a plan was named in the text (by name, alias, an
unambiguous typo of one, or a service standing for its stack).

Confidence (documented in docs/language.md): 1.0 canonical form; 0.9 plain language
with every word understood; lowered for each inference (service → stack, typo,
ignored words); ≤ 0.5 with a clarify question; 0.9 for a deliberate refusal
(negation, past, unsupported: the LLM route should not override it); 0.0 for
"did not understand" (the LLM route may try).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from commands.registry import Arg, Kind, Registry
from llm import phrases as P
from llm.grammar import KV, LEADERS, MAX_TEXT, parse_explicit
from llm.plan import Plan
from llm.resolve import Resolver, join_choices
from llm.validate import article, noun, unknown_name, validate
from llm.values import DURATION, REQUEST_ID, WORD, normalize_duration

# Below this a plan should go to the LLM route when one is configured.
CONFIDENT = 0.75
# Negation words that, before a name, usually correct the target ("no, dev") rather than exclude it.
CORRECTIONS = frozenset({"no", "nope"})
REFUSAL = 0.9  # a deliberate "no": the LLM route should not override it
NL_BASE = 0.9
ENTITY_KINDS = (Kind.service, Kind.stack, Kind.env, Kind.vm, Kind.host)
_STRIP = ",;!?()[]{}\"'“”‘’`*_<>"
_VERSION = re.compile(r"^(v\d+(\.\d+)*[\w.-]*|\d+\.\d+(\.\d+)*[\w.-]*|[0-9a-f]{7,40})$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([t ]\d{2}:\d{2}(:\d{2})?)?$", re.I)
_SNAPSHOT_VERBS = frozenset(w for group in (P.SNAPSHOT_DELETE, P.SNAPSHOT_TAKE, P.SNAPSHOT_LIST, P.SNAPSHOT_RESTORE)
                            for phrase in group for w in phrase.split()) | {"rid", "exist", "exists", "up", "old",
                                                                             "go", "back"}
_NOUN_BEFORE = frozenset({"the", "a", "an", "new", "old", "this", "that", "my", "our", "your", "latest", "last",
                          "next", "its", "their", "his", "her"})
_MENTION = re.compile(r"<@[^>]+>|^@\S+")
_DEMOTE_BEFORE = frozenset({"the", "a", "an", "this", "that", "last", "before", "after", "during", "since",
                            "my", "your", "our", "his", "her", "their", "its", "of", "latest", "previous",
                            "first", "next", "for"})


@dataclass
class Tok:
    raw: str
    low: str


@dataclass
class Hit:
    """A command phrase found in the text."""

    command: str
    priority: int
    start: int
    end: int


@dataclass
class Mention:
    """A run of words naming inventory entities, by kind."""

    names: dict[Kind, str]
    start: int
    end: int
    phrase: str
    fuzzy: bool = False


def tokens_of(text: str) -> list[Tok]:
    """Words with punctuation stripped and contractions expanded; keeps raw case for names."""
    text = _MENTION.sub(" ", text.replace("’", "'").replace("‘", "'"))
    out: list[Tok] = []
    for part in text.split():
        if KV.match(part):
            out.append(Tok(part, part.lower()))
            continue
        raw = part.strip(_STRIP).rstrip(".:")
        raw = raw.strip(_STRIP)
        if not raw:
            continue
        low = raw.lower()
        if low in P.CONTRACTIONS:
            out.extend(Tok(w, w) for w in P.CONTRACTIONS[low].split())
            continue
        if low.endswith("'s") and len(low) > 2:
            raw, low = raw[:-2], low[:-2]
        out.append(Tok(raw, low))
    return out


def _osa(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (a transposition counts once), capped at limit+1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


class Vocabulary:
    """Single words the typo corrector may aim at: command words and inventory names."""

    def __init__(self, resolver: Resolver, registry: Registry) -> None:
        self.words: dict[str, tuple[str, str]] = {}
        for word, cmd in registry.words.items():
            if " " not in word and len(word) >= 5:
                self.words[word] = ("command", cmd)
        for kind in ENTITY_KINDS:
            for name in resolver.choices(kind):
                for w in resolver.words(kind, name):
                    if " " not in w and len(w) >= 5:
                        self.words.setdefault(w, ("entity", w))
        for phrase in P.PAST_FORMS:
            self.words.setdefault(phrase, ("past", phrase))

    def correct(self, word: str) -> str | None:
        """The one vocabulary word within reach of `word`, or None (never for short or common words)."""
        if len(word) < 5 or word in P.NEVER_CORRECT or word in P.FILLER or not word.isascii() \
                or any(c.isdigit() for c in word):
            return None
        limit = 1 if len(word) < 8 else 2
        dist = {w: d for w in self.words if (d := _osa(word, w, limit)) <= limit}
        if not dist:
            return None
        best = min(dist.values())
        meanings = {self.words[w] for w, d in dist.items() if d == best}
        others = {self.words[w] for w, d in dist.items() if d > best} - meanings
        if len(meanings) != 1 or (others and best > 1):
            return None
        return min((w for w, d in dist.items() if d == best))


@dataclass
class NLParser:
    resolver: Resolver
    registry: Registry
    users: frozenset[str] = frozenset()
    max_phrase: int = field(init=False)

    def __post_init__(self) -> None:
        self.max_phrase = max(len(p.split()) for p in P.COMMAND_PHRASES)

    @cached_property
    def vocab(self) -> Vocabulary:
        """Built on first use: it needs every stack's services, which start-up does not read."""
        return Vocabulary(self.resolver, self.registry)

    def parse(self, text: str) -> Plan:
        return _Reading(self, text).plan()


class _Reading:
    """One text being read; holds the tokens and what has been taken from them."""

    def __init__(self, parser: NLParser, text: str) -> None:
        self.p = parser
        self.r = parser.resolver
        self.text = text
        self.toks = tokens_of(text)
        self._strip_leaders()
        self.low = [t.low for t in self.toks]
        self.used = [False] * len(self.toks)
        self.conf = NL_BASE
        self.values: dict[str, Any] = {}
        self.hits: list[Hit] = []
        self.mentions: list[Mention] = []
        self.excluded: list[Mention] = []
        self.typos: list[str] = []

    # -- helpers -----------------------------------------------------------
    def _strip_leaders(self) -> None:
        self.causative = False
        while self.toks and (self.toks[0].low in LEADERS or self.toks[0].low in P.GREETINGS):
            self.toks = self.toks[1:]
        polite = ("can you", "could you", "would you", "will you", "can u", "would you mind", "i need you to",
                  "i want you to", "go ahead and", "i would like to", "i would like you to", "i want to",
                  "i need to", "we need to", "let us", "please", "kindly", "quickly", "could we", "can we",
                  "ask you to", "time to", "need to", "you can", "i would love", "just", "pls", "can i see",
                  "can i get", "can i have", "could i get", "could i see", "may i see", "can i check",
                  "can i look at", "can we see", "can we get", "i would like")
        changed = True
        while changed and self.toks:
            changed = False
            joined = " ".join(t.low for t in self.toks)
            for lead in sorted(polite, key=len, reverse=True):
                if joined == lead or joined.startswith(lead + " "):
                    self.toks = self.toks[len(lead.split()):]
                    self.causative = self.causative or lead.endswith(" get")
                    changed = True
                    break

    def joined(self, start: int = 0, end: int | None = None) -> str:
        return " ".join(self.low[start:end])

    def has(self, phrase: str) -> bool:
        return f" {phrase} " in f" {self.joined()} "

    def take(self, start: int, end: int) -> None:
        for i in range(start, end):
            self.used[i] = True

    def free(self, i: int) -> bool:
        return 0 <= i < len(self.toks) and not self.used[i]

    def refuse(self, message: str, confidence: float = REFUSAL) -> Plan:
        return Plan(None, {}, "grammar", message, confidence, None)

    # -- the reading -------------------------------------------------------
    def plan(self) -> Plan:
        if not self.toks:
            return Plan.unknown("Say 'help' to see what I can do.")
        if self.joined() in P.CHATTER:
            return Plan.unknown(None)
        self._values()
        howto = self._howto()
        if howto is not None:
            return howto
        self._scan()
        refusal = self._gates()
        if refusal is not None:
            return refusal
        cmd = self._command()
        if isinstance(cmd, Plan):
            return cmd
        if cmd is None:
            return self._not_understood()
        return self._arguments(cmd)

    # values that need no command context -----------------------------------
    def _values(self) -> None:
        low, n = self.low, len(self.low)
        i = 0
        while i < n:
            w = low[i]
            if REQUEST_ID.match(w):
                self.values.setdefault("request", w)
                self.take(i, i + 1)
            elif KV.match(self.toks[i].raw):
                m = KV.match(self.toks[i].raw)
                assert m is not None
                self.values.setdefault("kv", {})[m.group(1).lower().replace("-", "_")] = m.group(2)
                self.take(i, i + 1)
            i += 1
        self._durations()
        self._counts()

    def _durations(self) -> None:
        low, n = self.low, len(self.low)
        for phrase in sorted(P.SINCE_WORDS, key=lambda s: -len(s.split())):
            words = phrase.split()
            for i in range(n - len(words) + 1):
                if low[i:i + len(words)] == words and all(self.free(k) for k in range(i, i + len(words))):
                    self.values.setdefault("since", P.SINCE_WORDS[phrase])
                    start = i - 1 if i > 0 and low[i - 1] in ("since", "from", "over", "in", "for", "during") else i
                    self.take(start, i + len(words))
        i = 0
        while i < n:
            if not self.free(i):
                i += 1
                continue
            w = low[i]
            # "30m", "2h" (alone or after since/last/past)
            m = DURATION.match(w)
            if m and w not in ("1s",):
                self.values.setdefault("since", normalize_duration(w))
                self._take_duration_lead(i)
                self.take(i, i + 1)
                i += 1
                continue
            # "2 hours", "30 minutes ago", "an hour ago"
            num = self._number(w)
            if num is not None and i + 1 < n and low[i + 1] in P.TIME_UNITS and (
                    low[i + 1] not in ("m", "s", "d", "h", "w") or True):
                self.values.setdefault("since", f"{num}{P.TIME_UNITS[low[i + 1]]}")
                self._take_duration_lead(i)
                end = i + 2
                if end < n and low[end] == "ago":
                    end += 1
                self.take(i, end)
                i = end
                continue
            if w == "since" and i + 1 < n and _ISO_DATE.match(low[i + 1]):
                self.values.setdefault("since", low[i + 1])
                self.take(i, i + 2)
                i += 2
                continue
            i += 1

    def _take_duration_lead(self, i: int) -> None:
        j = i - 1
        while j >= 0 and self.low[j] in ("since", "last", "past", "the", "in", "over", "for", "from", "within"):
            self.used[j] = True
            j -= 1

    @staticmethod
    def _number(w: str) -> int | None:
        if w.isdigit() and len(w) <= 6:
            return int(w)
        return P.NUMBER_WORDS.get(w) if w not in ("a", "an") else 1

    def _counts(self) -> None:
        low, n = self.low, len(self.low)
        for i in range(n):
            if not self.free(i) or not low[i].isdigit() or len(low[i]) > 6:
                continue
            before = low[i - 1] if i > 0 else ""
            after = low[i + 1] if i + 1 < n else ""
            if after in P.LINE_WORDS or before in ("last", "tail", "limit", "top", "first", "latest", "recent"):
                self.values.setdefault("count", int(low[i]))
                self.take(i, i + 1)
                if after in P.LINE_WORDS:
                    self.take(i + 1, i + 2)
                    self.values["lines"] = after in ("lines", "line")
                if before in ("last", "limit", "top", "latest", "recent"):
                    self.take(i - 1, i)

    # how-to questions → help -------------------------------------------------
    def _howto(self) -> Plan | None:
        j = self.joined()
        prefix = next((p for p in sorted(P.HOWTO_PREFIXES, key=len, reverse=True)
                       if j == p or j.startswith(p + " ")), None)
        what_is = re.match(r"^what (is|are|does) (an? |the )?([\w-]+)( command| do| mean)?$", j)
        if what_is and (self.p.registry.command_for_word(what_is.group(3))
                        or what_is.group(3) in P.COMMAND_PHRASES):
            prefix = "what is"
        if prefix is None:
            return None
        rest = j[len(prefix):].split()
        if prefix == "how" and (not rest or rest[0] in P.HOW_NOT_HOWTO):
            return None
        if prefix == "how" and rest[0] not in ("to", "do", "can", "would", "should"):
            return None
        if prefix in ("help me", "can i") and rest and rest[0] not in ("with", "to"):
            # "can i restart nginx?" is a how/may-I question; "help me restart nginx" likewise
            pass
        topic = self._topic(len(prefix.split()))
        args = {"topic": topic} if topic else {}
        return validate(Plan("help", args, confidence=0.85), self.r, self.p.registry)

    def _topic(self, start: int) -> str | None:
        words = self.low[start:]
        if any(w in ("snapshot", "snapshots", "checkpoint", "snap", "snaps") for w in words):
            return self._snapshot_family(words) or "snapshot"
        for n in range(self.p.max_phrase, 0, -1):
            for i in range(len(words) - n + 1):
                phrase = " ".join(words[i:i + n])
                hit = P.COMMAND_PHRASES.get(phrase)
                if hit and hit[1] >= 2 and hit[0] not in ("help",):
                    return hit[0]
        for w in words:
            if w in P.PAST_FORMS:
                return P.PAST_FORMS[w]
            if w in P.COMMAND_PHRASES and P.COMMAND_PHRASES[w][0] != "help":
                return P.COMMAND_PHRASES[w][0]
            if w in ("revert", "rollback"):
                return "rollback"
        for i in range(len(words) - 1):
            for j in range(i + 1, min(i + 4, len(words))):
                if (words[i], words[j]) in P.PARTICLE_VERBS:
                    return P.PARTICLE_VERBS[(words[i], words[j])]
        return None

    @staticmethod
    def _snapshot_family(words: list[str]) -> str | None:
        text = " " + " ".join(words) + " "
        if any(f" {v} " in text for v in P.SNAPSHOT_RESTORE):
            return "restore"
        if any(f" {v} " in text for v in P.SNAPSHOT_DELETE):
            return "delete-snapshot"
        # a list signal wins over a take signal: the read-only reading is the safe one
        if any(w in ("snapshots", "checkpoints", "snaps") for w in words) or any(
                f" {v} " in text for v in P.SNAPSHOT_LIST):
            return "snapshots"
        return "snapshot"

    # scanning: command phrases and entity mentions ---------------------------
    def _entity_at(self, i: int) -> Mention | None:
        for n in range(min(self.r.max_words, len(self.toks) - i), 0, -1):
            if not all(self.free(k) for k in range(i, i + n)):
                continue
            phrase = " ".join(self.low[i:i + n])
            names = {k: name for k in ENTITY_KINDS if (name := self.r.resolve(k, phrase))}
            if not names and n > 1:
                names = {k: name for k in ENTITY_KINDS if (name := self.r.resolve(k, phrase.replace(" ", "-")))}
            if names:
                return Mention(names, i, i + n, phrase)
        return None

    def _command_at(self, i: int) -> Hit | None:
        for n in range(min(self.p.max_phrase, len(self.toks) - i), 0, -1):
            if not all(self.free(k) for k in range(i, i + n)):
                continue
            phrase = " ".join(self.low[i:i + n])
            found = P.COMMAND_PHRASES.get(phrase)
            if found:
                return Hit(found[0], found[1], i, i + n)
        return None

    def _scan(self) -> None:
        n = len(self.toks)
        # split verbs first: "push chat out", "bring n8n back up"
        for i in range(n):
            for j in range(i + 1, min(i + 7, n)):
                verb = P.PARTICLE_VERBS.get((self.low[i], self.low[j]))
                if verb and self.free(i) and self.free(j):
                    self.hits.append(Hit(verb, 3, i, i + 1))
                    self.take(i, i + 1)
                    self.take(j, j + 1)
                    if j - 1 > i and self.low[j - 1] == "back":
                        self.take(j - 1, j)
        i = 0
        while i < n:
            if not self.free(i):
                i += 1
                continue
            ent = self._entity_at(i)
            hit = self._command_at(i)
            if ent and (not hit or ent.end - ent.start > hit.end - hit.start):
                self.mentions.append(ent)
                self.take(ent.start, ent.end)
                i = ent.end
                continue
            if hit:
                near = self.low[max(0, i - 2):i]
                if hit.priority == 3 and ((i > 0 and (self.low[i - 1] in _DEMOTE_BEFORE
                                                      or self.low[i - 1] in self.p.users
                                                      or any(m.end == i for m in self.mentions)))
                                          or any(w in ("before", "after", "until", "while", "once") for w in near)):
                    hit.priority = 1
                self.hits.append(hit)
                self.take(hit.start, hit.end)
                i = hit.end
                continue
            i += 1
        self.hits.sort(key=lambda h: h.start)
        self.mentions.sort(key=lambda m: m.start)

    def _fix_typos(self) -> None:
        """Re-read unknown words that are one unambiguous typo away from a known word."""
        for i, w in enumerate(self.low):
            if not self.free(i) or w in P.FILLER or w in P.UNSUPPORTED:
                continue
            fixed = self.p.vocab.correct(w)
            if not fixed:
                continue
            self.typos.append(w)
            if fixed in P.PAST_FORMS:
                continue
            if fixed in P.COMMAND_PHRASES:
                cmd, prio = P.COMMAND_PHRASES[fixed]
                self.hits.append(Hit(cmd, prio, i, i + 1))
            else:
                names = {k: name for k in ENTITY_KINDS if (name := self.r.resolve(k, fixed))}
                self.mentions.append(Mention(names, i, i + 1, fixed, fuzzy=True))
            self.low[i] = fixed
            self.take(i, i + 1)
        self.hits.sort(key=lambda h: h.start)
        self.mentions.sort(key=lambda m: m.start)

    # gates: the ways a text says "do nothing" ----------------------------------
    def _gates(self) -> Plan | None:
        self._fix_typos()
        j = f" {self.joined()} "
        first_cmd = self.hits[0].start if self.hits else len(self.toks)
        cmds = sorted({h.command for h in self.hits})
        what = f"'{cmds[0]}'" if len(cmds) == 1 else "anything"
        # unsupported requests
        snapshot_ctx = any(w in ("snapshot", "snapshots", "snap", "snaps", "checkpoint", "checkpoints")
                           for w in self.low)
        for i, w in enumerate(self.low):
            if not self.free(i) or w not in P.UNSUPPORTED:
                continue
            if snapshot_ctx and (w in P.SNAPSHOT_DELETE or w in P.SNAPSHOT_TAKE or w in ("create", "backup")):
                continue
            if w in ("remove", "clear", "lift", "end") and any(h.command == "unlock" for h in self.hits):
                continue
            if i > 0 and (self.low[i - 1] in _NOUN_BEFORE or any(m.end == i for m in self.mentions)):
                continue
            return self.refuse(f"I can't {P.UNSUPPORTED[w]} from chat. " + self._can_do())
        backup = any(w == "backup" or (w == "back" and self.low[i + 1:i + 2] == ["up"] and self.free(i))
                     for i, w in enumerate(self.low))
        if backup and (
                any(Kind.service in m.names for m in self.mentions)
                or not any(Kind.vm in m.names for m in self.mentions)):
            return self.refuse("I can't back up databases from chat; I can snapshot VMs ('snapshot dev'). "
                               + self._can_do())
        # cancellations and negations
        for phrase in P.CANCEL_PHRASES:
            if f" {phrase} " in j:
                return self.refuse(f"You said not to, so I won't do {what}.")
        for i, w in enumerate(self.low):
            if w in P.NEGATIONS and i < first_cmd and not self._negates_value(i):
                return self.refuse(f"That says not to, so I won't do {what}. "
                                   "Ask again without the 'not' if you do want it.")
        for i, w in enumerate(self.low):
            if w in P.NEGATIONS or w == "except":
                excl = next((m for m in self.mentions if m.start in (i + 1, i + 2, i + 3)
                             and all(self.low[k] in ("on", "in", "to", "the", "for", "at")
                                     for k in range(i + 1, m.start))), None)
                if excl is not None and w in CORRECTIONS:
                    # "restart n8n on prod? no, dev": a correction, not "not dev". Both names stay,
                    # so the request is asked about (two environments) rather than read backwards.
                    self.used[i] = True
                elif excl is not None:
                    self.mentions.remove(excl)
                    self.excluded.append(excl)
                    self.used[i] = True
                    if i > 0 and self.low[i - 1] == "but":
                        self.used[i - 1] = True
                elif i >= first_cmd and not self._negates_value(i) and w != "except":
                    return self.refuse(f"That says not to, so I won't do {what}.")
        # "did anyone restart n8n?", "has someone deployed chat?" → the audit log
        if self.low[0] in ("did", "has", "have") and len(self.low) > 1 and (
                self.low[1] in ("anyone", "anybody", "someone", "somebody", "you", "we", "they")
                or self.low[1] in self.p.users) and self.hits:
            self.values["audit_command"] = self.hits[0].command
            if self.low[1] in self.p.users:
                self.values["audit_user"] = self.low[1]
            return None
        # reports of the past, people's own plans, announcements
        past = [(i, P.PAST_FORMS[w]) for i, w in enumerate(self.low) if w in P.PAST_FORMS]
        audit_q = any(w in ("who", "when", "did", "history", "audit", "whom", "anyone", "anybody")
                      for w in self.low[:max(3, first_cmd + 1)]) or self.low[0] in ("who", "when", "did")
        if past and (self.causative or any(w in ("get", "got") for w in self.low[max(0, past[0][0] - 4):past[0][0]])):
            i, cmd = past[0]  # "can we get chat deployed": a causative request
            self.hits.append(Hit(cmd, 3, i, i + 1))
            self.take(i, i + 1)
            self.hits.sort(key=lambda h: h.start)
            past = []
        if past:
            i, cmd = past[0]
            if (audit_q and cmd != "lock") or self.low[0] in ("who", "when", "did"):
                self.values["audit_command"] = cmd
                self.take(i, i + 1)
                if i + 1 < len(self.low) and self.low[i + 1] in ("back", "out"):
                    self.take(i + 1, i + 2)
                return None
            passive = i > 0 and self.low[i - 1] in P.PASSIVE_BEFORE
            if not passive and (
                    any(w in P.SUBJECTS for w in self.low[max(0, i - 3):i]) or i == 0
                    or any(w in P.TIME_AGO for w in self.low[i + 1:]) or self.values.get("since")
                    or any(w in self.p.users for w in self.low[:i])):
                return self.refuse(f"That sounds like something that already happened, so I'm not doing "
                                   f"anything. To review it: 'audit command={cmd}'.")
        if any(f" {w} " in j for w in P.OUTCOME_WORDS) and self.hits and not audit_q \
                and not any(h.command == "audit" for h in self.hits) \
                and self.low[0] not in ("is", "are", "can", "could", "please", "why", "how", "what", "which", "show",
                                        "list", "get", "give", "any"):
            noun_first = self.hits[0].priority == 1 or (self.hits[0].start > 0
                                                         and self.low[self.hits[0].start - 1] in ("the", "that"))
            soon_after = any(w in P.OUTCOME_WORDS for h in self.hits for w in self.low[h.end:h.end + 4])
            plain = any(w in ("went", "worked", "fine", "succeeded", "failed") for w in self.low)
            if noun_first or soon_after or plain:
                return self.refuse("That sounds like a report of how something went, not a request; "
                                   "I'm not doing anything.")
        if self.low[0] in P.REPORT_SUBJECTS or self.low[0] in self.p.users:
            verb = next((w for w in self.low[1:4] if w not in ("already", "just", "have", "had", "finally")), "")
            if verb in P.IRREGULAR_PAST or (verb.endswith("ed") and verb not in ("need", "needed")):
                return self.refuse("That sounds like something that already happened, so I'm not doing anything.")
        for phrase in P.INTENT_PHRASES:
            if f" {phrase} " in f" {self.joined(0, max(first_cmd, 1))} " or self.joined().startswith(phrase + " "):
                return self.refuse("That sounds like your own plan rather than a request to me, so I'm not "
                                   "doing anything. Ask me directly when you want it done.")
        if self.hits and self.hits[0].start == 0 and self.low[0].endswith("ing") and len(self.low[0]) > 5 \
                and self.hits[0].command not in ("logs", "status"):
            return self.refuse("That reads like a heads-up, not a request, so I'm not doing anything. "
                               f"Say '{self.hits[0].command} …' if you want me to do it.")
        sched = [w for i, w in enumerate(self.low) if w in P.SCHEDULE_WORDS and self.free(i)]
        if sched:
            return self.refuse(f"I can't schedule things ('{sched[0]}'); ask me when you want it done.")
        if self.low[0] in ("why", "should", "shall"):
            return self.refuse("I can't answer why-questions; try 'logs SERVICE ENV', 'status ENV' or 'audit'.")
        return None

    def _negates_value(self, i: int) -> bool:
        """'no rush', 'not sure' and friends are not negations of the request."""
        nxt = self.low[i + 1] if i + 1 < len(self.low) else ""
        return nxt in ("rush", "hurry", "pressure", "worries", "problem", "sure")

    def _can_do(self) -> str:
        return ("I can deploy, roll back, restart, stop or start services, show logs and status, "
                "take and restore VM snapshots, lock environments and review the audit log ('help').")

    # which command ---------------------------------------------------------------
    def _command(self) -> str | Plan | None:
        hits = list(self.hits)
        words = self.low
        if "audit_command" in self.values:
            return "audit"
        if any(w in ("snapshot", "snapshots", "snap", "snaps", "checkpoint", "checkpoints") for w in words) \
                and not any(h.command in ("deploy", "restart", "stop", "start", "lock", "unlock") and h.priority == 3
                            for h in hits):
            fam = self._snapshot_family(words)
            if fam == "restore" and any(Kind.stack in m.names and Kind.vm not in m.names for m in self.mentions):
                fam = "rollback"
            return fam
        if any(h.command in ("rollback", "restore") for h in hits) and not any(
                h.command not in ("rollback", "restore") and h.priority == 3 for h in hits):
            has_stack = any((Kind.stack in m.names or Kind.service in m.names) and Kind.vm not in m.names
                            for m in self.mentions)
            return "rollback" if has_stack else "restore"
        if not hits:
            if self.values.get("lines") and self.mentions:
                return "logs"
            if self.values.get("audit_user") or any(w in self.p.users for w in words):
                return "audit"
            return None
        for h in hits:
            if h.command == "lock" and any(w in ("end", "lift", "remove", "clear", "stop", "cancel", "undo", "release",
                                                   "drop", "over") for w in words[max(0, h.start - 3):h.start]):
                h.command = "unlock"
        audit_words = [h for h in hits if h.command == "audit"]
        if audit_words:
            others = [h for h in hits if h.command != "audit" and h.priority >= 2]
            if others:
                self.values["audit_command"] = others[0].command
            return "audit"
        top = max(h.priority for h in hits)
        best = sorted({h.command for h in hits if h.priority == top})
        if len(best) > 1:
            pairs = set(best)
            if pairs == {"logs", "status"}:
                return "logs"
            if pairs <= {"gpu", "status", "health"} and "gpu" in pairs:
                return "gpu"
            if pairs == {"vm-status", "status"} or pairs == {"vm-status", "health"}:
                return "vm-status"
            if pairs == {"health", "status"}:
                best = ["status" if any(Kind.env in m.names for m in self.mentions) else "health"]
            if len(best) > 1:
                return self.refuse(f"That asks for more than one thing ({join_choices(best, 'and')}); "
                                   "send them one at a time.", confidence=0.5)
        cmd = best[0]
        if cmd == "health" and any(Kind.env in m.names for m in self.mentions):
            cmd = "status"
        if top == 1:
            self.conf -= 0.1
        if cmd == "status" and top == 1 and not self.mentions:
            return None
        if cmd == "status":
            vm_only = [m for m in self.mentions if Kind.vm in m.names and Kind.env not in m.names]
            if vm_only or any(w in ("vm", "vms") for w in words):
                return "vm-status"
        if cmd == "vm-status" and any(h.command == "gpu" for h in hits):
            return "gpu"
        return cmd

    # arguments ---------------------------------------------------------------------
    def _arguments(self, cmd: str) -> Plan:
        spec = self.p.registry[cmd]
        args: dict[str, Any] = {}
        self._scalar_args(cmd, args)
        if isinstance(args.get("__refuse__"), str):
            return self.refuse(args.pop("__refuse__"), confidence=0.5)
        machine = self._machine_refusal(cmd)
        if machine:
            return machine
        wanted = [a for a in spec.args if a.kind.is_entity]
        problem = self._assign(cmd, wanted, args)
        if problem is not None:
            return problem
        unknown = self._unknown_words()
        missing = [a for a in spec.required if a.name not in args]
        if unknown:
            about = self._unknown_target(unknown, [a for a in missing if a.kind.is_entity], wanted, cmd)
            if about is not None:
                return about
            self.conf -= min(0.3, 0.1 * len(unknown))
        if self.typos:
            self.conf -= 0.2
        plan = validate(Plan(cmd, args, confidence=max(self.conf, 0.3)), self.r, self.p.registry)
        if plan.command is None and plan.clarify:
            plan.attempted = cmd
        return plan

    def _machine_refusal(self, cmd: str) -> Plan | None:
        if cmd not in ("restart", "stop", "start"):
            return None
        if any(Kind.service in m.names for m in self.mentions):
            return None
        machine_word = any(w in P.MACHINE_WORDS and (self.free(i) or any(
            m.end == i + 1 and Kind.vm in m.names for m in self.mentions)) for i, w in enumerate(self.low))
        power_verb = any(w in ("reboot", "shutdown", "boot", "poweroff") for w in self.low) or self.has("shut down") \
            or self.has("power off") or self.has("power on")
        after_name = any(w in P.MACHINE_WORDS and i > 0 and any(m.end == i for m in self.mentions)
                         for i, w in enumerate(self.low))
        if machine_word or after_name or any(Kind.vm in m.names and " " in m.phrase for m in self.mentions) or (
                power_verb and any(Kind.env in m.names or Kind.vm in m.names for m in self.mentions)):
            verb = {"restart": "reboot", "stop": "shut down", "start": "boot"}[cmd]
            return self.refuse(f"I can't {verb} whole VMs or servers from chat; I {cmd} services "
                               f"('{cmd} SERVICE on ENV'). I can snapshot VMs and show 'vm-status'.")
        return None

    def _scalar_args(self, cmd: str, args: dict[str, Any]) -> None:
        spec = self.p.registry[cmd]
        kv = self.values.get("kv", {})
        for key, value in kv.items():
            args[key] = value
        if spec.arg("request") and "request" in self.values:
            args["request"] = self.values["request"]
        if spec.arg("since") and "since" in self.values:
            args.setdefault("since", self.values["since"])
        if "count" in self.values:
            for key in ("tail", "limit"):
                if spec.arg(key):
                    args.setdefault(key, self.values["count"])
        if cmd == "audit":
            self._audit_args(args)
        if cmd == "deploy":
            ref = self._after(("ref", "version", "tag", "commit", "branch", "revision", "rev", "at", "@"),
                              lambda w: bool(WORD.match(w)), need=lambda w, kw: kw != "at" or bool(_VERSION.match(w)))
            ref = ref or self._bare(lambda w: bool(_VERSION.match(w)) and not w.isdigit())
            if ref:
                args.setdefault("ref", ref)
        if cmd == "rollback":
            to = self._after(("revision", "rev", "version", "to"), lambda w: w.isdigit() or bool(_VERSION.match(w)))
            if to:
                args.setdefault("to", to)
        if cmd == "snapshot":
            name = self._after(("called", "named", "name", "as", "label", "labelled", "labeled"),
                               lambda w: bool(WORD.match(w)))
            if name:
                args.setdefault("name", name)
        if cmd in ("restore", "delete-snapshot"):
            snap = self._after(("snapshot", "checkpoint", "called", "named", "to", "back"),
                               lambda w: bool(WORD.match(w)) and not self._is_name(w))
            snap = snap or self._before(("snapshot", "checkpoint"),
                                        lambda w: bool(WORD.match(w)) and not self._is_name(w))
            if snap:
                args.setdefault("snapshot", snap)
        if cmd in ("lock", "deny"):
            reason = self._reason()
            if reason:
                args.setdefault("reason", reason)
        if cmd == "help":
            topic = self._topic(0)
            if topic and topic != "help":
                args["topic"] = topic

    def _is_name(self, w: str) -> bool:
        return w in P.FILLER or w in P.COMMAND_PHRASES or w in ("snapshot", "snapshots", "checkpoint", "latest",
                                                                 "last", "previous", "old", "one") \
            or any(self.r.resolve(k, w) for k in ENTITY_KINDS)

    def _after(self, keys: tuple[str, ...], ok: Any, need: Any = None) -> str | None:
        for i, w in enumerate(self.low[:-1]):
            if w in keys:
                j = i + 1
                while j < len(self.low) - 1 and self.low[j] in ("the", "a", "to", "is", "it", "of", "snapshot"):
                    j += 1
                raw = self.toks[j].raw
                if self.free(j) and ok(raw.lower()) and (need is None or need(raw.lower(), w)):
                    self.used[i] = True if w not in ("to",) else self.used[i] or True
                    self.take(j, j + 1)
                    return raw
        return None

    def _before(self, keys: tuple[str, ...], ok: Any) -> str | None:
        for i, w in enumerate(self.low):
            if w in keys and i > 0:
                j = i - 1
                if self.free(j) and ok(self.low[j]) and self.low[j] not in ("the", "a", "that", "this"):
                    self.take(j, j + 1)
                    return self.toks[j].raw
        return None

    def _bare(self, ok: Any) -> str | None:
        for i, t in enumerate(self.toks):
            if self.free(i) and ok(t.low):
                self.take(i, i + 1)
                return t.raw
        return None

    def _reason(self) -> str | None:
        markers = ("because", "reason", "since", "for", "due", "as", "cause", "cuz", "until", "during", "while")
        for i, w in enumerate(self.low):
            if w in markers and self.free(i) and i > 0:
                rest = [k for k in range(i, len(self.toks))]
                if any(not self.free(k) and any(m.start == k for m in self.mentions) for k in rest):
                    continue
                words = [self.toks[k].raw for k in rest if self.low[k] not in ("please",)]
                if w in ("because", "reason", "for", "due", "cause", "cuz", "as"):
                    words = words[1:]
                    if words and words[0].lower() in ("to", "is", ":"):
                        words = words[1:]
                self.take(i, len(self.toks))
                text = " ".join(words).strip(" :-")
                return text or None
        return None

    def _audit_args(self, args: dict[str, Any]) -> None:
        cmd = self.values.get("audit_command")
        if cmd and cmd != "audit":
            args.setdefault("command", cmd)
        if self.values.get("audit_user"):
            args.setdefault("user", self.values["audit_user"])
        for i, w in enumerate(self.low):
            if w in P.STATUS_WORDS and self.free(i) and "status" not in args:
                args["status"] = P.STATUS_WORDS[w]
                self.take(i, i + 1)
        if "pending" in self.low and "status" not in args:
            args["status"] = "pending_approval"
        for i, w in enumerate(self.low):
            if not self.free(i) and w not in self.p.users:
                continue
            if w in self.p.users:
                args.setdefault("user", w)
                self.take(i, i + 1)
            elif w in ("by", "user", "from") and i + 1 < len(self.low):
                nxt = self.toks[i + 1].raw
                if self.free(i + 1) and re.match(r"^[\w.@:-]{2,64}$", nxt) and nxt.lower() not in P.FILLER \
                        and not any(self.r.resolve(k, nxt) for k in ENTITY_KINDS):
                    args.setdefault("user", nxt.lower())
                    self.take(i, i + 2)
            elif w == "did" and i + 2 < len(self.low) and self.low[i + 2] == "do" and self.free(i + 1) \
                    and self.low[i + 1] not in P.FILLER:
                args.setdefault("user", self.low[i + 1])
                self.take(i, i + 3)

    # entities -----------------------------------------------------------------------
    def _assign(self, cmd: str, wanted: list[Arg], args: dict[str, Any]) -> Plan | None:
        spec = self.p.registry[cmd]
        pending = list(self.mentions)
        kinds = {a.kind: a for a in wanted}
        if any(m.fuzzy for m in pending):
            self.conf -= 0.1

        def put(arg: Arg, value: str, m: Mention) -> Plan | None:
            if arg.name in args and args[arg.name] != value:
                if arg.kind is Kind.stack and cmd in ("restart", "stop", "start", "logs"):
                    return None
                choices = join_choices([args[arg.name], value])
                return self.refuse(f"That names two {noun(arg.kind)}s ({choices}); "
                                   f"which {noun(arg.kind)} do you mean? One at a time, please.", 0.5)
            args[arg.name] = value
            return None

        leftovers: list[Mention] = []
        # direct matches first
        for m in pending:
            direct = [k for k in m.names if k in kinds]
            if len(direct) >= 1:
                # prefer the kind still missing
                k = next((k for k in direct if kinds[k].name not in args), direct[0])
                if len(direct) > 1 and k is Kind.stack and Kind.service in direct:
                    k = Kind.service
                bad = put(kinds[k], m.names[k], m)
                if bad:
                    return bad
            else:
                leftovers.append(m)
        if Kind.service in kinds and kinds[Kind.service].name not in args and args.get("stack"):
            services = list(self.r.config.stack_services.get(args["stack"], ()))
            if len(services) != 1:
                return Plan(None, {}, "grammar", f"The {args['stack']} stack has {join_choices(services, 'and')}: "
                            "which service?", 0.5, cmd)
            self.conf -= 0.1
            args[kinds[Kind.service].name] = services[0]
            del args["stack"]
        rest: list[Mention] = []
        for m in leftovers:
            if Kind.stack in kinds and Kind.service in m.names:
                stack = self.r.stack_for(m.names[Kind.service])
                if stack and kinds[Kind.stack].name not in args:
                    self.conf -= 0.05
                    bad = put(kinds[Kind.stack], stack, m)
                    if bad:
                        return bad
                    continue
            if Kind.service in kinds and Kind.stack in m.names and kinds[Kind.service].name not in args:
                services = list(self.r.config.stack_services.get(m.names[Kind.stack], ()))
                if len(services) == 1:
                    self.conf -= 0.1
                    args[kinds[Kind.service].name] = services[0]
                    continue
                return Plan(None, {}, "grammar",
                            f"The {m.names[Kind.stack]} stack has {join_choices(services, 'and')}: which service?",
                            0.5, cmd)
            if Kind.env in kinds and Kind.vm in m.names and kinds[Kind.env].name not in args:
                env = next((n for n, e in self.r.config.inventory.environments.items()
                            if e.vm == m.names[Kind.vm]), None)
                if env:
                    args[kinds[Kind.env].name] = env
                    continue
            if Kind.vm in kinds and Kind.env in m.names and kinds[Kind.vm].name not in args:
                guest = self.r.config.inventory.environments[m.names[Kind.env]].vm
                if guest:
                    args[kinds[Kind.vm].name] = guest
                    continue
                return Plan(None, {}, "grammar", unknown_name(self.r, Kind.vm, m.phrase), REFUSAL, cmd)
            rest.append(m)
        if rest:
            spec_changes = spec.changes
            if spec_changes or not wanted:
                if not spec_changes:
                    self.conf -= 0.1
                    return None
                m = rest[0]
                kind = next(iter(m.names))
                return Plan(None, {}, "grammar",
                            f"'{m.phrase}' is {article(noun(kind))}, which '{cmd}' does not take. "
                            f"Usage: {spec.usage}", 0.5, cmd)
            self.conf -= 0.1
        return None

    def _unknown_words(self) -> list[int]:
        known = _SNAPSHOT_VERBS if any(h.command in ("snapshot", "snapshots", "restore", "delete-snapshot")
                                       for h in self.hits) or self.has("snapshot") else frozenset()
        return [i for i, w in enumerate(self.low)
                if self.free(i) and w not in P.FILLER and w not in known and not w.isdigit() and w not in P.KIND_NOUNS
                and w not in P.GREETINGS and w not in ("-", "&", "+", "/", "...", "—")]

    def _unknown_target(self, unknown: list[int], missing: list[Arg], wanted: list[Arg], cmd: str) -> Plan | None:
        """An unknown word in a target position is an unknown name, never ignored."""
        if not wanted:
            return None
        kinds = {a.kind for a in wanted}
        for i in unknown:
            w = self.toks[i].raw
            nxt = self.low[i + 1] if i + 1 < len(self.low) else ""
            prev = self.low[i - 1] if i > 0 else ""
            kind = P.KIND_NOUNS.get(nxt)
            target_kind: Kind | None = None
            if kind is not None and (Kind(kind) in kinds or missing):
                target_kind = Kind(kind) if Kind(kind) in kinds else (missing or wanted)[0].kind
            elif missing and (prev in P.TARGET_PREPOSITIONS or prev in ("the",) or i == min(unknown)):
                target_kind = missing[0].kind
            if target_kind is not None:
                return Plan(None, {}, "grammar", unknown_name(self.r, target_kind, w), 0.0, cmd)
        return None

    def _not_understood(self) -> Plan:
        if self.mentions:
            names = ", ".join(m.phrase for m in self.mentions)
            return Plan.unknown(f"I see {names} but not what to do with it. " + self._can_do())
        return Plan.unknown(None)


def parse_plain(text: str, parser: NLParser) -> Plan:
    """The grammar route: canonical form first, then plain language."""
    if len(text) > MAX_TEXT:
        return Plan.unknown(f"That message is too long ({len(text)} characters, at most {MAX_TEXT}).")
    explicit = _trusted(parse_explicit(text, parser.resolver, parser.registry), parser)
    if explicit is not None and explicit.complete:
        return explicit
    plan = parser.parse(text)
    if explicit is not None and explicit.command is not None and not plan.complete and (
            plan.command is not None or not plan.clarify):
        return explicit  # the canonical form's own question ("Which environment: …?")
    if (explicit is not None and explicit.attempted and plan.command is None and not plan.attempted
            and plan.confidence == 0.0):
        # Plain language understood nothing, but the first word is a registered command it has no
        # phrasing for (a newly registered one): the canonical reading's question names what is wrong.
        return explicit
    if plan.command is None and not plan.clarify and explicit is not None and explicit.clarify:
        return explicit
    return plan


def _trusted(plan: Plan, parser: NLParser) -> Plan | None:
    """The canonical parse, unless it read an inventory name as a free word ("revert chat on test")."""
    if plan.command is None:
        return plan
    spec = parser.registry[plan.command]
    for arg in spec.args:
        value = plan.args.get(arg.name)
        if arg.kind is Kind.word and isinstance(value, str) and any(
                parser.resolver.resolve(k, value) for k in ENTITY_KINDS):
            return None
    topic = plan.args.get("topic")
    if plan.command == "help" and topic:
        name = parser.registry.command_for_word(str(topic).split()[0])
        if name is None:
            return None
        plan.args["topic"] = name
    reason = plan.args.get("reason")
    if isinstance(reason, str):
        plan.args["reason"] = re.sub(r"^(because|reason:?|for|due to|since)\s+", "", reason, flags=re.I) or None
    return plan
