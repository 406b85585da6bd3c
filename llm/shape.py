"""The shape of a message: which sentence asks, what the other words around the request are.

Stages of a plain-language reading (llm/nl.py) that look at the message as a whole rather
than at one command phrase: the asking sentence and its context, values of the asking
sentence, names standing where a name of another kind belongs, phrases of time and purpose,
pronoun objects, the free-text tail of a request, and retractions.  Each is a function over
the reading; none names a command (tests/test_language.py checks).
"""

from __future__ import annotations

import unicodedata
from itertools import pairwise
from typing import TYPE_CHECKING

from commands.registry import Kind
from llm import phrases as P
from llm.lexicon import Sense, Strength
from llm.values import REQUEST_ID
from llm.words import CONJUNCTION_CUES, TIME_BEFORE, Hit, identifier, polite_trim

if TYPE_CHECKING:
    from llm.nl import _Reading

_RETRACTIONS = tuple((p, p.count(" ") + 1) for p in (*P.TAKE_BACK, *P.APOLOGIES))
# words that may follow a value after "to" ("roll back chat to main please")
_AFTER_VALUE = frozenset({"please", "pls", "plz", "thanks", "thx", "ty", "cheers", "now", "asap", "again", "too",
                          "instead", "then", "and", "or", "but", "—", "-"})
_ADDING = frozenset({"and", "also", "plus", "oh", "+", "&"})
_CORRECTING = (*P.CORRECTION_MARKERS, *P.APOLOGIES, "no", "not", "wait")


def sentences(r: _Reading) -> list[tuple[int, int]]:
    """Word ranges of the sentences ('.', '?', '!' end one).  A comment joined to a request by a comma or a
    dash ("restart open webui on live – users getting 502s", "redeploy web on live, the nginx fix is
    merged") is a sentence of its own: context, like the one after a full stop."""
    ends = []
    for k, w in enumerate(r.words):
        trail = r.tokens[w.tok].trail
        # (an ellipsis is a pause: "restart redis on test... actually make that dev")
        # (an emoji ends a sentence too: "chat went out at 3 😬 roll it back")
        new_line = k + 1 < len(r.words) and r.words[k + 1].line != w.line
        if (w.boundary and any(c in ".?!;" or unicodedata.category(c) == "So" for c in trail) and ".." not in trail
                and "…" not in trail and k + 1 < len(r.words)) or new_line:
            ends.append(k + 1)
    out, start = [], 0
    for end in [*ends, len(r.words)]:
        for k in range(start + 1, end):
            joined_by = "," in r.tokens[r.words[k - 1].tok].trail or r.low[k] in _DASHES
            if (_copula_opens(r, k, end) and _comment(r, k, end)) or (joined_by and (
                    _comment(r, k + (r.low[k] in _DASHES), end)
                               # "n8n on live is throwing 502s, restart it please": a comment before it
                               or (_comment(r, start, k, before=True) and (
                                   _asks_in(r, k, end) or _asks_politely(r, k + (r.low[k] in _DASHES), end))))) \
                    or (r.low[k] in ("and", "but", "so") and _own_plan(r, k + 1, end)):
                # ("stop it for now and i'll clean up tmrw": the speaker's own plan joined to the request)
                out.append((start, k))
                start = k
                break
        out.append((start, end))
        start = end
    return out


_DASHES = frozenset({"-", "–", "—", "--"})
# words a request may end on before "it is …" opens a comment without a comma ("restart nginx asap it is 502ing")
_REQUEST_ENDS = frozenset({"asap", "now", "please", "pls", "plz", "thanks", "thx", "again", "quickly", "urgently"})


def _copula_opens(r: _Reading, k: int, end: int) -> bool:
    """Whether "it is"/"that is" at word k opens a comment on the request before it, with no comma: after a
    name, a value or "asap"/"please" ("approve r-6b0d its the pg conn fix")."""
    if k + 1 >= end or r.low[k] not in ("it", "that") or r.low[k + 1] != "is":
        return False
    before = r.low[k - 1]
    return before in _REQUEST_ENDS or identifier(before) or any(m.end == k for m in r.mentions)
# words that open a condition: a clause they lead belongs to the request it conditions
_CONDITION_LEADS = frozenset({"if", "unless", "when", "once", "after", "whenever", "provided", "assuming",
                              "only", "but", "as"})
