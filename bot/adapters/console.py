"""The console adapter: chat with the engine in a terminal (and `chatops run`)."""

from __future__ import annotations

import getpass
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.engine import Engine
from bot.render.text import render, render_progress
from bot.request import Actor, Reply, Request, Tone

CHANNEL = "console"


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "operator"


def _confirm_button(reply: Reply) -> str | None:
    return next((b.request_id for b in reply.buttons if b.action == "confirm"), None)


async def run_once(engine: Engine, actor: Actor, text: str, yes: bool = False,
                   out: Callable[[str], None] = print) -> Reply:
    """One request; with `yes` the confirmation is given, never an approval."""

    async def progress(r: Reply) -> None:
        out(render_progress(r))

    req = Request(actor=actor, text=text, platform="console", channel=CHANNEL, confirmed=yes,
                  on_progress=progress)
    reply = await engine.handle(req)
    out(render(reply))
    return reply


def exit_code(reply: Reply) -> int:
    """0 done or waiting for approval; 1 failed or refused; 2 not understood or needs an answer."""
    if reply.tone is Tone.error:
        return 1
    if reply.tone is Tone.question:
        return 2
    return 0


async def interactive(engine: Engine, actor: Actor, history: Path | None = None) -> None:
    """A REPL with history; `/as USER` switches identity to try approvals by someone else."""
    read = _reader(history)
    # One session is one conversation: follow-ups ("restart it") and answers refer to it.
    thread = f"console-{uuid.uuid4().hex[:12]}"
    print(f"chatops console as {actor.id}. 'help' lists commands; '/as USER' switches user; "
          "Ctrl-D quits.")
    while True:
        try:
            line = (await read(f"{actor.id}> ")).strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if not line:
            continue
        if line.startswith("/as "):
            actor = Actor.parse(line[4:].strip())
            print(f"now acting as {actor.id}")
            continue
        if line in ("/quit", "/exit"):
            return

        async def progress(r: Reply) -> None:
            print(render_progress(r))

        reply = await engine.handle(Request(actor=actor, text=line, platform="console",
                                            channel=CHANNEL, thread=thread, on_progress=progress))
        print(render(reply))
        rid = _confirm_button(reply)
        if rid:
            answer = (await read("Run it? [y/N] ")).strip().lower()
            action = "confirm" if answer in ("y", "yes") else "cancel"
            print(render(await engine.act(action, rid, actor,
                                          req=Request(actor=actor, text=line, platform="console",
                                                      channel=CHANNEL, thread=thread,
                                                      on_progress=progress))))


def _reader(history: Path | None) -> Callable[[str], Awaitable[str]]:
    if sys.stdin.isatty():
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        session: PromptSession[str] = PromptSession(
            history=FileHistory(str(history)) if history else InMemoryHistory())
        return session.prompt_async

    async def plain(prompt: str) -> str:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line

    return plain
