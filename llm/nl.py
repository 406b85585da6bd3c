"""The plain-language route: ordinary team-channel phrasings → a plan, or an honest "no".

`parse_plain` runs the canonical grammar first and, when that does not give a command,
reads the text as people write it.  The reader knows no command by name: what each
command's words are comes from its declared `Phrasing`, compiled into one lexicon
(llm/lexicon.py).  The stages, each generic:

1. words: one tokenizer (llm/tokens.py), contractions expanded, politeness stripped;
2. modality (llm/modality.py): pasted text, someone else's words, questions of
   whether, conditionals, negations, the past, plans and schedules → no action;
3. scan: formats ("give {service} a kick"), split particle verbs, phrases and
   inventory mentions (a typo is corrected through an index, llm/fuzzy.py); then the
   shape of the message (llm/shape.py): the asking sentence and its context, pronoun
   objects, purpose and time phrases, the free-text tail, retractions;
4. government: a command noun is the command only when no other verb governs it
   ("undo the chat deploy" → what "undo" asks for; "scrap the deploy" → a question);
5. choice: the strongest reading; between readings of equal strength, the one whose
   arguments the named targets fill (a VM for restore, a stack for rollback);
6. slots: arguments from the command's declarations (cues, shapes, value words),
   targets through the inventory resolver.

It refuses rather than guesses.  Every plan carries an explicit `outcome` (run, ask,
refuse, unknown); `confidence` only says whether a model should take a second look.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from itertools import pairwise
from typing import Any

from commands.registry import ME, Arg, Kind, Registry
from infra.config import Role
from infra.wording import join_choices
from llm import phrases as P
from llm import shape
from llm.fuzzy import Vocabulary
from llm.grammar import LEADERS, MAX_TEXT, clash, parse_explicit
from llm.lexicon import Lexicon, Sense, Strength, gerund
from llm.modality import Modality, pasted, read_modality
from llm.plan import Outcome, Plan
from llm.resolve import Resolver
from llm.tokens import CLOSING, KV, OPENING, tokenize
from llm.validate import article, noun, unknown_name, validate
from llm.values import DURATION, ID_KINDS, REQUEST_ID, WORD, id_ref, normalize_duration
from llm.words import (
    CLOCK,
    CONJUNCTION_CUES,
    TIME_BEFORE,
    Hit,
    Mention,
    Word,
    identifier,
    looks_like_value,
    polite_trim,
    without_cue,
    words_of,
)

# Cue words that are prepositions: they introduce a value only when one follows ("to main"), never name one.
_WEAK_CUES = frozenset({"at", "to", "as", "back", "for", "from", "by", "@"})
_DURATION_LEADS = frozenset({"since", "last", "past", "in", "over", "for", "within", "from"})
_CORRECTION_FIRST = frozenset(p.split()[0] for p in P.CORRECTION_MARKERS)
# words that may stand beside the name in a correction ("no wait, to test please")
_CORRECTION_FILLER = frozenset({"to", "on", "in", "the", "a", "make", "it", "that", "please", "pls", "instead",
                                "i", "meant", "mean", "vm", "env", "stack"})
_ADDRESS = re.compile(r"^\s*@?([\w.-]+)\s*[,:]?")
# first words that are no person's name before "can you" ("so can you …", "also can you …")
_NOT_NAMES = frozenset({"so", "also", "and", "but", "then", "now", "ok", "okay", "pls", "please", "quick", "hey",
                        "hi", "yo", "sorry", "again", "btw", "alright", "right", "um", "uh", "well", "oh", "ah",
                        "mate", "dude", "guys", "folks", "team", "all", "everyone", "anyone", "someone", "somebody",
                        "ops", "chatops", "bot", "hello", "thanks", "great", "cool", "nice", "urgent"})
# words that label a line ("note: …", "update: …"), not a speaker
_LABELS = frozenset({"note", "todo", "fyi", "update", "question", "request", "ask", "action", "task", "reminder",
                     "q", "re", "warning", "error", "info", "alert", "incident", "important", "edit", "ps", "eta",
                     "summary", "context", "problem", "issue", "fix", "plan", "goal", "result", "answer", "tldr",
                     "prio", "step", "steps", "next", "then", "also", "finally", "first", "second", "reason",
                     "why", "background", "cc", "attn", "attention", "subject", "topic"})
_PERSON_ASKED = re.compile(r"^\s*[A-Za-z][\w.-]*(\s*,\s*((can|could|would|will|did|have|pls|please)\s+)?"
                           r"|\s+(can|could|would|will|pls|please)\s+)(you|u)\b", re.I)
# "jonas pls deploy monitoring to staging": a first word that no inventory knows, then "please" and a verb
_PERSON_PLEASED = re.compile(r"^\s*([A-Za-z][\w.-]*)\s*,?\s+(pls|please|plz)\s+[a-z]", re.I)
# "sam before u touch the prod vm take a snapshot": a first word, then a clause said to "you" that opens
# with a time or condition word (its verb is that person's)
_PERSON_WHEN_YOU = re.compile(r"^\s*[A-Za-z][\w.-]*\s+(before|when|once|after|if|while|whenever|until|till|as soon as)"
                              r"\s+(you|u|ya|you're|youre|ur)\b", re.I)
_HTTP_ERRORS = re.compile(r"^[45]\d\d(s|ing|ed)?$")
_LIST_JOINERS = frozenset({"and", "&", "+", "plus", "or", "also", "then", "as", "well"})
_DASHED = re.compile(r"^\s*[A-Za-z][\w.]*\s+(—|–|-|--)\s+\S")
_NAMED = re.compile(r"^[A-Za-z][\w.-]*,\s")  # "priya, …": a word set off by a comma, said to someone
# what makes "someone" a sort of person ("can someone with approver rights …", "anyone who knows n8n …")
_QUALIFIERS = frozenset({"with", "who", "whos", "from", "that", "having", "in", "on"})
_COPULAS = frozenset({"is", "are", "was", "were", "isn't", "aren't", "it's", "everything's", "that's", "its"})
_COPULA_BREAKS = frozenset({"to", "you", "u", "please", "pls", "can", "could", "would", "will", "and", "then", "or",
                            "but", "so", "let's", "lets"})
_BOT_NAMES = frozenset(lead.lstrip("/!") for lead in LEADERS) | {"bot"}
# The roles a person may hold (infra/config.py): no value, no name, and never given from chat.
ROLE_WORDS = frozenset(r.value for r in Role)
# Below this a plan should go to the LLM route when one is configured.
CONFIDENT = 0.75
NL_BASE = 0.9
# Negation words that, before a name, usually correct the target ("no, dev") rather than exclude it.
CORRECTIONS = frozenset({"no", "nope"})
ENTITY_KINDS = (Kind.service, Kind.stack, Kind.env, Kind.vm, Kind.host)
# verbs after "would you"/"do you" that ask an opinion, not for an action
_OPINION_VERBS = frozenset({"recommend", "suggest", "advise", "think", "say", "consider", "agree", "prefer",
                            "expect", "reckon"})
# words that may lead a name in a format's slot ("give the proxy a kick", "get the latest workflows onto dev")
_SLOT_LEADS = frozenset({"the", "our", "my", "this", "that", "latest", "newest", "new", "current"})
_CLOCK_PARTS = re.compile(r"^(\d{1,2})(?:[:.](\d{2}))?(am|pm)?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([t ]\d{2}:\d{2}(:\d{2})?)?$", re.I)
_DEMOTE_BEFORE = frozenset({"the", "a", "an", "this", "that", "last", "my", "your", "our", "his", "her",
                            "their", "its", "of", "latest", "previous", "first", "next", "any", "no", "every",
                            "one"}) | P.RELATIVE | P.ADJECTIVES
# light verbs and their -ing forms ("mind taking a snapshot of the dev vm?")
_LIGHT = P.LIGHT_VERBS | {" ".join([gerund(v.split()[0]), *v.split()[1:]]) for v in P.LIGHT_VERBS}
_POLITE = ("could someone", "can someone", "can somebody", "could somebody", "would someone", "can anyone",
           "could anyone", "someone please", "somebody please", "can you", "could you", "would you", "will you",
           "can u", "would you mind", "i need you to",
           # the bot named in the third person is still "you" ("could the bot please restart …")
           "can the bot", "could the bot", "would the bot", "will the bot",
           "i want you to", "go ahead and", "i would like to", "i would like you to", "i want to",
           "i need to", "we need to", "let us", "please", "kindly", "quickly", "could we", "can we",
           "ask you to", "time to", "need to", "you can", "i would love", "just", "pls", "can i see",
           "can i get", "can i have", "could i get", "could i see", "may i see", "can i check",
           "can i look at", "can we see", "can we get", "i would like", "is it possible to",
           "could we get", "can we have", "could we have", "do you mind", "i want", "i need", "we want",
           "we need",
           "would it be possible to", "would you be able to", "could you please", "can you please",
           "do me a favour and", "do me a favor and", "be a dear and", "mind", "real quick", "quick",
           "i was wondering if you could", "i wonder if you could", "wondering if you could", "i would appreciate",
           "i was hoping you could", "i am hoping you could",
           # the speaker asking the bot in so many words is no report of someone else's wish
           "i am asking you to", "we are asking you to", "i am telling you to", "i am begging you to",
           "i am requesting that you", "i would like you to", "we would like you to")

_POLITE_LONGEST_FIRST = sorted(_POLITE, key=len, reverse=True)
# the polite leads by their first word, longest first (looked up once per message)
_POLITE_BY_FIRST: dict[str, list[str]] = {}
for _lead in _POLITE_LONGEST_FIRST:
    _POLITE_BY_FIRST.setdefault(_lead.split()[0], []).append(_lead)


@dataclass(frozen=True)
class Decision:
    """A question about a decision, as the command that answers it reads it (`_Reading._decision`)."""

    status: str  # the status decided requests reached ("approved")
    command: str | None  # the command of the requests asked about, when the text names one ("deploy")
    decider: str | None  # who decided, when the text says ("bob")

    def value_for(self, arg: Arg) -> str | None:
        """The value of the answering command's status, command or `decided_by` argument (None: none)."""
        if arg.kind is Kind.status:
            return self.status
        if arg.kind is Kind.command:
            return self.command
        return self.decider


@dataclass
class NLParser:
    resolver: Resolver
    registry: Registry
    users: frozenset[str] = frozenset()
    lexicon: Lexicon = field(init=False)

    def __post_init__(self) -> None:
        self.lexicon = Lexicon.compile(self.registry)

    @cached_property
    def vocab(self) -> Vocabulary:
        """Built on the first plain-language request: start-up reads no stack's compose file."""
        return Vocabulary.build(self.resolver, self.lexicon)

    def known_word(self, w: str) -> bool:
        """A word the bot reads as its own (a command word or a name in the inventory)."""
        return bool(self.lexicon.senses(w)) or w in self.lexicon.command_words() or any(
            self.resolver.resolve(k, w) for k in ENTITY_KINDS)

    def parse(self, text: str) -> Plan:
        return _Reading(self, text).plan()


