"""Deploy, redeploy, rollback, status, service operations and logs against a real Docker engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import docker

from bot.engine import Engine
from bot.request import Actor, Reply, Request, Tone
from commands.docker_ops import by_service, image_record, inspect_soon
from infra.db.deployments import DeploymentStore
from tests.docker_fixtures import BASE_IMAGE, DockerWorld, docker_client, docker_engine, moving_tag, world

__all__ = ["docker_client", "docker_engine", "world"]

ALICE, BOB = Actor("console:alice"), Actor("console:bob")


async def ask(engine: Engine, text: str, actor: Actor = ALICE, *, yes: bool = True,
              progress: list[str] | None = None) -> Reply:
    async def sink(r: Reply) -> None:
        if progress is not None:
            progress.append(r.text)

    return await engine.handle(Request(actor=actor, text=text, confirmed=yes, on_progress=sink))


def status_of(engine: Engine, rid: str | None) -> str:
    assert rid
    row = engine.store.get(rid)
    assert row is not None
    return row.status


def running(world: DockerWorld, project: str, service: str) -> docker.models.containers.Container:
    found = world.containers(project, service)
    assert len(found) == 1, [c.name for c in found]
    found[0].reload()
    return found[0]


async def test_deploy_redeploy_rollback(world: DockerWorld, docker_engine: Engine) -> None:
    project = world.project("a", "app")
    steps: list[str] = []
    first = await ask(docker_engine, "deploy app dtest", progress=steps)
    assert first.tone is Tone.success, first.text
    assert "revision" in first.text
    assert any("services ready" in s for s in steps), steps
    assert status_of(docker_engine, first.request_id) == "succeeded"
    web = running(world, project, "web")
    assert web.status == "running" and web.attrs["State"]["Health"]["Status"] == "healthy"
    store = DeploymentStore(docker_engine.store.db)
    rev1 = store.history("dtest", "app")[0]
    assert rev1.status == "succeeded" and set(rev1.images) == {"web", "worker"}
    image_id = world.client.images.get(BASE_IMAGE).id
    assert rev1.images["web"]["id"] == image_id
    assert rev1.compose == (world.compose_dir / "app" / "compose.yaml").read_text()

    # Change the stack: the preview says what changes, the redeploy recreates that service only.
    file = world.compose_dir / "app" / "compose.yaml"
    file.write_text(file.read_text().replace("echo web up;", "echo web v2;"))
    card = await ask(docker_engine, "deploy app dtest", yes=False)
    plan = dict(card.fields)["What will happen"]
    assert "~ web: command changed" in plan and "= worker unchanged" in plan, plan
    old_worker = running(world, project, "worker").id
    second = await ask(docker_engine, "deploy app dtest")
    assert second.tone is Tone.success, second.text
    assert "echo web v2" in " ".join(running(world, project, "web").attrs["Config"]["Cmd"])
    assert running(world, project, "worker").id == old_worker
    rev2 = store.history("dtest", "app")[0]
    assert rev2.id > rev1.id and rev2.compose_hash != rev1.compose_hash

    back = await ask(docker_engine, "rollback app dtest")
    assert back.tone is Tone.success, back.text
    assert f"revision {rev1.id}" in back.text
    assert "echo web up" in " ".join(running(world, project, "web").attrs["Config"]["Cmd"])
    rev3 = store.history("dtest", "app")[0]
    assert rev3.action == "rollback" and rev3.rollback_of == rev1.id
    assert rev3.compose_hash == rev1.compose_hash

    listing = await ask(docker_engine, "stacks dtest")
    row = next(r for r in listing.tables[0].rows if r[0] == "app")
    assert row[2] == "dtest" and f"rev {rev3.id}" in row[3] and row[5] == "console:alice"


async def test_rollback_runs_the_recorded_image_even_if_the_tag_moved(world: DockerWorld,
                                                                     docker_engine: Engine) -> None:
    with moving_tag(world) as moving:
        file = world.compose_dir / "app" / "compose.yaml"
        assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
        file.write_text(file.read_text().replace("echo web up;", "echo web v2;"))
        assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
        moving.move()
        reply = await ask(docker_engine, "rollback app dtest")
        assert reply.tone is Tone.success, reply.text
        web = running(world, world.project("a", "app"), "web")
        assert web.attrs["Image"] == moving.base.id != moving.other.id


async def test_an_image_inspected_by_name_beside_the_wait_counts_only_if_the_container_runs_it(
        world: DockerWorld, docker_engine: Engine) -> None:
    """The revision's images are inspected by name right after `up` (beside the wait for the containers);
    if the name was moved to another image in between, the answer is dropped for the container's own."""
    with moving_tag(world) as moving:
        assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
        host = docker_engine.backends.docker("dtest")
        groups = by_service(await host.containers(world.project("a", "app")))
        model = {"services": {"web": {"image": f"{moving.tag}:1"}, "worker": {"image": BASE_IMAGE}}}
        same = await image_record(host, groups, model, inspect_soon(host, model))
        assert same["web"]["id"] == moving.base.id and same["web"]["image"] == f"{moving.tag}:1"
        assert same == await image_record(host, groups, model)  # as inspecting each container's image says
        moving.move()
        early = inspect_soon(host, model)
        assert (await early[f"{moving.tag}:1"])["id"] == moving.other.id  # type: ignore[index]
        moved = await image_record(host, groups, model, early)
        assert moved["web"]["id"] == moving.base.id != moving.other.id  # what runs, not what the name says now


