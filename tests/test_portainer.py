"""The Portainer driver against a loopback server that follows Portainer's HTTP API.

The stand-in deploys with Compose on the real test engine and proxies
/api/endpoints/N/docker to it, so the bot's Docker SDK calls run for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bot.engine import Engine
from bot.request import Tone
from infra.portainer import PortainerClient
from tests.docker_fixtures import SOCK, DockerWorld, docker_client, docker_engine, world
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
    assert body["stackFileContent"] == (world.compose_dir / "app" / "compose.yaml").read_text()
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

    # Rollback sends the recorded file with its images pinned.
    back = await ask(p_engine, "rollback app pdtest")
    assert back.tone is Tone.success, back.text
    last = [c for c in portainer.calls if c[0] == "PUT"][-1][2]["stackFileContent"]
    assert "echo web up" in last and "sha256:" in last


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
