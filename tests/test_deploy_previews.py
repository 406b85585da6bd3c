"""Previews say what will really change, against what runs now; images are named, digests short."""

from __future__ import annotations

import re

from bot.engine import Engine
from bot.request import Tone
from infra.docker_hosts import ContainerState
from infra.fingerprint import stored_model
from infra.stackdiff import Recorded, diff_lines
from tests.docker_fixtures import BASE_IMAGE, DockerWorld, docker_client, docker_engine, moving_tag, world
from tests.test_docker_stacks import ask, running

__all__ = ["docker_client", "docker_engine", "world"]


def plan_of(reply: object) -> str:
    return dict(reply.fields)["What will happen"]  # type: ignore[attr-defined]


def line(plan: str, service: str) -> str:
    return next(ln for ln in plan.splitlines() if re.match(rf"^[~=+-] (add |remove )?{service}\b", ln))


async def test_after_a_failed_deploy_the_preview_compares_with_what_runs(world: DockerWorld,
                                                                        docker_engine: Engine) -> None:
    file = world.compose_dir / "app" / "compose.yaml"
    v1 = file.read_text()
    assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
    # v2 changes web's command and its health check fails: the deploy fails, v2's container stays.
    file.write_text(v1.replace("echo web up;", "echo web v2;").replace('["CMD", "test", "-d", "/bin"]',
                                                                      '["CMD", "false"]'))
    failed = await ask(docker_engine, "deploy app dtest")
    assert failed.tone is Tone.error, failed.text
    assert "echo web v2" in " ".join(running(world, world.project("a", "app"), "web").attrs["Config"]["Cmd"])
    # Back to v1: the last *recorded* revision is v1, but v2 runs: web will be recreated.
    file.write_text(v1)
    plan = plan_of(await ask(docker_engine, "deploy app dtest", yes=False))
    assert line(plan, "web").startswith("~ web:") and "command" in line(plan, "web"), plan
    assert "healthcheck" in line(plan, "web")
    assert line(plan, "worker") == "= worker unchanged (chatops-busybox:1)"
    assert "the newest attempt" in plan and "failed" in plan
    # And deploying v2's command again after all: nothing to change for the container that runs it.
    assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
    again = plan_of(await ask(docker_engine, "deploy app dtest", yes=False))
    assert line(again, "web") == "= web unchanged (chatops-busybox:1)", again


async def test_after_a_rollback_the_preview_names_images_and_shows_the_real_change(
        world: DockerWorld, docker_engine: Engine) -> None:
    file = world.compose_dir / "app" / "compose.yaml"
    assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
    file.write_text(file.read_text().replace("echo web up;", "echo web v2;"))
    assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
    assert (await ask(docker_engine, "rollback app dtest")).tone is Tone.success
    status = await ask(docker_engine, "status dtest app")
    images = {r[1]: r[6] for r in status.tables[0].rows}
    assert images == {"web": BASE_IMAGE, "worker": BASE_IMAGE}, images  # a name, not sha256:…
    file.write_text(file.read_text().replace("echo web v2;", "echo web v3;"))
    plan = plan_of(await ask(docker_engine, "deploy app dtest", yes=False))
    assert line(plan, "web") == "~ web: command changed", plan  # no image change between two names
    assert line(plan, "worker") == "= worker unchanged (chatops-busybox:1)"


async def test_a_rollback_past_a_moved_tag_shows_the_name_and_a_short_digest(world: DockerWorld,
                                                                            docker_engine: Engine) -> None:
    with moving_tag(world) as moving:
        tag = moving.tag
        file = world.compose_dir / "app" / "compose.yaml"
        assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
        file.write_text(file.read_text().replace("echo web up;", "echo web v2;"))
        assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
        moving.move()
        card = await ask(docker_engine, "rollback app dtest", yes=False)
        plan = plan_of(card)
        assert not re.search(r"[0-9a-f]{20,}", plan), plan  # digests are short
        short = moving.base.id.split(":")[1][:12]
        assert f"web: {tag}:1 (pinned sha256:{short})" in plan, plan
        assert line(plan, "web").startswith("~ web:") and "command" in line(plan, "web"), plan
        assert (await ask(docker_engine, "rollback app dtest")).tone is Tone.success
        status = await ask(docker_engine, "status dtest app")
        web = next(r for r in status.tables[0].rows if r[1] == "web")
        assert web[6] == f"{tag}:1 (pinned sha256:{short})", web