_REASON_LEADS = frozenset({"because", "cause", "cuz", "coz", "bc", "as", "otherwise"})
# a verb that states something (a comment has a subject and one of these; a request has an imperative)
_STATING = frozenset({"is", "are", "was", "were", "has", "have", "had", "looks", "seems", "says", "said", "went",
                      "keeps", "kept", "getting", "seeing", "needs", "wants", "don't", "doesn't", "didn't", "can't",
                      "won't", "isn't", "aren't", "wasn't", "it's", "that's", "there's", "we're", "they're", "i'm",
                      "broke", "crashed", "died", "hangs", "fails", "failed", "throws", "shows", "reports", "not",
                      "never", "am", "need", "want",
                      # a state said without its verb ("ocr queue stuck since 9", "db slow again")
                      "stuck", "broken", "dead", "slow", "hung", "hanging", "wedged", "flaky", "full", "throwing",
                      "timing", "erroring", "failing", "crashing", "spamming", "leaking", "lagging", "overloaded",
                      "unreachable", "offline", "unresponsive", "down"})
_PRONOUNS = frozenset({"i", "we", "they", "he", "she", "it", "someone", "somebody", "nobody", "anyone"})
_DROPPED_SUBJECT = frozenset({"want", "wanna", "need", "trying", "hoping", "looks", "seems"})


def _asks_in(r: _Reading, start: int, end: int) -> bool:
    """Whether words start..end hold a command verb that asks (not after someone's modal)."""
    return any(start <= h.start < end and h.asked and not _after_modal(r, h)
               for h in r.hits)


def _asks_politely(r: _Reading, start: int, end: int) -> bool:
    """Whether words start..end ask the bot in so many words for something one of its words names ("could
    you pull the last 100 lines of its logs there?", "so: status of data on test please")."""
    return start + 1 < end and (r.joined(start, start + 2) in ("can you", "could you", "would you", "can u",
                                                               "could u") or r.low[start] in ("so", "please", "pls")) \
        and any(start <= h.start < end and h.strength >= Strength.noun for h in r.hits)


def _own_plan(r: _Reading, start: int, end: int) -> bool:
    """Whether words start..end say what the speaker or others will do ("i will clean up tomorrow")."""
    words = r.low[start:end]
    return len(words) > 2 and words[0] in ("i", "we", "they", "he", "she") and words[1] in P.MODALS | {
        "am", "are", "is", "have", "need", "want"} and not _asks_in(r, start, end)


def _comment(r: _Reading, start: int, end: int, before: bool = False) -> bool:
    """Whether words start..end state something rather than ask: a reason ("because …"), or a clause with
    a subject and a stating verb ("the nginx conf fix is merged", "we don't need it this week"), and no
    verb of a command (that would be a second request, read elsewhere)."""
    words = r.low[start:end]
    if len(words) < 2 or words[0] in _CORRECTING or words[0] in _ADDING or words[0] in P.TAKE_BACK \
            or words[0] in _CONDITION_LEADS or words[0] in P.CONDITIONALS:
        return False  # ("restart nginx on dev, if it's still down": the condition belongs to the request)
    if words[:2] == ["do", "not"] or words[0] in ("never", "no"):
        return False  # "…, don't restart postgres": an exclusion belongs to the request
    if any(a in ("not", "never") and b in ("want", "mean", "do", "wanna") for a, b in pairwise(words)) \
            and any(w in ("that", "it", "this") for w in words):
        return False  # "restart nginx on dev, I don't want that": it takes the request back
    if not before and any(start <= m.start < end and {Kind.env, Kind.vm} & set(m.names)
                          and not {Kind.stack, Kind.service} & set(m.names) for m in r.mentions):
        return False  # "…, want to check if prod has the same issue": another place is part of what is meant
    if _asks_in(r, start, end):
        return False  # (a verb after a modal is no request: "want to know if I can start a finetune")
    if words[0] in _REASON_LEADS or words[0] in _DROPPED_SUBJECT:
        return True
    if any(w in r.lex.value_nouns for w in words):
        return False  # "deploy chat to prod, the version QA signed off": it says which value, so it belongs
    # a subject and a modal state what someone can do ("curious if I can start a training run")
    said = any(a in _PRONOUNS and b in P.MODALS for a, b in pairwise(words))
    # a stating verb, an outcome ("migration done") or a past form ("new version just merged")
    return said or any(w in _STATING or w in P.OUTCOME_WORDS or (len(w) > 4 and w.endswith("ed"))
                       for w in words[1:]) or _says_of_subject(r, start, end)