async def test_status_restart_stop_start(world: DockerWorld, docker_engine: Engine) -> None:
    empty = await ask(docker_engine, "status dtest app")
    assert (empty.tone, empty.text) == (Tone.warning, "No containers of stack app on dtest; 'deploy app dtest' brings "
                                                      "it up.")
    assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
    project = world.project("a", "app")
    status = await ask(docker_engine, "status dtest")
    assert status.tone is Tone.success, status.text
    assert status.text == "dtest: 2 services, all running and healthy."
    cols = status.tables[0].columns
    rows = {r[1]: dict(zip(cols, r, strict=True)) for r in status.tables[0].rows}
    assert set(rows) == {"web", "worker"}
    assert rows["web"]["state"] == "healthy" and rows["web"]["up"] == "1/1"
    assert rows["worker"]["cpu"].endswith("%") and rows["worker"]["memory"].endswith("B")

    before = running(world, project, "web").attrs["State"]["StartedAt"]
    await asyncio.sleep(1.1)
    restarted = await ask(docker_engine, "restart web dtest")
    assert restarted.tone is Tone.success, restarted.text
    after = running(world, project, "web").attrs["State"]["StartedAt"]
    assert after != before

    stopped = await ask(docker_engine, "stop worker dtest stack=app")
    assert stopped.tone is Tone.success, stopped.text
    assert running(world, project, "worker").status == "exited"
    again = await ask(docker_engine, "status dtest app")
    assert again.tone is Tone.warning
    assert again.text.startswith("app on dtest: 2 services, ") and "not running or not healthy" in again.text
    assert any(r[1] == "worker" and r[2] == "0/1" for r in again.tables[0].rows)
    # a stopped container's last health check says nothing about it now
    assert all(r[4] == "-" for r in again.tables[0].rows if r[1] == "worker"), again.tables[0].rows
    twice = await ask(docker_engine, "stop worker dtest stack=app")
    assert twice.tone is Tone.info and "is already stopped" in twice.text and "nothing was stopped" in twice.text
    started = await ask(docker_engine, "start worker dtest")
    assert started.tone is Tone.success, started.text
    assert running(world, project, "worker").status == "running"
    up = await ask(docker_engine, "start worker dtest")
    assert up.tone is Tone.info and "is already running" in up.text, up.text


async def test_two_environments_on_one_engine_and_approval(world: DockerWorld, docker_engine: Engine) -> None:
    assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
    pending = await ask(docker_engine, "deploy app dprot")
    assert pending.tone is Tone.pending and pending.request_id
    assert world.containers(world.project("b", "app")) == []  # nothing before the approval
    assert "+ add web" in dict(pending.fields)["What will happen"]
    own = await docker_engine.act("approve", pending.request_id, ALICE)
    assert own.tone is Tone.error
    done = await docker_engine.act("approve", pending.request_id, BOB)
    assert done.tone is Tone.success, done.text
    test_web = running(world, world.project("a", "app"), "web")
    prod_web = running(world, world.project("b", "app"), "web")
    assert test_web.id != prod_web.id
    before = prod_web.attrs["State"]["StartedAt"]
    assert (await ask(docker_engine, "restart web dtest")).tone is Tone.success
    assert running(world, world.project("b", "app"), "web").attrs["State"]["StartedAt"] == before
    status = await ask(docker_engine, "status dprot")
    assert {r[0] for r in status.tables[0].rows} == {"app"} and len(status.tables[0].rows) == 2


async def test_a_service_that_does_not_run_there_is_refused_before_anyone_approves(world: DockerWorld,
                                                                                  docker_engine: Engine) -> None:
    assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
    refused = await ask(docker_engine, "restart web dprot")  # protected, and app is not deployed there
    assert refused.tone is Tone.error and "has no containers on dprot" in refused.text, refused.text
    assert status_of(docker_engine, refused.request_id) == "refused"  # audited, and no approval card
    card = await ask(docker_engine, "restart web dtest", yes=False)  # there it runs: the card says what
    assert card.tone is Tone.question and "1 container," in str(card.fields), card.fields


async def test_logs_are_bounded_and_redacted(world: DockerWorld, docker_engine: Engine) -> None:
    assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
    short = await ask(docker_engine, "logs worker dtest tail=3")
    assert short.tone is not Tone.error, short.text
    assert "filler line 60" in short.text and "filler line 57" not in short.text
    full = await ask(docker_engine, "logs worker dtest tail=200")
    assert full.attachments, full.text
    body = full.attachments[0].content.decode()
    assert "login with [redacted]" in body
    assert "s3cret-from-dotenv-42" not in body and "s3cret-from-dotenv-42" not in full.text
    assert "xoxb-1234567890" not in body
    assert "visible-value" not in body  # a value the stack sets
    assert body.count("filler line") == 60


