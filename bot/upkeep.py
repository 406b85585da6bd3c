"""What a running bot does besides answering: link audit events, log the chain head, reload config.

- **Linking.** The audit store seals each event in the request's own transaction; linking it
  into the one chain (infra/db/chain.py) happens here, a moment later, in a short transaction
  of its own, so no request waits for another's.  Every write pokes the linker; a tick links
  what other processes left too.
- **The chain head in the log.** Every `head_every_s` (and at start and stop) the head
  `SEQ:LINK` goes to the log.  A head in the log is outside the database: `chatops audit
  verify --head SEQ:LINK` (or `--heads-from LOGFILE`) then shows any later truncation.
- **Live configuration.** The config file is read again when it changes (checked every
  `config_every_s`); a valid file replaces the configuration as a whole (`Engine.reload`), an
  invalid one is logged and reported by `health` while the last valid one stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.config import ConfigError, load_config
from infra.db.common import DatabaseUnavailable, utcnow

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger("chatops.upkeep")
HEAD_EVERY_S = 60.0
CONFIG_EVERY_S = 2.0
LINK_EVERY_S = 5.0
# Events per link transaction, and the pause between two: a chunk is about 4 ms of work on the 2-vCPU
# test machine, so linking keeps up with about 9,000 events (3,000 requests) a second while it never
# holds the database and the interpreter long enough to show in a request's time (docs/PERFORMANCE.md).
LINK_CHUNK = 128
LINK_PAUSE_S = 0.01
LINK_DELAY_S = 0.25  # let a burst of writes (a request starting) gather before one link transaction, off its path
EXPIRE_EVERY_S = 15.0  # how late at most a pending request is marked expired and announced


@dataclass
class ConfigState:
    """Which configuration is in force, and why a newer file was not taken (None: it was)."""

    path: Path
    loaded_at: datetime
    digest: str
    problem: str | None = None


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class Upkeep:
    """The background tasks of one engine; `start` and `stop` are called by the engine."""

    def __init__(self, engine: Engine, *, head_every_s: float = HEAD_EVERY_S,
                 config_every_s: float = CONFIG_EVERY_S, link_every_s: float = LINK_EVERY_S,
                 expire_every_s: float = EXPIRE_EVERY_S) -> None:
        self.engine = engine
        self.expire_every_s = expire_every_s
        self.head_every_s = head_every_s
        self.config_every_s = config_every_s
        self.link_every_s = link_every_s
        self.config = ConfigState(engine.config.path, utcnow(), _digest(engine.config.path) or "")
        self._poke = asyncio.Event()
        self._linking = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._logged: tuple[int, str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.engine.store.on_write = self.poke
        self._poke.set()  # what a stopped predecessor (or this start's recovery) left unlinked
        self._tasks = [asyncio.create_task(self._linker(), name="audit-linker"),
                       asyncio.create_task(self._heads(), name="audit-head"),
                       asyncio.create_task(self._watch(), name="config-watch"),
                       asyncio.create_task(self._expiries(), name="expiries")]

    async def stop(self) -> None:
        """Stop the tasks, link what is left and log the final head."""
        self.engine.store.on_write = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.link()
        await self.log_head(force=True)

    def poke(self) -> None:
        """Events were written (called from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._poke.set)

    # -- the audit chain ----------------------------------------------------
    async def link(self) -> int:
        """Link what is sealed, `LINK_CHUNK` events to a transaction with a pause between them, so
        that a burst's linking does not hold the database and the interpreter for tens of
        milliseconds while requests wait (docs/PERFORMANCE.md); one link at a time in this process.

        Cancelling the linker task must not leave its thread linking while `stop` links again: two
        link transactions at once (on SQLite: a lock upgrade that fails) would leave events unlinked.
        """
        total = 0
        async with self._linking:
            while True:
                work = asyncio.ensure_future(asyncio.to_thread(self.engine.store.link, LINK_CHUNK))
                try:
                    n = await asyncio.shield(work)
                except asyncio.CancelledError:
                    await asyncio.wait({work})  # the transaction ends before anyone else links
                    raise
                except DatabaseUnavailable as exc:
                    log.warning("could not link audit events (%s); retrying", exc)
                    break
                except Exception:
                    log.exception("linking audit events failed; retrying")
                    break
                total += n
                if n < LINK_CHUNK:
                    break
                await asyncio.sleep(LINK_PAUSE_S)
        return total

    async def _linker(self) -> None:
        # No wait_for here: on Python 3.11 it can swallow a cancellation that races its timeout.
        while True:
            await self._poke.wait()
            await asyncio.sleep(LINK_DELAY_S)
            self._poke.clear()
            await self.link()

    async def log_head(self, force: bool = False) -> tuple[int, str] | None:
        """Log the chain head `SEQ:LINK` (when it moved since the last time, unless `force`)."""
        try:
            head = await asyncio.to_thread(self.engine.store.head)
        except Exception as exc:  # the log line is a convenience; the chain itself is in the database
            log.warning("could not read the audit chain head: %s", exc)
            return None
        if force or head != self._logged:
            self._logged = head
            log.info("audit chain head %d:%s", head[0], head[1], extra={"audit_head": f"{head[0]}:{head[1]}"})
        return head

    async def _heads(self) -> None:
        """Log the head now and every `head_every_s`; meanwhile poke the linker every `link_every_s`
        for events other processes wrote and left (a crashed replica's)."""
        await self.log_head(force=True)
        last = time.monotonic()
        while True:
            await asyncio.sleep(min(self.link_every_s, self.head_every_s))
            self._poke.set()
            if time.monotonic() - last >= self.head_every_s:
                last = time.monotonic()
                await self.log_head()

    # -- requests nobody decided --------------------------------------------------
    async def _expiries(self) -> None:
        while True:
            await asyncio.sleep(self.expire_every_s)
            try:
                await self.engine.expire_due()
            except DatabaseUnavailable as exc:
                log.warning("could not expire pending requests (%s); retrying", exc)
            except Exception:
                log.exception("expiring pending requests failed; retrying")

    # -- the config file ------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config_every_s)
            await self.check_config()

    async def check_config(self) -> bool:
        """Reload the config file if it changed; True when a new configuration took effect."""
        path = self.engine.config.path
        digest = await asyncio.to_thread(_digest, path)
        if digest is not None and digest == self.config.digest:
            return False
        if digest is None and self.config.problem is not None:
            return False  # still unreadable: said so already
        started = time.perf_counter()
        try:
            config = await asyncio.to_thread(load_config, path, self.engine.config.settings)
        except ConfigError as exc:
            if self.config.problem != str(exc):
                log.error("the changed config file is not valid; keeping the configuration loaded at %s: %s",
                          f"{self.config.loaded_at:%Y-%m-%d %H:%M:%S} UTC", exc)
            self.config.problem = str(exc)
            self.config.digest = digest or ""
            return False
        except Exception as exc:  # never let a reload take the bot down
            log.exception("reloading the config failed; keeping the one in force")
            self.config.problem = f"{path}: reload failed: {exc}"
            self.config.digest = digest or ""
            return False
        self.engine.reload(config)
        self.config = ConfigState(path, utcnow(), digest or "")
        inv = config.inventory
        log.info("configuration reloaded from %s in %.0f ms (%d users, %d environments, %d channels)", path,
                 (time.perf_counter() - started) * 1000, len(inv.users), len(inv.environments), len(inv.channels))
        return True

    def status(self) -> dict[str, Any]:
        return {"path": str(self.config.path), "loaded_at": self.config.loaded_at, "problem": self.config.problem}