def _says_of_subject(r: _Reading, start: int, end: int) -> bool:
    """'event starts in 10', 'the stream begins at 8': a subject and a verb of its own in the present (an
    -s form no command declares), with no command word in the clause."""
    k = start + (1 if r.low[start] in ("the", "our", "my", "this", "that") else 0)
    if k + 1 >= end or any(start <= h.start < end for h in r.hits) or r.lex.senses(r.low[k]):
        return False
    verb = r.low[k + 1]
    return _present_verb(verb) and not r.lex.senses(verb) and verb not in r.lex.past


def request_sentence(r: _Reading) -> tuple[int, int]:
    """The sentence that asks: the one with the first action verb, else the first command word; the
    others are context ("It's 3am and the agent on test lost its connection again. Restart it please.")."""
    if r._asking is not None:
        return r._asking
    found = sentences(r)
    if len(found) == 1 or not r.hits:
        return 0, len(r.words)
    # (a verb after someone's modal is no request: "…, want to know if I can start a finetune")
    asking = [h for h in r.hits if not _after_modal(r, h)] or r.hits
    verbs = [h for h in asking if h.asked]
    top = verbs[0] if verbs else max(asking, key=lambda h: (h.strength, -h.start))
    k = next((k for k, s in enumerate(found) if s[0] <= top.start < s[1]), None)
    if k is None:
        return 0, len(r.words)
    lo, hi = found[k]
    # a sentence that corrects the request belongs to it ("restart n8n on prod? no, dev"), and so does one
    # that adds to it ("restart nginx on dev. and redis too")
    named = {i for m in r.mentions for i in range(m.start, m.end)}
    for start, end in found[k + 1:]:
        opening = " ".join(r.low[start:start + 3])
        too = r.low[end - 1] == "too" or r.joined(end - 2, end) == "as well"
        adds = (r.low[start] in _ADDING and not _own_plan(r, start + 1, end)) or (too and all(
            i in named or r.low[i] in P.FUNCTION_WORDS or r.low[i] in P.FILLER for i in range(start, end)))
        if not adds and not any(opening == m or opening.startswith(m + " ") for m in _CORRECTING):
            break
        hi = end
    return lo, hi


def aside_words(r: _Reading) -> list[bool]:
    """Per word: whether it stands in a context sentence before the asking one, or in a later one that does
    not open with a time word of its own ("Restart it. After QA signs off." keeps its condition)."""
    lo, hi = request_sentence(r)
    out = [False] * len(r.words)
    for start, end in sentences(r):
        if (start, end) == (lo, hi) or lo <= start < hi:
            continue
        if start >= hi and r.low[start] in _CONDITION_LEADS:
            continue
        for k in range(start, end):
            out[k] = True
    return out



# what stands for a modal before "to" ("if I'm allowed to deploy" is "if I can deploy")
_MODAL_TO = frozenset({"allowed", "able", "permitted", "supposed", "meant", "authorized", "authorised"})


def _after_modal(r: _Reading, h: Hit) -> bool:
    """Whether a command word follows someone's modal ("I can start a finetune", "if I'm allowed to deploy";
    "can you" asks)."""
    if h.start > 2 and r.low[h.start - 1] == "to" and r.low[h.start - 2] in _MODAL_TO:
        return r.low[h.start - 3] in ("am", "is", "are", "be", "was", "were", "been")
    return h.start > 1 and r.low[h.start - 1] in P.MODALS and r.low[h.start - 2] not in ("you", "please")


def clause_of(r: _Reading, i: int) -> tuple[int, int]:
    """The word range of the clause around word i (between boundaries and joining words)."""
    lo = i
    while lo > 0 and not r.words[lo - 1].boundary and r.low[lo - 1] not in P.CLAUSE_JOINERS:
        lo -= 1
    hi = i
    while hi < len(r.words) and not r.words[hi].boundary and (
            hi == i or r.low[hi] not in P.CLAUSE_JOINERS):
        hi += 1
    return lo, min(hi + 1, len(r.words))


