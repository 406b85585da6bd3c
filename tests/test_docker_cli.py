"""End to end through the `chatops` CLI against the real test engine and PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from tests.docker_fixtures import DockerWorld, compose_up, docker_client, world
from tests.test_docker_stacks import running

__all__ = ["docker_client", "world"]


def chatops(world: DockerWorld, pg_url: str, user: str, *words: str,
            yes: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "bot.cli", "run", "--as", user, *(["--yes"] if yes else []), *words]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                          env={**world.env(), "DATABASE_URL": pg_url})


def test_cli_read_change_and_approved_restart(world: DockerWorld, pg_url: str) -> None:
    deployed = chatops(world, pg_url, "alice", "deploy", "app", "dtest", yes=True)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "revision" in deployed.stdout
    status = chatops(world, pg_url, "vic", "status", "dtest")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "web" in status.stdout and "worker" in status.stdout and "healthy" in status.stdout

    # A protected environment: alice asks, bob approves, the container really restarts.
    prod = world.project("b", "app")
    compose_up(world, prod, world.compose_dir / "app")
    before = running(world, prod, "web").attrs["State"]["StartedAt"]
    time.sleep(1.1)
    asked = chatops(world, pg_url, "alice", "restart", "web", "dprot", yes=True)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    rid = re.search(r"\br-[0-9a-f]{8}\b", asked.stdout)
    assert rid, asked.stdout
    assert running(world, prod, "web").attrs["State"]["StartedAt"] == before  # not yet
    own = chatops(world, pg_url, "alice", "approve", rid.group(0))
    assert own.returncode != 0
    approved = chatops(world, pg_url, "bob", "approve", rid.group(0))
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "restarted" in approved.stdout
    assert running(world, prod, "web").attrs["State"]["StartedAt"] != before

    denied = chatops(world, pg_url, "vic", "restart", "web", "dtest", yes=True)
    assert denied.returncode != 0 and "operator" in (denied.stdout + denied.stderr)