async def test_invalid_compose_file_changes_nothing(world: DockerWorld, docker_engine: Engine) -> None:
    reply = await ask(docker_engine, "deploy broken dtest")
    assert reply.tone is Tone.error
    assert "not valid" in reply.text and "imagee" in reply.text and "nothing was changed" in reply.text
    assert status_of(docker_engine, reply.request_id) == "failed"
    assert world.containers(world.project("a", "broken")) == []
    assert DeploymentStore(docker_engine.store.db).history("dtest", "broken") == []


async def test_service_that_never_gets_healthy_fails_the_deploy(world: DockerWorld,
                                                                docker_engine: Engine) -> None:
    reply = await ask(docker_engine, "deploy sick dfast")
    assert reply.tone is Tone.error, reply.text
    assert "patient" in reply.text and ("unhealthy" in reply.text or "starting" in reply.text)
    assert status_of(docker_engine, reply.request_id) == "failed"
    rev = DeploymentStore(docker_engine.store.db).history("dfast", "sick")[0]
    assert rev.status == "failed" and "patient" in (rev.error or "")


async def test_missing_image_fails_clearly(world: DockerWorld, docker_engine: Engine) -> None:
    reply = await ask(docker_engine, "deploy ghost dtest")
    assert reply.tone is Tone.error, reply.text
    assert "failed" in reply.text and "chatops-missing-image" in reply.text
    assert status_of(docker_engine, reply.request_id) == "failed"
    assert DeploymentStore(docker_engine.store.db).history("dtest", "ghost")[0].status == "failed"


async def test_unreachable_engine_and_unconfigured_env(world: DockerWorld, docker_engine: Engine) -> None:
    down = await ask(docker_engine, "status ddown")
    assert down.tone is Tone.error and "unreachable" in down.text and "ddown" in down.text
    deploy = await ask(docker_engine, "deploy app ddown")
    assert deploy.tone is Tone.error and "unreachable" in deploy.text
    assert status_of(docker_engine, deploy.request_id) == "failed"
    none = await ask(docker_engine, "restart web dnone")
    assert none.tone is Tone.error and "not configured" in none.text


async def test_unknown_service_on_env(world: DockerWorld, docker_engine: Engine) -> None:
    reply = await ask(docker_engine, "restart web dtest")
    assert reply.tone is Tone.error
    assert "no containers on dtest" in reply.text and "app" in reply.text
    # found before anything changed (the preview's and the handler's CannotSucceed): refused, not failed
    assert status_of(docker_engine, reply.request_id) == "refused"
    wrong = await ask(docker_engine, "logs web dtest stack=sick")
    assert wrong.tone is Tone.question and "has no service web" in wrong.text


def test_fixture_copy_is_private(world: DockerWorld) -> None:
    assert Path(world.compose_dir).is_dir() and world.prefix.startswith("ct")


async def test_deploy_interrupted_half_way_is_recorded_not_reported_done(world: DockerWorld,
                                                                         docker_engine: Engine) -> None:
    """A shutdown past its grace while a deploy waits: `interrupted` in the audit, revision `failed`."""
    steps: list[str] = []
    waiting = asyncio.Event()

    async def sink(r: Reply) -> None:
        steps.append(r.text)
        if "waiting up to" in r.text:
            waiting.set()

    task = asyncio.create_task(docker_engine.handle(
        Request(actor=ALICE, text="deploy sick dtest", confirmed=True, on_progress=sink)))
    await asyncio.wait_for(waiting.wait(), 60)
    interrupted = await docker_engine.shutdown(0)
    assert len(interrupted) == 1
    reply = await task
    assert reply.tone is Tone.error and "succeeded" not in reply.text
    row = docker_engine.store.get(interrupted[0])
    assert row is not None and row.command == "deploy" and row.status == "interrupted"
    rev = DeploymentStore(docker_engine.store.db).history("dtest", "sick")[0]
    assert rev.status == "failed" and "interrupted" in (rev.error or "")
    assert docker_engine.store.verify() == []


def _compose_children() -> list[str]:
    """Command lines of this process's children that run Compose."""
    import os

    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and "compose" in cmd:
            found.append(cmd)
    return found


async def test_up_beside_the_ping_is_stopped_when_the_engine_does_not_answer(world: DockerWorld,
                                                                              docker_engine: Engine) -> None:
    """The engine's ping runs beside `up` (docs/PERFORMANCE.md): when it fails, `up` is cancelled and no
    Compose child is left behind, the reply says the engine is unreachable and the request failed."""
    for _ in range(3):
        deploy = await ask(docker_engine, "deploy app ddown")
        assert deploy.tone is Tone.error and "unreachable" in deploy.text, deploy.text
        assert status_of(docker_engine, deploy.request_id) == "failed"
    assert _compose_children() == []