def context_names(r: _Reading) -> None:
    """Names in a context sentence are no targets when the asking sentence names its own: "Is the agent
    stack fine on test? Portainer shows it greyed out." (When it names none, "restart it" refers to them.)"""
    lo, hi = r._asking = request_sentence(r)  # read once, before government changes the hits
    if (lo, hi) == (0, len(r.words)):
        return
    # weaker command words of a context sentence are context too ("users say it's slow")
    r.hits = [h for h in r.hits if lo <= h.start < hi or (
        h.asked and not _after_modal(r, h))]
    if any(lo <= m.start < hi for m in r.mentions):
        # "… Chat on test shows a 502. Can you kick the proxy there?": "there" is the context's place
        place = "there" in r.low[lo:hi] and not any(
            lo <= m.start < hi and {Kind.env, Kind.vm} & set(m.names) for m in r.mentions)
        # "vllm is wedged again, restart it on phoenix": "it" is the context's thing, when the asking
        # sentence names a place but no thing
        things = {Kind.service, Kind.stack}
        thing = any(w in ("it", "them") for w in r.low[lo:hi]) and not any(
            lo <= m.start < hi and things & set(m.names) for m in r.mentions)
        r.mentions = [m for m in r.mentions if lo <= m.start < hi or (
            place and Kind.env in m.names) or (thing and things & set(m.names) and Kind.env not in m.names)]


def asked_values(r: _Reading) -> None:
    """'paperless on dev ate the disk last night; show me its logs since yesterday': of several values
    of one kind, the asking sentence's."""
    lo, hi = request_sentence(r)
    for key, found in r.all_values.items():
        if len(found) > 1 and not lo <= r.value_at[key] < hi:
            mine = next(((i, v) for i, v in found if lo <= i < hi), None)
            if mine is not None:
                r.value_at[key], r.values[key] = mine


def names_in_target_slots(r: _Reading) -> None:
    """'restart nginx on the backup server': a command word between a target preposition and a kind noun
    is a name (here an unknown one), not a request."""
    def in_slot(start: int, determined: bool = False) -> bool:
        k = start - 1
        while k >= 0 and r.low[k] in ("the", "a", "an", "our", "my", "that", "this"):
            k -= 1
        if determined and k < start - 1:
            return True  # "restore the backup vm to golden": a word between an article and a kind noun
        return k >= 0 and r.low[k] in P.TARGET_PREPOSITIONS and not r.words[k].boundary

    for hit in list(r.hits):
        if hit.end >= len(r.low) or r.low[hit.end] not in P.KIND_NOUNS or hit.format_args \
                or r.words[hit.end - 1].boundary:
            continue
        if in_slot(hit.start, determined=True):
            r.hits.remove(hit)
            for i in range(hit.start, hit.end):
                r.used[i] = False
                r.slot_names.add(i)
    # "stop grafana on the monitoring server": a name of another kind before a kind noun names
    # something of the noun's kind (an unknown server), not the stack
    for m in list(r.mentions):
        kind = P.KIND_NOUNS.get(r.low[m.end]) if m.end < len(r.low) and not r.words[m.end - 1].boundary else None
        if kind is not None and Kind(kind) not in m.names and in_slot(m.start) and not (
                Kind(kind) is Kind.env and Kind.vm in m.names):
            r.mentions.remove(m)
            for i in range(m.start, m.end):
                r.used[i] = False


def kind_nouns(r: _Reading) -> None:
    """'the grafana stack', 'the dev environment', 'the chat service': a kind noun after a name says which
    kind of thing it names; a service called a stack is its stack."""
    for m in r.mentions:
        kind = P.KIND_NOUNS.get(r.low[m.end]) if m.end < len(r.low) and not r.words[m.end - 1].boundary else None
        if kind is None:
            continue
        k = Kind(kind)
        if k in m.names and len(m.names) > 1:
            m.names = {k: m.names[k]}
        elif k is Kind.stack and Kind.service in m.names:
            stack = r.r.stack_for(m.names[Kind.service])
            if stack:
                m.names = {Kind.stack: stack}


def time_references(r: _Reading) -> None:
    """'checkpoint the prod vm before the postgres migration': a name inside a phrase of time, before
    the noun it describes, is part of a reference to something else, not a target."""
    for m in list(r.mentions):
        k = m.start - 1
        while k >= 0 and r.low[k] in ("the", "a", "an", "our", "my", "this", "that"):
            k -= 1
        after = r.low[m.end] if m.end < len(r.low) else ""
        timed = k >= 0 and (r.low[k] in TIME_BEFORE or r.joined(k - 1, k + 1) in ("ahead of", "prior to"))
        if timed and after and after not in P.FUNCTION_WORDS \
                and after not in P.KIND_NOUNS and not r.words[m.end - 1].boundary \
                and any(h.start < k for h in r.hits):
            r.mentions.remove(m)


