"""The console adapter: chat with the engine in a terminal (and `chatops run`).

In a terminal the prompt never goes away: each request runs as a task, its progress is
printed above the prompt, and the next line can be typed meanwhile.  A changing command
is confirmed one way only, at the prompt ("Run it? [y/N]"); any other line typed there
declines it and is then run as typed, so nothing typed is lost.  Ctrl-C stops what this
console is running (recorded in the audit log as interrupted, with who stopped it).
Without a terminal (stdin a pipe) the same happens one request at a time.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import shutil
import sys
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.engine import Engine
from bot.render.text import progress_line, render
from bot.request import Actor, Attachment, Button, Reply, Request, Tone
from bot.state import LocalState
from infra.config import CONSOLE_CHANNEL
from infra.wording import counted

CHANNEL = CONSOLE_CHANNEL
YES = ("y", "yes")
NO = ("", "n", "no")


def default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "operator"


def _confirm_button(reply: Reply) -> Button | None:
    return next((b for b in reply.buttons if b.action == "confirm"), None)


@dataclass(frozen=True)
class Waiting:
    """A card that waits at the prompt for y/N: its request, who asked, what they typed, and the
    verb its button says ("Run", "Schedule"), which the prompt asks with."""

    request_id: str
    requester: Actor
    text: str
    verb: str


@dataclass
class Screen:
    """Where replies go, and how wide and colourful they may be (decided per print: resizes count)."""

    tty: bool = field(default_factory=lambda: sys.stdout.isatty())
    write: Callable[[str], None] = print
    state: LocalState | None = None

    @property
    def width(self) -> int | None:
        return shutil.get_terminal_size((80, 24)).columns if self.tty else None

    @property
    def color(self) -> bool:
        return self.tty and not os.environ.get("NO_COLOR")

    def reply(self, reply: Reply, *, buttons: bool = True) -> None:
        saved = self.save_attachments(reply)
        self.write(render(reply, self.width, self.color, buttons=buttons, saved=saved))

    def progress(self, reply: Reply) -> None:
        self.write(progress_line(reply, self.width, self.color))

    def say(self, text: str) -> None:
        """A line of the console's own, wrapped like a reply."""
        self.write(progress_line(Reply(text), self.width, False))

    def save_attachments(self, reply: Reply) -> dict[str, str]:
        """Write each attachment under the state folder; file name → path, or why it could not be."""
        out: dict[str, str] = {}
        for a in reply.attachments:
            out[a.filename] = save_attachment(self.state, a, reply.request_id)
        return out


def save_attachment(state: LocalState | None, a: Attachment, request_id: str | None) -> str:
    folder = state.attachments() if state else None
    if folder is None:
        return "not saved: no writable folder (set CHATOPS_STATE_DIR to one)"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(a.filename).name).lstrip(".") or "attachment"
    target = folder / f"{request_id or uuid.uuid4().hex[:8]}-{name}"
    try:
        target.write_bytes(a.content)
    except OSError as exc:
        return f"not saved: {target}: {exc.strerror or exc}"
    return f"saved to {target}"


async def run_once(engine: Engine, actor: Actor, text: str, yes: bool = False,
                   out: Callable[[str], None] = print, state: LocalState | None = None) -> Reply:
    """One request; with `yes` the confirmation is given, never an approval."""
    screen = Screen(write=out, state=state)

    async def progress(r: Reply) -> None:
        screen.progress(r)

    req = Request(actor=actor, text=text, platform="console", channel=CHANNEL, confirmed=yes,
                  on_progress=progress)
    reply = await engine.handle(req)
    confirm = _confirm_button(reply)
    screen.reply(reply, buttons=confirm is None)
    if confirm:
        out(f"Not run: repeat the command with --yes to confirm it (request {confirm.request_id} "
            "lapses unconfirmed).")
    return reply


def exit_code(reply: Reply) -> int:
    """0 done or waiting for approval; 1 failed or refused; 2 not understood or needs an answer."""
    if reply.tone is Tone.error:
        return 1
    if reply.tone is Tone.question:
        return 2
    return 0


Reader = Callable[[], Awaitable[str]]


