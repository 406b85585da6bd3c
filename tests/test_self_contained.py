"""Self-contained stacks: files a stack mounts from its folder travel inside the Compose model."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.engine import Engine
from bot.request import Tone
from infra.compose import StackSource, read_dotenv, validate
from infra.selfcontained import MAX_FILE_BYTES, make_self_contained
from tests.conftest import ROOT
from tests.docker_fixtures import DockerWorld, docker_client, docker_engine, world
from tests.test_docker_stacks import ask, running, status_of

SHIPPED = sorted(p.parent for p in (ROOT / "compose").glob("*/compose.yaml"))

__all__ = ["docker_client", "docker_engine", "world"]


def exec_out(world: DockerWorld, project: str, service: str, *cmd: str) -> str:
    c = running(world, project, service)
    code, out = c.exec_run(list(cmd))
    assert code == 0, out
    return out.decode()


async def test_files_stack_deploys_self_contained_on_an_inline_env(world: DockerWorld,
                                                                   docker_engine: Engine) -> None:
    card = await ask(docker_engine, "deploy files dinline", yes=False)
    plan = dict(card.fields)["What will happen"]
    assert "Self-contained for dinline" in plan, plan
    assert "./app.conf (" in plan and "inline config at /etc/app/app.conf" in plan, plan
    assert "./conf.d/ (2 files" in plan and "env_file app.env → environment" in plan, plan
    reply = await ask(docker_engine, "deploy files dinline")
    assert reply.tone is Tone.success, reply.text
    assert "self-contained" in reply.text
    project = world.project("i", "files")
    web = running(world, project, "web")
    # Nothing is bind-mounted from the stack folder: the files were copied in through the API.
    assert not [m for m in web.attrs["Mounts"] if m["Type"] == "bind"], web.attrs["Mounts"]
    assert exec_out(world, project, "web", "cat", "/etc/app/app.conf") == \
        (world.compose_dir / "files" / "app.conf").read_text()
    assert "$HOME stays" in exec_out(world, project, "web", "cat", "/etc/app/app.conf")
    assert exec_out(world, project, "web", "cat", "/etc/app/conf.d/a.conf") == "a = 1\n"
    mode = exec_out(world, project, "web", "stat", "-c", "%a", "/etc/app/conf.d/sub/b.sh").strip()
    assert mode == "555"  # executable stays executable, and read-only like :ro
    env = dict(e.split("=", 1) for e in web.attrs["Config"]["Env"])
    assert env["APP_TOKEN"] == "tok-from-env-file-7781" and env["FILES_SECRET"] == "files-dotenv-secret-5521"


# ---------------------------------------------------------------------------
# What cannot travel is refused up front, with the reason and the fix


def write_stack(folder: Path, service_extra: str, files: dict[str, str | bytes] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compose.yaml").write_text(
        "services:\n  web:\n    image: chatops-busybox:1\n    network_mode: none\n"
        "    command: [sleep, '600']\n" + service_extra)
    for name, body in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            (folder / name).write_bytes(body)
        else:
            (folder / name).write_text(body)


async def problems_of(folder: Path, for_portainer: bool = False) -> list[str]:
    src = StackSource("t", folder, (folder / "compose.yaml").read_text())
    model = await validate("sc-" + folder.name, src)
    return [p.line() for p in make_self_contained(model, folder, src.content,
                                                  for_portainer=for_portainer).problems]


@pytest.mark.parametrize(("extra", "files", "expect", "fix"), [
    ("    volumes: ['../outside.txt:/etc/o.txt:ro']\n", {}, "outside the stack folder", "move the file"),
    ("    volumes: ['./data:/var/lib/data']\n", {"data/x": "1"}, "writable", "read-only"),
    ("    read_only: true\n    volumes: ['./a.conf:/etc/a.conf:ro']\n", {"a.conf": "x"},
     "read-only root file system", "drop read_only"),
    ("    volumes: ['./big.conf:/etc/big.conf:ro']\n", {"big.conf": "x" * (MAX_FILE_BYTES + 1)},
     "over the 1024.0 KiB", "bake the file into the image"),
    ("    volumes: ['./logo.png:/srv/logo.png:ro']\n", {"logo.png": b"\x89PNG\x00\x01"}, "binary file", "bake it"),
    ("    volumes: ['./missing.conf:/etc/m.conf:ro']\n", {}, "not in the stack folder", "add ./missing.conf"),
])
async def test_what_cannot_travel_is_named_with_its_fix(tmp_path: Path, extra: str, files: dict[str, str | bytes],
                                                      expect: str, fix: str) -> None:
    write_stack(tmp_path / "stack", extra, files)
    problems = await problems_of(tmp_path / "stack")
    assert len(problems) == 1, problems
    reason, _, how = problems[0].partition("Fix:")
    assert expect in reason and fix in how.lower(), problems[0]


async def test_engine_host_paths_stay_and_builds_need_an_image_for_portainer(tmp_path: Path) -> None:
    write_stack(tmp_path / "stack", "    volumes: ['/var/run/docker.sock:/var/run/docker.sock']\n"
                "    build: {context: .}\n", {"Dockerfile": "FROM chatops-busybox:1\n"})
    src = StackSource("t", tmp_path / "stack", (tmp_path / "stack" / "compose.yaml").read_text())
    model = await validate("sc-host", src)
    remote = make_self_contained(model, src.workdir, src.content)
    assert remote.problems == []
    web = remote.model["services"]["web"]
    assert web["volumes"][0]["source"] == "/var/run/docker.sock"  # the engine host's own socket
    assert web["build"]["context"] == str(tmp_path / "stack")  # Compose uploads it from here
    assert any("kept as paths on the engine's host: /var/run/docker.sock" in n for n in remote.notes)
    portainer = make_self_contained(model, src.workdir, src.content, for_portainer=True)
    # With an image named, Compose builds only when it is missing: Portainer needs it on the engine.
    assert portainer.problems == [] and "build" not in portainer.model["services"]["web"]
    assert any("chatops-busybox:1 must already be on the engine" in n for n in portainer.notes)
    del model["services"]["web"]["image"]
    unnamed = make_self_contained(model, src.workdir, src.content, for_portainer=True)
    assert len(unnamed.problems) == 1 and "Portainer cannot reach" in unnamed.problems[0].line()


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
@pytest.mark.parametrize("for_portainer", [False, True], ids=["remote", "portainer"])
async def test_every_shipped_stack_can_travel_self_contained(folder: Path, for_portainer: bool,
                                                            tmp_path: Path) -> None:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    values = {k: v or "placeholder-value" for k, v in read_dotenv(folder / ".env.example").items()}
    (copy / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    src = StackSource(folder.name, copy, (copy / "compose.yaml").read_text())
    model = await validate("shipped-" + folder.name, src)
    got = make_self_contained(model, copy, src.content, for_portainer=for_portainer)
    assert got.problems == [], [p.line() for p in got.problems]
    for svc in got.model["services"].values():
        binds = [v for v in svc.get("volumes") or [] if v.get("type") == "bind"]
        assert all(os.path.isabs(v["source"]) and not v["source"].startswith(str(copy)) for v in binds), binds


async def test_a_stack_that_cannot_travel_is_refused_before_approval(world: DockerWorld,
                                                                    docker_engine: Engine) -> None:
    file = world.compose_dir / "files" / "compose.yaml"
    file.write_text(file.read_text().replace("./app.conf:/etc/app/app.conf:ro", "./app.conf:/etc/app/app.conf"))
    reply = await ask(docker_engine, "deploy files diprot", yes=False)
    assert reply.tone is Tone.error, reply.text
    assert "cannot be deployed to diprot" in reply.text and "writable" in reply.text and "Fix:" in reply.text
    assert not reply.buttons  # no confirmation, no approval card
    assert status_of(docker_engine, reply.request_id) == "refused"
    pending = docker_engine.store.get(reply.request_id or "")
    assert pending is not None and "writable" in (pending.reason or "")
    assert world.containers(world.project("j", "files")) == []


async def test_a_copy_made_for_one_request_never_leaves_binds_behind(world: DockerWorld,
                                                                    docker_engine: Engine) -> None:
    """inline_files: never with a git ref: the copy is removed afterwards, so binds into it are refused."""
    repo = world.compose_dir
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "s"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True)
    reply = await ask(docker_engine, "deploy files dnever ref=HEAD")
    assert reply.tone is Tone.error and "would vanish" in reply.text and "inline_files" in reply.text, reply.text
    assert world.containers(world.project("n", "files")) == []
    # The live folder on a local engine keeps today's behaviour: bind mounts.
    plain = await ask(docker_engine, "deploy files dnever")
    assert plain.tone is Tone.success, plain.text
    web = running(world, world.project("n", "files"), "web")
    assert {m["Destination"] for m in web.attrs["Mounts"] if m["Type"] == "bind"} == \
        {"/etc/app/app.conf", "/etc/app/conf.d"}