def purpose_clauses(r: _Reading) -> None:
    """'redeploy chat on test to fix the login bug', 'deploy chat to dev, QA wants to play with it': "to"
    and a verb with more words after it say why; the clause is neither a value ("fix", "play" are no ref)
    nor a request ("clear" is not asked for).  A single word after "to" may still be a value ("to main"),
    and so may a word that a target phrase follows ("to main on prod"), unless a verb of wanting leads
    to it ("QA wants to test")."""
    verbs = [h for h in r.hits if h.asked]
    if not verbs:
        return
    n = len(r.low)
    for i in range(verbs[0].end, n - 1):
        wanting = i > 0 and r.low[i - 1] in P.INFINITIVE_LEADS
        verb_name = next((m for m in r.mentions if m.start == i + 1 and m.end == i + 2), None) if wanting else None
        if verb_name is not None and r.low[i] == "to" and r.free(i) and not r.words[i].boundary:
            # "I need to test the migration": after a verb of wanting, a name is a verb ("test"), no target
            r.mentions.remove(verb_name)
            r.used[i + 1] = False
        if r.low[i] != "to" or not r.free(i) or not r.free(i + 1) or r.words[i].boundary \
                or r.low[i + 1] in P.FUNCTION_WORDS or r.low[i + 1] in P.DETERMINERS or identifier(r.low[i + 1]) \
                or r.low[i + 1] in P.NOT_VALUES:  # ("to whatever was there on friday" is no purpose)
            continue
        if i + 2 < n and identifier(r.low[i + 2]) and any(
                r.low[i + 1] in a.cues for h in verbs for c in h.commands for a in r.lex.specs[c].args):
            continue  # "update llm on the gpu box to tag vllm-0.6.3": a value's cue and its value, no purpose
        if not wanting and (r.words[i + 1].boundary or i + 2 >= n or target_phrase_at(r, i + 2)
                            or r.low[i + 2] in _AFTER_VALUE or (r.used[i + 2] and not any(
                                h.start <= i + 2 < h.end for h in r.hits))):
            continue
        end = r._clause_of(i)[1]
        if any(m.start >= i and m.start < end for m in r.mentions):
            continue  # a name in it: read as usual
        r.take(i, end)
        r._drop_hits_in(i, end)
        r.purpose = (i, end)  # (a value-shaped word in it is asked about: "to pick up v2.1")
        return


def so_clauses(r: _Reading) -> None:
    """'redeploy monitoring on dev so grafana picks up the dcgm dashboards': "so (that)" and a clause with a
    subject and a verb of its own after the request say what it is for; the names in it are no targets."""
    verbs = [h for h in r.hits if h.asked]
    if not verbs:
        return
    n = len(r.low)
    for i in range(verbs[0].end, n - 2):
        if r.low[i] != "so" or not r.free(i) or r.words[i].boundary:
            continue
        k = i + 2 if r.low[i + 1] == "that" else i + 1
        finite = next((j for j in range(k + 1, min(k + 4, n)) if _present_verb(r.low[j]) or r.low[j] in P.MODALS),
                      None)
        if finite is None or any(k <= h.start < finite for h in r.hits):
            continue
        end = r._clause_of(i)[1]
        r.take(i, end)
        r._drop_hits_in(i, end)
        r.mentions = [m for m in r.mentions if not i <= m.start < end]
        return


def _present_verb(w: str) -> bool:
    """An -s form of a verb ("picks", "gets", "loads"), not a plural we know nothing of ("its", "this")."""
    return len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")) and w.isalpha() \
        and w not in P.FUNCTION_WORDS


def target_phrase_at(r: _Reading, k: int) -> bool:
    """Whether a target phrase starts at word k ("on prod", "in the dev environment")."""
    if k >= len(r.low) or r.low[k] not in P.TARGET_PREPOSITIONS:
        return False
    k += 1
    while k < len(r.low) and r.low[k] in ("the", "a", "an", "our", "my"):
        k += 1
    return any(m.start == k for m in r.mentions)


