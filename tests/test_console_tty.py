"""The console in a real pseudo-terminal: its own files, output that fits, a prompt that keeps up.

Issue #17 (first contact) and #19 item 8 (a console that keeps up), driven the way a
person uses it: keys typed into a pty, the screen read back through a terminal emulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from sqlalchemy import create_engine, text

from commands.registry import registry

from .conftest import ROOT
from .docker_fixtures import SOCK, DockerWorld, docker_client, remove_projects, world
from .pty_support import Terminal, clean_env, console_argv, missing_words, readonly

__all__ = ["docker_client", "world"]

NO_TRACE = ("Traceback", "Unhandled exception", "Press ENTER", "Application is not running")


def assert_clean(term: Terminal) -> None:
    out = term.text()
    for bad in NO_TRACE:
        assert bad not in out, out[-3000:]


def _history_session(prefix: list[str], env: dict[str, str]) -> Terminal:
    term = Terminal([*prefix, *console_argv("--as", "alice", "--no-local")], env)
    term.wait_for(r"console:alice>")
    term.type("whoami")
    term.wait_for(r"You are console:alice")
    at = term.mark()
    term.child.send("\x1b[A")  # Up: the line typed before comes back from history
    term.type("")
    term.wait_for(r"You are console:alice", after=at)
    return term


@pytest.mark.parametrize("tmp_writable", [True, False], ids=["tmp-writable", "nothing-writable"])
def test_read_only_home_with_database_url(pg_url: str, tmp_path: Path, tmp_writable: bool) -> None:
    home = tmp_path / "home"
    home.mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = clean_env(HOME=str(home), TMPDIR=str(scratch), DATABASE_URL=pg_url)
    # Nothing writable: also every folder Python's tempfile would fall back to (/tmp, /var/tmp, the cwd).
    folders = [home] if tmp_writable else [home, scratch, Path("/tmp"), Path("/var/tmp"), ROOT]
    if not tmp_writable and os.geteuid() != 0:
        pytest.skip("making /tmp read-only for one process needs a mount namespace (root)")
    with readonly(*folders) as prefix:
        term = _history_session(prefix, env)
        assert term.close() == 0
    assert_clean(term)
    assert not any(home.iterdir()), "nothing may be written into a read-only home"
    out = "".join(term.screen().split())  # wrapped to 80 columns: compare without the line breaks
    if tmp_writable:
        kept = list(scratch.glob("chatops-*/console_history"))
        assert kept and "whoami" in kept[0].read_text(), "history goes to the writable fallback"
        assert f"Consolefilesarein{scratch}" in out
    else:
        assert "historyiskeptinmemoryforthissession" in out
        assert not any(scratch.iterdir())


def test_read_only_home_without_database_url_keeps_an_audit_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = clean_env(HOME=str(home), TMPDIR=str(scratch))
    with readonly(home) as prefix:
        res = subprocess.run([*prefix, sys.executable, "-m", "bot.cli", "run", "--as", "alice", "--no-local",
                              "whoami"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "You are console:alice" in res.stdout and "Traceback" not in res.stderr
    logs = list(scratch.glob("chatops-*/audit.sqlite3"))
    assert logs, res.stderr
    assert f"The audit log is {logs[0]}" in res.stderr


# -- output that fits ----------------------------------------------------------------
def _help_rows() -> list[str]:
    return [f"{s.usage} {s.summary}" for s in registry()]


@pytest.mark.parametrize("cols", [80, 200])
def test_help_envs_audit_fit_the_terminal(pg_url: str, tmp_path: Path, cols: int) -> None:
    env = clean_env(HOME=str(tmp_path), DATABASE_URL=pg_url)
    term = Terminal(console_argv("--as", "carol", "--no-local"), env, cols=cols)
    term.wait_for(r"console:carol>")
    term.type("lock test " + "a long reason that goes on " * 4 + "end")
    term.wait_for(r"rumpletest is frozen")
    for command, done in (("help", r"gpu \[HOST\]"), ("envs", r"\d+ environments"),
                          ("audit", r"requests? of everyone")):
        at = term.mark()
        term.type(command)
        term.wait_for(done, after=at)
        term.wait_for(r"\(request r-[0-9a-f]{8}\)\s+console:carol>", after=at)
        shown = term.screen()[at:]
        if command == "help":
            for row in _help_rows():
                assert not missing_words(row, shown), (row, shown)
        if command == "envs":
            assert not missing_words("frozen by console:carol (" + "a long reason that goes on " * 4 + "end)",
                                     shown), shown
        if command == "audit":
            assert not missing_words("rumpletest is frozen: no changes run there until 'unlock rumpletest'.",
                                     shown), shown
        for line in shown.splitlines():
            assert len(line) <= cols
    term.close()
    assert_clean(term)
    assert "\x1b[" in term.raw.decode(), "a terminal gets colour"


def test_piped_output_is_plain_and_whole(pg_url: str, tmp_path: Path) -> None:
    env = clean_env(HOME=str(tmp_path), DATABASE_URL=pg_url, COLUMNS="80")
    for words in (["help"], ["envs"], ["audit"]):
        res = subprocess.run([sys.executable, "-m", "bot.cli", "run", "--as", "carol", "--no-local", *words],
                             capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "\x1b" not in res.stdout
        if words == ["help"]:
            lines = res.stdout.splitlines()
            for spec in registry():
                # One row per command, on one line, usage and summary whole: greppable.
                assert any(spec.usage in ln and spec.summary in ln for ln in lines), spec.name


# -- the first minute, on the test engine -------------------------------------------
def local_env(pg_url: str, home: Path, prefix: str) -> dict[str, str]:
    return clean_env(HOME=str(home), DATABASE_URL=pg_url, DOCKER_HOST=SOCK, CHATOPS_LOCAL_PREFIX=prefix,
                     CHATOPS_EXAMPLE_IMAGE="chatops-busybox:1", CHATOPS_DATA_DIR=str(home / "data"))


def _confirm(term: Terminal, done: str, at: int) -> str:
    rid = term.wait_for(r"Run (r-[0-9a-f]{8})\? \[y/N\]", after=at).group(1)
    assert "[Run it]" not in term.screen()[at:], "one way to confirm"
    term.type("y")
    term.wait_for(done, timeout=120, after=at)
    return rid


@pytest.fixture
def local_prefix(docker_client: docker.DockerClient) -> Iterator[str]:
    """A Compose project prefix of this test's own on the shared test engine; its containers go after."""
    prefix = "cf" + uuid.uuid4().hex[:8] + "-"
    yield prefix
    remove_projects(docker_client, prefix)


