"""A deploy fails as soon as a service cannot get ready, with the reason; a cancelled one leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

from bot.engine import Engine
from bot.request import Reply, Request, Tone
from commands.docker_ops import failure_of
from infra.compose import compose_binary
from infra.db.deployments import DeploymentStore
from infra.docker_hosts import ContainerState
from tests.docker_fixtures import SOCK, DockerWorld, docker_client, docker_engine, world
from tests.test_docker_stacks import ALICE, ask, status_of

__all__ = ["docker_client", "docker_engine", "world"]


def exec_locks(engine: Engine) -> list[str]:
    with engine.store.db.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT target FROM exec_locks"))]


def compose_children(project: str) -> list[int]:
    """PIDs of docker-compose processes working on `project`."""
    binary = compose_binary()
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].decode(errors="replace") == binary and project.encode() in argv:
            out.append(int(proc.name))
    return out


async def test_a_container_that_exits_fails_the_deploy_at_once_with_its_logs(world: DockerWorld,
                                                                             docker_engine: Engine) -> None:
    steps: list[str] = []
    reply = await ask(docker_engine, "deploy crash dtest", progress=steps)
    assert reply.tone is Tone.error, reply.text
    assert "failed after" in reply.text and "migrator: exited (3)" in reply.text, reply.text
    assert "not ready after" not in reply.text  # it did not wait out deploy_timeout_s
    assert "migration 0042 failed: relation widgets does not exist" in reply.text  # its own last log lines
    assert status_of(docker_engine, reply.request_id) == "failed"
    assert exec_locks(docker_engine) == []
    rev = DeploymentStore(docker_engine.store.db).history("dtest", "crash")[0]
    assert rev.status == "failed" and "migrator: exited (3)" in (rev.error or "")


async def test_a_failing_health_check_fails_it_with_the_check_s_own_output(world: DockerWorld,
                                                                           docker_engine: Engine) -> None:
    reply = await ask(docker_engine, "deploy sick dtest")
    assert reply.tone is Tone.error, reply.text
    assert "patient: unhealthy" in reply.text and "db not reachable on 5432" in reply.text, reply.text
    assert "not ready after" not in reply.text
    assert exec_locks(docker_engine) == []


async def test_a_one_shot_service_may_finish_and_others_may_not(world: DockerWorld, docker_engine: Engine) -> None:
    file = world.compose_dir / "crash" / "compose.yaml"
    file.write_text(file.read_text().replace("exit 3", "exit 0").replace(
        "  api:\n", "  api:\n    depends_on:\n      migrator: {condition: service_completed_successfully}\n"))
    done = await ask(docker_engine, "deploy crash dtest")
    assert done.tone is Tone.success, done.text
    file.write_text(file.read_text().replace(
        "    depends_on:\n      migrator: {condition: service_completed_successfully}\n", ""))
    quit_ = await ask(docker_engine, "deploy crash dtest")
    assert quit_.tone is Tone.error and "migrator: exited (0), but it should keep running" in quit_.text, quit_.text


def state(**kw: object) -> ContainerState:
    base: dict[str, object] = dict(id="c", name="n", project="p", service="s", state="running", health=None,
                                   restarts=0, image="i", image_id="sha256:1", started_at=None)
    base.update(kw)
    return ContainerState(**base)  # type: ignore[arg-type]


def test_what_counts_as_failed_for_good() -> None:
    assert failure_of(state(), False) is None
    assert failure_of(state(health="starting"), False) is None
    assert failure_of(state(state="exited", exit_code=3), False) == "exited (3)"
    assert failure_of(state(state="exited", exit_code=0), True) is None
    assert "should keep running" in (failure_of(state(state="exited", exit_code=0), False) or "")
    assert "keeps crashing" in (failure_of(state(state="restarting", exit_code=1, restarts=4), False) or "")
    assert failure_of(state(health="unhealthy", health_log="exit 1: no db"), False) == \
        "unhealthy (health check: exit 1: no db)"


async def test_cancelling_a_running_deploy_kills_compose_records_it_and_frees_the_lock(
        world: DockerWorld, docker_engine: Engine) -> None:
    project = world.project("a", "slow")
    started = asyncio.Event()

    async def sink(r: Reply) -> None:
        if "bringing it up" in r.text:
            started.set()

    task = asyncio.create_task(docker_engine.handle(
        Request(actor=ALICE, text="deploy slow dtest", confirmed=True, on_progress=sink)))
    await asyncio.wait_for(started.wait(), 60)
    for _ in range(200):  # `up` waits for dep's health check: its Compose process is there
        if compose_children(project):
            break
        await asyncio.sleep(0.05)
    assert compose_children(project), "no compose process seen"
    assert exec_locks(docker_engine) == ["env:dtest"]
    job = docker_engine.jobs.running()[0]
    job.task.cancel()  # what `cancel ID` and Ctrl-C do
    try:
        reply = await task
        assert reply.tone is Tone.error
    except asyncio.CancelledError:
        pass
    assert compose_children(project) == []
    rev = DeploymentStore(docker_engine.store.db).history("dtest", "slow")[0]
    assert rev.status == "cancelled" and "cancelled while bringing the stack up" in (rev.error or "")
    assert exec_locks(docker_engine) == []
    row = docker_engine.store.get(job.request_id)
    assert row is not None and row.status in ("interrupted", "cancelled")
    assert docker_engine.store.verify() == []


CHILD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from infra.compose import run_compose
    folder = Path(sys.argv[1])
    asyncio.run(run_compose(["-p", sys.argv[2], "-f", str(folder / "compose.yaml"), "up", "-d"],
                            env={"DOCKER_HOST": sys.argv[3], "PATH": "/usr/bin:/bin"}))
""")


def test_a_compose_child_dies_with_the_bot(world: DockerWorld, tmp_path: Path) -> None:
    """kill -9 of the bot takes its Compose child with it (it never keeps changing things unowned)."""
    project = world.project("k", "slow")
    bot = subprocess.Popen([sys.executable, "-c", CHILD, str(world.compose_dir / "slow"), project, SOCK],
                           cwd=Path(__file__).resolve().parent.parent)
    try:
        for _ in range(400):
            if compose_children(project):
                break
            time.sleep(0.05)
        assert compose_children(project), "compose never started"
        os.kill(bot.pid, signal.SIGKILL)
        bot.wait(10)
        for _ in range(100):
            if not compose_children(project):
                break
            time.sleep(0.05)
        assert compose_children(project) == []
    finally:
        if bot.poll() is None:
            bot.kill()
        for pid in compose_children(project):
            os.kill(pid, signal.SIGKILL)
