"""The console adapter end to end: `chatops run` and `chatops console` as real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from bot.adapters.console import ConsoleSession, Screen
from bot.engine import Engine
from bot.request import Actor

from .conftest import ROOT


def chatops(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, input=stdin, timeout=120)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CHATOPS_CONFIG")}
    env.update(extra)
    return env


def test_run_read_change_refusal_and_clarify(pg_url: str) -> None:
    env = base_env(DATABASE_URL=pg_url)
    who = chatops("run", "--as", "alice", "whoami", env=env)
    assert who.returncode == 0, who.stderr
    assert "You are console:alice with roles: operator, viewer." in who.stdout
    assert re.search(r"\(request r-[0-9a-f]{8}\)", who.stdout)

    viewer = chatops("run", "--as", "dave", "lock", "test", env=env)
    assert viewer.returncode == 1 and "needs the admin role" in viewer.stdout

    unclear = chatops("run", "--as", "alice", "restart n8n", env=env)
    assert unclear.returncode == 2 and "Which environment" in unclear.stdout

    # a change without --yes: its id, said plainly
    unconfirmed = chatops("run", "--as", "carol", "could you lock dev for a minute", env=env)
    assert re.search(r"Not run: repeat the command with --yes to confirm it \(request r-[0-9a-f]{8} lapses "
                     r"unconfirmed\)\.", unconfirmed.stdout), unconfirmed.stdout

    locked = chatops("run", "--as", "carol", "--yes", "lock test for the demo day", env=env)
    assert locked.returncode == 0 and "rumpletest is frozen" in locked.stdout
    envs = chatops("run", "--as", "bob", "envs", env=env)
    assert "frozen by console:carol (the demo day)" in envs.stdout
    audit = chatops("run", "--as", "carol", "audit", "limit=10", env=env)
    assert audit.returncode == 0
    for command in ("whoami", "lock", "envs"):
        assert f" {command} " in audit.stdout
    verify = chatops("audit", "verify", env=env)
    assert verify.returncode == 0 and "audit chain OK" in verify.stdout

    engine = create_engine(pg_url)
    with engine.connect() as c:
        statuses = dict(c.execute(text("SELECT command, status FROM requests WHERE command IN "
                                       "('whoami','lock','envs') AND actor <> 'console:dave'")).all())
    engine.dispose()
    assert statuses == {"whoami": "succeeded", "lock": "succeeded", "envs": "succeeded"}


def test_interactive_console_switches_identity(pg_url: str) -> None:
    env = base_env(DATABASE_URL=pg_url)
    session = chatops("console", "--as", "carol", env=env,
                      stdin="lock dev\n/as alice\nwhoami\naudit user=carol\n")
    assert session.returncode == 0, session.stderr
    out = session.stdout
    assert "chatops console as console:carol" in out
    assert "rumpledev is frozen" in out
    assert "now acting as console:alice" in out and "You are console:alice" in out
    assert "Only admins can review other people's requests (console:carol's here); 'audit' alone shows your own." \
        in out


def test_embedded_default_is_a_sqlite_file(tmp_path: Path) -> None:
    env = base_env(XDG_DATA_HOME=str(tmp_path), HOME=str(tmp_path))
    res = chatops("run", "--as", "alice", "whoami", env=env)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "chatops" / "audit.sqlite3").is_file()
    export = chatops("audit", "export", "--format", "json", env=env)
    assert '"command": "whoami"' in export.stdout


def test_unreachable_database_is_a_clear_message() -> None:
    env = base_env(DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/test")
    res = chatops("run", "--as", "alice", "whoami", env=env)
    assert res.returncode == 2
    assert "audit database is unreachable" in res.stderr and "Traceback" not in res.stderr


async def test_the_prompt_asks_as_the_cards_button_does(engine: Engine) -> None:
    """A change waits at 'Run r-…? [y/N]', a schedule at 'Schedule r-…? [y/N]': the verb of its button."""
    lines: list[str] = []
    session = ConsoleSession(engine, Actor("console:carol"), Screen(tty=False, write=lines.append), concurrent=False)
    await session.line("please freeze rumpledev for the upgrade")
    assert re.fullmatch(r"Run r-[0-9a-f]{8}\? \[y/N\] ", session.prompt()), lines
    await session.line("n")
    await session.line("please freeze rumpledev tonight at 23:30 for the upgrade")
    assert re.fullmatch(r"Schedule r-[0-9a-f]{8}\? \[y/N\] ", session.prompt()), lines
    await session.line("y")
    assert session.prompt() == "console:carol> "
    assert any("Scheduled s-" in line for line in lines), lines
