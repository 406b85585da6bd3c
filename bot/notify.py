"""Notifications: what the bot posts to an environment's ops channel, outside any conversation.

The engine says *what* happened (a change's outcome, an approval card, a freeze, a missed
schedule, an alert) and for which environments; this module finds each environment's
`notify` channels (per platform, filtered by event kind) and hands the reply to a `Poster`.
Posters are the platform side (bot/adapters/slack.py, bot/adapters/discord.py implement
one); the engine never imports a chat SDK.

Posting never delays or fails a request: announcements run as tracked background tasks,
and a platform error is logged, not raised.  `drain()` waits for them (tests, shutdown).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bot.request import Reply
from infra.config import Config, Notice

log = logging.getLogger("chatops.notify")


@runtime_checkable
class Poster(Protocol):
    """A chat platform's posting side: a new message in a channel, or an edit of one."""

    platform: str

    async def post(self, channel: str, reply: Reply) -> str | None:
        """Post `reply` in `channel` (the platform's bare channel id); return the message's id."""
        ...

    async def edit(self, channel: str, message: str, reply: Reply) -> None:
        """Replace the message `message` in `channel` with `reply`."""
        ...


@runtime_checkable
class ManagedPoster(Poster, Protocol):
    """A poster that needs setting up (a login) before use and closing after: `chatops serve` runs one
    per platform that has credentials, even when that platform's adapter does not run in the process."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Target:
    platform: str
    channel: str  # bare id on that platform

    @property
    def qualified(self) -> str:
        """The id as requests carry it (`slack:C0OPS`)."""
        return f"{self.platform}:{self.channel}"


@dataclass(frozen=True)
class Posted:
    target: Target
    message: str | None


class Notifications:
    """The registered posters and the configured ops channels."""

    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self.posters: dict[str, Poster] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def register(self, poster: Poster) -> None:
        self.posters[poster.platform] = poster

    def targets(self, envs: Iterable[str], kind: Notice) -> list[Target]:
        """The ops channels of `envs` that take `kind`, once each, on platforms with a poster."""
        inv = self._config().inventory
        out: list[Target] = []
        for env in sorted(set(envs)):
            cfg = inv.environments.get(env)
            if cfg is None or cfg.notify is None:
                continue
            for platform, target in cfg.notify.targets().items():
                t = Target(platform, target.channel)
                if kind in (target.events or []) and platform in self.posters and t not in out:
                    out.append(t)
        return out

    def announce(self, kind: Notice, envs: Iterable[str], reply: Reply, *, besides: str | None = None) -> None:
        """Post `reply` to the ops channels of `envs` in the background (not where it was asked: `besides`)."""
        targets = [t for t in self.targets(envs, kind) if t.qualified != besides]
        if targets:
            self.spawn(self.post_all(targets, reply))

    async def post_all(self, targets: list[Target], reply: Reply) -> list[Posted]:
        """Post to each target now; a platform error is logged and that target gets no message id."""
        out = []
        for t in targets:
            out.append(Posted(t, await self.post(t, reply)))
        return out

    async def post(self, target: Target, reply: Reply) -> str | None:
        poster = self.posters.get(target.platform)
        if poster is None:
            return None
        try:
            return await poster.post(target.channel, reply)
        except Exception as exc:  # a notification must never take a request down with it
            log.warning("could not post to %s: %s", target.qualified, exc)
            return None

    async def edit(self, target: Target, message: str, reply: Reply) -> bool:
        poster = self.posters.get(target.platform)
        if poster is None:
            return False
        try:
            await poster.edit(target.channel, message, reply)
            return True
        except Exception as exc:
            log.warning("could not edit %s in %s: %s", message, target.qualified, exc)
            return False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("notification failed", exc_info=task.exception())

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for announcements in flight."""
        while self._tasks:
            done, _ = await asyncio.wait(list(self._tasks), timeout=timeout)
            if not done:
                return