class ConsoleSession:
    """One person's console conversation: requests in flight, confirmations waiting, who is speaking."""

    def __init__(self, engine: Engine, actor: Actor, screen: Screen, *, concurrent: bool) -> None:
        self.engine = engine
        self.actor = actor
        self.screen = screen
        self.concurrent = concurrent
        # One session is one conversation: follow-ups ("restart it") and answers refer to it.
        self.thread = f"console-{uuid.uuid4().hex[:12]}"
        self.tasks: dict[asyncio.Task[None], str] = {}  # in flight → its correlation id
        self.confirming: deque[Waiting] = deque()
        self.changed: Callable[[], None] = lambda: None  # redraw the prompt

    # -- what the prompt says ---------------------------------------------
    def prompt(self) -> str:
        if self.confirming:
            card = self.confirming[0]
            mine = "" if card.requester == self.actor else f" (as {card.requester.id})"
            return f"{card.verb} {card.request_id}{mine}? [y/N] "
        return f"{self.actor.id}> "

    # -- one typed line ----------------------------------------------------
    async def line(self, raw: str) -> bool:
        """Handle one typed line; False when the person asked to leave."""
        line = raw.strip()
        if self.confirming:
            card = self.confirming.popleft()
            rid, who, text = card.request_id, card.requester, card.text
            self.changed()
            answer = line.lower()
            if answer in YES:
                await self._start(self._act("confirm", rid, who, text), ref=rid)
                return True
            await self._act("cancel", rid, who, text)(uuid.uuid4().hex[:12])
            if answer in NO:
                return True
            # Anything else is a new request: the card was declined, the line is not lost.
        if not line:
            return True
        if line in ("/quit", "/exit"):
            return False
        if line.startswith("/as"):
            name = line[3:].strip()
            if not name:
                self.screen.write(f"you are {self.actor.id}; '/as USER' speaks as someone else")
                return True
            self.actor = Actor.parse(name)
            self.screen.write(f"now acting as {self.actor.id}")
            self.changed()
            return True
        await self._start(self._ask(line, self.actor))
        return True

    def interrupt(self) -> bool:
        """Ctrl-C: decline a waiting confirmation, else stop what runs. False when nothing was there."""
        if self.confirming:
            card = self.confirming.popleft()
            rid, who, text = card.request_id, card.requester, card.text
            self.changed()
            self._spawn(self._act("cancel", rid, who, text), rid)
            return True
        running = [(t, ref) for t, ref in self.tasks.items() if not t.done()]
        for task, ref in running:
            rids = self.engine.jobs.running_for(ref)
            if not rids:
                task.cancel()  # not a job yet (still planning): nothing ran, nothing to record
            for rid in rids:
                self._spawn(self._cancel(rid), f"cancel-{rid}")
        if running:
            self.screen.write(f"stopping {counted(len(running), 'running request')}…")
        return bool(running)

    def _cancel(self, rid: str) -> Callable[[str], Awaitable[None]]:
        async def work(_ref: str) -> None:
            # The running request's own reply says it was interrupted; this one only speaks on refusal.
            decision = await self.engine.cancel(rid, self.actor, "Ctrl-C in the console")
            if not decision.applied:
                self.screen.reply(decision.reply)
        return work

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    # -- requests ------------------------------------------------------------
    async def _start(self, work: Callable[[str], Awaitable[None]], ref: str | None = None) -> None:
        task = self._spawn(work, ref)
        if not self.concurrent:
            await asyncio.gather(task, return_exceptions=True)

    def _spawn(self, work: Callable[[str], Awaitable[None]], ref: str | None = None) -> asyncio.Task[None]:
        """Run `work` as a task; `ref` is what Ctrl-C cancels it by (default: its correlation id)."""
        correlation = uuid.uuid4().hex[:12]
        task = asyncio.ensure_future(self._guarded(work, correlation))
        self.tasks[task] = ref or correlation
        task.add_done_callback(lambda t: self.tasks.pop(t, None))
        return task

    async def _guarded(self, work: Callable[[str], Awaitable[None]], ref: str) -> None:
        try:
            await work(ref)
        except asyncio.CancelledError:
            self.screen.write("stopped; 'audit limit=5' shows what was recorded.")
        except Exception as exc:  # the engine answers errors itself; this is the console's own slip
            self.screen.write(f"✘ the console could not show that reply ({type(exc).__name__}: {exc})")

    async def _progress(self, r: Reply) -> None:
        self.screen.progress(r)

    def _request(self, text: str, actor: Actor, ref: str) -> Request:
        return Request(actor=actor, text=text, platform="console", channel=CHANNEL, thread=self.thread,
                       correlation_id=ref, on_progress=self._progress)

    def _ask(self, text: str, actor: Actor) -> Callable[[str], Awaitable[None]]:
        async def work(ref: str) -> None:
            reply = await self.engine.handle(self._request(text, actor, ref))
            confirm = _confirm_button(reply)
            self.screen.reply(reply, buttons=False)
            if confirm:  # asked as its button says it ("Run it", "Schedule it"): "Schedule r-…? [y/N]"
                self.confirming.append(Waiting(confirm.request_id, actor, text, confirm.label.removesuffix(" it")))
                self.changed()

        return work

    def _act(self, action: str, rid: str, actor: Actor, text: str) -> Callable[[str], Awaitable[None]]:
        async def work(ref: str) -> None:
            # The run keeps the request's own correlation id; Ctrl-C finds it by the request id.
            reply = await self.engine.act(action, rid, actor, req=self._request(text, actor, ref))
            self.screen.reply(reply, buttons=False)

        return work


