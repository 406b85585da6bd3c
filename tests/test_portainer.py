"""The Portainer driver against a loopback server that follows Portainer's HTTP API.

The stand-in deploys with Compose on the real test engine and proxies
/api/endpoints/N/docker to it, so the bot's Docker SDK calls run for real.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.engine import Engine
from bot.request import Tone
from infra.portainer import PortainerClient
from tests.docker_fixtures import SOCK, DockerWorld, compose_bin, compose_up, docker_client, docker_engine, world
from tests.fakes.portainer import FakePortainer
from tests.test_docker_stacks import ask, running

__all__ = ["docker_client", "docker_engine", "world"]
KEY = "ptr_test-key-0123456789"


@pytest.fixture
def portainer(world: DockerWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePortainer]:
    fake = FakePortainer(KEY, 3, SOCK.removeprefix("unix://")).start()
    monkeypatch.setenv("CHATOPS_TEST_PORTAINER_URL", fake.url)
    monkeypatch.setenv("CHATOPS_TEST_PORTAINER_KEY", KEY)
    yield fake
    fake.stop()


@pytest.fixture
async def p_engine(portainer: FakePortainer, docker_engine: Engine) -> Engine:
    return docker_engine


async def test_deploy_redeploy_and_service_ops_through_portainer(world: DockerWorld, portainer: FakePortainer,
                                                                 p_engine: Engine) -> None:
    project = world.project("p", "app")
    first = await ask(p_engine, "deploy app pdtest")
    assert first.tone is Tone.success, first.text
    _, path, body = next(c for c in portainer.calls if c[0] == "POST")
    assert path == "/api/stacks/create/standalone/string?endpointId=3"
    assert body["name"] == project
    # The stack goes self-contained (Compose's model: nothing left to resolve in Portainer's folder),
    # and the .env values as the stack's env.
    sent = yaml.safe_load(body["stackFileContent"])
    assert set(sent["services"]) == {"web", "worker"} and sent["name"] == project
    assert sent["services"]["web"]["image"] == "chatops-busybox:1"
    assert {"name": "APP_PASSWORD", "value": "s3cret-from-dotenv-42"} in body["env"]
    assert running(world, project, "web").status == "running"

    file = world.compose_dir / "app" / "compose.yaml"
    file.write_text(file.read_text().replace("echo web up;", "echo web v2;"))
    second = await ask(p_engine, "deploy app pdtest")
    assert second.tone is Tone.success, second.text
    puts = [c for c in portainer.calls if c[0] == "PUT"]
    assert len(puts) == 1 and puts[0][1] == "/api/stacks/1?endpointId=3"
    assert "echo web v2" in puts[0][2]["stackFileContent"] and puts[0][2]["prune"] is True
    assert "echo web v2" in " ".join(running(world, project, "web").attrs["Config"]["Cmd"])

    # Service operations go through Portainer's Docker proxy.
    status = await ask(p_engine, "status pdtest app")
    assert {r[1] for r in status.tables[0].rows} == {"web", "worker"}
    before = running(world, project, "web").attrs["State"]["StartedAt"]
    await asyncio.sleep(1.1)
    assert (await ask(p_engine, "restart web pdtest")).tone is Tone.success
    assert running(world, project, "web").attrs["State"]["StartedAt"] != before
    assert any("/api/endpoints/3/docker/" in c[1] and "/restart" in c[1] for c in portainer.calls)

    # Rollback sends the recorded file with its images pinned (the tag still names the image that
    # ran, so the pin is the tag itself).
    back = await ask(p_engine, "rollback app pdtest")
    assert back.tone is Tone.success, back.text
    last = yaml.safe_load([c for c in portainer.calls if c[0] == "PUT"][-1][2]["stackFileContent"])
    assert "echo web up" in " ".join(last["services"]["web"]["command"])
    assert last["services"]["web"]["image"] == "chatops-busybox:1"


async def test_client_list_start_stop(world: DockerWorld, portainer: FakePortainer) -> None:
    client = PortainerClient(portainer.url, 3, KEY)
    assert (await client.ping()).startswith("Portainer")
    name = world.project("p", "solo")
    content = "services:\n  one:\n    image: chatops-busybox:1\n    network_mode: none\n" \
              "    command: [sleep, '600']\n"
    made = await client.create(name, content, {})
    assert [s["Name"] for s in await client.stacks()] == [name]
    assert await client.file(made["Id"]) == content
    await client.stop(made["Id"])
    assert (await client.find(name) or {})["Status"] == 2
    assert running(world, name, "one").status == "exited"
    await client.start(made["Id"])
    assert running(world, name, "one").status == "running"
    await client.delete(made["Id"])
    assert await client.stacks() == []


async def test_bad_key_and_unreachable_portainer(world: DockerWorld, portainer: FakePortainer,
                                                 p_engine: Engine) -> None:
    bad = PortainerClient(portainer.url, 3, "wrong-key")
    with pytest.raises(Exception, match="refused the API key"):
        await bad.stacks()
    portainer.api_key = "rotated"  # the bot's key no longer works
    reply = await ask(p_engine, "status pdtest")
    assert reply.tone is Tone.error and "pdtest" in reply.text
    gone = PortainerClient("http://127.0.0.1:9", 3, KEY)
    with pytest.raises(Exception, match="unreachable"):
        await gone.stacks()


def commit(repo: Path, message: str) -> None:
    if not (repo / ".git").exists():
        subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.org", "-c", "user.name=t", "commit",
                    "-qm", message], check=True)


def exec_out(world: DockerWorld, project: str, service: str, *cmd: str) -> str:
    code, out = running(world, project, service).exec_run(list(cmd))
    assert code == 0, out
    return out.decode()


async def test_a_stack_with_files_deploys_rolls_back_and_shows_status_through_portainer(
        world: DockerWorld, portainer: FakePortainer, p_engine: Engine) -> None:
    project = world.project("p", "files")
    raw = (world.compose_dir / "files" / "compose.yaml").read_text()
    # As Portainer does, the stand-in runs Compose in its own folder: the file as written fails there.
    client = PortainerClient(portainer.url, 3, KEY)
    with pytest.raises(Exception, match=r"app\.env"):
        await client.create(world.project("p", "raw"), raw, {"FILES_SECRET": "x"})

    commit(world.compose_dir, "v1")  # rollback takes the stack's files from git at the recorded commit
    card = await ask(p_engine, "deploy files pdtest", yes=False)
    plan = dict(card.fields)["What will happen"]
    assert "Self-contained for pdtest" in plan and "./app.conf" in plan and "env_file app.env" in plan, plan
    first = await ask(p_engine, "deploy files pdtest")
    assert first.tone is Tone.success, first.text
    body = next(c for c in portainer.calls if c[0] == "POST" and c[2].get("name") == project)[2]
    assert {"name": "FILES_SECRET", "value": "files-dotenv-secret-5521"} in body["env"]
    assert exec_out(world, project, "web", "cat", "/etc/app/app.conf").startswith("version = 1")
    assert exec_out(world, project, "web", "cat", "/etc/app/conf.d/a.conf") == "a = 1\n"

    conf = world.compose_dir / "files" / "app.conf"
    conf.write_text(conf.read_text().replace("version = 1", "version = 2"))
    commit(world.compose_dir, "v2")
    card = await ask(p_engine, "deploy files pdtest", yes=False)
    assert "~ web: config file /etc/app/app.conf changed" in dict(card.fields)["What will happen"]
    assert (await ask(p_engine, "deploy files pdtest")).tone is Tone.success
    assert exec_out(world, project, "web", "cat", "/etc/app/app.conf").startswith("version = 2")

    status = await ask(p_engine, "status pdtest files")
    assert status.tone is Tone.success, status.text
    assert [r[1] for r in status.tables[0].rows] == ["web"] and status.tables[0].rows[0][3] == "healthy"

    back = await ask(p_engine, "rollback files pdtest")
    assert back.tone is Tone.success, back.text
    assert exec_out(world, project, "web", "cat", "/etc/app/app.conf").startswith("version = 1")


async def test_a_project_started_outside_portainer_is_explained_with_the_steps(
        world: DockerWorld, portainer: FakePortainer, p_engine: Engine) -> None:
    project = world.project("p", "app")
    compose_up(world, project, world.compose_dir / "app")
    card = await ask(p_engine, "deploy app pdtest", yes=False)
    assert card.tone is Tone.error and not card.buttons, card.text
    assert "started outside Portainer" in card.text and f"docker compose -p {project} down" in card.text
    assert "'deploy app pdtest' again" in card.text and "named volumes" in card.text
    assert not [c for c in portainer.calls if c[0] == "POST"]
    # Following the steps works.
    subprocess.run([compose_bin(), "-p", project, "down", "-t", "1"], check=True, capture_output=True,
                   env={**os.environ, "DOCKER_HOST": SOCK})
    assert (await ask(p_engine, "deploy app pdtest")).tone is Tone.success


async def test_a_connection_dropped_after_sending_says_the_stack_may_have_changed(
        world: DockerWorld, portainer: FakePortainer, p_engine: Engine) -> None:
    assert (await ask(p_engine, "deploy app pdtest")).tone is Tone.success
    file = world.compose_dir / "app" / "compose.yaml"
    file.write_text(file.read_text().replace("echo web up;", "echo web v2;"))
    portainer.drop_after = "PUT"
    reply = await ask(p_engine, "deploy app pdtest")
    assert reply.tone is Tone.error, reply.text
    assert "dropped after the request (PUT" in reply.text and "may have changed" in reply.text
    assert "Nothing was changed" not in reply.text and ".." not in reply.text
    # It did act: the new command runs.
    assert "echo web v2" in " ".join(running(world, world.project("p", "app"), "web").attrs["Config"]["Cmd"])
    gone = PortainerClient("http://127.0.0.1:9", 3, KEY)
    with pytest.raises(Exception) as exc:
        await gone.stacks()
    assert "Nothing was changed." in str(exc.value) and ".." not in str(exc.value)


async def test_wrong_key_and_wrong_endpoint_name_the_config_key(world: DockerWorld, portainer: FakePortainer,
                                                                p_engine: Engine) -> None:
    wrong_id = await ask(p_engine, "status pdwrong")
    assert wrong_id.tone is Tone.error and "environments.pdwrong.portainer.endpoint_id" in wrong_id.text
    health = await ask(p_engine, "health")
    rows = {r[0]: r for r in health.tables[0].rows}
    assert rows["docker:pdtest"][1] == "ok" and "endpoint 3" in rows["docker:pdtest"][2]
    assert rows["docker:pdwrong"][1] == "DOWN" and "portainer.endpoint_id" in rows["docker:pdwrong"][2]
    portainer.api_key = "rotated"
    # Portainer's /api/system/status needs no key; the probe asks something that does.
    assert (await PortainerClient(portainer.url, 3, "wrong").ping()).startswith("Portainer")
    health = await ask(p_engine, "health")
    rows = {r[0]: r for r in health.tables[0].rows}
    assert rows["docker:pdtest"][1] == "DOWN" and "environments.pdtest.portainer.api_key" in rows["docker:pdtest"][2]
    deploy = await ask(p_engine, "deploy app pdtest")
    assert deploy.tone is Tone.error and "environments.pdtest.portainer.api_key" in deploy.text
