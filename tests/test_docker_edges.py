"""Edges met in use: a container vanishing under `status`, a config with many stacks."""

from __future__ import annotations

import time
from pathlib import Path

from bot.engine import Engine
from bot.request import Actor, Request, Tone
from commands.registry import Kind
from infra.backends import Backends
from infra.config import Config, load_config
from infra.db.store import AuditStore, Database
from infra.docker_hosts import DockerHost

from .conftest import make_engine
from .fakes.docker_engine import FakeDockerEngine

ALICE = Actor("console:alice")


async def test_status_survives_another_project_s_container_vanishing(config: Config, db: Database,
                                                                    tmp_path: Path) -> None:
    with FakeDockerEngine(tmp_path / "fake-docker.sock") as fake:
        fake.add("a" * 64, "workflows-n8n-1", "workflows", "n8n")
        fake.add("b" * 64, "scratch-job-1", "scratch", "job")  # someone else's, removed mid-listing
        fake.vanish_on_inspect = {"b" * 64}
        host = DockerHost("rumpledev", fake.url, timeout=5)
        backends = Backends(config)
        backends.override("docker:rumpledev", host)
        eng = make_engine(config, db, backends=backends)
        await eng.start()
        try:
            reply = await eng.handle(Request(actor=ALICE, text="status dev"))
        finally:
            await eng.close()
            host.close()
    assert reply.tone is Tone.success, reply.text
    assert [r[:2] for r in reply.tables[0].rows] == [["workflows", "n8n"]]
    assert "b" * 64 not in fake.containers  # it really was gone


def many_stacks(tmp_path: Path, count: int) -> Path:
    lines = ["environments:", "  dev: {}", "stacks:"]
    for i in range(count):
        folder = tmp_path / "compose" / f"s{i}"
        folder.mkdir(parents=True)
        (folder / "compose.yaml").write_text(f"services:\n  svc{i}:\n    image: chatops-busybox:1\n")
        lines.append(f"  s{i}: {{path: compose/s{i}}}")
    cfg = tmp_path / "chatops.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def test_start_up_reads_no_stack_file_and_a_command_reads_them_when_needed(tmp_path: Path, db: Database) -> None:
    path = many_stacks(tmp_path, 200)
    began = time.monotonic()  # not asserted: start-up work is counted, not timed
    config = load_config(path)
    engine = Engine(config, AuditStore(db), Backends(config))
    assert engine.resolver is not None and time.monotonic() >= began
    services = config.stack_services
    assert services._cache == {}  # nothing read at start-up
    assert services["s7"] == ("svc7",) and set(services._cache) == {"s7"}
    # A command naming a service needs them all: read then, once.
    assert engine.resolver.resolve(Kind.service, "svc123") == "svc123"
    assert len(services._cache) == 200
    # Edited since: read again.
    (tmp_path / "compose" / "s7" / "compose.yaml").write_text("services:\n  renamed:\n    image: x\n")
    assert services["s7"] == ("renamed",)