class _Reading:
    """One text being read; holds the words and what has been taken from them."""

    def __init__(self, parser: NLParser, text: str) -> None:
        self.p = parser
        self.r = parser.resolver
        self.lex = parser.lexicon
        self.text = text
        self.tokens = tokenize(text)
        self.words = words_of(self.tokens)
        self.causative = False
        self.lead_light = False  # the politeness stripped ended in a light verb ("can I get …")
        self.gerund_lead = False  # it asks with a gerund ("mind restarting the dashboards on dev?")
        self.suspects: list[tuple[int, str]] = []  # (word index, "'x' → y")
        self.asks_someone = False  # the polite lead asks someone in the channel ("can someone …")
        self.asks_qualified: str | None = None  # …someone of a sort only a person is ("someone with access")
        self._strip_leaders()
        self.low = [w.low for w in self.words]
        self.used = [False] * len(self.words)
        self.conf = NL_BASE
        self.values: dict[str, Any] = {}
        self.hits: list[Hit] = []
        self.mentions: list[Mention] = []
        self.excluded: list[Mention] = []
        self.typos: list[str] = []
        self.fuzzy_targets: list[tuple[int, str]] = []
        self.targets_given = False  # every required target is named (a weak cue may then introduce a value)
        self.phrase_words: set[int] = set()  # words the scan read as command phrases
        self.slot_names: set[int] = set()  # command words standing where a name belongs ("the backup server")
        self.value_at: dict[str, int] = {}  # where each value was found
        self.all_values: dict[str, list[tuple[int, Any]]] = {}
        self._candidate_for: tuple[tuple[Any, ...], bool] = ((), False)
        self._kinds_named_for: tuple[tuple[Any, ...] | None, list[Kind]] = (None, [])
        self._rivals: tuple[str, ...] = ()  # the readings being compared (llm/nl.py _best_fit)
        self._asking: tuple[int, int] | None = None  # the asking sentence's word range
        self.purpose: tuple[int, int] = (0, 0)  # a purpose clause's word range ("to fix the login bug")
        self.consumed: set[str] = set()  # values an argument took
        self.free_text: str | None = None  # the person's own words after the request ("…, needs a snapshot first")
        self.ids_named: dict[str, list[tuple[int, str]]] = {}  # every id written with its lead, by kind

    # -- helpers -----------------------------------------------------------
    def _strip_leaders(self) -> None:
        while self.words and not any(c.isalnum() for c in self.words[0].raw) and self.words[0].raw not in "-–—":
            self.words = self.words[1:]  # "🔄 restart paperless on dev 🙏": a symbol before the words says nothing
        while self.words and (self.words[0].low in LEADERS or self.words[0].low in P.GREETINGS):
            first = self.words[0]
            nxt = self.words[1].low if len(self.words) > 1 else ""
            if nxt in P.REPORT_VERBS and not first.boundary:
                break  # "ops asked us to deploy chat to live", "team says …": the subject of a report
            named = nxt in P.TARGET_PREPOSITIONS or nxt in P.KIND_NOUNS or nxt in ("is", "keeps", "looks", "seems") \
                or any(s.strength < Strength.verb for s in self.p.lexicon.senses(nxt))  # "bot logs", not "bot restart"
            if first.low in P.GREETINGS and not first.boundary and named and any(
                    self.r.resolve(k, first.low) for k in ENTITY_KINDS):
                break  # "hello on local keeps crashing", "bot logs on phoenix": a name like a greeting ("hey bot, …")
            self.words = self.words[1:]
        self._strip_apology()
        changed = True
        while changed and self.words:
            changed = False
            joined = " ".join(w.low for w in self.words)
            for lead in _POLITE_BY_FIRST.get(self.words[0].low, ()):
                after = joined[len(lead) + 1:].split(" ", 1)[0]
                if after in _OPINION_VERBS:
                    break  # "would you recommend taking a snapshot …?": a question of whether, kept whole
                if joined == lead or joined.startswith(lead + " "):
                    last = lead.split()[-1]
                    # "can we get …": the verb stays a word of the request ("get the old chat back")
                    keep = last in ("get", "have") and joined != lead
                    self.words = self.words[len(lead.split()) - keep:]
                    someone = next((w for w in lead.split() if w in ("someone", "somebody", "anyone", "anybody")), "")
                    self.asks_someone = self.asks_someone or bool(someone)
                    if someone and self.words and self.words[0].low in _QUALIFIERS:
                        # "can someone with approver rights restart …": a person of that sort, not the bot
                        self.asks_qualified = " ".join([someone, *(w.raw for w in self.words[:3])])
                    self.causative = self.causative or last in P.CAUSATIVE_VERBS
                    self.lead_light = last in P.LIGHT_VERBS or last == "have"
                    self.gerund_lead = last == "mind"
                    changed = not keep
                    break
        # politeness that looks like a condition ("if you can", "when you get a chance") is no condition
        padded = f" {' '.join(w.low for w in self.words)} "
        for phrase in P.POLITE_CONDITIONS:
            if f" {phrase} " not in padded:
                continue
            n = len(phrase.split())
            for i in range(len(self.words) - n + 1):
                if " ".join(w.low for w in self.words[i:i + n]) == phrase:
                    del self.words[i:i + n]
                    break

    def _strip_apology(self) -> None:
        """An apology that opens the message with a clause of its own ("sorry to bother —", "Hi all, sorry if
        this is a silly question, I'm new here —") is politeness: its words are no condition and name nothing."""
        k = 0
        while k < len(self.words) and (self.words[k].low in P.GREETINGS or self.words[k].low in ("all", "team")):
            k += 1
        if k + 1 >= len(self.words) or self.words[k].low not in ("sorry", "apologies") \
                or self.words[k + 1].low not in ("to", "if", "for", "about"):
            return
        ends = [j for j in range(k + 1, len(self.words))
                if self.words[j].boundary or self.words[j].low in P.DASHES]
        # (the clause of an apology runs to the dash, or to the last comma before a request of its own)
        dash = next((j for j in ends if self.words[j].low in P.DASHES), None)
        end = dash if dash is not None else (ends[0] if ends else None)
        if end is not None and end + 1 < len(self.words):
            self.words = self.words[end + 1:]
            if len(self.words) > 1 and self.words[0].low in ("but", "and", "so"):
                self.words = self.words[1:]  # "sorry if this is basic, but how do I …"

    def joined(self, start: int = 0, end: int | None = None) -> str:
        return " ".join(self.low[start:end])

    def has(self, phrase: str) -> bool:
        return f" {phrase} " in f" {self.joined()} "

    def take(self, start: int, end: int) -> None:
        for i in range(start, end):
            self.used[i] = True

    def free(self, i: int) -> bool:
        return 0 <= i < len(self.words) and not self.used[i]

    def refuse(self, message: str) -> Plan:
        """A deliberate no: nothing to run, and no model should override it."""
        return Plan(None, {}, "grammar", message, 0.0, None, outcome=Outcome.refuse)

    def ask(self, message: str, attempted: str | None = None) -> Plan:
        """A question back: the text asks for something, but not clearly enough to act on."""
        return Plan(None, {}, "grammar", message, 0.5, attempted, outcome=Outcome.ask)

    def verbatim(self, i: int, end: int | None = None) -> str:
        """The person's own words from word i (to word `end`), exactly as written."""
        if i >= len(self.words):
            return ""
        start = self.tokens[self.words[i].tok].outer_start
        stop = len(self.text) if end is None or end >= len(self.words) else \
            self.tokens[self.words[end - 1].tok].outer_end
        return self.text[start:stop].strip()

    # -- the reading -------------------------------------------------------
    def plan(self) -> Plan:
        if not self.words:
            return Plan.unknown("Say 'help' to see what I can do.", outcome=Outcome.unknown)
        if self.joined() in P.CHATTER:
            return Plan.unknown(None)
        self._values()
        howto = self._howto()
        if howto is not None:
            return howto
        self._scan()
        self._fix_typos()
        shape.symptoms(self)
        shape.states_of_things(self)
        shape.pronoun_objects(self)
        shape.context_names(self)
        shape.asked_values(self)
        shape.time_references(self)
        shape.purpose_clauses(self)
        shape.so_clauses(self)
        shape.free_text_tail(self)
        shape.negated_remarks(self)
        mood = read_modality(self._modality())
        if mood.refusal is not None:
            return self.refuse(mood.refusal)
        refusal = self._gates(mood)
        if refusal is not None:
            return refusal
        governed = self._govern()
        if governed is not None:
            return governed
        cmd = self._command()
        if isinstance(cmd, Plan):
            return cmd
        if cmd is None:
            return self._not_understood()
        return self._arguments(cmd)

    def _modality(self) -> Modality:
        first = min((h.start for h in self.hits if h.strength >= Strength.noun), default=len(self.words))
        actions = [h for h in self.hits if h.asked]
        changing = any(self.lex.specs[c].changes for h in actions for c in h.commands)
        return Modality(text=self.text, words=[w.low for w in self.words], raw=[w.raw for w in self.words],
                        quoted=[w.quoted for w in self.words], boundary=[w.boundary for w in self.words],
                        hit_starts=[h.start for h in self.hits if h.strength >= Strength.noun],
                        weak_starts=[h.start for h in self.hits if h.strength is Strength.hint],
                        action_starts=[h.start for h in actions], first_hit=first, changing=changing,
                        mentions=[(m.start, m.end) for m in self.mentions], users=self.p.users,
                        past=self._past_positions(),
                        possessive=[self._possessive(i) for i in range(len(self.words))],
                        aside=shape.aside_words(self),
                        change_nouns=[h.start for h in self.hits if h.strength is Strength.noun
                                      and any(self.lex.specs[c].changes for c in h.commands)])

    def _past_positions(self) -> list[int]:
        return [i for i in range(len(self.low)) if self._past_at(i)]

    def _person(self, w: str | None) -> str | None:
        """A word as a person a request can be by: one of the team's names, or "I" (the asker, `ME`)."""
        return ME if w == "i" else w if w in self.p.users else None

    def _subject_of_past(self, i: int) -> str | None:
        """The word before the past form at word i, over a "has"/"have"/"had" ("bob has approved")."""
        j = i - 2 if i > 1 and self.low[i - 1] in ("has", "have", "had") else i - 1
        return self.low[j] if j >= 0 else None

    def _asker_did(self, i: int) -> None:
        """"I" just before the past form at word i ("have I restored anything", "the last thing I rolled back"):
        the asker's own requests, unless a decision's person is named (`_decided_by` reads those)."""
        if self._subject_of_past(i) == "i" and not any(self.lex.specs[c].phrasing.past_status
                                                       for c in self._past_at(i)):
            self.values.setdefault("past_user", ME)

    def _decided_objects(self, past: str, start: int) -> None:
        """A decision asked about ("did bob approve any deploys on prod", "which restarts were approved by
        carol"): the changes named from word `start` on are what it decided, not requests."""
        if not self.lex.specs[past].phrasing.past_status:
            return
        for h in [h for h in self.hits if h.start >= start]:
            decided = self._change_named(h, but=past)
            if decided is not None:
                self.hits.remove(h)
                self.values.setdefault("past_object", decided)

    def _change_named(self, hit: Hit, but: str | None = None) -> str | None:
        """The command that changes something a hit names, its plural counting as its singular's ("snapshots"
        are snapshots taken, not the list of them), other than `but`."""
        phrase = self.joined(hit.start, hit.end)
        single = self.lex.nouns.get(phrase.removesuffix("s"), [])
        changes = [c for c in (*hit.commands, *single) if c != but and self.lex.specs[c].changes]
        # (of its senses, the command it names: "the stop" is a stop before a cancel)
        return next((c for c in changes if c in (phrase, phrase.removesuffix("s"))), changes[0] if changes else None)

    def _past_done_at(self, i: int) -> str | None:
        """The command whose past form is word i, of those that change something ("deployed", "approved"),
        taken with its words; None if there is none."""
        commands, n = self._past_span(i)
        done = next((c for c in commands if self.lex.specs[c].changes), None)
        if done is not None:
            self.take(i, i + n)
        return done

    def _past_at(self, i: int) -> list[str]:
        return self._past_span(i)[0]

    def _past_span(self, i: int) -> tuple[list[str], int]:
        """The commands whose past form starts at word i (the longer form first), and its words."""
        for n in (2, 1):
            phrase = self.joined(i, i + n)
            if len(phrase.split()) == n and phrase in self.lex.past:
                return self.lex.past[phrase], n
        return [], 0

    # values that need no command context -----------------------------------
    def _values(self) -> None:
        for i, w in enumerate(self.low):
            led = {key: ref for key, lead in ID_KINDS.items() if (ref := id_ref(w, lead, bare="never"))}
            if led:
                for key, ref in led.items():
                    self.values.setdefault(key, ref)
                    self.ids_named.setdefault(key, []).append((i, ref))
                self.take(i, i + 1)
            else:
                m = KV.match(self.words[i].raw)
                if m:
                    key = m.group(1).lower().replace("-", "_")
                    self.values.setdefault("kv", {})[key] = m.group(2)
                    self.values.setdefault("kv_given", []).append((key, m.group(2)))
                    self.take(i, i + 1)
        self._bare_id()
        self._quoted_text()
        self._durations()
        self._counts()

    def _bare_id(self) -> None:
        """An id typed without its lead ("approve 7c2e", "deny req b3d0"): hex digits with a digit and a letter,
        read as the id of the one kind the message's command words take (a request, a schedule)."""
        if any(key in self.values for key in ID_KINDS):
            return
        how = "strict"
        found = [i for i, w in enumerate(self.low) if self.free(i) and id_ref(w, "r", bare=how)]
        if not found:  # "approve 318", "deny request 411": digits right after the command's own word
            how = "slot"
            found = [i for i, w in enumerate(self.low) if self.free(i) and id_ref(w, "r", bare=how)
                     and self._id_slot(i)]
        if len(found) != 1:
            return
        takers = {c for k in range(len(self.low)) for n in (1, 2) for c in self._commands_of(self.joined(k, k + n))}
        kinds = {a.kind for c in takers for a in self.lex.specs[c].args if a.kind.value in ID_KINDS}
        if len(kinds) == 1:
            key = kinds.pop().value
            self.values[key] = id_ref(self.low[found[0]], ID_KINDS[key], bare=how)
            self.take(found[0], found[0] + 1)

    def _id_slot(self, i: int) -> bool:
        """Whether word i stands right after a word of a command that takes an id ("approve 318",
        "deny request 411", "approving #611")."""
        k = i - 1
        while k >= 0 and self.low[k] in ("request", "req", "id", "number", "no", "#") and not self.words[k].boundary:
            k -= 1
        if k < 0 or self.words[k].boundary:
            return False
        return any(a.kind.value in ID_KINDS for n in (1, 2) for c in self._commands_of(self.joined(k - n + 1, k + 1))
                   for a in self.lex.specs[c].args)

    def _commands_of(self, phrase: str) -> set[str]:
        """Every command a word or phrase may name: as a verb, noun or past form."""
        return {s.command for s in self.lex.senses(phrase)} | set(self.lex.past.get(phrase, ()))

    def _quoted_text(self) -> None:
        """'with description "pre kernel upgrade"': words in quotes right after a free-text argument's cue
        are that text, set aside before anything reads them (no gate sees "upgrade", no scan a command)."""
        if not any(w.quoted for w in self.words):
            return
        for i in range(len(self.low)):
            cue = next((c for c in self.lex.text_cues if self.joined(i, i + c.count(" ") + 1) == c), None)
            if cue is None:
                continue
            j = i + cue.count(" ") + 1
            if j < len(self.words) and self.low[j] in ("is", "of", "as") and not self.words[j].quoted:
                j += 1
            k = j
            while k < len(self.words) and self.words[k].quoted and self.free(k):
                k += 1
            if k == j:
                continue
            lead = self.tokens[self.words[j].tok].lead
            if not (any(c in OPENING for c in lead) or lead.startswith("'")):
                continue
            said = self.verbatim(j, k).strip(" ,;:.")
            if len(said) >= 2 and said[0] in OPENING + "'" and said[-1] in CLOSING + "'":
                self.values.setdefault("quoted", {})[cue] = said[1:-1].strip()
                self.take(i, k)

    def _durations(self) -> None:
        low, n = self.low, len(self.low)
        for phrase in sorted(P.SINCE_WORDS, key=lambda s: -len(s.split())):
            words = phrase.split()
            for i in range(n - len(words) + 1):
                if low[i:i + len(words)] == words and all(self.free(k) for k in range(i, i + len(words))):
                    self._found("since", P.SINCE_WORDS[phrase], i)
                    start = i - 1 if i > 0 and low[i - 1] in ("since", "from", "over", "in", "for", "during") else i
                    self.take(start, i + len(words))
        i = 0
        while i < n:
            if not self.free(i):
                i += 1
                continue
            w = low[i]
            if self._took(i):
                i += 1
                continue  # "the restart on live took like 40 seconds": how long it took, no time window
            if DURATION.match(w) and w != "1s" and not (
                    w.endswith("s") and w[:-1].isdigit() and (i == 0 or low[i - 1] not in _DURATION_LEADS)):
                # (a bare "502s" is no 502 seconds: "any 502s in the proxy logs?"; "since 30s" is)
                self._found("since", normalize_duration(w), i)
                self._take_duration_lead(i)
                self.take(i, i + 1)
                i += 1
                continue
            num = self._number(w)
            if num is not None and i + 1 < n and low[i + 1] in P.TIME_UNITS:
                self._found("since", f"{num}{P.TIME_UNITS[low[i + 1]]}", i)
                self._take_duration_lead(i)
                end = i + 2
                if end < n and low[end] == "ago":
                    end += 1
                self.take(i, end)
                i = end
                continue
            if w in ("since", "from", "last") and i + 1 < n and low[i + 1] in P.WEEKDAYS:
                # "since monday": back to the last such day (a whole day's margin)
                back = (date.today().weekday() - P.WEEKDAYS.index(low[i + 1])) % 7 or 7
                self._found("since", f"{back}d", i)
                self.take(i, i + 2)
                i += 2
                continue
            if w == "weekend" and i > 0 and self.free(i - 1) and (low[i - 1] in ("this", "last", "past") or (
                    low[i - 1] == "the" and i > 1 and low[i - 2] in ("over", "during", "since", "from", "for",
                                                                     "through", "across", "on"))):
                # "over the weekend", "this weekend": back to the last Saturday (a whole day's margin)
                back = (date.today().weekday() - 5) % 7 + 1
                self._found("since", f"{back}d", i)
                lead = i - 2 if i > 1 and low[i - 2] in ("over", "during", "since", "from", "on") else i - 1
                self.take(lead, i + 1)
                i += 1
                continue
            if w == "since" and i + 1 < n and _ISO_DATE.match(low[i + 1]):
                self._found("since", low[i + 1].upper(), i)
                self.take(i, i + 2)
                i += 2
                continue
            clock = self._clock_at(i + 1) if w in ("since", "from") else None
            if clock is not None:
                # "since 9am": the last time the clock showed it (today, or yesterday when still to come)
                at, width = clock
                self._found("since", at.strftime("%Y-%m-%dT%H:%M"), i)
                self.take(i, i + 1 + width)
                i += 1 + width
                continue
            i += 1

    def _kinds_of(self, cmd: str) -> set[Kind]:
        """The kinds of inventory name a command takes."""
        return {a.kind for a in self.lex.specs[cmd].args if a.kind.is_entity}

    def _took(self, i: int) -> bool:
        """Whether word i starts an amount of time something took or lasted ("took like 40 seconds")."""
        return any(w in P.TOOK for w in self.low[max(0, i - 3):i]) and (
            DURATION.match(self.low[i]) is not None or self._number(self.low[i]) is not None)

    def _clock_at(self, i: int) -> tuple[datetime, int] | None:
        """A time of day written at word i ("9am", "9:30", "9 am") as the latest such moment, and its width."""
        if i >= len(self.low) or not self.free(i):
            return None
        width = 2 if i + 1 < len(self.low) and self.low[i + 1] in ("am", "pm") and self.low[i].isdigit() else 1
        said = P.CLOCK_WORDS.get(self.low[i], "".join(self.low[i:i + width]))  # ("since midnight", "since lunch")
        m = _CLOCK_PARTS.match(said)
        if not CLOCK.match(said) or m is None:
            return None
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if m.group(3):
            hour = hour % 12 + (12 if m.group(3) == "pm" else 0)
        now = datetime.now()
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return (at - timedelta(days=1) if at > now else at), width

    def _found(self, key: str, value: Any, i: int) -> None:
        """A value found in the text at word i (the first of its key counts, unless a later one stands in
        the asking sentence: see _asked_values)."""
        self.all_values.setdefault(key, []).append((i, value))
        if key not in self.values:
            self.values[key] = value
            self.value_at[key] = i

    def _possessive(self, i: int) -> bool:
        """Whether word i was written with 's ("yesterday's")."""
        raw = self.tokens[self.words[i].tok].raw.replace("’", "'").lower()
        return raw.endswith("'s") and not raw.endswith("it's")

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
            # (a number in words counts as well: "last fifty lines", "thirty most recent", "a dozen entries")
            spelled = low[i] in P.NUMBER_WORDS and low[i] not in ("a", "an", "one", "couple", "few")
            if not self.free(i) or not (spelled or (low[i].isdigit() and len(low[i]) <= 6)):
                continue
            before = low[i - 1] if i > 0 else ""
            after = low[i + 1] if i + 1 < n else ""
            if after == "hundred" and spelled:
                continue  # ("two hundred lines": the number is the pair)
            value = int(low[i]) if not spelled else P.NUMBER_WORDS[low[i]]
            if before in P.NUMBER_WORDS and low[i] == "hundred" and before not in ("a", "an"):
                value = P.NUMBER_WORDS[before] * 100
            most_recent = after == "most" and i + 2 < n and low[i + 2] in ("recent", "recently")
            if after in P.LINE_WORDS or most_recent or before in ("last", "tail", "limit", "top", "first", "latest",
                                                                  "recent", "dozen"):
                self._found("count", value, i)
                self.take(i, i + 1)
                if before in ("last", "limit", "top", "latest", "recent"):
                    self.take(i - 1, i)

    # how-to questions → the command that answers them ------------------------
    def _howto(self) -> Plan | None:
        helper = self.lex.answers_howto
        if helper is None:
            return None
        j = self.joined()
        prefix = next((p for p in sorted(P.HOWTO_PREFIXES, key=len, reverse=True)
                       if j == p or j.startswith(p + " ")), None)
        start = 0
        if prefix is None:
            # "Hi, I'm new here. Could you explain how rollback works?", "sorry if this is basic, but how do I …"
            for k in self._sentence_starts():
                rest_j = self.joined(k)
                found = next((p for p in sorted(P.HOWTO_PREFIXES, key=len, reverse=True)
                              if len(p.split()) > 1 and (rest_j == p or rest_j.startswith(p + " "))), None)
                if found is not None and any(rest_j.startswith(lead + " ") and len(lead) > len(found)
                                             for lead in _POLITE_BY_FIRST.get(rest_j.split()[0], ())):
                    continue  # "… fails for every test user. can I see the last 200 lines of its logs?": asks
                if found is not None:
                    prefix, start, j = found, k, rest_j
                    break
        what_is = re.match(r"^what (is|are|does) (an? |the )?([\w-]+)( command)?( for| do| mean)?$", j)
        if what_is and (self.p.registry.command_for_word(what_is.group(3)) or self.lex.senses(what_is.group(3))) \
                and not (what_is.group(2) == "the " and not what_is.group(4) and not what_is.group(5)) \
                and not (what_is.group(1) == "is" and not what_is.group(2) and what_is.group(3).endswith("ed")):
            # ("what's scheduled?" asks what is, not what "scheduled" means)
            prefix = "what is"  # ("what's the status?" asks for the status itself, not what the command is)
        if prefix is None:
            return None
        rest = j[len(prefix):].split()
        if rest and (prefix.endswith("how") or prefix.startswith("how ")) and (
                rest[0] in P.HOW_NOT_HOWTO or self._entity_at(len(prefix.split()))
                                                or (len(rest) > 1 and rest[1] in ("is", "are"))):
            return None  # "show me how prod is doing": a state question, not a how-to
        if prefix == "how" and (not rest or rest[0] in P.HOW_NOT_HOWTO):
            return None
        if prefix == "how" and rest[0] not in ("to", "do", "can", "would", "should"):
            return None
        if prefix == "what does" and any(self._entity_at(start + 2 + k) for k in range(2)):
            return None  # "what does the bot's log say on phoenix?": what a service wrote, not a how-to
        topic = self._topic(start + len(prefix.split()))
        spec = self.lex.specs[helper]
        args = {spec.args[0].name: topic} if topic and spec.args else {}
        return validate(Plan(helper, args, confidence=0.85), self.r, self.p.registry)

    def _sentence_starts(self) -> list[int]:
        """Where later sentences start, and clauses after ", but" (read before any command word is known)."""
        out = []
        for k in range(1, len(self.words)):
            trail = self.tokens[self.words[k - 1].tok].trail
            ends = self.words[k - 1].boundary and any(c in trail for c in ".?!;:")
            if ends or (self.low[k - 1] == "but" and k > 1 and self.words[k - 2].boundary):
                out.append(k)
            elif self.low[k - 1] in P.DASHES and k > 1:
                out.append(k)  # "before I touch anything — what does rollback actually do?"
        return out

    def _topic(self, start: int) -> str | None:
        """The command a how-to question is about: the strongest phrase in it, a governed noun, a past form."""
        words = self.low[start:]
        best: tuple[int, int, str] | None = None
        for n in range(self.lex.max_words, 0, -1):
            for i in range(len(words) - n + 1):
                phrase = " ".join(words[i:i + n])
                for cmd in self._topic_senses(words, i, phrase):
                    senses = self.lex.senses(phrase)
                    rank = int(max(s.strength for s in senses)) if senses else 3
                    if cmd != self.lex.answers_howto and (best is None or (rank, n) > best[:2]):
                        best = (rank, n, cmd)
        if best:
            return best[2]
        for w in words:
            if w in self.lex.past:
                return self.lex.past[w][0]
        for i in range(len(words) - 1):
            for j in range(i + 1, min(i + 4, len(words))):
                if (words[i], words[j]) in self.lex.particles:
                    return self.lex.particles[(words[i], words[j])][0]
        return None

    def _topic_senses(self, words: list[str], i: int, phrase: str) -> list[str]:
        if phrase in self.lex.object_verbs:
            # "how do I delete a snapshot": a verb governing a noun later on names the topic
            for k in range(i + 1, min(i + 5, len(words))):
                for cmd in self.lex.nouns.get(words[k], []):
                    governed = self.lex.governs(phrase, cmd)
                    if governed:
                        return governed[:1]
        return [s.command for s in self.lex.senses(phrase) if s.strength >= Strength.noun][:1]

    # scanning: formats, command phrases and entity mentions ---------------------------
    def _entity_at(self, i: int) -> Mention | None:
        for n in range(min(self.r.max_words, len(self.words) - i), 0, -1):
            if not all(self.free(k) for k in range(i, i + n)):
                continue
            phrase = self.joined(i, i + n)
            names = {k: name for k in ENTITY_KINDS if (name := self.r.resolve(k, phrase))}
            if not names and n > 1:
                names = {k: name for k in ENTITY_KINDS if (name := self.r.resolve(k, phrase.replace(" ", "-")))}
            if not names and len(phrase) >= 5 and not phrase.endswith("s"):
                # "the dashboard" for the alias "dashboards" (a plural for a single name may mean several)
                names = {k: name for k in (Kind.service, Kind.stack) if (name := self.r.resolve(k, phrase + "s"))}
                if names and not any(self.r.resolve(k, phrase + "s") == phrase + "s" for k in names):
                    return Mention(names, i, i + n, phrase)  # (an alias's singular: "the dashboard")
                if names:
                    # a stack's own name without its "s" ("rollback workflow on dev"): a near-name, asked
                    # about on a change like a typo
                    said = (i, f"'{self.words[i].raw}' → {phrase}s")
                    if said not in self.fuzzy_targets:  # (a position may be looked at more than once)
                        self.fuzzy_targets.append(said)
                    return Mention(names, i, i + n, phrase, fuzzy=True)
            if names:
                return Mention(names, i, i + n, phrase)
        return None

    def _phrase_at(self, i: int) -> Hit | None:
        for n in range(min(self.lex.max_words, len(self.words) - i), 0, -1):
            if not all(self.free(k) for k in range(i, i + n)):
                continue
            phrase = self.joined(i, i + n)
            senses = self.lex.senses(phrase)
            if senses and n > 1 and self._preposition_of(i + n - 1):
                continue  # "get out of here": "out of" is a preposition, not the particle of "get out"
            if senses:
                return Hit(list(senses), i, i + n, is_noun=self.lex.is_noun(phrase)
                           and max(s.strength for s in senses) <= Strength.noun)
        return None

    def _formats(self) -> None:
        for fmt in self.lex.formats:
            n = len(fmt.slots)
            for i in range(len(self.words)):
                got = self._match_format(fmt.slots, i)
                if got is None:
                    continue
                end, args, literal = got
                if self._particle_after(i, end, fmt.command):
                    continue  # "put data on test back to the previous revision": "put … back" is another verb
                for k in literal:
                    self.take(k, k + 1)
                self.hits.append(Hit([Sense(fmt.command, Strength.verb)], literal[0] if literal else i, end,
                                     format_args=args))
                break
            del n

    def _particle_after(self, i: int, end: int, command: str) -> bool:
        """Whether the verb at word i takes a particle later in its clause that makes it another command."""
        for j in range(end, min(len(self.low), end + 4)):
            cmds = self.lex.particles.get((self.low[i], self.low[j]))
            if cmds and command not in cmds and not self._preposition_at(j):  # ("… off and on again on dev")
                return True
            if self.words[j].boundary:
                break
        return False

    def _match_format(self, slots: tuple[Any, ...], i: int) -> tuple[int, dict[str, Any], list[int]] | None:
        args: dict[str, Any] = {}
        literal: list[int] = []
        k = i
        for slot in slots:
            if k >= len(self.words) or not self.free(k):
                return None
            if slot.word is not None:
                if self.low[k] != slot.word:
                    return None
                literal.append(k)
                k += 1
                continue
            arg: Arg = slot.arg
            if arg.kind.is_entity:
                while k < len(self.low) and self.low[k] in _SLOT_LEADS and self.free(k):
                    k += 1  # "put the agent stack on staging": an article before the name
                m = self._entity_at(k)
                if m is None:
                    return None
                k = m.end  # the mention itself is found again by the scan
                if k < len(self.low) and P.KIND_NOUNS.get(self.low[k]) == arg.kind.value:
                    k += 1  # (and the noun of its kind after it)
                continue
            w = self.words[k].raw
            if arg.kind is Kind.user and (self.low[k] in P.FILLER and self.low[k] not in self.p.users):
                return None
            if not WORD.match(w):
                return None
            if any(self.r.resolve(kind, w) for kind in ENTITY_KINDS):
                return None
            if arg.shape and not re.fullmatch(arg.shape, w, re.I) and not identifier(w):
                return None  # a shaped value's slot takes what looks like one ("up to date" names no ref)
            args[arg.name] = w.lower() if arg.kind is Kind.user else w
            literal.append(k)
            k += 1
        return k, args, literal

    def _scan(self) -> None:
        self._formats()
        n = len(self.words)
        for i in range(n - 1):  # a past phrase is one unit ("backed up" is not "up")
            if self.joined(i, i + 2) in self.lex.past and self.free(i) and self.free(i + 1) \
                    and not self.lex.senses(self.joined(i, i + 2)):
                self.take(i, i + 2)
        # split particle verbs: "push chat out", "bring n8n back up"
        for i in range(n):
            contiguous = self._phrase_at(i)
            if contiguous is not None and contiguous.end - contiguous.start > 1:
                continue
            for j in range(i + 2, min(i + 7, n)):
                cmds = self.lex.particles.get((self.low[i], self.low[j]))
                longer = j + 1 < n and self.lex.particles.get((self.low[i], self.low[j + 1]))
                if cmds and self.free(i) and self.free(j) and not self._clause_break(i, j) \
                        and not self._preposition_at(j) and not self._preposition_of(j) \
                        and not (self.low[j] == "back" and longer) and not self._up_to_value(j):
                    self.hits.append(Hit([Sense(c, Strength.verb) for c in cmds], i, i + 1))
                    self.take(i, i + 1)
                    self.take(j, j + 1)
                    if j - 1 > i and self.low[j - 1] == "back":
                        self.take(j - 1, j)
                    break
        i = 0
        while i < n:
            if not self.free(i):
                i += 1
                continue
            ent = self._entity_at(i)
            hit = self._phrase_at(i)
            if ent and self._indefinite(ent):
                ent = None  # "a workflow is spamming customers": a thing of that sort, not our stack
            if ent and (not hit or ent.end - ent.start > hit.end - hit.start):
                self.mentions.append(ent)
                self.take(ent.start, ent.end)
                i = ent.end
                continue
            if hit:
                self._demote(hit)
                self.hits.append(hit)
                self.take(hit.start, hit.end)
                i = hit.end
                continue
            i += 1
        self.hits.sort(key=lambda h: h.start)
        self.mentions.sort(key=lambda m: m.start)
        self._gerunds_beside_requests()
        self._coordinated_nouns()
        shape.names_in_target_slots(self)
        shape.kind_nouns(self)
        self.phrase_words = {k for h in self.hits if not h.format_args for k in range(h.start, h.end)}

    def _coordinated_nouns(self) -> None:
        """'show me gpu utilisation and power on phoenix': after "and" that joins it to a noun of some
        command, a word that is a noun of the same command is that noun, not the first word of a verb of
        another ("power on")."""
        for h in [h for h in self.hits if h.asked and h.start >= 2 and h.end - h.start > 1]:
            i = h.start
            if self.low[i - 1] != "and" or self.words[i - 1].boundary or self.words[i - 2].boundary:
                continue
            before = next((p for p in self.hits if p.end == i - 1 and not p.asked), None)
            same = [s for s in self.lex.senses(self.low[i])
                    if before is not None and s.command in before.commands and s.strength <= Strength.noun]
            if same:
                self.hits[self.hits.index(h)] = Hit(same, i, i + 1, is_noun=True)
                for k in range(i + 1, h.end):
                    self.used[k] = False

    def _gerunds_beside_requests(self) -> None:
        """An -ing form in a clause of its own beside a request says what is going on ("maintenance window
        starting: snapshot portainer", "lock it down, we're starting the window"): it asks for nothing."""
        verbs = [h for h in self.hits if h.asked]
        plain = [h for h in verbs if not self.low[h.end - 1].endswith("ing")]
        for h in verbs:
            if self.low[h.end - 1].endswith("ing") and len(self.low[h.end - 1]) > 5 and plain and all(
                    self._clause_break(min(h.start, p.start), max(h.start, p.start)) for p in plain):
                h.senses = [Sense(s.command, Strength.hint) for s in h.senses]

    def _up_to_value(self, j: int) -> bool:
        """'bring docs on dev up to tag docs-2.1.0': a particle that "to" and a value follow raises something
        to that value; it is no particle of the verb ("bring … up" is start, "up to v2" is not)."""
        k = j + 1
        if self.low[j] != "up" or k >= len(self.low) or self.low[k] != "to":
            return False
        k += 1
        while k < len(self.low) and (self.low[k] in P.DETERMINERS or self.low[k] in self.lex.value_nouns
                                     or self.low[k] in self.lex.nouns):  # ("up to the tag …", "up to release …")
            k += 1
        return k < len(self.low) and identifier(self.low[k])

    def _indefinite(self, m: Mention) -> bool:
        """Whether an indefinite article leads a name with no kind noun after it ("a workflow", "an agent"):
        a name points at one thing; "a chat stack" still names one."""
        before = self.low[m.start - 1] if m.start > 0 else ""
        after = self.low[m.end] if m.end < len(self.low) else ""
        return before in ("a", "an", "another") and after not in P.KIND_NOUNS and not self.words[m.start - 1].boundary

    def _preposition_at(self, j: int) -> bool:
        """'on'/'over' before a name is a preposition ("power cycle the tunnel on prod"), not a particle."""
        if self.low[j] not in ("on", "over"):
            return False
        k = j + 1
        while k < len(self.low) and self.low[k] in ("the", "a"):
            k += 1
        return k < len(self.low) and self._entity_at(k) is not None

    def _preposition_of(self, j: int) -> bool:
        """'out of', 'off of': a particle before 'of' is a preposition ("get the logs out of nginx")."""
        return self.low[j] in P.SPLIT_PARTICLES and j + 1 < len(self.low) and self.low[j + 1] == "of"

    def _clause_break(self, i: int, j: int) -> bool:
        return any(self.words[k].boundary for k in range(i, j)) or any(
            self.low[k] in P.CLAUSE_JOINERS for k in range(i + 1, j))

    def _demote(self, hit: Hit) -> None:
        """A verb after a determiner is a noun ("the deploy"); after 'before/after' a time reference."""
        i = hit.start
        if hit.strength is Strength.noun and self._in_time_phrase(i) and not self.words[i - 1].boundary:
            # "freeze changes on prod until the audit is finished": a command noun in a phrase of time
            # is a reference, not what is asked
            hit.senses = [Sense(s.command, Strength.hint) for s in hit.senses]
            return
        if hit.strength is not Strength.verb:
            return
        prev = self.low[i - 1] if i > 0 else ""
        # the two words before it, in its own clause ("…since 9am. Restart it." is no time reference)
        near = [self.low[k] for k in range(max(0, i - 2), i) if not any(self.words[x].boundary for x in range(k, i))]
        nouns = [s for s in hit.senses if s.command in self.lex.nouns.get(self.joined(hit.start, hit.end), [])]
        # after a name or a preposition a word that is also a noun is the noun ("the nightly-3 snapshot",
        # "back to snapshot X", "chat deploy"); after "you", "to", "please" it stays the verb
        verb_before = any(h.asked and h.end <= i for h in self.hits)
        after_words = i > 0 and not self.words[i - 1].boundary and prev not in P.CLAUSE_JOINERS \
            and prev not in P.DASHES and (
            (prev in P.REFERENCE_PREPOSITIONS and (prev != "to" or verb_before)) or (prev not in P.FILLER
            and not any(h.start <= i - 1 < h.end for h in self.hits)))
        after_name = any(m.end == i for m in self.mentions) and not self.words[i - 1].boundary
        # "the running deploy", "the failed restore": a determiner and an adjective make it a noun
        after_adjective = prev in P.DETERMINERS and i > 1 and self.low[i - 2] in _DEMOTE_BEFORE
        determined = prev in _DEMOTE_BEFORE and not self.words[i - 1].boundary  # ("no, restart it": an answer)
        # "snapshot of the prod vm was taken …": a command word that "of" follows is its noun
        determined = determined or (hit.end < len(self.low) and self.low[hit.end] == "of"
                                    and not self.words[hit.end - 1].boundary and bool(nouns))
        # "list snapshot portainer", "show snapshot list of …": a verb of showing makes what follows its object
        shown = i > 0 and not self.words[i - 1].boundary and self._display_verb_at(i - 1)
        # "restore snapshot before-pg16": a word right after a verb asked for is its object, a noun
        shown = shown or (i > 0 and not self.words[i - 1].boundary and any(
            h.end == i and h.asked for h in self.hits))
        if determined or prev in self.p.users or after_name or after_adjective or (
                nouns and (after_words or shown)):
            if nouns:
                hit.senses = [Sense(s.command, Strength.noun) for s in nouns]
                hit.is_noun = True
            else:
                hit.senses = [Sense(s.command, Strength.hint) for s in hit.senses]
        elif self._asks_nothing_here(hit, near):
            hit.senses = [Sense(s.command, Strength.hint) for s in hit.senses]

    def _asks_nothing_here(self, hit: Hit, near: list[str]) -> bool:
        """Whether a command verb, where it stands, asks for no command (it stays a hint)."""
        nxt = hit.end
        after = self.low[nxt] if nxt < len(self.low) and not self.words[nxt - 1].boundary else ""
        if after in ("with", "by"):
            return True  # "let's start with workflows": a verb of beginning
        if after.endswith("ing") and len(after) > 4 and self.free(nxt) and not self.lex.senses(after) \
                and not after.endswith("thing") and after not in P.FUNCTION_WORDS and not self._entity_at(nxt):
            return True  # "stop asking me to restart nginx": the verb governs an activity
        if any(w in TIME_BEFORE for w in near) or (hit.start > 1 and self._in_time_phrase(hit.start)):
            return True  # "… before the restart of …", "before the nvidia driver update": a phrase of time
        if not self.low[hit.start].endswith("ing") and self._after_copula(hit.start):
            return True  # "is everything back up on dev?": a state said of a subject, not a verb
        if (hit.start == 0 or self.words[hit.start - 1].boundary) and "?" in self.tokens[self.words[nxt - 1].tok].trail:
            return True  # "restarted? restarting? whatever, …": a command word asked about on its own
        if self.low[hit.start].endswith("ing") and hit.start > 0 and self.low[hit.start - 1] in P.ASPECTUAL:
            return True  # "the dashboards have stopped refreshing": an activity that began or ended
        if (hit.start == 0 or self.words[hit.start - 1].boundary) and self._subject_of_next(nxt - 1):
            return True  # "deploy finished, now show …": a thing that happened, the subject of its verb
        # "any containers restarting?": a question about what is going on, not a request
        return (self.low[nxt - 1].endswith("ing") or self.low[hit.start].endswith("ing")) \
            and self._is_question() and hit.start > 0

    def _after_copula(self, i: int) -> bool:
        """Whether a copula and its subject lead up to word i in its clause ("is everything back up",
        "it's back up", "are the containers up"): what follows says how a thing is; no request verb
        ("is it ok to restart", "can you", "please") stands between."""
        for k in range(i - 1, max(-1, i - 4), -1):
            if self.words[k].boundary or self.low[k] in _COPULA_BREAKS:
                return False
            if self.low[k] in _COPULAS:
                return True
        return False

    def _is_question(self) -> bool:
        return self.text.rstrip().endswith("?") or (bool(self.low) and self.low[0] in P.QUESTION_AUX | {
            "any", "anything", "what", "which", "who", "how", "why", "where", "when"})

    def _fix_typos(self) -> None:
        """Re-read unknown words that are one unambiguous typo away from a known word."""
        for i, w in enumerate(self.low):
            if not self.free(i) or w in P.FILLER or w in P.UNSUPPORTED or w in self.lex.object_verbs \
                    or w in self.lex.value_words:
                continue  # (a value word is a word of its own: "refused" is no typo of "refuse")
            if i > 0 and self.low[i - 1] in ("a", "an", "another") and not self.words[i - 1].boundary \
                    and (i + 1 >= len(self.low) or self.low[i + 1] not in P.KIND_NOUNS):
                continue  # "a workflow is spamming customers": a thing of a sort, no name to correct
            fixed = self.p.vocab.correct(w)
            if not fixed:
                near = self.p.vocab.suspect(w)
                if near:
                    self.suspects.append((i, f"'{self.words[i].raw}' → {near}"))
                continue
            strong = any(h.strength >= Strength.noun for h in self.hits)
            # (a verb's typo first in the message is its verb, beside command nouns only: "aprove r-91d0 pls,
            # its the rollback on prod")
            verb_first = i == 0 and not any(h.asked for h in self.hits) and any(
                s.strength is Strength.verb for s in self.lex.senses(fixed))
            if strong and self.lex.senses(fixed) and not verb_first:
                continue  # a word near a command word, beside a command already found: leave it alone
            self.typos.append(w)
            self.low[i] = fixed
            if fixed in self.lex.past:
                continue
            senses = self.lex.senses(fixed)
            if senses:
                self.hits.append(Hit(list(senses), i, i + 1, is_noun=self.lex.is_noun(fixed)
                                     and max(s.strength for s in senses) <= Strength.noun))
            else:
                names = {k: name for k in ENTITY_KINDS if (name := self.r.resolve(k, fixed))}
                if not names:
                    continue
                self.mentions.append(Mention(names, i, i + 1, fixed, fuzzy=True))
                self.fuzzy_targets.append((i, f"'{self.words[i].raw}' → {fixed}"))
            self.take(i, i + 1)
        self.hits.sort(key=lambda h: h.start)
        self.mentions.sort(key=lambda m: m.start)

    # gates: the ways a text says "do nothing" ----------------------------------
    def _gates(self, mood: Any) -> Plan | None:
        j = f" {self.joined()} "
        first_cmd = self.hits[0].start if self.hits else len(self.words)
        cmds = sorted({c for h in self.hits for c in h.commands})
        what = f"'{cmds[0]}'" if len(cmds) == 1 else "anything"
        # things the bot cannot do (a command declaring the verb wins: a team's own "scale")
        for i, w in enumerate(self.low):
            if not self.free(i) or w not in P.UNSUPPORTED or self._governs_later(i) or self._light_over_noun(i):
                continue
            if i > 0 and (self.low[i - 1] in P.DETERMINERS or any(m.end == i for m in self.mentions)):
                continue
            if self._in_noun_phrase(i) or self._subject_of_next(i):
                continue  # "before the kernel upgrade", "driver upgrade went fine": a noun, not something asked for
            if self._subordinate(i):
                continue  # "snapshot the vm before I upgrade it": someone else's action, not asked of me
            return self.refuse(f"I can't {P.UNSUPPORTED[w]} from chat. " + self._can_do())
        listed = next(((k, ids) for k, ids in self.ids_named.items() if self._listed(ids)), None)
        if listed is not None and self.hits:
            # "approve r-7c2e and r-91ab": one decision each, so that each card is read
            kind, ids = listed
            named = list(dict.fromkeys(ref for _, ref in ids))
            return self.ask(f"That names {len(named)} {kind}s ({join_choices(named, 'and')}); one at a time, "
                            "please: which one do you mean?")
        low = self.low
        lo, hi = shape.request_sentence(self)
        for h in self.hits:
            # "lock marco out of prod": a person as the verb's object is nothing a command of ours does to
            k = h.end
            if h.asked and k + 2 < len(low) and self.free(k) and low[k + 1:k + 3] == ["out", "of"] and (
                    low[k] in self.p.users or self._is_unknown_verb(k)):
                return self.refuse(f"That reads as doing something to '{self.words[k].raw}', which none of my "
                                   f"commands does, so I'm not doing anything. 'help {h.commands[0]}' says what "
                                   "it does.")
            # "r-a3c9 maine already approve kar diya": "already" before the verb says it is done
            if h.strength >= Strength.noun and h.start > 0 and low[h.start - 1] == "already" \
                    and not self.words[h.start - 1].boundary:
                return self.refuse("That sounds like something that already happened, so I'm not doing anything.")
        if low[lo] in ("who", "whom", "whose") and any(h.asked and lo <= h.start < hi for h in self.hits) \
                and not self.values.get("past_command") and not self.values.get("reviewer"):
            # "who gave approve for r-7c2e?": a question of who, never the act itself
            return self.refuse("That asks who, not for an action, so I'm not doing anything. To see who did "
                               "what, try 'audit'.")
        later = next((p for p in P.VAGUE_LATER if self.has(p)), None)
        if later is not None and any(h.asked for h in self.hits):
            # "we need to redeploy workflows on test at some point": a time to come, but not which
            return self.refuse(f"That's for some time later ('{later}'), so I'm not doing anything now. To "
                               "schedule it, give the time ('at 22:00', 'tomorrow at 6:30am'; see 'help schedules').")
        addressee = self._addressee()
        if addressee is not None and self.hits:
            return self.refuse(f"That's addressed to {addressee}, not to me, so I'm not doing anything. "
                               "Ask me directly when you want it done.")
        if self.asks_qualified and self.hits:
            return self.refuse(f"That asks a person ('{self.asks_qualified} …'), not me, so I'm not doing "
                               "anything. Ask me directly when you want it done.")
        decisions = [c for h in self.hits if h.strength is Strength.verb for c in h.commands]
        if self.asks_someone and decisions and all(c in self.lex.performative for c in decisions):
            return self.refuse(f"That asks someone else to {decisions[0]}; a decision on a request is each "
                               f"person's own, so I'm not doing anything. Say '{decisions[0]} …' yourself if "
                               "you mean it.")
        role = self._role_change()
        if role is not None:
            return self.refuse(f"I can't change roles from chat ('{role}'); roles are set in the configuration. "
                               "'whoami' shows yours.")
        # cancellations and negations
        for phrase in P.CANCEL_PHRASES:
            if f" {phrase} " in j and not self._cancel_corrects(phrase):
                return self.refuse(f"You said not to, so I won't do {what}.")
        taken_back = shape.taken_back(self, first_cmd)
        if taken_back:
            return self.refuse(f"That takes the request back ('{taken_back}'), so I won't do {what}.")
        for i, w in enumerate(self.low):
            if w in P.NEGATIONS and i < first_cmd and self.free(i) and not self._negates_value(i) \
                    and not self._answers_before(i) \
                    and i >= shape.request_sentence(self)[0]:  # ("… hasn't answered since 9am. Restart it.")
                if low[0] == "why":  # ("why is live protected but dev isn't?": a question, not "don't")
                    return self.refuse(f"I can't answer why-questions; try {self._where_to_look()}.")
                return self.refuse(f"That says not to, so I won't do {what}. "
                                   "Ask again without the 'not' if you do want it.")
        asking = shape.request_sentence(self)  # (a negation in a comment after it: "… nobody reviewed that")
        for i, w in enumerate(self.low):
            if w in P.NEGATIONS or w == "except":
                excl = next((m for m in self.mentions if m.start in (i + 1, i + 2, i + 3)
                             and all(self.low[k] in ("on", "in", "to", "the", "for", "at")
                                     for k in range(i + 1, m.start))), None)
                if excl is not None and w in CORRECTIONS:
                    # "snapshot the test vm — no, the dev vm": a correction, not "not dev". When it ends the
                    # message, its name replaces the earlier one of its kind; otherwise both stay and the
                    # request is asked about (two environments), never read backwards.
                    self.used[i] = True
                    if self.words[i].boundary and self._ends_message(excl.end):  # ("no, dev"; "no dev" is asked)
                        earlier = [e for e in self.mentions if e.end <= i and set(e.names) & set(excl.names)]
                        for e in earlier:
                            self.mentions.remove(e)
                            self.excluded.append(e)
                elif excl is not None:
                    self.mentions.remove(excl)
                    self.excluded.append(excl)
                    self.used[i] = True
                    if i > 0 and self.low[i - 1] == "but":
                        self.used[i - 1] = True
                elif i >= first_cmd and not self._negates_value(i) and w != "except" and i < asking[1] \
                        and not self._aside(i) and self.free(i):  # (a remark's negation: shape.negated_remarks)
                    return self.refuse(f"That says not to, so I won't do {what}.")
        self._corrections()
        self._subordinate_asides()
        return self._past_gates(first_cmd)

    def _cancel_corrects(self, phrase: str) -> bool:
        """'restart paperless on test, no wait, dev': a take-back followed only by a name replaces that name
        (the earlier one of its kind); the request stands."""
        n = len(phrase.split())
        at = next((i for i in range(len(self.low) - n + 1) if self.joined(i, i + n) == phrase), None)
        if at is None or at == 0:
            return False
        after = [m for m in self.mentions if m.start >= at + n]
        named = {k for m in after for k in range(m.start, m.end)}
        if not after or any(k not in named and self.low[k] not in _CORRECTION_FILLER
                            for k in range(at + n, len(self.low))):
            return False
        for m in after:
            for e in [e for e in self.mentions if e.end <= at and set(e.names) & set(m.names)]:
                self.mentions.remove(e)
                self.excluded.append(e)
        self.take(at, at + n)
        return True

    def _answers_before(self, i: int) -> bool:
        """'nope, deny r-77aa88bb': a "no" that ends its clause at the start of the message answers
        something said before, and the command verb after it asks."""
        return i == 0 and self.words[i].boundary and any(h.start == i + 1 for h in self.hits)

    def _addressee(self) -> str | None:
        return addressee(self.text, self.p.users, self.p.known_word)

    def _role_change(self) -> str | None:
        """'make carol an approver', 'set bob as admin': a person made into a role is a role change."""
        for i, w in enumerate(self.low):
            if w.rstrip("s") not in ROLE_WORDS:
                continue
            before = self.low[max(0, i - 4):i]
            if any(v in ("make", "making", "set", "turn", "promote", "demote", "appoint") for v in before) and any(
                    b in self.p.users or (b.isalpha() and b not in P.FUNCTION_WORDS and b not in P.FILLER)
                    for b in before[1:]):
                return self.joined(max(0, i - 4), i + 1)
        return None

    def _light_over_noun(self, i: int) -> bool:
        """'execute a restart of redis': a light verb whose object is a change's noun asks for that change."""
        if self.low[i] not in _LIGHT:
            return False
        k = i + 1
        while k < len(self.low) and self.low[k] in P.DETERMINERS:
            k += 1
        return any(h.start == k and h.strength >= Strength.noun and any(self.lex.specs[c].changes for c in h.commands)
                   for h in self.hits)

    def _in_noun_phrase(self, i: int) -> bool:
        """Whether word i ends a noun phrase: words that are neither function words nor command words lead
        back to a determiner ("the kernel upgrade", "a quick db migrate")."""
        k = i - 1
        while k >= 0 and not self.words[k].boundary and self.low[k] not in P.FUNCTION_WORDS \
                and self.low[k] not in P.DETERMINERS and not self.lex.senses(self.low[k]) \
                and not any(h.start <= k < h.end for h in self.hits):
            k -= 1
        # (or back to a word of time: "before redis 7.2 upgrade", "broken after upgrade")
        return (0 <= k < i - 1 and self.low[k] in P.DETERMINERS) or (0 <= k < i and self.low[k] in TIME_BEFORE)

    def _subject_of_next(self, i: int) -> bool:
        """Whether word i is the subject of a verb in the past right after it ("the upgrade went fine",
        "migration failed"): a thing that happened, not something asked for."""
        nxt = i + 1
        if nxt >= len(self.low) or self.words[i].boundary:
            return False
        w = self.low[nxt]
        if w in ("is", "was", "went", "broke", "ran", "ate", "has", "had") or (
                w.endswith("ed") and len(w) > 4 and not self.lex.senses(w) and self._entity_at(nxt) is None):
            return True
        # a compound's head first ("patch window starting now", "upgrade plan was approved")
        if nxt + 1 >= len(self.low) or self.words[nxt].boundary or not self.free(nxt) or not w.isalpha() \
                or self._entity_at(nxt) is not None or self.lex.senses(w) or w in P.FUNCTION_WORDS \
                or w in P.DETERMINERS:
            return False
        then = self.low[nxt + 1]
        return then in ("is", "was", "went", "starts", "begins", "ends", "broke") or (
            then.endswith(("ing", "ed")) and len(then) > 4 and self._entity_at(nxt + 1) is None)


    def _subordinate_asides(self) -> None:
        """'snapshot the vm before I upgrade it': a clause with its own subject after a subordinator is
        about someone's own action; its words are neither targets nor requests."""
        for i in range(1, len(self.low) - 1):
            if self.low[i] in TIME_BEFORE | {"because", "so", "as"} and self.low[i + 1] in (
                    "i", "we", "you", "they", "he", "she", "someone", "it") and self.hits and self.hits[0].start < i:
                end = self._clause_of(i)[1]
                self.take(i, end)
                self._drop_hits_in(i, end)
                self.mentions = [m for m in self.mentions if not i <= m.start < end]

    def _clause_of(self, i: int) -> tuple[int, int]:
        """The word range of the clause word i stands in (a boundary after a word ends a clause)."""
        start = max((k + 1 for k in range(i) if self.words[k].boundary), default=0)
        end = next((k + 1 for k in range(i, len(self.words)) if self.words[k].boundary), len(self.words))
        return start, end

    def _subordinate(self, i: int) -> bool:
        """Whether word i is the verb of a subordinate clause with its own subject ("before I upgrade it")."""
        before = self.low[max(0, i - 3):i]
        return (i > 0 and self.low[i - 1] in ("i", "we", "you", "they", "he", "she", "someone")) and any(
            w in TIME_BEFORE | {"when", "so", "because", "as", "then", "if"} for w in before)

    def _aside(self, i: int) -> bool:
        """A negation in a later clause that asks for nothing ("…, don't need it anymore") is an aside."""
        start, end = self._clause_of(i)
        if start == 0 or any(h.start >= start for h in self.hits if h.strength >= Strength.noun):
            return False
        said = [w for w in self.low[i + 1:end] if w not in ("not", "do", "please")]
        if len(said) == 2 and said[1] in ("that", "this", "it") and said[0] in ("want", "need", "like", "mean"):
            return False  # "…, I don't want that": the request itself, taken back
        # "…, don't need it anymore" says something else; "…, no wait, don't" takes the request back
        return len(said) >= 2 and not any(h.start < end and h.start >= start and h.strength > Strength.hint
                                          for h in self.hits)  # (a hint asks nothing: "nobody's looking at it")

    def _ends_message(self, k: int) -> bool:
        """Whether only a kind noun, politeness or 'instead' follows word k ("… no, the dev vm please")."""
        return all(w in P.KIND_NOUNS or w in ("please", "pls", "thanks", "instead", "then", "sorry")
                   for w in self.low[k:])

    def _corrections(self) -> None:
        """'restart redis on test… actually make that dev': a later name replaces the earlier one of its kind."""
        for i in range(len(self.low)):
            if self.low[i] not in _CORRECTION_FIRST:
                continue
            phrase = next((p for p in P.CORRECTION_MARKERS if self.joined(i, i + len(p.split())) == p), None)
            if phrase is None:
                continue
            after = [m for m in self.mentions if m.start >= i + len(phrase.split())]
            for m in after:
                earlier = [e for e in self.mentions if e.end <= i and set(e.names) & set(m.names)]
                for e in earlier:
                    self.mentions.remove(e)
                    self.excluded.append(e)
            self.take(i, i + len(phrase.split()))

    def _past_gates(self, first_cmd: int) -> Plan | None:
        low = self.low
        reviewer = self.lex.answers_past
        # "did anyone restart n8n?", "has someone deployed chat?" → the audit log
        # ("when did someone last restart grafana", "who has deployed chat": a question word first)
        # ("what did carol try to deploy", "which stacks did bob deploy": what was done)
        d = 1 if len(low) > 2 and low[0] in ("when", "who", "how", "why", "where", "what") else 0
        if len(low) > 3 and low[0] in ("which", "what") and low[2] in ("did", "has", "have"):
            d = 2  # ("which stacks did bob deploy", "what requests did alice deny")
        if d == 0 and len(low) > 3 and low[1] in ("did", "has", "have") and not self.words[0].boundary \
                and low[2] in P.PAST_SUBJECTS:
            d = 1  # "wait did you restart nginx on dev?": an interjection before the question
        asked_about = next((h for h in self.hits if h.start == d + 2), self.hits[0] if self.hits else None)
        first_person = len(low) > d + 2 and low[d + 1] == "i" and not self._past_at(d + 2) and not (
            asked_about and any(self.lex.specs[c].changes for c in asked_about.commands))
        if reviewer and low[d] in ("did", "has", "have") and len(low) > d + 1 and (
                low[d + 1] in P.PAST_SUBJECTS or low[d + 1] in self.p.users) and self.hits and not first_person:
            # (the verb after the person, if any: "which deploys did carol approve" asks about approvals, "which
            # rollbacks has bob approved" too, in its past form; after "I", only a change is something the asker
            # did: "what roles have I got" is about now)
            topic = next((h for h in self.hits if h.start == d + 2), None)
            # (a past form of a change before a read's word: "has carol deployed anything" is not about stacks)
            done = self._past_done_at(d + 2) if topic is None or not any(
                self.lex.specs[c].changes for c in topic.commands) else None
            if done is not None:
                self.values["past_command"] = done
                if topic is not None:
                    self.hits.remove(topic)
            else:
                topic = topic or self.hits[0]
                phrase = self.joined(topic.start, topic.end).replace(" ", "").replace("-", "")
                # (of a phrase's senses, the command it names: "roll back" is rollback before restore)
                # (of a phrase's senses, the command it names, else a change: "restarting" is restart, not status)
                self.values["past_command"] = next((c for c in topic.commands if c.replace("-", "") == phrase), next(
                    (c for c in topic.commands if self.lex.specs[c].changes), topic.commands[0]))
                self.hits.remove(topic)  # the topic of the question, not a request ("when did someone last restart")
            if (person := self._person(low[d + 1])) is not None:  # ("did I restart nginx on dev?": the asker's)
                self.values["past_user"] = person
            asked = next((h for h in self.hits if d == 2 and h.start == 1), None)
            if asked is not None:  # ("which deploys did carol approve": the requests asked about, not a request)
                self.hits.remove(asked)
                self.values["past_object"] = self._change_named(asked)
            self._decided_objects(self.values["past_command"], d + 2)
            return None
        k = 2 if len(low) > 3 and low[1] in ("has", "have", "had") else 1
        if reviewer and low[0] == "who" and len(low) > k + 1 and not self.hits and self.mentions \
                and self.free(k) and not self._past_at(k) and (low[k] in P.TOUCHED or (
                    "since" in self.values and (low[k] in P.IRREGULAR_PAST or (
                        len(low[k]) > 4 and low[k].endswith("ed"))))):
            # "who touched prod last night", "who messed with the data stack": what people did to a thing we
            # know, whatever the verb
            self.values["reviewer"] = True
            self.take(k, k + 1)
            return None
        if reviewer and low[d] in ("did", "has", "have") and len(low) > d + 2 and (
                low[d + 1] in ("anyone", "anybody", "someone", "somebody", "i") or low[d + 1] in self.p.users) \
                and not self.hits and self.mentions:
            # "did anyone touch the data stack on live today?": what people did to a thing we know, whatever
            # the verb ("did anyone eat my lunch" is none of ours)
            self.values["reviewer"] = True
            if (person := self._person(low[d + 1])) is not None:
                self.values["past_user"] = person
            done = self._past_done_at(d + 2)  # ("has carol denied anything on staging": what she denied)
            if done is not None:
                self.values["past_command"] = done
            self.take(d + 2, d + 3)
            return None
        lo, hi = shape.request_sentence(self)  # (a past form in a context sentence is context)
        past = [(i, self._past_at(i)[0]) for i in range(lo, hi) if self._past_at(i)
                and not any(h.start <= i < h.end and h.strength > Strength.hint for h in self.hits)
                and not self._value_word_before_noun(i) and not self._request_after(i)]
        if reviewer and past and self._value_question(past[0][0]):
            # "anything denied in the last 2 hours?": a value of the audit log's own argument; the changes it names
            # are the ones asked about ("which restarts were approved by carol?")
            self._decided_objects(past[0][1], lo)
            if "past_object" in self.values:
                self.values.setdefault("past_command", self.values.pop("past_object"))
            self._asker_did(past[0][0])
            return None
        audit_q = any(w in ("who", "when", "did", "whom", "anyone", "anybody")
                      for w in low[:max(3, first_cmd + 1)]) or low[0] in ("who", "when", "did") or (
            low[0] in ("what", "which") and any(w in ("did", "has", "have", "was", "were", "got")
                                                for w in low[1:3])) or (
            low[0] in ("was", "were", "has", "have", "had") and self._is_question()) or any(
            reviewer in h.commands for h in self.hits)
        if past and (self.causative or any(w == "get" for w in low[max(0, past[0][0] - 4):past[0][0]])
                     or self._asked_passive(past[0][0])) and low[past[0][0] - 1] not in P.PASSIVE_PAST:
            i, cmd = past[0]  # "can we get chat deployed": a causative request
            self._drop_hits_in(i, i + 1)
            self.hits.append(Hit([Sense(cmd, Strength.verb)], i, i + 1))
            self.take(i, i + 1)
            self.hits.sort(key=lambda h: h.start)
            past = []
        if past:
            i, cmd = past[0]
            changes = self.lex.specs[cmd].changes
            # ("show me what alice deployed yesterday", "list deploys that were approved by carol", "anything
            # carol rejected on dev?": a request to see what someone did, which the past form names)
            subject = self._subject_of_past(i)  # ("everything bob has approved")
            shown = (self._display_verb_at(0) or self._display_verb_at(1) or low[0] in ("anything", "any")) and (
                subject in self.p.users or subject in ("what", "everything", "anything")
                or (i + 2 < len(low) and low[i + 1] == "by" and low[i + 2] in self.p.users))
            if reviewer and (((audit_q or shown) and changes) or low[0] in ("who", "when", "did")):
                self.values["past_command"] = cmd
                self._drop_hits_in(i, i + 1)
                self.take(i, i + 1)
                self._decided_objects(cmd, lo)
                self._asker_did(i)
                if i + 1 < len(low) and low[i + 1] in ("back", "out"):
                    self.take(i + 1, i + 2)
                return None
            passive = i > 0 and low[i - 1] in P.PASSIVE_BEFORE
            if not passive and (
                    any(w in P.SUBJECTS for w in low[max(0, i - 3):i]) or i == 0 or low[i - 1] in P.PASSIVE_PAST
                    or any(w in P.TIME_AGO for w in low[i + 1:]) or self.values.get("since")
                    or any(w in self.p.users for w in low[:i])):
                return self.refuse(f"That sounds like something that already happened, so I'm not doing "
                                   f"anything. To review it: 'audit command={cmd}'.")
            n = 2 if self._past_at(i) and " ".join(low[i:i + 2]) in self.lex.past else 1
            self.take(i, min(i + n, len(low)))  # a participle describing a state ("is the queue backed up?"): no name
        imperative = bool(self.hits) and self.hits[0].start == 0 and self.hits[0].strength is Strength.verb
        performed = self._performed()
        outcome_at = [i for i, w in enumerate(low) if w in P.OUTCOME_WORDS and lo <= i < hi  # (a context
                      and not any(h.start == i + 1 and h.strength is Strength.noun and self._plural(h)
                                  for h in self.hits)]  # ("failed deploys in the last week?": which ones)
        # (a context sentence's "went sideways" is a reason: "a rollback of data on test please, migrations went
        # sideways")
        # "the proxy looks dead, give it a bounce": the report is a reason; the request follows it
        request_after = bool(outcome_at) and any(
            h.start > k and self.words[k].boundary for h in self.hits for k in range(max(outcome_at), h.start))
        if outcome_at and self.hits and not audit_q and not imperative and not request_after and not performed \
                and low[0] not in ("is", "are", "can", "could", "please", "why", "how", "what", "which", "show",
                                   "list", "get", "give", "any"):
            noun_first = self.hits[0].strength is Strength.hint or self.hits[0].is_noun or (
                self.hits[0].start > 0 and low[self.hits[0].start - 1] in ("the", "that"))
            soon_after = any(w in P.OUTCOME_WORDS for h in self.hits for w in low[h.end:h.end + 4])
            plain = any(w in ("went", "worked", "fine", "succeeded", "failed") for w in low[lo:hi])
            if noun_first or soon_after or plain:
                return self.refuse("That sounds like a report of how something went, not a request; "
                                   "I'm not doing anything.")
        # "alice will reverse it", "bob can restart it": someone else's action, not asked of me
        for h in self.hits:
            i = h.start
            if h.asked and i >= 2 and low[i - 1] in P.MODALS \
                    and low[i - 2] not in ("you", "please") and not self.words[i - 2].boundary \
                    and not self.words[i - 1].boundary and lo <= i - 2 and i < hi:
                return self.refuse("That says what someone else will or can do, not a request to me, so I'm not "
                                   "doing anything. Ask me directly when you want it done.")
        if (low[0] in P.REPORT_SUBJECTS or low[0] in self.p.users) and not self._request_after(1):
            verb = next((w for w in low[1:4] if w not in ("already", "just", "have", "had", "finally")), "")
            if verb in P.IRREGULAR_PAST or (verb.endswith("ed") and verb not in ("need", "needed")):
                return self.refuse("That sounds like something that already happened, so I'm not doing anything.")
        said = f" {self.joined()} "
        # ("I was told to ask you: …" asks; "I was going to ask you …" is a plan)
        asked_me = any(f" {p} " in said for p in (*P.SENT_TO_ME, *P.ASKING_MYSELF))
        for phrase in () if asked_me else P.INTENT_PHRASES:  # (in the asking sentence: "Heads up: … Can you …?")
            if performed and phrase in ("i am", "we are"):
                continue  # "I'm denying r-… because prod is frozen": saying it does it
            if f" {phrase} " in f" {self.joined(lo, max(first_cmd, lo + 1))} " \
                    or self.joined(lo).startswith(phrase + " "):
                return self.refuse("That sounds like your own plan rather than a request to me, so I'm not "
                                   "doing anything. Ask me directly when you want it done.")
        lead = next((h for h in self.hits if lo <= h.start < hi), None)  # the asking sentence's first phrase
        if lead is not None and lead.start == lo and self._gerund_of_verb(lead) \
                and lead.strength is Strength.verb and not self.gerund_lead and not performed \
                and not self._request_after(lo):  # ("starting the release. deploy chat to test": it asks after)
            # ("restarted redis on prod. going back to sleep": the asking sentence's own progressive; the
            # command is named back only when the words were its own, "restarting" → restart)
            bases = [b for b in _ing_bases(self.low[lead.start]) if len(b) >= 3]
            own = next((c for c in lead.commands if any(c.replace("-", "").startswith(b) for b in bases)), None)
            hint = f"Say '{own} …' if you want me to do it." if own else "'help' lists what I can do."
            return self.refuse(f"That reads like a heads-up, not a request, so I'm not doing anything. {hint}")
        sched = [w for i, w in enumerate(low) if lo <= i < hi and not self._remark(i) and (
            (CLOCK.match(w) and self.free(i) and not (i > 0 and low[i - 1] in ("the", "that", "this"))) or (
            w in P.SCHEDULE_WORDS and self.free(i) and not self._modifier(i) and not self._in_time_phrase(i)
            and not (w == "every" and not self._every_time(i)) and (
                w not in P.WEEKDAYS or (i > 0 and low[i - 1] in ("on", "next", "this", "by", "until", "before",
                                                                  "after", "coming", "till")))))]
        if sched:
            return self.refuse(self._no_schedule(sched[0]))
        if low[0] in ("why", "should", "shall"):
            return self.refuse(f"I can't answer why-questions; try {self._where_to_look()}.")
        return None

    def _where_to_look(self) -> str:
        """The reads that could answer a why-question, with the names it used ("why is nginx down on prod" →
        'logs nginx rumpleprod', 'status rumpleprod'): suggestions to send, never run from here."""
        named = [m for m in self.mentions if not m.fuzzy]
        service = next((m.names[Kind.service] for m in named if Kind.service in m.names), None)
        env = next((m.names[Kind.env] for m in named if Kind.env in m.names), None)
        if env is None:
            return "'logs SERVICE ENV', 'status ENV' or 'audit'"
        logs = f"'logs {service} {env}', " if service else ""
        return f"{logs}'status {env}' or 'audit env={env}'"

    def _asked_passive(self, i: int) -> bool:
        """A past participle that asks: "can nginx on dev be restarted?", "n8n needs to be restarted", "have
        grafana restarted on test", "grafana restarted on test please"."""
        low = self.low
        if i > 0 and low[i - 1] == "be":
            return low[0] in ("can", "could") or self.joined(i - 3, i - 1) in (
                "needs to", "need to", "has to", "have to", "got to", "ought to")
        if low[0] == "have" and len(low) > 1 and low[1] not in P.SUBJECTS | P.REPORT_SUBJECTS | self.p.users \
                and low[1] not in ("anyone", "anybody", "someone", "somebody", "they"):
            return True
        if low[0] in ("need", "want", "wanna") and i > 1:
            return True  # "need video deployed to test asap": the speaker's own need, its subject left out
        named_first = any(m.start == 0 and m.end == i for m in self.mentions)
        return named_first and any(w in ("please", "pls", "plz") for w in low)

    def _listed(self, ids: list[tuple[int, str]]) -> bool:
        """Whether ids of one kind stand in a list ("r-7c2e and r-91ab", "r-1, r-2"), not one named as the
        other's context ("deny r-1 because it duplicates r-2")."""
        return any(a[1] != b[1] and b[0] < len(self.low) and all(self.low[k] in _LIST_JOINERS
                                                                 for k in range(a[0] + 1, b[0]))
                   for a, b in pairwise(ids))

    @staticmethod
    def _no_schedule(word: str) -> str:
        return (f"I can't tell when '{word}' is. To schedule, say the time as 'at 22:00', 'tomorrow at 6:30am', "
                "'in 2 hours' or 'every night at 02:00' (see 'help schedules'); to do it now, leave the time out.")

    def _gerund_of_verb(self, h: Hit) -> bool:
        """Whether a phrase opens with the -ing form of a declared verb ("restarting", "going back"; "bring
        back" is no -ing form of "br back")."""
        first, rest = self.low[h.start], self.low[h.start + 1:h.end]
        if len(first) < 5:
            return False
        return any(gerund(b) == first and (self.lex.senses(" ".join([b, *rest])) or self.lex.senses(b))
                   for b in _ing_bases(first))

    def _on_one_id(self, cmd: str, given: Collection[str]) -> bool:
        """Whether `cmd` takes no inventory name and its id is among `given`: such a command acts on that id
        alone, so other names in the message describe it ("approve r-91d0, its the rollback on prod")."""
        spec = self.lex.specs[cmd]
        return not self._kinds_of(cmd) and any(a.kind.value in ID_KINDS and a.name in given for a in spec.args)

    def _request_after(self, i: int) -> bool:
        """'bob just deployed chat to live, please roll it back': a request in a later clause makes the past
        before it the request's context, not the message's point."""
        return any(h.start > i and ((h.asked) or self._shown(h))
                   and any(self.words[k].boundary for k in range(i, h.start)) for h in self.hits)

    def _performed(self) -> bool:
        """'approving r-…, diff looks good', "I'm denying r-… because …": the -ing form of a command that is
        done by saying it (Phrasing.performative), in the present, first in the message or after "I am"/"we
        are", with its request named."""
        if not self.hits or "request" not in self.values:
            return False
        lo, hi = shape.request_sentence(self)  # ("I checked the diff, approving 530": its asking sentence)
        first = next((h for h in self.hits if lo <= h.start < hi), self.hits[0])
        lead = self.joined(lo if first.start >= lo else 0, first.start)
        ing = self.low[first.start].endswith("ing")
        return first.asked and all(
            c in self.lex.performative for c in first.commands) and (
            (ing and lead in ("", "i am", "we are")) or (not ing and lead in ("i", "we", "i hereby", "hereby")))

    def _every_time(self, i: int) -> bool:
        """Whether "every" at word i is a schedule ("every night", "every 2 hours"), not "list every stack"."""
        nxt = self.low[i + 1:i + 3]
        return bool(nxt) and (nxt[0] in P.SCHEDULE_WORDS or nxt[0] in P.TIME_UNITS or nxt[0] in P.WEEKDAYS
                              or nxt[0] in ("day", "night", "morning", "evening", "weekday", "hour", "week", "month")
                              or (nxt[0].isdigit() and len(nxt) > 1 and nxt[1] in P.TIME_UNITS))

    def _modifier(self, i: int) -> bool:
        """A time word between a determiner and a noun describes the noun ("it's the nightly deploy"),
        it schedules nothing."""
        return 0 < i < len(self.low) - 1 and self.low[i - 1] in P.DETERMINERS \
            and self.low[i + 1] not in P.FUNCTION_WORDS and not self.words[i].boundary

    def _value_question(self, i: int) -> bool:
        """A past form that is a value word of the reviewing command, in a question without a subject
        ("anything denied today?", "which requests expired"): the reviewer with that value."""
        reviewer = self.lex.answers_past
        if reviewer is None or not self._is_question():
            return False
        spec = self.lex.specs[reviewer]
        if not any(self.low[i] == w for a in spec.args for w, _ in self.lex.values_of(a)):
            return False
        if any(w in P.REPORT_SUBJECTS or w in self.p.users or w in ("who", "whom") for w in self.low[max(0, i - 2):i]):
            return False  # ("who approved stuff yesterday": the approving done, not requests in that state)
        self.values["reviewer"] = True
        return True

    def _value_word_before_noun(self, i: int) -> bool:
        """'denied requests': a past form that is an argument's value word, before a noun, is an adjective."""
        nxt = self.low[i + 1] if i + 1 < len(self.low) else ""
        if i > 0 and self.low[i - 1] in ("who", "whom"):
            return False  # "who denied requests today": a verb, its subject asked for
        values = {w for spec in self.lex.specs.values() for a in spec.args for w, _ in self.lex.values_of(a)}
        return self.low[i] in values and (nxt in self.lex.nouns or nxt in P.LINE_WORDS)

    def _scope_of_another(self, hit: Hit) -> bool:
        """Whether a noun after "all"/"every" names a kind of thing another command word of the message
        takes ("status on dev, all stacks"; "every vm" for vm-status), rather than its own command."""
        kind = P.KIND_NOUNS.get(self.joined(hit.start, hit.end).removesuffix("s")) \
            or P.KIND_NOUNS.get(self.joined(hit.start, hit.end))
        if kind is None or hit.start == 0 or self.low[hit.start - 1] not in ("all", "every", "each"):
            return False
        return any(h is not hit and any(a.kind.value == kind for c in h.commands for a in self.lex.specs[c].args)
                   for h in self.hits)

    def _governs_later(self, i: int) -> bool:
        """Whether the object verb at i governs a command noun after it ("remove the old snapshot")."""
        verb = self.low[i]
        return any(h.start > i and h.start - i <= 5 and any(self.lex.governs(verb, c) for c in h.commands)
                   for h in self.hits)

    def _negates_value(self, i: int) -> bool:
        """'no rush', 'not sure' and friends are not negations of the request."""
        nxt = self.low[i + 1] if i + 1 < len(self.low) else ""
        if self.low[i] == "not" and i > 0 and self.low[i - 1] == "or" and (not nxt or self.words[i].boundary):
            return True  # "up or not?": a yes-or-no question, negating nothing
        if nxt in ("rush", "hurry", "pressure", "worries", "problem", "sure") or self.joined(i - 2, i) == "whether or":
            return True  # ("whether or not it helps": concessive)
        # "no idea what …", "no clue": "no" before an ordinary noun negates that noun, not the request
        # ("no restart", "no prod", "no, don't" and "no need" still negate)
        return self.low[i] == "no" and bool(nxt) and not self.words[i].boundary and self.free(i + 1) \
            and nxt.isalpha() and nxt not in P.FUNCTION_WORDS and nxt not in P.NEGATIONS \
            and not any(p.startswith(f"no {nxt}") for p in P.CANCEL_PHRASES) and not self.lex.senses(nxt)

    def _can_do(self) -> str:
        return "'help' lists what I can do."

    # government: who governs a command noun ------------------------------------------
    def _govern(self) -> Plan | None:
        """Decide, for each noun use of a command word, which verb governs it (or none)."""
        reviewer = self.lex.answers_past
        for hit in list(self.hits):
            if not hit.is_noun or hit not in self.hits or reviewer in hit.commands:
                continue  # the audit log's own nouns take other commands as their topic ("deploy history")
            if reviewer and any(h is not hit and reviewer in h.commands for h in self.hits) and any(
                    (v := self._value_phrase(reviewer, k)) and k + v[2] > hit.start and v[2] > 1
                    for k in range(max(0, hit.start - 2), hit.start + 1)):
                self.hits.remove(hit)  # "requests still pending approval": a status, not an approval
                continue
            if self._scope_of_another(hit):
                self.hits.remove(hit)  # "status phoenix, all stacks": which of the status's stacks, all of them
                continue
            if self._in_time_phrase(hit.start) or (
                    self._request_after(hit.start) and not self._shown(hit)
                    and any(self.lex.specs[c].changes for c in hit.commands)
                    and not any(h.asked and h.start < hit.start
                                for h in self.hits)):
                # "before the nvidia driver update", "kernel update on staging tonight, snapshot it first":
                # a thing the time or the context speaks of; the request is elsewhere
                self.hits.remove(hit)
                continue
            owner = hit.commands
            changing = any(self.lex.specs[c].changes for c in owner)
            j = hit.start - 1
            while j >= 0 and not self.words[j].boundary and self._skippable(j, hit) and (
                    (found := self._verb_ending_at(j)) is None or self._adjective_verb(j) or (
                        found[0] in P.DETERMINERS and not any(self.lex.governs(found[0], o) for o in owner))):
                j -= 1
            verb = self._verb_ending_at(j) if j >= 0 and not self.words[j].boundary else None
            if verb is not None and verb[0] in P.DETERMINERS:
                # "delete all snapshots": a determiner another command declares ("all snapshots") lets the
                # verb before it govern
                k = verb[1] - 1
                while k >= 0 and self.low[k] in P.DETERMINERS and not self.words[k].boundary:
                    k -= 1
                outer = self._verb_ending_at(k) if k >= 0 and not self.words[k].boundary else None
                if outer is not None and outer[0] not in P.DETERMINERS:
                    j, verb = k, outer
            other_verb = next((h for h in self.hits if h is not hit and h.start <= j < h.end
                               and h.strength is Strength.verb), None) if j >= 0 else None
            takers = [c for c in (other_verb.commands if other_verb else [])
                      if self.lex.takes(c, owner) and self._needs_met(c)]
            if other_verb is not None and takers:
                # a split verb whose command takes the noun governs it ("get the previous chat release back")
                other_verb.senses = [s for s in other_verb.senses if s.command in takers]
                self.hits.remove(hit)
                continue
            governed = [c for o in owner for c in self.lex.governs(verb[0], o) if self._needs_met(c)] if verb else []
            giver = self._giving_to_someone(hit)
            if giver is not None and not changing:
                # "give dave admin rights": what a read command shows, given to someone else, is a change
                return self._read_only(giver, hit, owner[0])
            whose = next((self.low[k] for k in range(j + 1, hit.start) if self.low[k] in self.p.users), None) \
                or self._doer_after(hit)
            if whose and self.lex.answers_past and not governed:
                # "bob's restarts", "the approvals bob made": what a person did, from the audit log
                self.hits.remove(hit)
                # (the audit log keeps changes: "the snapshots dave made" are snapshots taken)
                done = self._change_named(hit) or owner[0]
                self.values["past_command"], self.values["past_user"] = done, whose
                continue
            if self.lex.answers_past and changing and not governed and self._display_verb_at(j):
                # "show failed deploys this week": the deploys done, from the audit log
                self.hits.remove(hit)
                # (after a decision's past form, what it decided: "list deploys that were approved by carol")
                self.values.setdefault("past_object" if "past_command" in self.values else "past_command", owner[0])
                continue
            if j == 0 and self.lead_light and self.low[0] in ("get", "have") and other_verb is None:
                j = -1  # the verb of "can I get/have …", kept as a word
            if verb is not None and verb[0] in P.QUESTION_WORDS and not governed and other_verb is None:
                j, verb = -1, None  # "what rollbacks happened since …": a question word, governing nothing
            if j < 0 or (self.words[j].boundary and verb is None) or self.low[j] in P.CLAUSE_JOINERS:
                if changing and j < 0 and self.lead_light:
                    hit.senses = [Sense(c, Strength.verb) for c in owner]  # "can I get a snapshot of …"
                    hit.is_noun = False
                elif all(self.lex.specs[c].changes for c in owner) and (self._is_question() or self._plural(hit)) \
                        and self.lex.answers_past and not any(
                        h.asked for h in self.hits):
                    # "any deploys to prod since friday?", "recent restarts on dev": changes made, for the audit log
                    self.hits.remove(hit)
                    self.values["past_command"] = owner[0]
                continue  # nothing governs it: the noun names its own command
            if verb is not None:
                start = verb[1]
                if governed and not all(self.free(k) or any(h.start <= k < h.end for h in self.hits)
                                        for k in range(start, j + 1)):
                    # the verb's particle is part of a split verb already found ("put staging back to its
                    # … snapshot"): that verb takes the reading the noun allows
                    split = next((h for h in self.hits if h.strength is Strength.verb
                                  and set(h.commands) & set(governed)), None)
                    if split is not None:
                        split.senses = [s for s in split.senses if s.command in governed]
                        self.hits.remove(hit)
                        continue
                if not governed and changing and self._light_verb_ending_at(j) is None:
                    # "call off the web deploy": a verb we know, but not one that takes a deploy ("do a
                    # rollback" is a light verb: the noun's own command)
                    return self.refuse(self._governed_question(self.joined(start, j + 1), owner[0]))
                if not governed and verb[0] in P.CHANGE_VERBS and all(self.free(k) for k in range(start, j + 1)):
                    return self._read_only(verb[0], hit, owner[0])
                if governed:
                    self.hits.remove(hit)
                    self._drop_hits_in(start, j + 1)
                    self.hits.append(Hit([Sense(c, Strength.verb) for c in dict.fromkeys(governed)], start, j + 1))
                    self.take(start, j + 1)
                    self.hits.sort(key=lambda h: h.start)
                    continue
            word = self.low[j]
            other = next((h for h in self.hits if h is not hit and h.start <= j < h.end), None)
            light = self._light_verb_ending_at(j) if changing else None
            if light is not None:
                if other is not None:
                    self.hits.remove(other)
                hit.senses = [Sense(c, Strength.verb) for c in owner]
                hit.is_noun = False
                self.take(light, j + 1)
                continue
            if word in P.REFERENCE_PREPOSITIONS:
                if not changing and word in P.LOCATIVES and not any(
                        h.asked for h in self.hits):
                    # "how many requests are waiting in the vllm queue", "is anything running on the GPUs?":
                    # the place looked into is what is asked about; the words before it are its contents
                    lo, _ = shape.clause_of(self, hit.start)
                    self.hits = [h for h in self.hits if h is hit or not lo <= h.start < hit.start
                                 or any(self.lex.specs[c].changes for c in h.commands)]
                    continue
                if changing or len(self.hits) > 1:
                    self.hits.remove(hit)  # "restart nginx after the deploy": a reference, not a request
                    if any(self.lex.answers_past in h.commands for h in self.hits):
                        self.values.setdefault("past_command", owner[0])  # "audit trail for rollbacks"
                continue  # "what's in the rtmp logs": the only thing asked about
            if other is not None and other.is_noun:
                state = self.lex.answers_state
                if all(c in state for c in owner) and all(c in state for c in other.commands) \
                        and set(owner) != set(other.commands):
                    self.hits.remove(other)  # "state of the vms": the complement names whose state
                    continue
                self.hits.remove(hit)  # "status of the deployment": a complement of the other noun
                continue
            if other is not None and other.strength is Strength.verb:
                if any(c in owner for c in other.commands):
                    self.hits.remove(hit)
                    continue
                if changing:
                    return self.refuse(self._governed_question(self.joined(other.start, other.end), owner[0]))
                self.hits.remove(hit)
                continue
            if other is None and not changing and word in P.CHANGE_VERBS and self.free(j):
                return self._read_only(word, hit, owner[0])
            if other is None and self._is_unknown_verb(j) and changing:
                # "scrap the chat deployment": not a deploy, and not ours to guess (nor the model's)
                return self.refuse(self._governed_question(word, owner[0]))
        return None

    def _read_only(self, verb: str, hit: Hit, owner: str) -> Plan:
        """'add 2 more GPUs to phoenix': a verb of change over what a read command only shows."""
        return self.refuse(f"I can't {verb} {self.joined(hit.start, hit.end)} from chat; '{owner}' only shows "
                           "them. " + self._can_do())

    def _giving_to_someone(self, hit: Hit) -> str | None:
        """The verb of 'give dave admin rights', 'grant carol the gpu stats': a giving verb whose receiver,
        right after it, is a person other than the speaker."""
        for g in range(max(0, hit.start - 4), hit.start - 1):
            if self.low[g] not in P.GIVING_VERBS or any(self.words[k].boundary for k in range(g, hit.start - 1)):
                continue
            who = self.low[g + 1]
            person = who in self.p.users or (self.free(g + 1) and who.isalpha() and who not in P.FUNCTION_WORDS
                                              and who not in P.FILLER and who not in P.DETERMINERS
                                              and not self.lex.senses(who))
            if person and not any(m.start <= g + 1 < m.end for m in self.mentions):
                return self.low[g]
        return None

    def _doer_after(self, hit: Hit) -> str | None:
        """'the approvals bob made', 'the restarts that alice did': a person and a past verb after the noun."""
        k = hit.end
        if k < len(self.low) and self.low[k] in ("that", "which"):
            k += 1
        name = self.low[k] if k < len(self.low) else ""
        person = name in self.p.users or (self.free(k) and name.isalpha() and name not in P.FUNCTION_WORDS
                                           and name not in P.FILLER and not self.lex.senses(name))
        if k + 1 < len(self.low) and person and not self.words[k].boundary:
            verb = self.low[k + 1]
            if verb in P.IRREGULAR_PAST or verb in self.lex.past or (verb.endswith("ed") and len(verb) > 3):
                self.take(k + 1, k + 2)
                return self.low[k]
        return None

    def _plural(self, hit: Hit) -> bool:
        """Whether a change's noun stands in the plural ("restarts", "deploys"): changes made, not one asked for."""
        phrase = self.joined(hit.start, hit.end)
        single = phrase[:-1] if phrase.endswith("s") else ""
        return bool(single) and set(self.lex.nouns.get(single, [])) & set(hit.commands) != set()

    def _shown(self, hit: Hit) -> bool:
        """Whether a verb of showing governs the hit ("list the docker hosts")."""
        k = hit.start - 1
        while k >= 0 and self.low[k] in P.DETERMINERS and not self.words[k].boundary:
            k -= 1
        return k >= 0 and not self.words[k].boundary and self._display_verb_at(k)

    def _display_verb_at(self, j: int) -> bool:
        """Whether a verb of showing ends at word j ("show", "list", "pull up")."""
        return j >= 0 and any(self.joined(max(0, j - v.count(" ")), j + 1) == v for v in P.DISPLAY_VERBS)

    def _needs_met(self, cmd: str) -> bool:
        """Whether the arguments a command's object verbs need are given ("cancel the deploy r-1a2b3c4d")."""
        spec = self.lex.specs[cmd]
        return all(self._value_given(a) for name in self.lex.object_needs.get(cmd, ()) if (a := spec.arg(name)))

    def _value_given(self, arg: Arg) -> bool:
        if arg.name in self.values.get("kv", {}):
            return True
        if arg.kind.value in ID_KINDS:
            return arg.kind.value in self.values
        if arg.kind is Kind.duration:
            return "since" in self.values
        return arg.kind.is_entity and any(arg.kind in m.names for m in self.mentions)

    def _adjective_verb(self, j: int) -> bool:
        """'the clean snap': a verb right after an article describes or names the noun, it governs nothing."""
        return self.low[j] in self.lex.object_verbs and j > 0 and self.low[j - 1] in ("the", "a", "an", "this", "that")

    def _skippable(self, j: int, hit: Hit) -> bool:
        w = self.low[j]
        if self.words[j].boundary and j < hit.start - 1:
            return False
        if self._adjective_verb(j):
            return True
        if (w in P.DETERMINERS and w not in P.REFERENCE_PREPOSITIONS) or w in ("it", "them") or w in P.INTENSIFIERS:
            return True  # "undo the last chat deploy", "give it a bounce", "the very last snapshot"
        if (w.isdigit() or w in P.QUANTITIES) and self.free(j):
            return True  # "add 2 more GPUs"
        if w in self.lex.value_words and self.free(j) and self.lex.answers_past:
            return True  # "show denied restarts": a status describing the noun
        if any(m.start <= j < m.end for m in self.mentions) or w in self.p.users:
            return True
        if j == hit.start - 1 and j > 0 and self.low[j - 1] in P.REFERENCE_PREPOSITIONS and w.endswith("s") \
                and len(w) > 3 and w.isalpha() and self.free(j) and not self.lex.senses(w):
            return True  # "approve 8e21 for sams deploy": a possessive written without its apostrophe
        if w in P.TARGET_PREPOSITIONS and any(m.start == j + 1 for m in self.mentions):
            return True  # a target phrase between verb and noun ("give grafana on test a restart")
        if self.used[j] and not any(h.start <= j < h.end for h in self.hits):
            return True  # a value (a duration, a request id)
        # unknown words before the noun, after a determiner: a name or what kind of one ("the pre-upgrade
        # snapshot", "the weekly maintenance restart")
        k = j
        while k >= 0 and self.free(k) and not self.words[k].boundary and not self.lex.senses(self.low[k]) \
                and self.low[k] not in self.lex.object_verbs and self.low[k] not in P.FUNCTION_WORDS \
                and self.low[k] not in P.DETERMINERS and self.low[k] not in P.LIGHT_VERBS:
            k -= 1
        return k < j and k >= 0 and self.low[k] in P.DETERMINERS and not self.words[k].boundary

    def _verb_ending_at(self, j: int) -> tuple[str, int] | None:
        for n in (3, 2, 1):
            start = j - n + 1
            if start < 0:
                continue
            phrase = self.joined(start, j + 1)
            if phrase in self.lex.object_verbs:
                return phrase, start
        return None

    def _light_verb_ending_at(self, j: int) -> int | None:
        for n in (2, 1):
            start = j - n + 1
            if start >= 0 and self.joined(start, j + 1) in _LIGHT:
                return start
        return None

    def _drop_hits_in(self, start: int, end: int) -> None:
        self.hits = [h for h in self.hits if not (start <= h.start < end)]

    def _is_unknown_verb(self, j: int) -> bool:
        w = self.low[j]
        if w in P.CANCEL_VERBS:
            return True
        return w not in P.FILLER and w not in P.QUESTION_WORDS and w not in P.DETERMINERS \
            and w not in P.FUNCTION_WORDS and w not in P.INTENSIFIERS and not self.lex.senses(w) \
            and not any(self.r.resolve(k, w) for k in ENTITY_KINDS) and w not in self.p.users and w.isalpha()

    def _governed_question(self, verb: str, owner: str) -> str:
        helps = sorted({c for c, objects in (x for v in self.lex.object_verbs.values() for x in v)
                        if owner in objects and c != owner})
        also = f" I can {join_choices(helps)} one ('help {helps[0]}')." if helps else ""
        # the verb's own command, which needs its request named ("call off the deploy": which one?)
        needy = [c for c in self.lex.governs(verb, owner) if not self._needs_met(c)]
        if needy:
            spec = self.lex.specs[needy[0]]
            names = join_choices(list(self.lex.object_needs[needy[0]]), "and")
            also += f" To {needy[0]} one, name its {names}: '{spec.usage}'."
        return (f"I'm not sure what '{verb}' means for a {owner}, so I did nothing.{also} "
                f"To {owner} something, say '{self.lex.specs[owner].usage}'.")

    # which command ---------------------------------------------------------------
    def _command(self) -> str | Plan | None:
        reviewer = self.lex.answers_past
        if reviewer and ("past_command" in self.values or "reviewer" in self.values):
            asked = sorted({c for h in self.hits if h.asked
                            for c in h.commands if self.lex.specs[c].changes})
            if asked:  # "show failed deploys and restart nginx"
                return self.refuse(f"That asks for more than one thing ({join_choices([reviewer, *asked], 'and')}); "
                                   "send them one at a time.")
            return reviewer
        hits = list(self.hits)
        if not hits:
            return self._command_from_values()
        top = max(h.strength for h in hits)
        strong = [h for h in hits if h.strength == top]
        if reviewer and any(reviewer in h.commands for h in hits if h.strength >= Strength.noun):
            # a word that is a value of the reviewer's own arguments is that value ("requests still pending
            # approval" is a status), not another command as the topic
            others = [c for h in hits if h.strength >= Strength.noun and self._value_phrase(reviewer, h.start) is None
                      for c in h.commands if c != reviewer]
            if others:
                self.values["past_command"] = others[0]
            return reviewer
        groups = [set(h.commands) for h in strong]
        shown = [h for h in hits if h.strength is Strength.noun and self._shown(h)
                 and not any(self.lex.specs[c].changes for c in h.commands)]
        if top is Strength.verb and shown and any(not set(h.commands) & set(shown[0].commands) for h in strong):
            # "show logs for nginx on dev and then restart it": a read asked for by a verb of showing, and a change
            names = sorted({*shown[0].commands[:1], *(c for h in strong for c in h.commands[:1])})
            return self.refuse(f"That asks for more than one thing ({join_choices(names, 'and')}); "
                               "send them one at a time.")
        if top is Strength.verb and len(groups) > 1 and not set.intersection(*groups):
            names = sorted({c for g in groups for c in g})
            return self.refuse(f"That asks for more than one thing ({join_choices(names, 'and')}); "
                               "send them one at a time.")
        ranked: dict[str, Strength] = {}
        for h in strong:
            for s in h.senses:
                ranked[s.command] = max(ranked.get(s.command, s.strength), s.strength)
        if top is Strength.hint:
            self.conf -= 0.1
            if not self.mentions:
                return None  # a weak word alone ("anyone up for lunch?") asks for nothing
        if len(ranked) == 1:
            return next(iter(ranked))
        return self._best_fit(ranked)

    def _command_from_values(self) -> str | None:
        """No command word: a person's name or a value word in a question names the one command that
        takes it ("what did alice do", "anything failed since this morning?")."""
        user_cmds = [s.name for s in self.lex.specs.values() if any(a.kind is Kind.user for a in s.args)]
        if len(user_cmds) == 1 and (self.values.get("past_user") or any(w in self.p.users for w in self.low)):
            return user_cmds[0]
        if self._state_question():
            # "is the portainer agent connected on dev?", "is grafana on test broken": a yes/no question
            # about a named thing's state
            readers = {c: Strength.hint for c in self.lex.answers_state}
            fits = [c for c in readers if self._fit(c)[0] == 0]
            if len(fits) == 1:
                return fits[0]
            found = self._best_fit(readers) if len(fits) > 1 else None
            if isinstance(found, str):
                return found
        if self._is_question():
            takers = {s.name for s in self.lex.specs.values() for a in s.args for w, _ in self.lex.values_of(a)
                      if any(self.free(i) and low == w for i, low in enumerate(self.low))}
            if len(takers) == 1:
                return takers.pop()
        return None

    def _copular(self) -> int | None:
        """Where a yes/no question with "is"/"are" starts, at the message's start or a clause's (after a
        greeting: "morning! quick one — is everything green on staging?")."""
        return next((k for k, w in enumerate(self.low) if w in ("is", "are") and (
            k == 0 or self.words[k - 1].boundary or self.low[k - 1] in P.DASHES)), None)

    def _state_question(self) -> bool:
        """'is everything green on staging?', 'are the agents connected on dev': a yes/no question whose
        subject is a named thing (or everything) and whose predicate no command declares."""
        q = self._copular()
        if not self.mentions or q is None or len(self.low) < q + 3:
            return False
        end = self._clause_of(q)[1]
        if any(not q < m.start < end for m in self.mentions) or end < len(self.low):
            return False  # one clause, every name in it
        rest = [w for i, w in enumerate(self.low[q + 1:end], q + 1) if self.free(i)
                and w not in P.FUNCTION_WORDS and w not in P.FILLER and w not in P.KIND_NOUNS]
        return 1 <= len(rest) <= 2 and all(w.isalpha() for w in rest)

    def _fit(self, cmd: str) -> tuple[int, int, int, int]:
        """How well the named targets fill a command's arguments (higher is better): targets it cannot
        use, required targets missing, targets taken as named (in the name's first sense: "staging" is
        an environment before it is a VM), targets taken by inference."""
        kinds = self.lex.arg_kinds(cmd)
        changing = self.lex.specs[cmd].changes
        direct = inferred = unusable = 0
        for m in self.mentions:
            if kinds & set(m.names):
                direct += 2 if next(iter(m.names)) in kinds else 1
            elif self._inferable(m, kinds, changing):
                inferred += 1
            else:
                unusable += 1
        filled = {k for m in self.mentions for k in m.names if k in kinds} | {
            k for m in self.mentions for k in self._inferred_kinds(m, kinds, changing)}
        for k in self._kinds_named_unknown():
            # "roll back the payments stack": an unknown stack is still a stack; it fills (and is then asked
            # about) a reading that takes a stack, and no other reading can use it
            if k in kinds:
                filled.add(k)
            else:
                unusable += 1
        missing = sum(1 for a in self.lex.specs[cmd].required if a.kind.is_entity and a.kind not in filled)
        # a required value with nothing to fill it ("roll back on staging" names no snapshot to restore)
        missing += sum(1 for a in self.lex.specs[cmd].required if a.kind is Kind.word and not self._candidate(
            () if a.shape else self._rival_shapes(cmd)))
        # a request nobody named is a whole target missing ("stop it" is no cancel of some request)
        missing += sum(2 for a in self.lex.specs[cmd].required
                       if a.kind is Kind.request and "request" not in self.values)
        return (-unusable, -missing, direct, -inferred)

    def _candidate(self, claimed: tuple[re.Pattern[str], ...] = ()) -> bool:
        """Whether a word is left that could be a value (a name, a version): free, no known word, and not of
        a shape that a rival reading declares for its own value ("roll back to v1.3.0 on prod": a version is
        no evidence for a snapshot)."""
        key = (tuple(self.used), claimed)
        if self._candidate_for[0] != key:
            self._candidate_for = (key, self._has_candidate(claimed))
        return self._candidate_for[1]

    def _has_candidate(self, claimed: tuple[re.Pattern[str], ...]) -> bool:
        return any(self.free(i) and WORD.match(self.words[i].raw) and looks_like_value(w) and w not in P.FILLER
                   and not self.lex.senses(w) and (w not in self.lex.object_verbs or self._clause_final(i))
                   and w not in P.DETERMINERS and not any(c.match(w) for c in claimed) and not self._description(i)
                   and not self._whose(i) and self._kind_named(i) is None
                   for i, w in enumerate(self.low))

    def _kind_named(self, i: int) -> Kind | None:
        """The kind of target an unknown word names when a kind noun follows it ("the payments stack",
        "the backup server"): a name of that kind, never a value of another kind (a snapshot name)."""
        if not self.free(i) or i + 1 >= len(self.low) or self.words[i].boundary:
            return None
        kind = P.KIND_NOUNS.get(self.low[i + 1])
        w = self.low[i]
        if kind is None or not looks_like_value(w) or w in P.FUNCTION_WORDS or w in P.FILLER \
                or w in P.DETERMINERS or w in P.INDEFINITE or w in P.RELATIVE or self.lex.senses(w) \
                or any(m.end == i for m in self.mentions):
            return None
        return Kind(kind)

    def _names_its_kind(self, cue: int) -> bool:
        """'snapshot the vm called web01': "called" after a bare kind noun names that thing (the prod vm
        called before-upgrade has its name already, so there the word names the snapshot)."""
        k = cue - 1
        return k > 0 and self.low[k] in P.KIND_NOUNS and not self.words[k].boundary \
            and not any(m.start <= k < m.end or m.end == k for m in self.mentions)

    def _kinds_named_unknown(self) -> list[Kind]:
        """The kinds unknown names say they are; read once per state of the words (every reading's fit asks)."""
        key = (tuple(self.used), tuple((m.start, m.end) for m in self.mentions))
        if self._kinds_named_for[0] != key:
            self._kinds_named_for = (key, [k for i in range(len(self.low)) if (k := self._kind_named(i)) is not None])
        return self._kinds_named_for[1]

    def _whose(self, j: int) -> bool:
        """Whether word j says whose a thing is, not its name ("bob's snapshot", "the snapshot bob made")."""
        return self.low[j] in self.p.users or self._possessive(j)

    def _description(self, j: int) -> bool:
        """Whether word j describes rather than names: a word of time or worth ("previous", "earlier",
        "good"), or any word of a noun phrase that an indefinite article or such a word leads ("an earlier
        snapshot", "a known-good one", "the last good snapshot").  "back to clean" and "the clean snap"
        name one."""
        if self.low[j] in P.RELATIVE:
            return True
        if j + 1 < len(self.low) and not self.words[j].boundary and self.low[j + 1] in P.RELATIVE:
            return True  # "the most recent snapshot": a word of time or worth follows it
        k = j - 1
        while k >= 0 and j - k <= 3 and not self.words[k].boundary:
            w = self.low[k]
            if w in P.INDEFINITE or w in P.RELATIVE:
                return True
            if w in P.FUNCTION_WORDS or w in P.DETERMINERS or not self.free(k):
                return False
            k -= 1
        return False

    def _clause_final(self, j: int) -> bool:
        """Whether word j ends its clause, or only a noun that says its kind follows ("back to clean", "the
        clean snap"): a verb there would have no object, so it is a name."""
        nxt = j + 1
        return self.words[j].boundary or nxt >= len(self.low) or self.low[nxt] in P.KIND_NOUNS \
            or bool(self.lex.nouns.get(self.low[nxt])) or self.low[nxt] in ("please", "pls", "thanks", "now")

    def _rival_shapes(self, cmd: str) -> tuple[re.Pattern[str], ...]:
        """The value shapes the other readings of the same words declare (a revision for rollback)."""
        return tuple(self.lex.shape_of(a) for c in self._rivals if c != cmd
                     for a in self.lex.specs[c].args if a.kind is Kind.word and a.shape)

    def _inferred_kinds(self, m: Mention, kinds: set[Kind], changing: bool = False) -> set[Kind]:
        out: set[Kind] = set()
        if Kind.service in m.names and Kind.stack in kinds and self._stack_of(m, changing):
            out.add(Kind.stack)
        if Kind.stack in m.names and Kind.service in kinds and \
                len(self.r.config.stack_services.get(m.names[Kind.stack], ())) == 1:
            out.add(Kind.service)
        if Kind.vm in m.names and Kind.env in kinds and self._env_of_vm(m.names[Kind.vm]):
            out.add(Kind.env)
        if Kind.env in m.names and Kind.vm in kinds and self.r.config.inventory.environments[m.names[Kind.env]].vm:
            out.add(Kind.vm)
        if Kind.host in kinds and self._host_of(m):
            out.add(Kind.host)
        return out

    def _stack_of(self, m: Mention, changing: bool) -> str | None:
        """The stack a service stands for; for a change only a stack of that one service: a change never
        widens a named service into a whole stack of several ("bring grafana back on prod" is no rollback
        of monitoring; "the grafana stack" is a stack, shape.kind_nouns)."""
        stack = self.r.stack_for(m.names[Kind.service])
        if stack and changing and len(self.r.config.stack_services.get(stack, ())) != 1:
            return None
        return stack

    def _host_of(self, m: Mention) -> str | None:
        return next((h for name in m.names.values() if (h := self.r.resolve(Kind.host, name))), None)

    def _inferable(self, m: Mention, kinds: set[Kind], changing: bool = False) -> bool:
        return bool(self._inferred_kinds(m, kinds, changing))

    def _env_of_vm(self, vm: str) -> str | None:
        return next((n for n, e in self.r.config.inventory.environments.items() if e.vm == vm), None)

    def _best_fit(self, ranked: dict[str, Strength]) -> str | Plan:
        """Among readings of the strongest phrases: the one the named targets fill best, then the
        stronger sense, then the read-only one; a true tie is a question."""
        def key(c: str) -> tuple[Any, ...]:
            unusable, missing, direct, inferred = self._fit(c)
            named = missing if self.mentions else 0
            support = sum(c in h.commands or any(s.command == c for s in h.senses) for h in self.hits)
            # a noun a verb of showing governs is what is asked for ("list the docker hosts and whether
            # they're reachable")
            shown = any(c in h.commands and self._shown(h) for h in self.hits)
            return (unusable, named, direct, ranked[c], shown, support, missing, inferred,
                    not self.lex.specs[c].changes)

        self._rivals = tuple(ranked)
        scored = sorted(((key(c), c) for c in ranked), reverse=True)
        best, second = scored[0], scored[1]
        complete = [c for _, c in scored if self._fit(c)[:2] == (0, 0) and self.lex.specs[c].changes]
        if best[1] in complete and len(complete) > 1:
            # "bring chat back on prod": one verb, two changes the names fit in full (rollback the chat stack,
            # start its service); which one is not ours to guess
            names = sorted(complete)
            return self.ask(f"That could mean {join_choices(names)}; which one? Say it as "
                            + join_choices([f"'{self.lex.specs[c].usage}'" for c in names]) + ".")
        if best[0] == second[0]:
            names = sorted(c for k, c in scored if k == best[0])
            return self.ask(f"That could mean {join_choices(names)}; which one? Say it as "
                            + join_choices([f"'{self.lex.specs[c].usage}'" for c in names]) + ".")
        return best[1]

    # arguments ---------------------------------------------------------------------
    def _arguments(self, cmd: str) -> Plan:
        spec = self.lex.specs[cmd]
        args: dict[str, Any] = {}
        twice = self._given_twice(cmd)
        if twice:
            return self.ask(twice, attempted=cmd)
        self._scalar_args(cmd, args)
        machine = self._machine_refusal(cmd)
        if machine:
            return machine
        named = self._requests_named()
        if len(named) > 1 and any(a.kind is Kind.request for a in spec.args):
            return self.ask(f"That names two requests ({join_choices(named[:2])}); which one do you mean? One at "
                            "a time, please.", attempted=cmd)
        wanted = [a for a in spec.args if a.kind.is_entity]
        problem = self._assign(cmd, wanted, args)
        if problem is not None:
            return problem
        unknown = self._unknown_words(cmd)
        missing = [a for a in spec.required if a.name not in args]
        if unknown:
            about = self._unknown_target(unknown, [a for a in missing if a.kind.is_entity], wanted, cmd)
            if about is not None:
                return about
            self.conf -= min(0.3, 0.1 * len(unknown))
        if self.typos:
            self.conf -= 0.2
        other_id = self._id_of_another_kind(cmd, args)
        if other_id:
            return self.ask(other_id, attempted=cmd)
        plan = validate(Plan(cmd, args, confidence=max(self.conf, 0.3)), self.r, self.p.registry)
        if plan.command is None and plan.clarify:
            plan.attempted = cmd
        lo, hi = shape.request_sentence(self)
        # (a near-name in a context sentence is no target: "restart the tunnel on live, cloudflare says it's down")
        fuzzy = [said for i, said in self.fuzzy_targets if lo <= i < hi or any(
            m.fuzzy and m.start == i for m in self.mentions)]
        suspects = [said for i, said in self.suspects if lo <= i < hi]
        if self._on_one_id(cmd, plan.args):
            fuzzy, suspects = [], []  # "approve r-0c9e for dana": a command on one id names nothing to guess
        if spec.changes and (fuzzy or suspects) and plan.command is not None:
            # A corrected name on a change is asked about, never acted on.
            example = f", e.g. '{canonical(cmd, plan.args, self.p.registry)}'" if plan.complete and \
                not suspects else ""
            return self.ask(f"Did you mean {', '.join(fuzzy + suspects)}? I don't act on a "
                            f"guessed name; say it again with the name as written in the inventory{example}.",
                            attempted=cmd)
        stray = [self.words[i].raw for i in unknown if (identifier(self.words[i].raw) or self._of_target(i))
                 and not _HTTP_ERRORS.match(self.low[i]) and not self._in_time_phrase(i)] + [  # ("before the 7pm …")
            self.words[i].raw for i in range(lo, hi) if self.free(i) and self.low[i].isdigit()  # ("3 times")
            and not self._in_time_phrase(i)  # ("before the postgres 16 upgrade": part of what it is before)
            and not _HTTP_ERRORS.match(self.low[i])]  # ("502s everywhere": what the users see, no value)
        if plan.complete and spec.changes and stray:
            # A value nobody asked for a place to put ("snapshot prod, call-it pre-kernel-6"): ask.
            return self.ask(f"I don't know what '{stray[0]}' is in that '{cmd}' request, so I did nothing. "
                            f"Usage: {spec.usage}", attempted=cmd)
        dropped = [k for k, i in self.value_at.items() if k not in self.consumed and lo <= i < hi
                   and not self._remark(i)  # ("lock staging, nobody works there today")
                   and not self._possessive(i)  # ("yesterday's web deploy" says which deploy)
                   and not (k == "since" and self._span(i))]  # ("take grafana down for a minute": how long)
        if plan.complete and spec.changes and dropped:
            # "get the chat release on test back to yesterday": a time (or count) the change has no place for
            at = self.value_at[dropped[0]]
            if self.low[at] in P.SCHEDULE_WORDS:  # ("deploy chat to prod this weekend": a time to come)
                return self.refuse(self._no_schedule(self.words[at].raw))
            return self.ask(f"I don't know what '{self.words[at].raw}' means for '{cmd}' (it takes no time or "
                            f"count), so I did nothing. Usage: {spec.usage}", attempted=cmd)
        unread = self._unread_value(cmd, plan.args, lo, hi) if plan.complete and spec.changes else None
        if unread is not None:
            # "deploy chat to test from the feature branch": a value named by its noun but not given
            return self.ask(f"Which {unread}? I could not read one in that '{cmd}' request, so I did nothing. "
                            f"Usage: {spec.usage}", attempted=cmd)
        aside = self._context_value(cmd, plan.args, lo, hi) if plan.complete and spec.changes else None
        if aside is not None:
            # "deploy chat to test. The fix is in v1.5.0": a value outside the request's own sentence
            name, value = aside
            said = canonical(cmd, {**plan.args, name: value}, self.p.registry)
            return self.ask(f"Do you mean {name}={value}? It stands outside the request itself (in another "
                            f"sentence or a reason), so I did nothing; say it in one: '{said}'.", attempted=cmd)
        polite = any(w in ("please", "pls", "plz", "thanks", "thx") for w in self.low) and any(
            h.strength >= Strength.noun and cmd in h.commands for h in self.hits)  # (a hint never asks enough)
        if plan.complete and spec.changes and not polite and not any(
                h.strength is Strength.verb and cmd in h.commands for h in self.hits):
            # Only a noun ("the chat deployment on test") or a hint asked for it: a change needs a verb.
            return self.ask(f"Do you want me to {cmd} that? Say it as "
                            f"'{canonical(cmd, plan.args, self.p.registry)}'.", attempted=cmd)
        return plan

    def _of_target(self, i: int) -> bool:
        """Whether unknown word i says which one of a named target ("roll out main of the docs stack"):
        a value with no cue, never to be dropped on a change."""
        k = i + 1
        if k >= len(self.low) or self.low[k] != "of" or self.words[i].boundary:
            return False
        k += 1
        while k < len(self.low) and self.low[k] in P.DETERMINERS:
            k += 1
        return any(m.start == k for m in self.mentions)

    def _unread_value(self, cmd: str, args: dict[str, Any], lo: int, hi: int) -> str | None:
        """The noun of a shaped value (a version, a branch) the asking sentence speaks of while none was
        read: "from the feature branch", "to yesterday's version".  A noun a word of time or worth
        describes is the default ("the previous revision", "the latest version")."""
        for arg in self.lex.specs[cmd].args:
            if arg.kind is not Kind.word or not arg.shape or arg.name in args:
                continue
            for i in range(lo, hi):
                w = self.low[i]
                if (w not in arg.cues and w.removesuffix("s") not in arg.cues) or w in _WEAK_CUES \
                        or not w.isalpha() or not self._hit_word(i):
                    continue  # ("two versions back": the plural too)
                # (the noun phrase before it: "the previous agent revision", "the very latest version")
                before = [self.low[k] for k in range(max(0, i - 3), i)
                          if not any(self.words[x].boundary for x in range(k, i))]
                if any(b in P.RELATIVE for b in before):
                    continue
                return w if w in arg.cues else w.removesuffix("s")
        return None

    def _span(self, i: int) -> bool:
        """'for a minute', 'for an hour', 'for 10 minutes': how long a change should last, not a time since
        ("for the last hour" is one)."""
        if i > 1 and self.low[i] == "weekend" and self.low[i - 2] in ("over", "for", "during", "through", "across"):
            return True  # "lock prod over the weekend"
        return i > 0 and self.low[i - 1] == "for" and (self.low[i] in ("a", "an", "one") or self.low[i].isdigit())

    def _context_value(self, cmd: str, args: dict[str, Any], lo: int, hi: int) -> tuple[str, str] | None:
        """A word outside the asking sentence, or in a purpose clause, with the shape of one of the command's
        values left empty."""
        for arg in self.lex.specs[cmd].args:
            if arg.kind is not Kind.word or not arg.shape or arg.name in args:
                continue
            pattern = self.lex.shape_of(arg)
            for i, w in enumerate(self.low):
                aside = (not lo <= i < hi and self.free(i)) or self.purpose[0] <= i < self.purpose[1]
                if aside and not w.isdigit() and pattern.match(w):
                    return arg.name, self.words[i].raw
        return None

    def _requests_named(self) -> list[str]:
        """The request ids the request itself names (a reason set aside names none)."""
        return list(dict.fromkeys(w for w in self.low if REQUEST_ID.match(w)))

    def _id_of_another_kind(self, cmd: str, args: dict[str, Any]) -> str | None:
        """The question when a command needs an id of one kind and the text gives one of another
        ("approve s-8106e4bc": a schedule's id where a request's goes), naming both."""
        spec = self.lex.specs[cmd]
        for arg in spec.required:
            if arg.name in args or arg.kind.value not in ID_KINDS:
                continue
            for kind in ID_KINDS:
                given = self.values.get(kind)
                if kind != arg.kind.value and isinstance(given, str):
                    wanted = ID_KINDS[arg.kind.value]
                    return (f"{given} is a {kind} id, and '{cmd}' takes a {arg.kind.value} id ({wanted}-…); "
                            f"which {arg.kind.value} do you mean?")
        return None

    def _given_twice(self, cmd: str) -> str | None:
        """The question when a `key=value` is given twice with different values ("env=prod env=dev"): the
        canonical form's rule (llm/grammar.py `clash`), so no reading lets the last one win."""
        spec, first = self.lex.specs[cmd], dict[str, str]()
        for key, value in self.values.get("kv_given", ()):
            arg = spec.arg(key)
            twice = clash(arg, first.get(key), value, self.r) if arg is not None else None
            if twice:
                return twice
            first.setdefault(key, value)
        return None

    def _scalar_args(self, cmd: str, args: dict[str, Any]) -> None:
        spec = self.lex.specs[cmd]
        for key, value in self.values.get("kv", {}).items():
            args[key] = value
        for h in self.hits:
            if cmd in h.commands:
                for key, value in h.format_args.items():
                    args.setdefault(key, value)
        counted = False
        self.targets_given = bool(self.mentions) and self._fit(cmd)[1] == 0
        decision = self._decision(cmd)
        for arg in spec.args:
            if arg.name in args:
                continue
            if decision is not None and (arg.kind in (Kind.command, Kind.status) or arg.decided_by):
                value = decision.value_for(arg)
                if value is not None:
                    args[arg.name] = value
            elif arg.kind.value in ID_KINDS and arg.kind.value in self.values:
                args[arg.name] = self.values[arg.kind.value]
            elif arg.kind is Kind.duration and "since" in self.values:
                args[arg.name] = self.values["since"]
                self.consumed.add("since")
            elif arg.kind is Kind.integer and "count" in self.values and not arg.required and not counted:
                args[arg.name] = self.values["count"]
                counted = True
                self.consumed.add("count")
            elif arg.kind is Kind.command and (past := self.values.get("past_command")) not in (None, cmd):
                args[arg.name] = past
            elif arg.kind is Kind.user and self.values.get("past_user") not in (None, self.values.get("decider")) \
                    and not arg.decided_by:
                args[arg.name] = self.values["past_user"]
        for arg in spec.args:
            if arg.name in args or arg.kind.is_entity:
                continue
            value = self._declared_value(arg, spec.changes)
            if value is None and arg.kind is Kind.user and not arg.decided_by and spec.phrasing.answers_past \
                    and any(w in ("my", "mine") for w in self.low):
                value = ME  # ("show my failed deploys": the asker's own, an admin's too)
            if value is not None:
                args[arg.name] = value
        if spec.phrasing.answers_howto and spec.args:
            topic = self._topic(0)
            if topic and topic != cmd:
                args[spec.args[0].name] = topic

    def _decision(self, cmd: str) -> Decision | None:
        """A question about a decision (a past form whose command declares `past_status`) to `cmd`, which
        answers it: the requests it decided, by the status they reached, of the command the text names,
        and who decided them when the text says ("what did bob approve", "deploys denied by carol")."""
        past: str | None = self.values.get("past_command")
        if past == cmd:
            return None
        decider_arg = next((a for a in self.lex.specs[cmd].args if a.decided_by), None)
        person: str | None = self.values.get("past_user")
        done: str | None = None  # a change the question's own past form names ("rollbacks approved by bob")
        if past is not None and self.lex.specs[past].phrasing.past_status is not None:
            decision = past
            if person and decider_arg is None:
                return None  # (no argument for who decided: bob's own typed decisions, `command=approve user=bob`)
            if decider_arg is not None and not person:
                person = self._decided_by(decision)
        else:
            # ("rollbacks approved by bob", "show everything approved by carol": no question asked, the
            # person after "by" says it is about a decision)
            found = self._decided_by_someone() if decider_arg is not None else None
            if found is None:
                return None
            (decision, person), done = found, past
        status = self.lex.specs[decision].phrasing.past_status
        assert status is not None
        # (what was decided: "the last deploy" in "who approved the last deploy", "deploys" in "which deploys
        # did carol approve", "rollbacks" in "rollbacks approved by bob")
        decided_on = self.values.get("past_object") or (
            done if done is not None and self.lex.specs[done].changes else None) or next(
            (c for h in self.hits if h.strength >= Strength.noun for c in h.commands
             if c != decision and self.lex.specs[c].changes), None)
        if decider_arg is None:
            return Decision(status, decided_on, None)
        self.values["decider"] = person  # (not also the requester: `_user` passes over them)
        return Decision(status, decided_on, person)

    def _decided_by_someone(self) -> tuple[str, str | None] | None:
        """A decision's past form with its person after "by" anywhere in the text ("approved by bob"), or asked
        about with "who" ("who approved carol's snapshot"): (the decision's command, the person or None)."""
        for spec in self.lex.specs.values():
            if spec.phrasing.past_status is not None:
                person = self._decided_by(spec.name, after_by_only=True)
                if person is not None:
                    return spec.name, person
                if self.low[:1] == ["who"] and any(self.joined(1, 1 + f.count(" ") + 1) == f
                                                   for f in spec.phrasing.past):
                    return spec.name, None
        return None

    def _decided_by(self, past: str, after_by_only: bool = False) -> str | None:
        """The person who made the decision the text asks about: after "<past form or noun> by" ("requests
        approved by bob", "approvals by bob", taken with the "by") or just before the past form ("deploys carol
        approved", "what has bob signed off", "bob has approved")."""
        phrasing = self.lex.specs[past].phrasing
        forms = sorted(phrasing.past + phrasing.nouns, key=len, reverse=True)
        for i in range(len(self.low)):
            form = next((f for f in forms if self.joined(i, i + f.count(" ") + 1) == f), None)
            if form is None:
                continue
            k = i + form.count(" ") + 1
            if k + 1 < len(self.low) and self.low[k] == "by" and self.low[k + 1] in self.p.users and self.free(k + 1):
                self.take(k, k + 2)  # ("approved by bob", "approvals by bob")
                return self.low[k + 1]
            person = self._person(self._subject_of_past(i))  # ("what have I denied": the asker)
            if not after_by_only and form in phrasing.past and person is not None:
                return person
        return None

    def _value_phrase(self, cmd: str, i: int) -> tuple[Arg, str, int] | None:
        """The value word or phrase of one of `cmd`'s arguments starting at word i (longest first):
        (argument, value, words)."""
        best: tuple[Arg, str, int] | None = None
        for arg in self.lex.specs[cmd].args:
            for word, value in self.lex.values_of(arg):
                n = word.count(" ") + 1
                if self.joined(i, i + n) == word and (best is None or n > best[2]):
                    best = (arg, value, n)
        return best

    def _declared_value(self, arg: Arg, changes: bool) -> Any:
        """A value found through the argument's own declarations: value words, cues, shapes, users."""
        values = self.lex.values_of(arg)
        for n in (3, 2, 1):
            for i in range(len(self.low) - n + 1):
                if not all(self._hit_word(k) for k in range(i, i + n)):
                    continue
                phrase = self.joined(i, i + n)
                value = next((v for w, v in values if w == phrase), None)
                if i > 0 and (self.low[i - 1] in self.p.users or self.low[i - 1] in P.REPORT_SUBJECTS):
                    continue  # "everything alice requested": a person's verb, not a value
                if phrase in P.DO_PARTICIPLES and i > 0 and self.low[i - 1] in ("been", "has", "have", "had", "got"):
                    continue  # "what's been done on live": the verb "do", not a request's status
                if value is not None:
                    self.take(i, i + n)
                    return value
        if arg.kind is Kind.user:
            return self._user(arg)
        if arg.kind is Kind.text:
            quoted = next((v for c, v in self.values.get("quoted", {}).items() if c in arg.cues), None)
            return quoted or self.free_text or self._text_after(arg.cues)
        if arg.kind is Kind.integer and (arg.cues or arg.cues_after):
            digits = re.compile(r"^\d{1,6}$")
            number = self._after(arg.cues, digits, any_value=False) or self._before(arg.cues_after, digits)
            return int(number) if number is not None else None
        if arg.kind is not Kind.word:
            return None
        pattern = re.compile(rf"^({arg.shape})$", re.I) if arg.shape else None
        found: str | None = self._after(arg.cues, pattern, nouns=arg.cues + arg.cues_after)
        if found is None and arg.cues_after:
            found = self._before(arg.cues_after)
        if found is None and pattern is not None:
            # (a bare value looks like one: "deploy the main web stack" names no branch; "off main" does)
            found = self._bare(lambda w: bool(pattern.match(w)) and not w.isdigit() and identifier(w))
        return found

    def _hit_word(self, k: int) -> bool:
        """Whether word k is free or was read as a command phrase (a value may be one: "pending approval")."""
        return self.free(k) or k in self.phrase_words

    def _user(self, arg: Arg) -> str | None:
        if arg.decided_by:
            return None  # (filled only by a question about a decision: `_decision`)
        decider = self.values.get("decider")
        for i, w in enumerate(self.low):
            if w == decider:
                continue
            if w in self.p.users and (self.free(i) or not any(m.start <= i < m.end for m in self.mentions)):
                self.take(i, i + 1)
                return w
        for i, w in enumerate(self.low[:-1]):
            if w in arg.cues and self.free(i) and self.free(i + 1):
                nxt = self.words[i + 1].raw
                if re.match(r"^[\w.@:-]{2,64}$", nxt) and nxt.lower() not in P.FILLER \
                        and not any(self.r.resolve(k, nxt) for k in ENTITY_KINDS):
                    self.take(i, i + 2)
                    # (a platform's own id keeps its case: slack:U012ABCDEF is not slack:u012abcdef)
                    return nxt if ":" in nxt else nxt.lower()
        return None

    def _names_entity(self, w: str) -> bool:
        return any(self.r.resolve(k, w) for k in ENTITY_KINDS)

    def _is_name(self, w: str, j: int) -> bool:
        """Whether word j is a known word that a weak cue does not introduce as a value (a command word, a
        filler, a name of the inventory); a verb no object follows is a name ("back to clean")."""
        return w in P.FILLER or bool(self.lex.senses(w)) or (
            w in self.lex.object_verbs and not self._clause_final(j)) or w in (
            "latest", "last", "previous", "old", "one") or any(self.r.resolve(k, w) for k in ENTITY_KINDS)

    def _after(self, keys: tuple[str, ...], pattern: re.Pattern[str] | None, any_value: bool = True,
               nouns: tuple[str, ...] = ()) -> str | None:
        """The value right after a cue word; after a weak cue ("to", "at") only a value that looks like one,
        and after an article only one a noun of its kind follows ("back to the clean snap", not "roll back
        the changes": a word an article leads and no such noun follows is a common noun)."""
        weak = _WEAK_CUES
        # a strong cue first ("back the way it was at snapshot post-cleanup": the snapshot's name, not "way")
        order = sorted(range(len(self.low) - 1), key=lambda i: self.low[i] in weak)
        lo, hi = shape.request_sentence(self)
        for i in order:
            w = self.low[i]
            if w not in keys or (w in weak and not lo <= i < hi):
                continue  # (a weak cue only in the asking sentence: "… QA wants to poke at it" gives no ref)
            if w in weak and any(h.start <= i < h.end for h in self.hits):
                continue  # ("roll back monitor on dev": the verb's own particle cues no value; its object is a
                # target, and "monitor" names none)
            j = i + 1
            while j < len(self.low) - 1 and (self.low[j] in ("the", "a", "to", "is", "it", "of")
                                             or self.low[j] in keys):
                j += 1
            raw = self.words[j].raw
            low = raw.lower()
            strong = w not in weak
            nxt = self.low[j + 1] if j + 1 < len(self.low) and not self.words[j].boundary else ""
            if not strong and any(self.low[k] in ("the", "a", "an") for k in range(i + 1, j)) and not identifier(low) \
                    and not (nxt and (nxt in nouns or nxt in P.KIND_NOUNS or nxt in self.lex.nouns)):
                continue
            # "called", "named": whatever follows is the name (a shaped value's cue is a noun: "version 2")
            naming = strong and pattern is None and w not in self.lex.nouns
            if not self.free(j) or not WORD.match(raw) or not looks_like_value(raw, written=naming) or (
                    self._is_name(low, j) if not strong else (
                        low in (P.NOT_VALUES if naming else P.FILLER) or self._names_entity(low))) \
                    or (not naming and (self._description(j) or self._whose(j))) \
                    or (not naming and self._kind_named(j) is not None) \
                    or (naming and self._names_its_kind(i)):
                continue  # ("deploy chat to the qa environment": an unknown environment, never a ref)
            if pattern is not None and not pattern.match(low) and (not any_value or ((
                    w in weak or w in self.lex.nouns) and not (w in weak and self.targets_given))):
                continue  # "deploy chat to staging2" is no ref; "… on prod to main" is, the targets being named
            if pattern is not None and not pattern.match(low) and not identifier(low) and not naming \
                    and not self._clause_final(j) and not shape.target_phrase_at(self, j + 1):
                continue  # "the version QA signed off": a word that more words follow is no unshaped value
            if pattern is not None and not pattern.match(low) and not identifier(low) and self._clause_after_verb(i):
                continue  # "rollback chat on prod, new version broken!!": a remark after the request, no value
            self.take(i, i + 1)
            self.take(j, j + 1)
            return raw
        return None

    def _remark(self, i: int) -> bool:
        """Whether word i stands in a clause of its own beside the one that asks, and that clause says more
        than a time ("lock prod, release tomorrow", "no changes on staging today, lock it"): a remark whose
        time is not the request's ("restart nginx on dev, tomorrow" keeps its time)."""
        verbs = [h for h in self.hits if h.asked]
        if not verbs:
            return False
        start, end = self._clause_of(i)
        if any(start <= h.start < end for h in verbs):
            return False
        # (words set aside as context count: they were said, whatever reading took them)
        asked = {k for h in verbs for k in range(h.start, h.end)}
        said = [k for k in range(start, end) if k not in asked and self.low[k] not in P.FUNCTION_WORDS
                and self.low[k] not in P.FILLER and self.low[k] not in P.SCHEDULE_WORDS
                and self.low[k] not in P.TIME_AGO and k not in self.value_at.values()
                and not CLOCK.match(self.low[k]) and self.low[k] not in ("at", "in", "on", "by", "this", "next")]
        return bool(said)

    def _clause_after_verb(self, i: int) -> bool:
        """Whether word i stands in a clause after the one the first verb asked in."""
        verb = min((h.start for h in self.hits if h.asked), default=None)
        return verb is not None and verb < i and any(self.words[k].boundary for k in range(verb, i))

    def _before(self, keys: tuple[str, ...], pattern: re.Pattern[str] | None = None) -> str | None:
        lo, hi = shape.request_sentence(self)
        for i, w in enumerate(self.low):
            if w in keys and lo < i < hi:
                j = i - 1
                if pattern is not None and not pattern.match(self.low[j]):
                    continue
                if self.free(j) and WORD.match(self.low[j]) and looks_like_value(self.low[j]) \
                        and (pattern is not None or not self._is_name(self.low[j], j)) and not self._description(j) \
                        and not self._whose(j) \
                        and self.low[j] not in ("the", "a", "that", "this"):
                    self.take(j, j + 1)
                    return self.words[j].raw
        return None

    def _bare(self, ok: Any) -> str | None:
        """A value by its shape alone ("v1.4.2"), in the asking sentence only."""
        lo, hi = shape.request_sentence(self)
        for i, w in enumerate(self.words):
            if lo <= i < hi and self.free(i) and ok(w.low):
                self.take(i, i + 1)
                return w.raw
        return None

    def _text_after(self, cues: tuple[str, ...]) -> str | None:
        """Free text (a reason) after its cue word, verbatim from the message."""
        for i in range(1, len(self.low)):
            cue = next((c for c in sorted(cues, key=len, reverse=True)
                        if self.joined(i, i + len(c.split())) == c), None)
            if cue is None or not self.free(i):
                continue
            if any(not self.free(k) and any(m.start == k for m in self.mentions) for k in range(i, len(self.low))):
                continue
            # a conjunction stays part of the reason ("until the release is out"); a label word does not
            start = i if cue in CONJUNCTION_CUES else i + len(cue.split())
            if start < len(self.low) and self.low[start] in ("to", "is", ":", "of", "with"):
                start += 1
            self.take(i, len(self.low))
            text = self.verbatim(start).strip(" :-")
            text = polite_trim(text)
            if len(text) >= 2 and text[0] in "\"'“«‘" and text[-1] in "\"'”»’":
                text = text[1:-1].strip()
            return text or None
        return None

    # entities -----------------------------------------------------------------------
    def _assign(self, cmd: str, wanted: list[Arg], args: dict[str, Any]) -> Plan | None:
        spec = self.lex.specs[cmd]
        pending = list(self.mentions)
        kinds = {a.kind: a for a in wanted}
        if any(m.fuzzy for m in pending):
            self.conf -= 0.1
        has_service = Kind.service in kinds

        def put(arg: Arg, value: str) -> Plan | None:
            if arg.name in args and args[arg.name] != value:
                if arg.kind is Kind.stack and has_service:
                    return None  # a service's stack, named twice over: the service decides
                choices = join_choices([args[arg.name], value])
                return self.ask(f"That names two {noun(arg.kind)}s ({choices}); "
                                f"which {noun(arg.kind)} do you mean? One at a time, please.", attempted=cmd)
            args[arg.name] = value
            return None

        leftovers: list[Mention] = []
        for m in pending:
            direct = [k for k in m.names if k in kinds]
            if direct:
                k = next((k for k in direct if kinds[k].name not in args), direct[0])
                if len(direct) > 1 and k is Kind.stack and Kind.service in direct:
                    k = Kind.service
                bad = put(kinds[k], m.names[k])
                if bad:
                    return bad
            else:
                leftovers.append(m)
        if Kind.service in kinds and kinds[Kind.service].name not in args and args.get("stack"):
            services = list(self.r.config.stack_services.get(args["stack"], ()))
            if len(services) != 1:
                # the command is clear, the service is not: ask for it, keeping what was named
                return Plan(cmd, dict(args), "grammar",
                            f"The {args['stack']} stack has {join_choices(services, 'and')}: which service?",
                            0.5, cmd)
            self.conf -= 0.1
            args[kinds[Kind.service].name] = services[0]
            del args["stack"]
        rest: list[Mention] = []
        widened: tuple[str, str] | None = None
        for m in leftovers:
            host = self._host_of(m)
            if Kind.host in kinds and host and kinds[Kind.host].name not in args:
                args[kinds[Kind.host].name] = host  # "the gpu box": the environment on the GPU host
                continue
            if Kind.stack in kinds and Kind.service in m.names:
                service = m.names[Kind.service]
                stack = self.r.stack_for(service)
                if stack and args.get(kinds[Kind.stack].name) == stack:
                    continue  # "revert the monitoring deploy, grafana lost its panels": the stack is named itself
                if stack and not self._stack_of(m, spec.changes):
                    widened = widened or (service, stack)
                if stack and args.get(kinds[Kind.stack].name) not in (None, stack):
                    return put(kinds[Kind.stack], stack)  # "status of redis and nginx on dev": two stacks
                if stack and kinds[Kind.stack].name not in args:
                    self.conf -= 0.05
                    bad = put(kinds[Kind.stack], stack)
                    if bad:
                        return bad
                    continue
            if Kind.service in kinds and Kind.stack in m.names and kinds[Kind.service].name not in args:
                services = list(self.r.config.stack_services.get(m.names[Kind.stack], ()))
                if len(services) == 1:
                    self.conf -= 0.1
                    args[kinds[Kind.service].name] = services[0]
                    continue
                return self.ask(f"The {m.names[Kind.stack]} stack has {join_choices(services, 'and')}: "
                                "which service?", attempted=cmd)
            if Kind.env in kinds and Kind.vm in m.names and kinds[Kind.env].name not in args:
                env = self._env_of_vm(m.names[Kind.vm])
                if env:
                    args[kinds[Kind.env].name] = env
                    continue
            if Kind.vm in kinds and Kind.env in m.names and kinds[Kind.vm].name not in args:
                guest = self.r.config.inventory.environments[m.names[Kind.env]].vm
                if guest:
                    args[kinds[Kind.vm].name] = guest
                    continue
                return self.refuse(unknown_name(self.r, Kind.vm, m.phrase))
            rest.append(m)
        if widened is not None:
            service, stack = widened
            others = [s for s in self.r.config.stack_services.get(stack, ()) if s != service]
            return self.ask(f"{service} is one service of the {stack} stack (with {join_choices(others, 'and')}); "
                            f"'{cmd}' works on a whole stack, so I did nothing. If you mean the whole stack, say "
                            f"'{canonical(cmd, args, self.p.registry)}'.", attempted=cmd)
        lo, hi = shape.request_sentence(self)
        if (lo, hi) != (0, len(self.low)):
            # "approve r-3c3c3c3c, it's the redis fix": a name in a context sentence the command cannot use
            rest = [m for m in rest if lo <= m.start < hi]
        if rest and self._on_one_id(cmd, self.values):
            rest = []  # a command on one id names nothing else: "approve r-91d0, its the rollback on prod"
        if rest:
            if spec.changes or not wanted:
                if not spec.changes:
                    self.conf -= 0.1
                    return None
                m = rest[0]
                kind = next(iter(m.names))
                return self.ask(f"'{m.phrase}' is {article(noun(kind))}, which '{cmd}' does not take. "
                                f"Usage: {spec.usage}", attempted=cmd)
            self.conf -= 0.1
        return None

    def _machine_refusal(self, cmd: str) -> Plan | None:
        """A command on services aimed at a whole machine ("reboot the dev vm") is not that command."""
        spec = self.lex.specs[cmd]
        if not any(a.kind is Kind.service and a.required for a in spec.args):
            return None
        if any(Kind.service in m.names for m in self.mentions):
            return None
        machine_word = any(w in P.MACHINE_WORDS and (self.free(i) or any(
            m.end == i + 1 and Kind.vm in m.names for m in self.mentions)) for i, w in enumerate(self.low))
        power_verb = any(self.has(v) for v, cmds in self.lex.machine_verbs.items() if cmd in cmds)
        after_name = any(w in P.MACHINE_WORDS and i > 0 and any(m.end == i for m in self.mentions)
                         for i, w in enumerate(self.low))
        if machine_word or after_name or any(Kind.vm in m.names and " " in m.phrase for m in self.mentions) or (
                power_verb and any(Kind.env in m.names or Kind.vm in m.names for m in self.mentions)):
            return self.refuse(f"'{cmd}' works on services ('{spec.usage}'), not on whole VMs or servers; "
                               "I can't power machines from chat. I can snapshot VMs and show 'vm-status'.")
        return None

    def _unknown_words(self, cmd: str) -> list[int]:
        known = self.lex.command_words()
        lo, hi = shape.request_sentence(self)
        return [i for i, w in enumerate(self.low)
                if lo <= i < hi and self.free(i) and w not in P.FILLER
                and (w not in P.FUNCTION_WORDS or w in P.EVERYTHING)  # ("restart everything on dev": no name)
                and (w not in known or i in self.slot_names)
                and not w.isdigit()
                and w not in P.KIND_NOUNS
                and w not in P.GREETINGS and w not in P.DETERMINERS and w not in ("-", "&", "+", "/", "...", "—")]

    def _unknown_target(self, unknown: list[int], missing: list[Arg], wanted: list[Arg], cmd: str) -> Plan | None:
        """An unknown word in a target position is an unknown name, never ignored."""
        if not wanted:
            return None
        kinds = {a.kind for a in wanted}
        for i in unknown:
            w = self.words[i].raw
            nxt = self.low[i + 1] if i + 1 < len(self.low) else ""
            prev = self.low[i - 1] if i > 0 else ""
            if prev in ("is", "are", "was", "were", "be", "seems", "looks", "it", "got", "getting"):
                continue  # "it's ready", "prod is slow": a comment, not a name
            if self._later_sentence(i):
                continue  # "can you put a freeze on? incident ongoing": a remark after the request
            if self._in_time_phrase(i):
                continue  # "a snapshot before the upgrade": a reference to something else, no name
            if any(m.end == i for m in self.mentions) and P.KIND_NOUNS.get(nxt) and any(
                    Kind(P.KIND_NOUNS[nxt]) in m.names for m in self.mentions if m.end == i):
                continue  # "the gpu-metrics exporter stack": a word between a name and its kind noun
            kind = P.KIND_NOUNS.get(nxt)
            if kind == Kind.env.value and Kind.host in kinds and Kind.env not in kinds:
                kind = Kind.host.value  # ("gpu stats for the atlas box": a machine that would be a GPU host)
            if w.lower() in ("called", "named") and self._names_its_kind(i):
                continue  # (the cue itself: the name follows)
            if prev in ("called", "named") and i > 1 and self._names_its_kind(i - 1):
                kind = P.KIND_NOUNS[self.low[i - 2]]  # ("the vm called web01")
            target_kind: Kind | None = None
            if kind is not None and (Kind(kind) in kinds or missing):
                target_kind = Kind(kind) if Kind(kind) in kinds else (missing or wanted)[0].kind
            elif missing and (prev in P.TARGET_PREPOSITIONS or prev in ("the",) or i == min(unknown)):
                target_kind = missing[0].kind
            elif not self.mentions and (prev in P.TARGET_PREPOSITIONS or prev == "for") and self._clause_final(i):
                target_kind = wanted[0].kind  # "gpu stats for atlas": the one name said is no default's to fill
            if target_kind is not None:
                return self.ask(unknown_name(self.r, target_kind, w), attempted=cmd)
        return None

    def _in_time_phrase(self, i: int) -> bool:
        """Whether word i stands in a phrase of time ("before the upgrade", "after the big migration")."""
        def timed(k: int) -> bool:
            return self.low[k] in TIME_BEFORE or self.joined(k - 1, k + 1) in ("ahead of", "prior to")

        k = i - 1
        while k >= 0 and i - k <= 3 and not self.words[k].boundary and not timed(k):
            if self.low[k] not in P.DETERMINERS and not (self.free(k) and self.low[k].isalpha()) \
                    and (self.free(k) or any(h.start <= k < h.end for h in self.hits)):
                return False  # (a name may stand in it: "before the postgres 16 upgrade")
            k -= 1
        return k >= 0 and timed(k) and not self.words[k].boundary

    def _later_sentence(self, i: int) -> bool:
        """Whether word i stands in a sentence after the one with the command, a sentence naming nothing."""
        ends = [k for k in range(i) if any(c in self.words[k].raw + self.tokens[self.words[k].tok].trail
                                           for c in "?!.") and self.words[k].boundary]
        if not ends or not self.hits or self.hits[0].start > ends[-1]:
            return False
        start = ends[-1] + 1
        return not any(m.start >= start for m in self.mentions)

    def _not_understood(self) -> Plan:
        if self.mentions:
            names = ", ".join(m.phrase for m in self.mentions)
            return Plan.unknown(f"I see {names} but not what to do with it. 'help' lists what I can do.",
                                outcome=Outcome.unknown)
        return Plan.unknown(None)


