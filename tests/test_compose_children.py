"""How the bot starts its Compose children: cheaply, in their own group, never outliving the bot.

The kill -9 case against a real `docker-compose up` is in tests/test_deploy_fail_fast.py; these
check the launcher itself with plain commands.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import warnings
from pathlib import Path

import pytest

from commands.docker_ops import _after_a_turn
from infra.compose import child_command

needs_setpriv = pytest.mark.skipif(child_command(["true"])[0][0] == "true",
                                   reason="no util-linux setpriv here: the preexec_fn launcher is used")


@needs_setpriv
def test_the_launcher_sets_the_death_signal_without_a_preexec_function(tmp_path: Path) -> None:
    """vfork + exec (no preexec_fn, so no full fork of the bot), and the child still runs its command."""
    argv, options = child_command(["/bin/sh", "-c", f"echo ran > {tmp_path / 'out'}"])
    assert "preexec_fn" not in options and options["start_new_session"] is True
    assert argv[1:4] == ["--pdeathsig", "KILL", "--"]
    subprocess.run(argv, check=True, **options)
    assert (tmp_path / "out").read_text() == "ran\n"


@needs_setpriv
def test_a_child_whose_bot_died_before_the_signal_was_set_never_runs_its_command(tmp_path: Path) -> None:
    """If the bot is gone by the time the death signal is set, the child's parent is no longer the
    bot: the launcher must then exit instead of running Compose unowned."""
    argv, options = child_command(["/bin/sh", "-c", f"echo ran > {tmp_path / 'out'}"])
    here = argv.index(str(os.getpid()))
    argv[here] = str(os.getpid() + 100000)  # as if our parent were someone else
    done = subprocess.run(argv, **options)
    assert done.returncode != 0
    assert not (tmp_path / "out").exists()


@needs_setpriv
def test_the_child_has_its_own_process_group() -> None:
    argv, options = child_command(["/bin/sh", "-c", "ps -o pgid= -p $$; echo $$"])
    out = subprocess.run(argv, check=True, capture_output=True, text=True, **options).stdout.split()
    assert out[0] == out[1]  # the group leader is the child itself, so the whole group can be killed
    assert out[0] != str(os.getpgrp())


def test_planning_beside_up_waits_one_turn_so_up_starts_first() -> None:
    order: list[str] = []

    async def step(name: str) -> None:
        order.append(name)

    async def main() -> None:
        planning = asyncio.create_task(_after_a_turn(step("plan")))
        up = asyncio.create_task(step("up"))
        await asyncio.gather(planning, up)

    asyncio.run(main())
    assert order == ["up", "plan"]


def test_planning_cancelled_before_it_began_leaves_no_unawaited_coroutine() -> None:
    async def plan() -> str:
        return "plan"

    async def main() -> None:
        task = asyncio.create_task(_after_a_turn(plan()))
        await asyncio.sleep(0)  # it is now waiting for its turn
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()  # an unawaited coroutine says so when it is collected
    assert [str(w.message) for w in seen if "never awaited" in str(w.message)] == []