async def interactive(engine: Engine, actor: Actor, state: LocalState | None = None,
                      intro: list[str] | None = None, *, schedules: bool = False) -> None:
    """The console REPL; `/as USER` switches identity to try approvals by someone else. `schedules`: this
    console is the only bot on its database (the embedded SQLite file), so it runs what is due, as
    `chatops serve` does, and says so as each run ends."""
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    screen = Screen(tty=sys.stdout.isatty(), state=state)
    session = ConsoleSession(engine, actor, screen, concurrent=tty)
    screen.say(f"chatops console as {actor.id}. 'help' lists commands; '/as USER' switches user; "
               + ("Ctrl-C stops what runs; Ctrl-D quits." if tty else "end of input quits."))
    for line in intro or []:
        screen.say(line)
    stop = asyncio.Event()
    ticking = asyncio.create_task(run_schedules(engine, screen, stop)) if schedules else None
    try:
        if tty:
            await _terminal_loop(session, state)
        else:
            await _plain_loop(session)
    finally:
        stop.set()
        if ticking is not None:
            await ticking


async def run_schedules(engine: Engine, screen: Screen, stop: asyncio.Event) -> None:
    """What is due, as `chatops serve` runs it (bot.scheduling.Scheduler), until `stop`; one line per run."""
    from bot.scheduling import Scheduler

    await Scheduler(engine).run(stop, lambda sid, status: screen.say(
        f"⏰ Schedule {sid} ran: {status}. 'schedules' and 'audit' show it."))


async def _plain_loop(session: ConsoleSession) -> None:
    while True:
        prompt = session.prompt()
        sys.stdout.write(prompt)
        sys.stdout.flush()
        raw = await asyncio.to_thread(sys.stdin.readline)
        if not raw:
            session.screen.write("")
            if session.confirming:
                await session.line("n")
            await session.drain()
            return
        if not await session.line(raw):
            await session.drain()
            return


async def _terminal_loop(session: ConsoleSession, state: LocalState | None) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    history, note = (state.history() if state else (None, None))
    if note:
        session.screen.say(note)
    prompt: PromptSession[str] = PromptSession(history=history)

    def redraw() -> None:
        app: Any = prompt.app
        if app.is_running:
            app.invalidate()

    session.changed = redraw
    leaving = False
    with patch_stdout(raw=True):
        while True:
            try:
                raw = await prompt.prompt_async(session.prompt)
            except KeyboardInterrupt:
                session.interrupt()
                continue
            except EOFError:
                running = [r for t, r in session.tasks.items() if not t.done()]
                if running and not leaving:
                    leaving = True
                    session.screen.write(f"{counted(len(running), 'request')} still running: Ctrl-C stops them, "
                                         "Ctrl-D again leaves and stops them.")
                    continue
                session.interrupt()
                await session.drain()
                return
            leaving = False
            if not await session.line(raw):
                await session.drain()
                return
