"""Fixtures for tests against the real test Docker engine (scripts/services.d/20-dockerd.sh).

Each test gets its own copy of tests/data/compose and its own Compose project prefix,
so tests never see each other's containers; everything a test started is removed after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from bot.engine import Engine
from infra.config import Config, load_config
from infra.db.store import AuditStore, Database
from infra.wiring import make_backends

DATA = Path(__file__).resolve().parent / "data"
SOCK = os.environ.get("CHATOPS_TEST_DOCKER_HOST", "unix:///run/chatops-docker.sock")
BASE_IMAGE = "chatops-busybox:1"


def _engine_or_skip() -> docker.DockerClient:
    try:
        client = docker.DockerClient(base_url=SOCK, timeout=20)
        client.ping()
        client.images.get(BASE_IMAGE)
        return client
    except Exception as exc:  # the service is missing: fail in CI, skip elsewhere
        why = (f"the test Docker engine is not available on {SOCK} with {BASE_IMAGE} ({exc}); "
               "run scripts/services.d/20-dockerd.sh")
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = _engine_or_skip()
    yield client
    client.close()


@dataclass
class DockerWorld:
    config_path: Path
    compose_dir: Path
    prefix: str
    client: docker.DockerClient

    def config(self) -> Config:
        return load_config(self.config_path)

    def project(self, env_letter: str, stack: str) -> str:
        return f"{self.prefix}{env_letter}-{stack}"

    def containers(self, project: str, service: str | None = None) -> list[docker.models.containers.Container]:
        labels = [f"com.docker.compose.project={project}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return self.client.containers.list(all=True, filters={"label": labels})

    def env(self) -> dict[str, str]:
        """Process environment for a `chatops` subprocess using this world."""
        env = dict(os.environ)
        env.update(CHATOPS_CONFIG=str(self.config_path), CHATOPS_TEST_PREFIX=self.prefix,
                   CHATOPS_TEST_COMPOSE=str(self.compose_dir), CHATOPS_DATA_DIR=str(self.compose_dir.parent / "data"))
        return env


@dataclass
class MovingTag:
    """A tag `NAME:1` on the base image that the app stack runs, and another image to move it to."""

    tag: str
    base: docker.models.images.Image
    other: docker.models.images.Image

    def move(self) -> None:
        self.other.tag(self.tag, "1")  # the tag now names another image


@contextlib.contextmanager
def moving_tag(world: DockerWorld) -> Iterator[MovingTag]:
    """Point the app stack at a tag of the base image that a test can move later (an image built
    locally, no registry); both tags are removed afterwards."""
    client = world.client
    tag = f"chatops-moving-{world.prefix}"
    base = client.images.get(BASE_IMAGE)
    base.tag(tag, "1")
    helper = client.containers.run(BASE_IMAGE, ["touch", "/marker"], network_mode="none", detach=True)
    helper.wait()
    other = helper.commit(repository=tag, tag="other")
    helper.remove()
    try:
        file = world.compose_dir / "app" / "compose.yaml"
        file.write_text(file.read_text().replace("${APP_IMAGE:-chatops-busybox:1}", f"{tag}:1"))
        yield MovingTag(tag, base, other)
    finally:
        for ref in (f"{tag}:1", f"{tag}:other"):
            client.images.remove(ref, force=True)


@pytest.fixture
def world(docker_client: docker.DockerClient, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerWorld]:
    prefix = "ct" + uuid.uuid4().hex[:8]
    compose_dir = tmp_path / "compose"
    shutil.copytree(DATA / "compose", compose_dir)
    monkeypatch.setenv("CHATOPS_TEST_PREFIX", prefix)
    monkeypatch.setenv("CHATOPS_TEST_COMPOSE", str(compose_dir))
    monkeypatch.setenv("CHATOPS_DATA_DIR", str(tmp_path / "data"))
    w = DockerWorld(DATA / "docker-test.yaml", compose_dir, prefix, docker_client)
    yield w
    remove_projects(docker_client, prefix)


def remove_projects(client: docker.DockerClient, prefix: str) -> None:
    """Remove the containers of every Compose project named `prefix…`.

    The engine is shared by concurrent test runs: list sparsely (no inspect per container) and
    ignore a container that another run removed in the meantime.
    """
    for c in client.containers.list(all=True, sparse=True, filters={"label": "com.docker.compose.project"}):
        if (c.attrs.get("Labels") or {}).get("com.docker.compose.project", "").startswith(prefix):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)


@pytest.fixture
async def docker_engine(world: DockerWorld, db: Database) -> AsyncIterator[Engine]:
    config = world.config()
    eng = Engine(config, AuditStore(db), make_backends(config))
    await eng.start()
    yield eng
    await eng.close()


def compose_bin() -> str:
    from infra.compose import compose_binary

    return compose_binary()


def compose_up(world: DockerWorld, project: str, folder: Path) -> None:
    """Plain `docker compose up -d` (the way a person would), for comparisons."""
    subprocess.run([compose_bin(), "-p", project, "-f", str(folder / "compose.yaml"), "up", "-d"],
                   check=True, capture_output=True, env={**os.environ, "DOCKER_HOST": SOCK})