def _ing_bases(word: str) -> list[str]:
    """The verbs an -ing form may come from ("going" → go, "taking" → take, "stopping" → stop); none for a
    word without the ending."""
    if not word.endswith("ing"):
        return []
    return [b for b in (word[:-3], word[:-3] + "e", word[:-4]) if b]


def canonical(cmd: str, args: dict[str, Any], registry: Registry) -> str:
    spec = registry[cmd]
    parts = [cmd]
    for a in spec.args:
        v = args.get(a.name)
        if v is None:
            continue
        parts.append(str(v) if a.positional and a.required else f"{a.name}={v}")
    return " ".join(parts)


def parse_plain(text: str, parser: NLParser) -> Plan:
    """The grammar route: canonical form first, then plain language."""
    if len(text) > MAX_TEXT:
        return Plan.unknown(f"That message is too long ({len(text)} characters, at most {MAX_TEXT}).",
                            outcome=Outcome.refuse)
    text = said_to_me(text)
    several = several_requests(text, parser)
    if several is not None:
        return several
    explicit = _trusted(text, parse_explicit(text, parser.resolver, parser.registry), parser)
    if explicit is not None and explicit.command == parser.lexicon.answers_howto:
        return _help(explicit, parser)  # help never acts: whatever follows it is a topic
    plan: Plan | None = None
    if explicit is not None and explicit.complete:
        if not parser.registry[explicit.command or ""].changes or not _loose(text, explicit, parser):
            return explicit  # every word in its place: "delete-snapshot rumpleprod nope" names a snapshot
        # A change whose canonical reading took free text, or a word that is no value, is also read as
        # plain language: the words may take the request back ("lock prod... nah forget it"), add a target
        # or a request ("lock prod and live", "lock prod and deploy data there"), or fill no value
        # ("restore the dev vm pls").
        plan = parser.parse(text)
        if plan.outcome is Outcome.refuse or not _canonical_reading(text, explicit, parser) or not plan.complete \
                or _targets(plan, parser) != _targets(explicit, parser):
            # (the free text held a correction or a question: "lock prod — nope, live", "lock prod, sorry, live")
            return plan
        return explicit
    plan = plan or parser.parse(text)
    if plan.outcome is Outcome.refuse:
        return plan
    if explicit is not None and explicit.command is not None and not plan.complete and (
            plan.command is not None or not plan.clarify):
        return explicit  # the canonical form's own question ("Which environment: …?")
    if (explicit is not None and explicit.attempted and plan.command is None and not plan.attempted
            and plan.outcome is Outcome.unknown):
        # Plain language understood nothing, but the first word is a registered command it has no
        # phrasing for: the canonical reading's question names what is wrong.
        return explicit
    if plan.command is None and not plan.clarify and explicit is not None and explicit.clarify:
        return explicit
    return plan