def test_first_session_on_the_local_engine(pg_url: str, tmp_path: Path, local_prefix: str) -> None:
    env = local_env(pg_url, tmp_path, local_prefix)
    term = Terminal([str(ROOT / "scripts" / "start"), "--as", "alice"], env, cols=120)
    term.wait_for(r"environment 'local' runs the example stack 'hello'", timeout=300)
    term.wait_for(r"console:alice>")
    steps = [("deploy hello local", r"hello deployed on local.*revision (\d+)"),
             ("status local", r"hello\s+hello\s+1/1"),
             ("logs hello local", r"hello from chatops"),
             ("deploy hello local", r"hello deployed on local.*revision"),
             ("rollback hello local", r"rolled back to the file and images of revision")]
    for line, done in steps:
        at = term.mark()
        term.type(line)
        if line.startswith(("deploy", "rollback")):
            _confirm(term, done, at)
        else:
            term.wait_for(done, after=at)
    at = term.mark()
    term.type("audit")
    term.wait_for(r"requests? of console:alice", after=at)
    shown = term.screen()[at:]
    assert shown.count("succeeded") >= 5
    # The approval flow on the protected copy: asked by alice, approved by bob.
    at = term.mark()
    term.type("deploy hello local-prod")
    rid = term.wait_for(r"Run (r-[0-9a-f]{8})\? \[y/N\]", after=at).group(1)
    term.type("y")
    term.wait_for(rf"Approval needed: {rid}", after=at)
    term.type("/as bob")
    term.wait_for(r"console:bob>")
    at = term.mark()
    term.type(f"approve {rid}")
    term.wait_for(r"hello deployed on local-prod.*Decision: Approved by console:bob \(deploy for console:alice\)",
                  timeout=120, after=at)
    term.close()
    assert_clean(term)


