"""A test registry: the real commands plus a few whose effects a test can observe.

`touch ENV NAME` appends a line to a file (a real side effect) and records the status
its own audit row had while it ran, proving the row was committed first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.request import Reply, Tone
from commands.args import ENV
from commands.context import Context
from commands.registry import Arg, Kind, Registry, command, registry


class Gate:
    """Lets a test hold a running handler until it says go."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()


def observable_registry(workdir: Path, gate: Gate | None = None) -> Registry:
    reg = Registry()
    for spec in registry():
        reg.add(spec)

    @command("touch", summary="append a line to a file", args=(ENV, Arg("name", Kind.word)), changes=True,
             backend="files", registry=reg, words=("poke",))
    async def touch(ctx: Context, args: dict[str, Any]) -> Reply:
        row = await asyncio.to_thread(ctx.store.get, ctx.request_id)
        await ctx.progress(f"touching {args['name']}")
        if gate is not None:
            gate.entered.set()
            await gate.release.wait()
        with (workdir / args["name"]).open("a") as f:
            f.write(f"{args['env']} {ctx.actor.id} status-while-running={row.status if row else None}\n")
        return Reply(f"touched {args['name']} on {args['env']}", tone=Tone.success)

    @command("explode", summary="fails unexpectedly", args=(ENV,), changes=True, backend="files",
             registry=reg, confirm=False)
    async def explode(ctx: Context, args: dict[str, Any]) -> Reply:
        raise RuntimeError("boom with secret xoxb-1234567890-abcdefghij")

    return reg