def said_to_me(text: str) -> str:
    """The part of a message said to the bot when the bot is called by name after what was said to the room
    ("ok decision made, we're rolling back. bot: rollback data on production", "@tom i check your PR later.
    @bot pls tail redis logs", an alert pasted before "— bot, pull cloudflared logs"): what follows the call."""
    tokens = tokenize(text)
    for k in range(len(tokens) - 2, 0, -1):
        tok, before = tokens[k], tokens[k - 1]
        name = tok.low.lstrip("@")
        called = tok.low.startswith("@") or any(c in tok.trail for c in ",:")
        after_break = before.boundary or any(c in before.trail for c in ".?!:;") or tokens[k].lead.strip() \
            or tok.line != before.line \
            or before.low in P.DASHES or (
                # "@kim can you eyeball the dashboards? and bot, restart …": from a person to us
                before.low in ("and", "also", "then", "plus", "but") and text.lstrip().startswith("@"))
        if name in _BOT_NAMES and called and after_break:
            said = " ".join(t.low for t in tokens[:k])
            room = set(said.split())
            if room & (P.REPORT_VERBS | P.NEGATIONS | {"once", "when", "after", "before"}) \
                    or any(f" {c} " in f" {said} " for c in P.CONDITIONALS) \
                    or any(t.quoted for t in tokens[:k + 1]) or "n't" in said or "'t" in said:
                return text  # ("bob said: bot, restart nginx", "if it fails: bot, roll back"): kept whole
            return text[tokens[k + 1].outer_start:]
    return text