def pronoun_objects(r: _Reading) -> None:
    """'the data deploy on staging broke the migrations, please reverse it': a verb whose object is a
    pronoun governs the command noun the pronoun stands for (the nearest one before it)."""
    for i in range(1, len(r.low)):
        if r.low[i] not in ("it", "that", "this", "them", "those") or not r.free(i):
            continue
        found = r._verb_ending_at(i - 1)
        if found is None:
            continue
        verb, start = found
        own = next((h for h in r.hits if h.start == start and h.end == i), None)
        if not all(r.free(k) for k in range(start, i)) and own is None:
            continue
        before = [h for h in r.hits if h.end <= start and (h.is_noun or h.strength is Strength.noun)]
        if not before:
            continue
        antecedent = before[-1]
        governed = [c for o in antecedent.commands for c in r.lex.governs(verb, o) if r._needs_met(c)]
        if not governed:
            continue
        r.hits.remove(antecedent)
        if own is not None:
            r.hits.remove(own)
        r.hits.append(Hit([Sense(c, Strength.verb) for c in dict.fromkeys(governed)], start, i))
        r.take(start, i + 1)
        r.hits.sort(key=lambda h: h.start)


def free_text_tail(r: _Reading) -> None:
    """The words after a request for a command with a free-text argument are that text, as in the
    canonical form: "decline r-5a5a5a5a, needs a snapshot first", "deny r-1a2b3c4d not during the demo".
    Not when they start another request or target ("lock prod and live", "…, then deploy chat"), hold
    another command's verb, a name the command takes, or words that change the request itself (a
    retraction, a condition, a time): those are read as usual.  The text is set aside, so no later
    stage reads a request, a negation or a name into it."""
    verbs = [h for h in r.hits if h.asked]
    if not verbs or r.joined(0, verbs[0].start) not in ("", "i am", "we are", "i", "we"):
        return  # (the verb first, or said in the first person: "I'm denying r-… because …")
    head = verbs[0]
    # (only where the canonical form also takes the rest of the line: a positional free-text argument)
    cmds = [c for c in head.commands if any(a.kind is Kind.text and a.positional
                                            for a in r.lex.specs[c].args)]
    if not cmds:
        return
    kinds = {a.kind for c in cmds for a in r.lex.specs[c].args if a.kind.is_entity}
    k = head.end
    # the request id in the verb's own clause belongs to it ("retract my request r-1a2b3c4d, …")
    for i in range(head.end, len(r.low)):
        if REQUEST_ID.match(r.low[i]):
            k = max(k, i + 1)
            break
        if r.words[i].boundary:
            break
    while k < len(r.low) and not r.words[k - 1].boundary:
        m = next((m for m in r.mentions if m.start == k), None)
        if m is not None and kinds & set(m.names):
            k = m.end
        elif r.used[k] and not any(h.start <= k < h.end for h in r.hits):
            k += 1  # a value: a request id, a key=value
        elif r.low[k] in P.TARGET_PREPOSITIONS | {"the", "please"} and k + 1 < len(r.low):
            k += 1
        else:
            break
    while k < len(r.low) and r.low[k] in ("please", "thanks"):
        k += 1
    # as in the canonical form, the text comes after the required arguments ("deny REQUEST REASON")
    core = [m for m in r.mentions if m.end <= k]
    cmds = [c for c in cmds if all(
        ("request" in r.values) if a.kind is Kind.request else any(a.kind in m.names for m in core)
        for a in r.lex.specs[c].required if a.kind is Kind.request or a.kind.is_entity)]
    if not cmds:
        return
    tail = r.low[k:]
    text = f" {' '.join(tail)} "
    cues = sorted({c for cmd in cmds for a in r.lex.specs[cmd].args if a.kind is Kind.text for c in a.cues},
                  key=len, reverse=True)
    cue = next((c for c in cues if text.startswith(f" {c} ")), None)
    if not tail or (cue is None and (tail[0] in P.CLAUSE_JOINERS or tail[0] in ("&", "+", "plus", "also", "or"))):
        return  # ("because" is a cue before it joins clauses)
    if cue is None and tail[0] in ("is", "was", "are", "were") and not r.words[k - 1].boundary:
        return  # "lock prod is what I'd do": the request is the subject of a sentence, no text of its own
    if any(f" {p} " in text for p in (*P.CANCEL_PHRASES, *P.TAKE_BACK, *P.APOLOGIES)):
        return
    start = k
    if cue is not None:
        # "because prod is frozen": everything after the cue is the reason, names and verbs included
        start = k if cue in CONJUNCTION_CUES else k + cue.count(" ") + 1
        if start < len(r.low) and r.low[start] in ("to", "is", "of", "with"):
            start += 1
    elif changes_request(r, tail, k, cmds, kinds):
        return
    said = r.verbatim(start).strip(" ,;:-—")
    if len(said) >= 2 and said[0] in "\"'“«‘" and said[-1] in "\"'”»’":
        said = said[1:-1].strip()
    said = polite_trim(said)
    if not said:
        return
    r.free_text = said
    r.words, r.low, r.used = r.words[:k], r.low[:k], r.used[:k]
    if r._asking is not None:
        r._asking = (min(r._asking[0], k), min(r._asking[1], k))
    r.hits = [h for h in r.hits if h.end <= k]
    r.mentions = [m for m in r.mentions if m.end <= k]
    r.phrase_words = {i for i in r.phrase_words if i < k}


