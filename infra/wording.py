"""Numbers in replies read as sentences: '1 request waits', '3 requests wait', never 'request(s)'."""

from __future__ import annotations


def plural(n: int, noun: str) -> str:
    """The noun as the count asks for it (every noun the replies count takes an 's')."""
    return noun if n == 1 else noun + "s"


def counted(n: int, noun: str) -> str:
    """'1 service', '3 services'."""
    return f"{n} {plural(n, noun)}"


def join_choices(names: list[str], word: str = "or") -> str:
    """'a, b or c' ('a, b and c' with word="and"); one name alone, nothing for none."""
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + f" {word} " + names[-1]


def agrees(n: int, singular: str, many: str) -> str:
    """The verb that goes with a count: agrees(1, 'waits', 'wait') is 'waits'."""
    return singular if n == 1 else many