def test_no_engine_says_how_to_get_one(pg_url: str, tmp_path: Path) -> None:
    env = clean_env(HOME=str(tmp_path), DATABASE_URL=pg_url, DOCKER_HOST=f"unix://{tmp_path}/none.sock")
    res = subprocess.run(console_argv("--as", "alice"), input="envs\n", capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "No Docker engine answers here" in res.stdout and "install Docker" in res.stdout
    assert "local-prod" not in res.stdout


def test_a_configured_inventory_gets_no_local_environments(pg_url: str, tmp_path: Path) -> None:
    env = clean_env(HOME=str(tmp_path), DATABASE_URL=pg_url, DOCKER_HOST=SOCK,
                    CHATOPS_CONFIG=str(ROOT / "chatops.yaml"))
    res = subprocess.run(console_argv("--as", "alice"), input="envs\n", capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "local-prod" not in res.stdout and "A Docker engine answers" not in res.stdout


# -- a console that keeps up (#19 item 8) --------------------------------------------
def test_typing_while_a_change_runs_ctrl_c_cancels_attachments_saved(pg_url: str, tmp_path: Path,
                                                                      world: DockerWorld) -> None:
    state = tmp_path / "state"
    env = {**clean_env(HOME=str(tmp_path), DATABASE_URL=pg_url),
           **{k: v for k, v in world.env().items() if k.startswith("CHATOPS_")}, "CHATOPS_STATE_DIR": str(state)}
    term = Terminal(console_argv("--as", "alice"), env, cols=120)
    term.wait_for(r"console:alice>")

    # Attachments: long logs are saved to a file whose path is shown.
    at = term.mark()
    term.type("deploy app dtest")
    _confirm(term, r"app deployed on dtest", at)
    at = term.mark()
    term.type("logs worker dtest tail=200")
    saved = term.wait_for(r"\[attachment (\S+), \d+ bytes: saved to (\S+)\]", after=at)
    path = Path(saved.group(2))
    assert path.is_file() and path.is_relative_to(state / "attachments")
    assert "filler line 60" in path.read_text()

    # A line typed at "Run …? [y/N]" declines the card and runs: nothing typed is lost.
    at = term.mark()
    term.type("restart web dtest")
    declined = term.wait_for(r"Run (r-[0-9a-f]{8})\? \[y/N\]", after=at).group(1)
    term.type("whoami")
    term.wait_for(rf"Cancelled {declined}; nothing was changed", after=at)
    term.wait_for(r"You are console:alice", after=at)

    # A change that runs long: the prompt stays usable, progress lands above it, Ctrl-C stops it.
    at = term.mark()
    term.type("deploy sick dtest")
    rid = _confirm(term, r"waiting for patient", at)
    typed = term.mark()
    term.type("whoami")
    term.wait_for(r"You are console:alice", after=typed)
    term.ctrl_c()
    term.wait_for(r"deploy was interrupted because console:alice cancelled it \(Ctrl-C in the console\)", after=at)
    # Its lock is free again: the same deploy is offered, not refused as running.
    at = term.mark()
    term.type("deploy sick dtest")
    again = term.wait_for(r"Run (r-[0-9a-f]{8})\? \[y/N\]", after=at).group(1)
    term.type("n")
    term.wait_for(rf"Cancelled {again}", after=at)
    term.close()
    assert_clean(term)

    engine = create_engine(pg_url)
    with engine.connect() as c:
        status, error = c.execute(text("SELECT status, error FROM requests WHERE id = :i"), {"i": rid}).one()
        kinds = [k for (k,) in c.execute(text("SELECT kind FROM audit_events WHERE request_id = :i ORDER BY seq"),
                                         {"i": rid})]
    engine.dispose()
    assert status == "interrupted" and "console:alice cancelled it (Ctrl-C in the console)" in error
    assert kinds[-1] == "interrupted"