def _loose(text: str, plan: Plan, parser: NLParser) -> bool:
    """Whether the canonical reading took positional free text or a word argument that is no value."""
    spec = parser.registry[plan.command or ""]
    keyed = _keyed(text)
    return any(isinstance(plan.args.get(a.name), str) and a.name not in keyed and (
        a.kind is Kind.text or (a.kind is Kind.word and not _canonical_value(plan.args[a.name])))
        for a in spec.args)


def _canonical_reading(text: str, plan: Plan, parser: NLParser) -> bool:
    """Whether the canonical form's values are values: a word argument is no function word ("pls"), and
    free text starts with neither a conjunction ("and live") nor a name the command takes ("prod live")."""
    spec = parser.registry[plan.command or ""]
    kinds = {a.kind for a in spec.args if a.kind.is_entity}
    for arg in spec.args:
        value = plan.args.get(arg.name)
        if not isinstance(value, str) or arg.name in _keyed(text):
            continue
        if arg.kind is Kind.word and not _canonical_value(value):
            return False
        if arg.kind is Kind.text:
            first = (words_of(tokenize(value)) or [Word("", "", 0)])[0].low
            if first in P.CLAUSE_JOINERS or first in ("&", "+", "plus", "also", "or") or any(
                    parser.resolver.resolve(k, first) for k in kinds):
                return False
    return True


