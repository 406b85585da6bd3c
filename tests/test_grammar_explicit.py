"""The canonical form of the spec, resolved through the inventory; never a guessed target."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from commands.registry import registry
from infra.config import Config
from llm.grammar import parse_explicit
from llm.resolve import Resolver

from .conftest import ROOT


@pytest.fixture
def parse(config: Config) -> Any:
    resolver = Resolver(config)
    return lambda text: parse_explicit(text, resolver, registry())


@pytest.mark.parametrize(("text", "command", "args"), [
    ("deploy chat rumpletest", "deploy", {"stack": "chat", "env": "rumpletest"}),
    ("deploy chat to test ref=v1.4.2", "deploy", {"stack": "chat", "env": "rumpletest", "ref": "v1.4.2"}),
    ("Deploy CHAT to Staging", "deploy", {"stack": "chat", "env": "rumpletest"}),
    ("deploy to prod the web stack", "deploy", {"stack": "web", "env": "rumpleprod"}),
    ("restart n8n on dev", "restart", {"service": "n8n", "env": "rumpledev"}),
    ("restart open webui on test", "restart", {"service": "open-webui", "env": "rumpletest"}),
    ("restart db in production", "restart", {"service": "postgres", "env": "rumpleprod"}),
    ("stop rtmp on test stack=video", "stop", {"service": "rtmp", "env": "rumpletest", "stack": "video"}),
    ("start the tunnel on live", "start", {"service": "cloudflared", "env": "rumple"}),
    ("logs nginx live tail=200 since=30m", "logs",
     {"service": "nginx", "env": "rumple", "tail": 200, "since": "30m"}),
    ("snapshot rumpleprod name=pre-upgrade", "snapshot", {"vm": "rumpleprod", "name": "pre-upgrade"}),
    ('snapshot dev vm description="before the big change"', "snapshot",
     {"vm": "rumpledev", "description": "before the big change"}),
    ("restore rumpledev pre-upgrade", "restore", {"vm": "rumpledev", "snapshot": "pre-upgrade"}),
    ("delete snapshot test vm old-one", "delete-snapshot", {"vm": "rumpletest", "snapshot": "old-one"}),
    ("vm status", "vm-status", {}),
    ("vm-status inference container", "vm-status", {"vm": "llm"}),
    ("audit env=prod since=1d", "audit", {"env": "rumpleprod", "since": "1d"}),
    ("audit user=alice status=failed limit=5", "audit", {"user": "alice", "status": "failed", "limit": 5}),
    ("status rumpletest", "status", {"env": "rumpletest"}),
    ("status dev chat", "status", {"env": "rumpledev", "stack": "chat"}),
    ("stacks test", "stacks", {"env": "rumpletest"}),
    ("gpu", "gpu", {}),
    ("gpu phoenix", "gpu", {"host": "phoenix"}),
    ("approve r-1A2B3C4D", "approve", {"request": "r-1a2b3c4d"}),
    ("deny r-1a2b3c4d not during the demo", "deny", {"request": "r-1a2b3c4d", "reason": "not during the demo"}),
    ("lock prod release freeze", "lock", {"env": "rumpleprod", "reason": "release freeze"}),
    ("unlock gpu box", "unlock", {"env": "phoenix"}),
    ("help deploy", "help", {"topic": "deploy"}),
    ("/ops whoami", "whoami", {}),
    ("rollback chat test to=7", "rollback", {"stack": "chat", "env": "rumpletest", "to": "7"}),
])
def test_canonical_forms(parse: Any, text: str, command: str, args: dict[str, Any]) -> None:
    plan = parse(text)
    assert plan.clarify is None, plan.clarify
    assert (plan.command, plan.args) == (command, args)
    assert plan.source == "grammar" and plan.confidence == 1.0


@pytest.mark.parametrize(("text", "command", "clarify_has"), [
    ("restart n8n", "restart", ["Which environment", "rumpledev", "rumpletest"]),
    ("deploy chat", "deploy", ["Which environment", "rumpleprod"]),
    ("deploy to test", "deploy", ["Which stack", "chat", "workflows"]),
    ("restore rumpledev", "restore", ["snapshot"]),
    ("snapshot", "snapshot", ["Which VM", "rumpledev", "llm"]),
])
def test_missing_targets_ask_and_name_the_choices(parse: Any, text: str, command: str,
                                                  clarify_has: list[str]) -> None:
    plan = parse(text)
    assert plan.command == command
    assert plan.clarify is not None
    for part in clarify_has:
        assert part in plan.clarify
    assert "env" not in plan.args or text.endswith("test")


@pytest.mark.parametrize(("text", "clarify_has"), [
    ("restart foo on dev", ["don't know a service called 'foo'", "n8n"]),
    ("deploy chat to mars", ["don't know an environment called 'mars'", "rumpletest"]),
    ("restart chat on dev", ["'chat' is a stack, not a service", "open-webui"]),
    ("snapshot live", ["with no Proxmox guest behind it", "rumpledev"]),
    ("snapshot rumple", ["with no Proxmox guest behind it"]),
    ("restore rumple pre-upgrade", ["rumple is a Docker environment with no Proxmox guest"]),
    ("delete-snapshot live old-one", ["rumple is a Docker environment with no Proxmox guest"]),
    ("logs nginx dev tail=0", ["between 1 and 5000"]),
    ("logs nginx dev tail=many", ["whole number"]),
    ("logs nginx dev since=lately", ["duration like 15m"]),
    ("deploy chat test colour=blue", ["has no argument 'colour'"]),
    ("approve 123", ["not a request id"]),  # (4+ hex digits are an id prefix: tests/test_language_pass5.py)
    ("approve banana", ["not a request id"]),
    ("audit status=weird", ["status must be one of"]),
])
def test_unknown_names_give_null_and_a_question(parse: Any, text: str, clarify_has: list[str]) -> None:
    plan = parse(text)
    assert plan.command is None
    assert plan.args == {}
    for part in clarify_has:
        assert part in (plan.clarify or ""), plan.clarify


def test_not_an_ops_request_and_oversized_text(parse: Any) -> None:
    assert parse("good morning everyone").command is None
    assert parse("").command is None
    huge = parse("restart n8n on dev " + "x" * 5000)
    assert huge.command is None and "too long" in (huge.clarify or "")


def test_parse_cli_json_and_stdin() -> None:
    one = subprocess.run([sys.executable, "-m", "bot.cli", "parse", "--json", "deploy", "chat", "to", "staging"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(one.stdout) == {"command": "deploy", "args": {"stack": "chat", "env": "rumpletest"},
                                      "source": "grammar", "clarify": None, "confidence": 1.0,
                                      "outcome": "run"}
    lines = "restart n8n on dev\nhello\nsnapshot live\n"
    many = subprocess.run([sys.executable, "-m", "bot.cli", "parse", "--json", "-"], input=lines,
                          capture_output=True, text=True, cwd=ROOT, check=True)
    plans = [json.loads(x) for x in many.stdout.splitlines()]
    assert [p["command"] for p in plans] == ["restart", None, None]
    assert plans[2]["clarify"].startswith("rumple is a Docker environment with no Proxmox guest")