# auxiliaries that, negated before a verb with its own subject, state what a thing does not do
_SYMPTOM_AUX = frozenset({"will", "would", "does", "do", "did", "can", "could"})
# subjects that make a negated verb the speaker's or the bot's, not a thing's
_AGENTS = frozenset({"i", "we", "you", "u", "ya", "please", "pls", "plz", "just", "let", "us", "and", "then", "so",
                     "but", "or", "also", "now"})


def _things_subject(r: _Reading, k: int) -> bool:
    """Whether word k, before a negated auxiliary, is a thing's subject (not the speaker, the bot, a joining
    word or the start of a condition, and in the same clause)."""
    return r.low[k] not in _AGENTS and not r.words[k].boundary and r.low[k] not in _CONDITION_LEADS


def symptoms(r: _Reading) -> None:
    """'my job won't start', 'nginx doesn't restart cleanly': a thing named as the subject of a negated verb
    of ours is a symptom said about it, not a request and not a refusal of one; its verb asks nothing
    (the message may ask elsewhere: "is anything hogging the GPU memory? my job won't start")."""
    for h in [h for h in r.hits if h.strength >= Strength.noun and h.start >= 3]:
        i = h.start
        if r.low[i - 1] != "not" or r.low[i - 2] not in _SYMPTOM_AUX or r.words[i - 2].boundary:
            continue
        if not _things_subject(r, i - 3):
            continue
        r._drop_hits_in(i, h.end)
        r.take(i - 2, h.end)  # (its "not" negates no request: "nginx won't start on dev, show me its logs")
    first = min((h.start for h in r.hits), default=0)
    for i in range(2, first):
        # "my notebook can't get any GPU memory, what's hogging it?": a thing's negated verb of no command
        # (before the request; after it, negated_remarks reads the comment)
        if r.low[i] == "not" and r.low[i - 1] in _SYMPTOM_AUX and r.free(i) and not r.words[i - 1].boundary \
                and _things_subject(r, i - 2) and r.low[i + 1].isalpha() and not r.lex.senses(r.low[i + 1]) \
                and not any(h.start == i + 1 for h in r.hits):
            r.take(i - 1, i + 1)


_BEFORE_STATE = frozenset({"is", "are", "was", "were", "still", "currently", "now", "already", "in", "not", "yet"})


def states_of_things(r: _Reading) -> None:
    """'snapshot still running', 'the deploy is in progress': a command word followed by what that thing
    is doing is the subject of a state (the copula often dropped), not a request for the command."""
    for h in [h for h in r.hits if all(r.lex.specs[c].changes for c in h.commands)]:
        k = h.end  # (a read's noun and a state ask about it: "which vms are running")
        while k < len(r.low) and r.low[k] in _BEFORE_STATE and not r.words[k - 1].boundary:
            k += 1
        # (with a word between, or a state no verb takes as its object: "snapshot running")
        led = k > h.end or (k < len(r.low) and r.low[k] in P.THINGS_STATE_ALONE)
        if led and k < len(r.low) and r.low[k] in P.THINGS_STATE and not r.words[k - 1].boundary \
                and not any(m.start == h.end for m in r.mentions):
            r._drop_hits_in(h.start, h.end)
            r.take(h.start, k + 1)