def _canonical_value(value: str) -> bool:
    """A word typed in a value's place is a value unless it is politeness, a pronoun, a word of time, or a
    word that describes rather than names ("restore dev to previous"): key=value says it outright."""
    low = value.lower()
    return looks_like_value(value, written=True) and low not in P.RELATIVE_TIME and low not in P.SINCE_WORDS \
        and low not in P.SCHEDULE_WORDS


def _targets(plan: Plan, parser: NLParser) -> dict[str, Any]:
    """A plan's arguments other than free text."""
    spec = parser.registry[plan.command or ""] if plan.command else None
    return {k: v for k, v in plan.args.items() if spec is None or (a := spec.arg(k)) is None or a.kind is not Kind.text}


def _unquoted(text: str) -> str:
    """Free text without the quotes around all of it ("reason 'migrating postgres'")."""
    if len(text) >= 2 and text[0] in OPENING + "'" and text[-1] in CLOSING + "'":
        return text[1:-1].strip()
    return text


def _keyed(text: str) -> set[str]:
    """Argument names given as key=value in the text."""
    return {t.low.split("=", 1)[0].replace("-", "_") for t in tokenize(text) if t.kv}


_BULLET = re.compile(r"^\s*([-*•]|\d{1,2}[.)])\s")


def several_requests(text: str, parser: NLParser) -> Plan | None:
    """A message of several lines, more than one of which asks for something: one at a time."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return None
    # a list ("- deployed chat to test", "1. restart n8n") is a report or a checklist when its items name
    # commands: every item that names one counts, whatever its own reading
    listed = [ln for ln in lines if _BULLET.match(ln) and _names_command(ln, parser)]
    asking = listed if len(listed) >= 2 else [ln for ln in lines if _asks(ln, parser)]
    if len(asking) < 2:
        return None
    shown = "; ".join(f"'{ln.strip()[:40]}'" for ln in asking[:3])
    return Plan.unknown(f"That message has several requests ({shown}); I run nothing from it. "
                        "Send them one at a time.", outcome=Outcome.refuse)


def _names_command(line: str, parser: NLParser) -> bool:
    """Whether a line holds a word or phrase of a command (its verbs, nouns, object verbs)."""
    words = [w.low for w in words_of(tokenize(line))]
    if parser.registry.command_for_word(words[0] if words else ""):
        return True
    lex = parser.lexicon
    return any(" ".join(words[i:i + n]) in lex.phrases or " ".join(words[i:i + n]) in lex.object_verbs
               for n in range(1, lex.max_words + 1) for i in range(len(words) - n + 1))


def _asks(line: str, parser: NLParser) -> bool:
    """Whether one line, read on its own, asks for a command: a remark ("the ocr queue is stuck again"),
    a heads-up to someone ("@bob fyi I'm kicking the proxy") or a report of last night's deploy does not."""
    words = [w.low for w in words_of(tokenize(line))]
    if parser.registry.command_for_word(words[0] if words else ""):
        return True
    if not _names_command(line, parser):
        return False
    plan = parser.parse(said_to_me(line))
    return (plan.command is not None and plan.confidence >= CONFIDENT) or plan.outcome is Outcome.ask


