"""`chatops serve`: run chat adapters in one process, with metrics and a graceful stop.

The order on SIGTERM/SIGINT (what `docker stop` and `systemctl stop` send):

1. the shared `stop` event is set: adapters stop taking events from their platform;
2. the engine refuses new requests (a clear "restarting, nothing was run" reply) and
   waits up to the grace period for running jobs;
3. jobs still running then are cancelled and recorded as `interrupted` in the audit log;
4. adapters get a few seconds to close their connections, then are cancelled;
5. the ops endpoint stops, the worker row and advisory lock are released.

Keep `--grace` below the supervisor's kill timeout (Compose `stop_grace_period`,
systemd `TimeoutStopSec`) so step 3 always happens before a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from bot.app import App
from bot.notify import ManagedPoster
from bot.ops_http import OpsServer, start_ops_server
from bot.scheduling import Scheduler
from infra.wording import counted

log = logging.getLogger("chatops.serve")

DEFAULT_GRACE_S = 30.0
ADAPTER_CLOSE_S = 10.0


class AdapterServe(Protocol):
    """What each `bot.adapters.<name>` module exports as `serve`."""

    def __call__(self, app: App, *, http: bool, port: int, stop: asyncio.Event) -> Awaitable[Any]: ...


class AdapterFailed(Exception):
    """An adapter ended by itself with an error; the process stops (and its supervisor restarts it)."""


async def serve_app(app: App, adapters: Sequence[tuple[str, AdapterServe]], *, http: bool = False,
                    port: int = 3000, metrics: tuple[str, int] | None = None,
                    grace_s: float = DEFAULT_GRACE_S, stop: asyncio.Event | None = None,
                    signals: bool = True, on_ready: Callable[[OpsServer | None], None] | None = None,
                    posters: Sequence[ManagedPoster] = (), schedules: bool = True) -> None:
    """Run `adapters` until `stop` is set (or a signal arrives), then shut down gracefully.

    `posters` reach the ops channels of platforms whose adapter does not run here (the API alone
    still posts approval cards to Slack and Discord); `schedules` runs the schedule loop.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    server: OpsServer | None = None
    failure: BaseException | None = None
    started: list[ManagedPoster] = []
    ticking: asyncio.Task[None] | None = None
    try:
        for row in await app.engine.start():
            log.warning("request %s (%s) was interrupted by an earlier stop", row.id, row.command)
        for poster in posters:
            await poster.start()
            started.append(poster)
            app.engine.notify.register(poster)
        if schedules:
            ticking = asyncio.create_task(Scheduler(app.engine).run(stop), name="schedules")
        if metrics is not None:
            server = await start_ops_server(app, *metrics)
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, _on_signal, sig, stop)
                installed.append(sig)
        if on_ready is not None:
            on_ready(server)
        tasks: dict[asyncio.Task[Any], str] = {
            asyncio.ensure_future(fn(app, http=http, port=port, stop=stop)): name for name, fn in adapters}
        stopper = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                failure = task.exception()
                log.error("adapter %s failed: %r; stopping", tasks[task], failure)
            elif task is not stopper:
                log.warning("adapter %s ended; stopping", tasks[task])
        stop.set()
        if ticking is not None:
            await asyncio.wait([ticking], timeout=ADAPTER_CLOSE_S)
        cut = await app.engine.shutdown(grace_s)
        if cut:
            log.warning("recorded %s as interrupted: %s", counted(len(cut), "job"), ", ".join(cut))
        await _close_adapters(tasks)
        stopper.cancel()
        await app.engine.notify.drain(timeout=ADAPTER_CLOSE_S)
    finally:
        if ticking is not None and not ticking.done():
            ticking.cancel()
        for poster in started:
            with contextlib.suppress(Exception):
                await poster.close()
        for sig in installed:
            loop.remove_signal_handler(sig)
        if server is not None:
            await server.stop()
        await app.close()
    if failure is not None:
        raise AdapterFailed(str(failure)) from failure


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    if stop.is_set():
        log.warning("%s again: already shutting down", sig.name)
        return
    log.info("%s received: shutting down gracefully", sig.name)
    stop.set()


async def _close_adapters(tasks: dict[asyncio.Task[Any], str]) -> None:
    pending = [t for t in tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=ADAPTER_CLOSE_S)
    for task in pending:
        if not task.done():
            log.warning("adapter %s did not stop within %.0fs; cancelling it", tasks[task], ADAPTER_CLOSE_S)
            task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
