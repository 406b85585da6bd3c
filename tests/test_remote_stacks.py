"""A stack with a bind-mounted file and an env_file through an engine that cannot see the stack folder.

The bot runs in a private mount namespace (`unshare -m`): its stack folder is a tmpfs no one
else sees, its home is read-only, and no CHATOPS_DATA_DIR is set.  The engine (the test
dockerd, in the host's namespace) is reached over tcp on loopback.  Deploy, status, redeploy,
rollback and `deploy ref=` must all work, the files reaching the containers through the API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.db.deployments import DeploymentStore
from infra.db.store import Database
from tests.docker_fixtures import DATA, SOCK, DockerWorld, docker_client, world
from tests.test_no_secrets_at_rest import SECRETS, everything_stored

__all__ = ["docker_client", "world"]
ROOT = Path(__file__).resolve().parent.parent


def run_in_private_namespace(world: DockerWorld, tmp_path: Path, pg_url: str,
                             steps: list[dict[str, str]]) -> list[dict[str, object]]:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root for a private mount namespace")
    private = tmp_path / "private-stacks"  # empty for the engine; the bot's tmpfs in its namespace
    private.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "gitconfig").write_text("")
    stage = world.compose_dir
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "v1"]):
        subprocess.run(["git", "-C", str(stage), "-c", "user.email=t@example.org", "-c", "user.name=t", *cmd],
                       check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CHATOPS_DATA_DIR", "XDG_DATA_HOME",
                                                            "CHATOPS_FINGERPRINT_KEY")}
    env.update(HOME=str(home), CHATOPS_CONFIG=str(DATA / "docker-test.yaml"), CHATOPS_TEST_PREFIX=world.prefix,
               CHATOPS_TEST_COMPOSE=str(private), CHATOPS_TEST_DOCKER_HOST=SOCK, DATABASE_URL=pg_url,
               PYTHONPATH=str(ROOT), GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"))
    script = (f"mount -t tmpfs tmpfs {private} && cp -a {stage}/. {private}/ && "
              f"mount --bind {home} {home} && mount -o remount,ro,bind {home} && "
              f"! touch {home}/probe 2>/dev/null && "
              f"exec {sys.executable} -m tests.remote_driver '{json.dumps(steps)}'")
    run = subprocess.run(["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not any(private.iterdir()), "the engine's view of the stack folder must stay empty"
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def cat(world: DockerWorld, project: str, path: str) -> str:
    found = world.containers(project, "web")
    assert len(found) == 1
    code, out = found[0].exec_run(["cat", path])
    assert code == 0, out
    return out.decode()


def test_bind_mounted_files_and_env_file_through_a_remote_engine_with_a_read_only_home(
        world: DockerWorld, tmp_path: Path, pg_url: str) -> None:
    project = world.project("r", "files")
    replies = run_in_private_namespace(world, tmp_path, pg_url, [
        {"ask": "deploy files dremote", "yes": "0"},
        {"ask": "deploy files dremote"},
        {"ask": "status dremote files"},
        {"edit": "files/app.conf", "old": "version = 1", "new": "version = 2", "tag": "v2"},
        {"ask": "deploy files dremote"},
        {"ask": "rollback files dremote"},
        {"edit": "files/app.conf", "old": "version = 2", "new": "version = 3"},
        {"ask": "deploy files dremote ref=v2"},
    ])
    card, first, status, second, back, by_ref = replies
    plan = dict(card["fields"])["What will happen"]  # type: ignore[arg-type]
    assert "Self-contained for dremote (inline_files: auto)" in plan and "./app.conf" in plan, plan
    for reply in (first, second, back, by_ref):
        assert reply["tone"] == "success", reply["text"]
    assert "self-contained" in str(first["text"])
    assert status["tone"] == "success" and status["tables"][0][0][1] == "web", status  # type: ignore[index]
    assert status["tables"][0][0][3] == "healthy", status  # type: ignore[index]
    # ref=v2 (the folder now holds v3): extracted into a per-request folder by a bot with a read-only home.
    assert cat(world, project, "/etc/app/app.conf").startswith("version = 2")
    web = world.containers(project, "web")[0]
    assert not [m for m in web.attrs["Mounts"] if m["Type"] == "bind"]
    env = dict(e.split("=", 1) for e in web.attrs["Config"]["Env"])
    assert env["APP_TOKEN"] == "tok-from-env-file-7781" and env["FILES_SECRET"] == "files-dotenv-secret-5521"
    db = Database(pg_url)
    try:
        revs = DeploymentStore(db).history("dremote", "files")
        assert [r.action for r in revs] == ["deploy", "rollback", "deploy", "deploy"]
        assert all(r.status == "succeeded" for r in revs)
        assert revs[1].rollback_of == revs[3].id
        stored = everything_stored(db)
        assert not [s for s in SECRETS if s in stored]
    finally:
        db.dispose()