def _help(plan: Plan, parser: NLParser) -> Plan:
    """`help TOPIC`: the topic's command when the words name one; else the topic as written (the
    help command suggests the closest commands).  Never another command."""
    spec = parser.registry[plan.command or ""]
    if not spec.args:
        return plan
    key = spec.args[0].name
    topic = plan.args.get(key)
    if not isinstance(topic, str) or not topic.strip():
        return plan
    found = parser.registry.command_for_word(topic.split()[0]) or _Reading(parser, topic)._topic(0)
    args = {**plan.args, key: found or topic.strip()}
    return Plan(plan.command, args, plan.source, None, plan.confidence, plan.command)


def addressee(text: str, users: frozenset[str], known: Callable[[str], bool] | None = None) -> str | None:
    """A person of the team the message speaks to first ("@bob can you deny r-…", "alice: restart …",
    "bob, approve r-… please"): a request to them, not to the bot."""
    lead = text.split(None, 1)
    while len(lead) == 2 and lead[0].strip(",!.").lower() in P.GREETINGS and not lead[0].endswith(",") and (
            lead[1].lstrip().startswith("@") or _NAMED.match(lead[1])):
        text = lead[1]  # "hey @priya, did you deploy chat to prod?", "hey priya, did you lock prod yet?"
        lead = text.split(None, 1)
    m = _ADDRESS.match(text)
    if m is None:
        return None
    said = m.group(0)
    name = m.group(1).lower()
    # (a name with "bot" in it is us: the adapters strip our own mention, so "@opsbot" was typed by hand)
    someone = name not in _BOT_NAMES and "bot" not in name
    if said.lstrip().startswith("@") and someone:
        return m.group(1)  # "@sam can you restart redis": an @-mention first, known to us or not, is a person
    plain_name = someone and name not in P.FILLER and name not in P.GREETINGS and name not in _NOT_NAMES \
        and name not in P.INTERJECTIONS
    if plain_name and _PERSON_ASKED.match(text):
        return m.group(1)  # "marco can you approve r-9be2f001": a first word that is a person asked
    # a first word no inventory knows, that is no label ("note:"): a person's name, when the message sets it
    # off as one
    stranger = plain_name and known is not None and name.isalpha() and name not in _LABELS and not known(name)
    if (stranger or name in users) and _PERSON_WHEN_YOU.match(text):
        return m.group(1)  # "sam before u touch the prod vm take a snapshot first pls"
    if stranger and _NAMED.match(text) and 2 <= len(name) <= 12:
        return m.group(1)  # "sara, roll back chat on dev pls": a word no inventory knows, set off as a name
    if stranger and _PERSON_PLEASED.match(text):
        return m.group(1)  # "jonas pls deploy monitoring to staging"
    if stranger and 2 <= len(name) <= 15 and (_DASHED.match(text) or said.rstrip().endswith(":")):
        # "priya — approve 7f3a9c when you can"; "zoe: can u bounce redis on dev?" (a speaker's line, or to zoe)
        return m.group(1)
    if m.group(1).lower() not in users:
        return None
    return m.group(1) if said.lstrip().startswith("@") or said.rstrip().endswith((",", ":")) else None