async def test_stacks_counts_what_it_lists(engine: Engine) -> None:
    reply = await ask(engine, "stacks rumpleprod")
    listed = {r[0] for r in reply.tables[0].rows}
    assert "llm" not in listed and "web" in listed
    assert reply.text.startswith(f"{len(listed)} stacks known for rumpleprod; 0 recorded deployments."), reply.text


def _running(service: str, *, image: str = "app:1", image_id: str = "sha256:" + "a" * 64,
             config_hash: str | None = "h-old", pinned: str | None = None) -> ContainerState:
    return ContainerState(id="c1", name=f"p-{service}-1", project="p", service=service, state="running",
                          health=None, restarts=0, image=image, image_id=image_id, started_at=None,
                          config_hash=config_hash, pinned_ref=pinned)


def test_diff_words_for_environment_and_legacy_revisions() -> None:
    desired = {"services": {"db": {"image": "postgres:16", "environment": {"DB_PASSWORD": "new-secret-1",
                                                                           "NEW_ONE": "x"}}}}
    old = stored_model({"services": {"db": {"image": "postgres:16", "environment": {"DB_PASSWORD": "old-secret-1",
                                                                                   "GONE": "y"}}}})
    legacy = Recorded(1, "succeeded", old, {"db": {"image": "postgres:16", "id": "sha256:" + "a" * 64}})
    lines = diff_lines(desired, {"db": "h-new"}, {"db": [_running("db", image="postgres:16")]}, [legacy],
                       {"postgres:16": "sha256:" + "a" * 64})
    assert lines == ["~ db: environment DB_PASSWORD changed; NEW_ONE added; GONE removed"]
    # Same hash as what runs: unchanged, whatever the records say.
    assert diff_lines(desired, {"db": "h-old"}, {"db": [_running("db", image="postgres:16")]}, [legacy],
                      {"postgres:16": "sha256:" + "a" * 64}) == ["= db unchanged (postgres:16)"]
    # Containers nobody recorded.
    alien = diff_lines(desired, {"db": "h-new"}, {"db": [_running("db", image="postgres:15")]}, [],
                       {"postgres:16": "sha256:" + "b" * 64})
    assert alien[0].startswith("~ db: recreated: what runs (postgres:15) was not deployed by the bot")
    assert "image postgres:15 → postgres:16" in alien[0]


async def test_a_deploy_that_cannot_work_is_refused_before_anyone_confirms(world: DockerWorld,
                                                                          docker_engine: Engine) -> None:
    """A preview that fails on the request itself (a git ref nobody has, a compose file that does not
    validate) refuses it: no card, nobody asked; only a backend that does not answer leaves a card."""
    unknown = await ask(docker_engine, "deploy app dtest ref=v9.9.9-nope", yes=False)
    assert unknown.tone is Tone.error and unknown.buttons == [] and "v9.9.9-nope" in unknown.text, unknown.text
    file = world.compose_dir / "app" / "compose.yaml"
    good = file.read_text()
    try:
        file.write_text(good + "\nnot: [valid\n")
        broken = await ask(docker_engine, "deploy app dtest", yes=False)
        assert broken.tone is Tone.error and broken.buttons == [], broken.text
    finally:
        file.write_text(good)
    for reply in (unknown, broken):
        row = docker_engine.store.get(reply.request_id or "")
        assert row is not None and row.status == "refused", (reply.text, row and row.status)
