"""Helpers for the operations tests: a registry whose `restart` is a controllable job.

The real `restart` talks to Docker; these tests are about the engine around the handler
(jobs, shutdown, locks, approvals, rate limits), so the handler is swapped for one that
records each run and can be held open on an asyncio.Event.  Everything else (planner,
validation, policy, audit store on PostgreSQL) is the real thing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bot.request import Actor, Reply, Request, Tone
from commands.context import Context
from commands.registry import Registry
from commands.registry import registry as load_registry
from infra.backends import Backends
from infra.config import Config


@dataclass
class HeldJob:
    """A handler that records its runs and waits for `release` (set by the test)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    runs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    hold: bool = True
    fail: BaseException | None = None

    async def __call__(self, ctx: Context, args: dict[str, Any]) -> Reply:
        self.runs.append((ctx.request_id, dict(args)))
        self.started.set()
        if self.hold:
            await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return Reply(f"restarted {args['service']} on {args['env']}", tone=Tone.success)


def registry_with(job: HeldJob, command: str = "restart") -> Registry:
    """The real registry, with `command`'s handler replaced by `job`."""
    reg = Registry()
    for spec in load_registry():
        reg.add(dataclasses.replace(spec, handler=job) if spec.name == command else spec)
    return reg


def docker_backends(config: Config) -> Backends:
    """Backends that answer `require('docker', …)` for every environment.

    The swapped handler never calls Docker; the engine only checks that a Docker client
    exists before it proposes a change, so a placeholder per environment is enough.
    """
    b = Backends(config)
    for env in config.inventory.environments:
        b.override(f"docker:{env}", object())
    return b


def restart(user: str, service: str, env: str, *, channel: str | None = "ops", confirmed: bool = True) -> Request:
    """A structured `restart` request, as a slash command would send it."""
    return Request(actor=Actor(user), text=f"restart {service} {env}", platform=user.split(":")[0],
                   channel=channel, command="restart", args={"service": service, "env": env},
                   confirmed=confirmed)


async def wait_for(event: asyncio.Event, timeout: float = 10.0) -> None:
    await asyncio.wait_for(event.wait(), timeout)