def _trusted(text: str, plan: Plan, parser: NLParser) -> Plan | None:
    """The canonical parse, unless it read an inventory name as a free word ("revert chat on test")
    or the command word itself stands in quotes (someone else's words)."""
    if plan.command is None:
        return plan
    tokens = tokenize(text)
    while tokens and tokens[0].low in LEADERS:
        tokens = tokens[1:]
    if (tokens and tokens[0].quoted) or pasted(text) or addressee(text, parser.users, parser.known_word):
        return None  # (someone else's words, pasted material: "> restart nginx on prod", "@bob approve r-…")
    for n in (2, 1):
        word = " ".join(t.low for t in tokens[:n])
        if len(tokens) >= n and parser.registry.command_for_word(word) == plan.command:
            if word != plan.command and any(s.command != plan.command for s in parser.lexicon.senses(word)):
                return None  # an alias another command also declares ("revert"): plain language decides
            break
    spec = parser.registry[plan.command]
    for arg in spec.args:
        value = plan.args.get(arg.name)
        if arg.kind is Kind.word and isinstance(value, str) and any(
                parser.resolver.resolve(k, value) for k in ENTITY_KINDS):
            return None
        if arg.kind is Kind.word and isinstance(value, str) and value.lower() in arg.cues + arg.cues_after:
            return None  # "restore the prod vm from a snapshot": the value's own noun, no value
        if arg.kind is Kind.text and isinstance(value, str) and arg.cues:
            trimmed = _unquoted(polite_trim(without_cue(value, arg.cues)))
            if trimmed:
                plan.args[arg.name] = trimmed
            else:
                plan.args.pop(arg.name)
    return plan
