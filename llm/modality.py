"""Modality: whether a message asks for anything at all, before asking what.

These stages know no command.  They read the shape of the message: pasted material
(alerts, log lines, stack traces, code, URLs), someone else's words (reported speech,
quotes), questions of whether to act, conditionals and hypotheticals.  Each gives a
refusal sentence, or nothing.  Negations, the past and people's own plans are read in
llm/nl.py, where the command phrases they refer to are known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llm import phrases as P

# "…? or …": another course offered; "…? not until QA signs off": the asker's own answer, no
_OR_AFTER_QUESTION = re.compile(r"\?+\s*(or|not\s+(until|yet|now|before|today|while|till)|nah|never)\b", re.I)

_PASTED: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"```|~~~"), "a code block"),
    # a row of a table a tool printed ("|   0  NVIDIA H100 … |  71234MiB / 81559MiB |"): three bars or more
    (re.compile(r"^\s*\|[^|\n]*\|[^|\n]*\|", re.M), "a table"),
    (re.compile(r"https?://\S+|\bwww\.\S+\.\w", re.I), "a link"),
    (re.compile(r"\[(FIRING|RESOLVED)\b|\balertname\b|^\s*(ALERT|Alert)\s*[:\[]|\bseverity[=:]\s*\w", re.M),
     "an alert"),
    (re.compile(r"Traceback \(most recent call last\)|^\s+at [\w.$<>]+\(.*\)\s*$|File \"[^\"]+\", line \d+|"
                r"\b[A-Z]\w*(Error|Exception)\b:|^panic:|^goroutine \d+", re.M), "a stack trace"),
    (re.compile(r"\blevel=(error|warn|warning|info|debug|fatal)\b|\bmsg=", re.I), "a log line"),
    # a line of `docker compose logs`: the service, a bar, then what it wrote ("open-webui  | ERROR […] …")
    (re.compile(r"^\s*[\w.-]+\s+\|\s+.*\b(ERROR|WARN|WARNING|INFO|DEBUG|FATAL|CRITICAL|Traceback)\b"),
     "a log line"),
    (re.compile(r"^\s*\$ \S|^\s*> ", re.M), "quoted or pasted text"),
    # a shell line: a command-line tool first, or commands joined by && / ||
    (re.compile(r"^\s*(git|kubectl|docker-compose|ssh|sudo|systemctl|helm|curl|ansible|terraform|journalctl|pct|qm)"
                r"\s+\S|^\s*docker\s+(compose|restart|run|exec|ps|logs|stop|start|rm|pull|push|build|inspect)\b"
                r"|\s&&\s|\s\|\|\s", re.M), "a shell command"),
    # a tagged status line ("[deploy] chat -> prod: FAILED", "restart: nginx (dev) – done")
    (re.compile(r"^\s*\[[\w .:-]{1,30}\]\s|\s->\s|\b(FAILED|SUCCEEDED|SUCCESS|DONE)\b\s*$", re.M),
     "a status line"),
    (re.compile(r"^\s*[\w-]{2,20}:\s.*\b(done|in progress|finished|completed|succeeded|failed)\s*[.!]?\s*$",
                re.I), "a status line"),
    # a chat transcript: two or more lines that start with a speaker ("zoe: can u bounce redis?\nkenji: on it")
    (re.compile(r"^\s*@?[\w.-]{2,24}:\s+\S.*\n(?:.*\n)*?\s*@?[\w.-]{2,24}:\s+\S", re.M), "a chat transcript"),
    # a notification: an incident number in capitals ("INCIDENT #4412"), or labelled fields ("PagerDuty: …
    # Action: restart postgres on prod")
    (re.compile(r"\b[A-Z]{3,}\s*#\d{2,}|(?:^|[.!?]\s+)[A-Z][A-Za-z]+:\s(?:.*?)(?:[.!?]\s+|\n)[A-Z][A-Za-z]+:\s",
                re.S), "an alert"),
)
_TIMESTAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\b\d{2}:\d{2}:\d{2}\b"
                        r"|\b[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}")
_SYSLOG_TAG = re.compile(r"\b[\w.-]+\[\d+\]:")
_LEVEL = re.compile(r"(^|[\s\[(|])(" + "|".join(sorted(P.LOG_LEVELS)) + r")([\s\]):|]|$)")


@dataclass
class Modality:
    """What the modality stages need to know about a message (no command names)."""

    text: str
    words: list[str]
    raw: list[str]
    quoted: list[bool]
    boundary: list[bool]
    hit_starts: list[int]  # where command words (verbs and nouns) stand
    weak_starts: list[int]  # where weak words stand (a demoted "restarting" in a question)
    action_starts: list[int]  # where action verbs stand
    first_hit: int
    changing: bool  # an action verb of a changing command is present
    mentions: list[tuple[int, int]] = field(default_factory=list)
    users: frozenset[str] = frozenset()
    past: list[int] = field(default_factory=list)
    possessive: list[bool] = field(default_factory=list)  # written with 's ("bob's")
    # words of a context sentence (before the asking one, or a comment after it) that no time word there
    # turns into a condition on the request
    aside: list[bool] = field(default_factory=list)
    change_nouns: list[int] = field(default_factory=list)  # where nouns of changing commands stand


@dataclass(frozen=True)
class Mood:
    refusal: str | None = None


def pasted(text: str) -> str | None:
    """What kind of pasted material the text carries, if any (on any of its lines: "nvidia-smi output:"
    and the table under it)."""
    lines = [text, *(ln for ln in text.splitlines()[1:] if ln.strip())] if "\n" in text.strip() else [text]
    for pattern, what in _PASTED:
        if any(pattern.search(ln) for ln in lines):
            return what
    level = _LEVEL.search(text)
    if level and (_TIMESTAMP.search(text) or level.group(3) in (":", "]", "|") or level.group(1) in ("[", "|")):
        return "a log line"
    if _TIMESTAMP.search(text) and ("\n" in text.strip() or _SYSLOG_TAG.search(text)):
        return "a log excerpt"  # (a syslog line: a time, a host, "dockerd[812]:")
    return None


def _phrase_before(words: list[str], phrases: tuple[str, ...], limit: int) -> str | None:
    text = " " + " ".join(words[:limit]) + " "
    return next((p for p in phrases if f" {p} " in text), None)


def _whether(words: list[str], limit: int) -> str | None:
    """A phrase asking whether to act ("should we", "do I need to"), not after a question word asking for
    things ("what do I need to sign off" asks what)."""
    text = " " + " ".join(words[:limit]) + " "
    for p in P.WHETHER_PHRASES:
        at = text.find(f" {p} ")
        if at >= 0 and text[:at].split()[-1:] not in (["what"], ["which"], ["who"], ["whom"]) \
                and not text[at:].startswith(f" {p} or not "):  # ("whether or not it helps, …": concessive)
            return p
    return None


def read_modality(m: Modality) -> Mood:
    """A refusal when the message does not itself ask for an action, else an empty mood."""
    w = m.words
    if not w:
        return Mood()
    what = pasted(m.text)
    if what is not None and (m.hit_starts or m.mentions):
        return Mood(f"That looks like pasted text ({what}); I don't act on commands or names inside pasted "
                    "material. Tell me in your own words what you want, e.g. 'logs SERVICE ENV'.")
    if not m.hit_starts and not m.weak_starts:
        return Mood()
    first = m.first_hit if m.hit_starts else min(m.weak_starts)
    # someone else's words: inside quotes, or after a reporting verb
    if any(m.quoted[i] for i in m.hit_starts + m.weak_starts):
        return Mood("Those are quoted words, not a request of yours, so I'm not doing anything. "
                    "If you want it done, ask me directly.")
    # (in the asking sentence: "Dana says the db on test is throwing errors. Can you show me its logs?" asks;
    # a context sentence before it may report what others said or want)
    lo = _asking_from(m, first)
    reported = _phrase_before(w[lo:], P.REPORT_PHRASES, first + 1 - lo) or _others_words(w, m, first, lo)
    # (up to the first verb asked for: "the card says: rollback chat …", where "card" is also a noun of ours)
    said_by = max(first, min(m.action_starts, default=first))
    verb = next((i for i in range(lo + 1, said_by) if w[i] in P.REPORT_VERBS and not m.boundary[i - 1]
                 and w[i - 2:i] not in (["i", "am"], ["we", "are"])), None)  # ("I am asking please to …": mine)
    if _phrase_before(w, (*P.SENT_TO_ME, "to check with you", "to ping you"), first + 1):
        reported, verb = None, None  # "I was told to ask you: what's the status of phoenix?": asked of me
    if reported or verb is not None:
        return Mood("That reports what someone else said or wants, so I'm not doing anything. "
                    "If you want it done, ask me directly.")
    # a request put up for discussion: "restart n8n on prod? or is that overkill"
    # (and any other course offered after the question: "approve r-…? or do we wait for Priya")
    # ("… or is that overkill" asks even without its question mark)
    after = f" {' '.join(w[first + 1:])} "
    # (a state asked about is no course of action: "docs stack is up or not on prod?")
    state_only = not m.changing and not m.change_nouns and not m.action_starts
    if (not state_only and "?" in m.text and (any(f" {p} " in after for p in P.UP_FOR_DISCUSSION)
                                              or _OR_AFTER_QUESTION.search(m.text))) \
            or (m.changing and any(f" {p} " in after for p in P.UP_FOR_DISCUSSION if p.startswith("or "))):
        return Mood("That asks whether to do it, so I'm not doing anything; I act only on a direct request. "
                    "If you want it done, say so (e.g. 'restart SERVICE ENV').")
    # the request as the subject of a sentence: "restart nginx on dev is what the runbook says"
    said_of = _spoken_of(w, m)
    if said_of:
        return Mood(f"That talks about '{said_of}' rather than asking for it, so I'm not doing anything. "
                    "If you want it done, ask me directly.")
    # thanks for something done, and words read out or shown as an example: nothing asked
    thanked = _phrase_before(w, P.THANKS_FOR, first + 1)
    if thanked and first < len(w) and (w[first].endswith("ing") or first in m.past):
        return Mood("That thanks someone for something already done, so I'm not doing anything.")
    shown = next((p for p in P.SHOWN_PHRASES if f" {p} " in f" {' '.join(w)} "), None)
    if shown:
        return Mood(f"That reads as words quoted or shown as an example ('{shown}'), so I'm not doing anything. "
                    "If you want it done, ask me directly.")
    # questions of whether to act, at all or now
    actions = m.action_starts
    if w[0] in P.QUESTION_AUX and len(w) > 1 and w[1].endswith("ing") and 1 in m.weak_starts:
        return Mood("That asks what doing it would do, so I'm not doing anything; I act only on a direct "
                    "request. If you want it done, say so.")
    if actions or m.change_nouns:
        # (a light verb and a change's noun ask too: "would you recommend taking a snapshot before every deploy?")
        last = max(actions or m.change_nouns)
        whether = _whether(w, last + 1)
        aux = bool(actions) and w[0] in P.QUESTION_AUX and len(w) > 1 and (
            (w[1] in P.QUESTION_SUBJECTS and min(actions) > 1)
            or (min(actions) == 1 and w[1].endswith("ing")))  # "could restarting cloudflared drop sessions?"
        # "does n8n on dev need a restart after the env change?": whether a thing needs it
        needs = w[0] in ("does", "do", "will", "would", "did") and any(
            w[k] in ("need", "needs") and k + 1 < len(w) and w[k + 1] in ("a", "an", "to", "another")
            for k in range(2, min(len(w) - 1, 9)))
        if whether or aux or needs:
            return Mood("That asks whether to do it, so I'm not doing anything; I act only on a direct request. "
                        "If you want it done, say so (e.g. 'restart SERVICE ENV').")
    if actions or m.past or m.change_nouns:  # (a past participle may be the request: "we need chat deployed …
        # once QA is done"; a change's noun too: "if n8n needs a restart")
        cond = _conditional(w, m)
        if cond:
            return Mood(f"That's {cond}, so I'm not doing anything: I don't act on conditions or "
                        "what-ifs. Ask me directly when you want it done.")
    return Mood()


# words that open the reason for a request said before them: what follows is why, not whether
_REASON_OPENERS = frozenset({"because", "cause", "cuz", "coz", "since"})

# words that open another clause, whose copula is not said of the request
_NOT_THE_REQUESTS_CLAUSE = frozenset({"when", "because", "till", "unless", "whatever", "whichever", "what", "which",
                                      "where", "who"})


def _spoken_of(w: list[str], m: Modality) -> str | None:
    """The command phrase when a copula follows it in its own clause ("restart nginx on dev is what the
    runbook says", "lock prod was the plan"), not in a relative clause ("the nginx that is on dev")."""
    if not m.action_starts or min(m.action_starts) != 0:
        return None
    for k in range(1, len(w)):
        if m.boundary[k - 1] or w[k] in P.CLAUSE_JOINERS or w[k] in P.CONDITIONALS or w[k] in P.TIME_BEFORE \
                or w[k] in _NOT_THE_REQUESTS_CLAUSE:
            return None  # ("freeze prod until the audit is finished", "to whatever snapshot is newest")
        if w[k] in ("is", "was", "are", "were") and any(end == k for _, end in m.mentions):
            return " ".join(m.raw[:k])  # (a copula right after the request's target)
    return None


# how a sentence asks the bot itself when its command word is a noun ("Can you show me its logs?")
_ASKING_LEADS = frozenset({"can", "could", "would", "will", "please", "pls", "plz", "so", "show", "give", "get"})


def _asking_from(m: Modality, first: int) -> int:
    """Where the sentence that asks begins, when context sentences stand before it and it asks in so many
    words (a verb of ours, or "can you"/"please"/"so" first); 0 otherwise ("who wants coffee? the prod
    deploy can wait" asks nothing)."""
    lo = 0
    while lo < first and lo < len(m.aside) and m.aside[lo]:
        lo += 1
    if lo == 0 or lo >= len(m.aside) or m.aside[lo]:
        return 0
    if any(w in P.REPORT_VERBS for w in m.words[max(0, lo - 3):lo]):
        return 0  # "bob said: bot, restart nginx on prod": what follows the report is its content
    lead = lo + 1 if m.words[lo] in P.DASHES and lo + 1 < len(m.words) else lo
    return lo if any(a >= lo for a in m.action_starts) or m.words[lead] in _ASKING_LEADS else 0


def _others_words(w: list[str], m: Modality, first: int, lo: int = 0) -> str | None:
    """Another person's words before the request: "bob's message was: …", "her suggestion: …" (the
    speaker's own "my request: …" asks)."""
    def owner(k: int) -> bool:
        return w[k] in ("his", "her", "their", "your") or (k < len(m.possessive) and m.possessive[k])

    for i in range(lo + 1, first):
        introduces = m.boundary[i] or (i + 1 < len(w) and w[i + 1] in ("was", "is", "reads", "read", "said", "says"))
        if w[i] in P.REPORT_NOUNS and introduces and not m.boundary[i - 1] and (
                owner(i - 1) or (i >= 2 and owner(i - 2) and not m.boundary[i - 2])):
            return w[i]
    return None


def _finite(words: list[str]) -> bool:
    """Whether words hold a finite verb ("QA signs off", "the build is green", "alice merged it")."""
    return any(w in P.AUXILIARIES or w in P.IRREGULAR_PAST or (len(w) > 3 and w.endswith("ed"))
               or (len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us")) and w not in P.FUNCTION_WORDS)
               for w in words)


def _clause(w: list[str], m: Modality, i: int) -> list[str]:
    """The words of the clause that starts after word i, up to its end or the first command word."""
    out: list[str] = []
    for k in range(i + 1, len(w)):
        if k in m.hit_starts or k in m.action_starts:
            break
        out.append(w[k])
        if m.boundary[k]:
            break
    return out


def _fronted(w: list[str], m: Modality, i: int) -> bool:
    """Whether "after …" at word i is a fronted phrase of time that ends before the request ("after the
    release, …"), about an event not marked as past ("after last night's outage, …" refers to one)."""
    end = next((k for k in range(i + 1, min(len(w), i + 7)) if m.boundary[k]), None)
    if end is None or end + 1 >= len(w) or any(k in m.action_starts for k in range(i + 1, end + 1)):
        return False
    return not any(x in P.PAST_TIME for x in w[i + 1:end + 1])


def _conditional(w: list[str], m: Modality) -> str | None:
    text = " " + " ".join(w) + " "
    for phrase in P.CONDITIONALS:
        at = text.find(f" {phrase} ")
        while at >= 0:
            before = text[:at].split()[-1:]
            # "…, it's fine if it drops sessions": a remark on the outcome, not a condition on the request;
            # "want to know if I can start a finetune": an indirect question (whether), no condition
            # "snapshot the dev vm (just) in case (the upgrade breaks it)": a precaution after the request, done
            # now; "in case the deploy fails, roll back chat" before it is a condition
            precaution = phrase == "in case" and len(text[:at].split()) > m.first_hit
            if not (phrase == "if" and before and (before[0] in P.CONCESSIVE or before[0] in P.WHETHER_VERBS)) \
                    and not precaution:
                return f"a condition ('{phrase} …')"
            at = text.find(f" {phrase} ", at + 1)
    for i in range(len(w)):
        if i < len(m.aside) and m.aside[i]:
            continue  # "The dev VM is a mess after my experiments. Please restore it …": context, no condition
        if w[i] in ("when", "once", "whenever") and (i == 0 or w[i - 1] not in ("since", "from", "until")) \
                and i + 1 < len(w) and w[i + 1] not in ("possible", "more", "again") \
                and not (i == 0 and (w[i + 1] in P.AUXILIARIES or w[i + 1] in ("did", "was", "were"))):
            # (a question of when: "when was chat last deployed")
            return f"a condition ('{w[i]} …')"
        if w[i] == "after" and _finite(_clause(w, m, i)):
            # "after QA signs off, …": a condition; "after the deploy" is a reference to something done
            return "a condition ('after …')"
        if w[i] == "after" and (i == 0 or m.boundary[i - 1]) and _fronted(w, m, i):
            # "after the release, unlock staging": the request waits for an event still to come
            return "a condition ('after …')"
    for i in range(len(w) - 1):
        if m.hit_starts and m.first_hit < i and any(r in _REASON_OPENERS for r in w[m.first_hit:i]):
            break  # "restart nginx on dev because I think it might help": the reason's hedge, the request said
        if w[i] in P.HYPOTHETICAL_SUBJECTS and w[i + 1] in ("would", "could", "might") and (
                i + 2 >= len(w) or w[i + 2] not in P.WOULD_POLITE):
            return "a hypothetical"
        if w[i] in ("would", "could", "should", "might", "must") and w[i + 1] == "have":
            return "a hypothetical"
    return None