def negated_remarks(r: _Reading) -> None:
    """'give the proxy on prod a restart, it isn't picking up the new cert': a later clause in which a subject
    of its own comes before a negated verb states a fact, the request's reason; it neither negates the
    request nor asks for anything ("…, the old build doesn't start" asks for no start).  A negation without
    a subject is one ("…, don't restart postgres"), and so is one of the speaker's own ("…, I don't want
    that")."""
    verbs = [h for h in r.hits if h.strength >= Strength.noun]  # (a noun too: "give the proxy a restart, …")
    if not verbs:
        return
    i = verbs[0].end
    while i < len(r.low):
        if r.low[i] not in ("not", "never") or not r.free(i):
            i += 1
            continue
        lo = max((k + 1 for k in range(verbs[0].end - 1, i) if r.words[k].boundary), default=None)
        aux = i - 1 if r.low[i - 1] in P.AUXILIARIES else i
        if lo is None or (r.low[i] == "not" and aux == i):
            i += 1
            continue
        subject = [w for w in r.low[lo:aux] if w not in P.CLAUSE_JOINERS and w not in ("just", "please", "also")]
        own = any(w in ("i", "we", "let", "us", "you") for w in subject)
        if not subject or own or any(w in P.NEGATIONS or w in P.AUXILIARIES for w in subject) \
                or any(lo <= h.start < aux and h.asked for h in r.hits):
            i += 1
            continue
        end = r._clause_of(i)[1]
        r.take(lo, end)
        r._drop_hits_in(lo, end)
        r.mentions = [m for m in r.mentions if not lo <= m.start < end]
        i = end


def changes_request(r: _Reading, tail: list[str], k: int, cmds: list[str], kinds: set[Kind]) -> bool:
    """Whether words after a request (from word k) are more than a reason: a condition, a time, another
    command's verb, another name the command takes."""
    return any(f" {p} " in f" {' '.join(tail)} " for p in P.CONDITIONALS) or any(
        REQUEST_ID.match(w) for w in tail) or any(
        w in P.SCHEDULE_WORDS and not (i > 0 and tail[i - 1] in P.DETERMINERS) for i, w in enumerate(tail)
    ) or any(h.start >= k and h.asked and not set(h.commands) & set(cmds)
             for h in r.hits) or any(m.start >= k and kinds & set(m.names) for m in r.mentions)


def _ends_aside(r: _Reading, i: int) -> bool:
    """Whether the apology at word i ends a clause of its own that says something else after a read
    ("what envs do we have? still learning the setup here, sorry"): it excuses that, takes nothing back."""
    # (the clause must follow a full stop or a question: "restart nginx on dev, sorry" may take it back)
    start = next((k + 1 for k in range(i - 1, -1, -1)
                  if r.words[k].boundary and any(c in r.tokens[r.words[k].tok].trail for c in ".?!;")), 0)
    words = range(start, i)
    if start == 0 or any(r.lex.specs[c].changes for h in r.hits for c in h.commands):
        return False  # (after a change it stays a retraction: "restart nginx. it was a typo, sorry")
    return len(words) >= 2 and not any(h.start in words for h in r.hits) \
        and not any(m.start in words for m in r.mentions)


def taken_back(r: _Reading, first: int) -> str | None:
    """A retraction after the request ("— sorry, wrong channel", "... nah"): an apology or a dismissal
    that no name follows (a name after it corrects the request instead: "… sorry, dev").  An apology that
    says what for is politeness ("…, sorry for the wait"), and so is one that ends a decision on someone's
    request (Phrasing.performative: "deny r-…, sorry")."""
    rest = f" {r.joined(first + 1)} "
    found = [(p, n) for p, n in _RETRACTIONS if f" {p} " in rest]
    decision = bool(r.hits) and "request" in r.values and all(
        c in r.lex.performative for h in r.hits if h.strength is Strength.verb for c in h.commands)
    for i in range(first + 1, len(r.low)) if found else ():
        for phrase, n in found:
            if r.joined(i, i + n) != phrase:
                continue
            if phrase in P.APOLOGIES and (
                    (i + n < len(r.low) and r.low[i + n] in ("for", "to", "about", "if"))
                    # ("… restore rumpledev to clean-base? sorry, my fault": owning the trouble, no retraction)
                    or r.joined(i + n, i + n + 2) in ("my fault", "our fault", "my doing")
                    or (decision and i + n == len(r.low) and phrase == "sorry") or _ends_aside(r, i)):
                continue
            # an apology takes the request back in a clause of its own ("…, my bad", "… — sorry"), and
            # only when no name follows it ("… sorry, dev" corrects)
            own_clause = r.words[i - 1].boundary or r.low[i - 1] in P.DASHES or r.low[i - 1] == "..."
            if phrase in P.TAKE_BACK or (own_clause and not any(m.start >= i + n for m in r.mentions)):
                return r.verbatim(i, i + n).strip(" ,;:.!?—-…")
    return None
