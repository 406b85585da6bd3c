"""One tokenizer for both routes: the canonical grammar and plain language.

A token keeps where it came from: the span of its word in the original message (so free
text such as a deny reason is taken verbatim from the person's words, never re-joined),
the punctuation around it (clause boundaries), whether it stands inside quotes (someone
else's words), and its line (several requests over several lines).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

KV = re.compile(r"^([a-z][a-z_-]*)=(.*)$", re.I | re.S)
_CHUNK = re.compile(r"""[A-Za-z][\w-]*=(?:"[^"\n]*"|'[^'\n]*'|“[^”\n]*”|\S*)|\S+""")
_PLATFORM_MENTION = re.compile(r"^<[@#!][^>]*>$")
OPENING = "\"“«‘`„"
CLOSING = "\"”»’`“"
_EDGE = ",;!?()[]{}<>*_…" + OPENING + CLOSING
_TRAIL = _EDGE + ".:"
_EMOJI = frozenset({"So", "Sk", "Mn", "Cf"})  # symbols, skin tones, variation selectors, joiners


@dataclass(frozen=True)
class Token:
    raw: str  # the word as written, punctuation around it removed
    low: str
    start: int  # span of `raw` in the message
    end: int
    outer_start: int  # span of the whole chunk, punctuation included
    outer_end: int
    trail: str = ""  # punctuation right after the word (",", "?", ".", "»,")
    lead: str = ""  # punctuation right before it
    quoted: bool = False  # inside a pair of quotes
    line: int = 0
    kv: bool = False  # key=value

    @property
    def boundary(self) -> bool:
        """Whether a clause ends after this token (",", ";", ".", "?", "!", ":", an emoji)."""
        return any(c in ",;.?!:" or unicodedata.category(c) == "So" for c in self.trail)


def _kv_value(value: str) -> str:
    if len(value) >= 2 and value[0] in "\"'“" and value[-1] in "\"'”":
        return value[1:-1]
    return value


def tokenize(text: str) -> list[Token]:
    """Words of a message with their spans; platform mentions (<@U123>, a leading @bot) dropped."""
    out: list[Token] = []
    quoted = False
    line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
    for m in _CHUNK.finditer(text):
        chunk, s, e = m.group(0), m.start(), m.end()
        line = sum(1 for ls in line_starts if ls <= s) - 1
        if _PLATFORM_MENTION.match(chunk) or (not out and chunk.startswith("@") and len(chunk) > 1):
            continue
        kv = KV.match(chunk)
        if kv:
            raw = f"{kv.group(1)}={_kv_value(kv.group(2))}"
            out.append(Token(raw, raw.lower(), s, e, s, e, quoted=quoted, line=line, kv=True))
            continue
        left = 0
        while left < len(chunk) and (chunk[left] in _EDGE or (chunk[left] == "'" and left == 0)):
            left += 1
        right = len(chunk)
        while right > left and (chunk[right - 1] in _TRAIL or chunk[right - 1] == "'"):
            right -= 1
        lead, raw, trail = chunk[:left], chunk[left:right], chunk[right:]
        if raw and out and not quoted and all(unicodedata.category(c) in _EMOJI for c in raw) \
                and any(unicodedata.category(c) == "So" for c in raw):
            # an emoji standing alone ("chat to prod at 3 😬 roll it back") ends a clause, as a full stop would
            out[-1] = replace(out[-1], trail=out[-1].trail + chunk)
            continue
        opens = any(c in OPENING for c in lead) or (lead.startswith("'") and not quoted)
        closes = any(c in CLOSING for c in trail) or trail.startswith("'")
        if not raw:
            # punctuation standing alone ("« pas maintenant »,", "restart nginx , then …")
            if quoted and any(c in CLOSING for c in chunk):
                quoted = False
            elif any(c in OPENING for c in chunk):
                quoted = True
            if out and not quoted:
                out[-1] = replace(out[-1], trail=out[-1].trail + chunk)
            continue
        if opens:
            quoted = True
        out.append(Token(raw, raw.lower(), s + left, s + right, s, e, trail, lead, quoted, line))
        if closes and quoted:
            quoted = False
    return out


def rest_of(text: str, tokens: list[Token], i: int) -> str:
    """The person's own words from token i to the end, exactly as written (outer punctuation kept)."""
    if i >= len(tokens):
        return ""
    return text[tokens[i].outer_start:].strip()
