"""Bad input at the command line and in the config: a clear message, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.engine import Engine
from bot.request import Actor, Request, Tone
from infra.backends import Health
from infra.config import ConfigError, load_config
from infra.errors import NotConfigured
from infra.wiring import make_backends
from llm.eval import CasesError, load_cases
from llm.values import parse_since

from .conftest import ROOT
from .test_config import MINIMAL, write
from .test_console import base_env, chatops

ALICE = Actor("console:alice")


# -- console / CLI ------------------------------------------------------------------------

def test_run_with_oversized_text_is_refused_with_the_limit(pg_url: str) -> None:
    text = "restart n8n on dev " + "please " * 600
    res = chatops("run", "--as", "alice", "--yes", text, env=base_env(DATABASE_URL=pg_url))
    assert res.returncode == 2, res.stderr
    assert "too long" in res.stdout and "the limit is" in res.stdout
    assert "Traceback" not in res.stderr


def test_parse_stdin_survives_binary_and_very_long_lines() -> None:
    stdin = b"status rumpletest\n\xff\xfe\x00\x01garbage\n" + b"status " + b"x" * 100_000 + b"\n"
    res = subprocess.run([sys.executable, "-m", "bot.cli", "parse", "--json", "-"], input=stdin,
                         capture_output=True, cwd=ROOT, timeout=120,
                         env={**base_env(), "PYTHONIOENCODING": "utf-8:strict"})
    assert res.returncode == 0, res.stderr.decode()
    out = res.stdout.decode().splitlines()
    assert len(out) == 3, out
    assert '"command": "status"' in out[0]
    assert '"command": null' in out[1]
    assert "too long" in out[2]
    assert b"Traceback" not in res.stderr


def test_cases_file_with_undecodable_bytes_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "cases.jsonl"
    bad.write_bytes(b'{"text": "status test", "expect": null}\n{"text": "\xff\xfe"}\n')
    with pytest.raises(CasesError, match=r"cases\.jsonl:2: not UTF-8"):
        load_cases(bad)
    res = chatops("eval", "nl", str(bad), env=base_env())
    assert res.returncode == 2 and f"{bad}:2:" in res.stderr and "Traceback" not in res.stderr
    bad.write_text('{"text": "status test", "expect": null}\n\n{"text": 3, "expect": null}\n')
    res = chatops("eval", "nl", str(bad), env=base_env())
    assert res.returncode == 2 and f"{bad}:3:" in res.stderr and '"text" (a string)' in res.stderr


@pytest.mark.parametrize("since", ["garbage", "999999w", "2024-13-45"])
def test_audit_export_since_garbage_is_refused(pg_url: str, since: str) -> None:
    res = chatops("audit", "export", "--since", since, env=base_env(DATABASE_URL=pg_url))
    assert res.returncode == 2
    assert f"--since takes 15m, 2h, 1d or an ISO date, not '{since}'" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_duration_past_year_one_is_not_a_time() -> None:
    assert parse_since("999999w") is None
    assert parse_since("15m") is not None


async def test_audit_since_past_year_one_asks_instead_of_failing(engine: Engine) -> None:
    reply = await engine.handle(Request(actor=Actor("console:carol"), text="audit since=999999w"))
    assert reply.tone is Tone.question and "999999w" in reply.text
    assert "went wrong" not in reply.text


# -- config ---------------------------------------------------------------------------------

def test_docker_host_with_a_bad_scheme_names_line_and_schemes(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL.replace("aliases: [test]", "aliases: [test]\n    docker: {host: http://h:2375}"))
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert "chatops.yaml:4:" in msg and "environments.rumpletest.docker.host" in msg and "unix://" in msg


def test_proxmox_token_id_without_bang_is_refused_at_load(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL + "proxmox:\n  host: pve:8006\n  token_id: chatops@pve\n")
    with pytest.raises(ConfigError, match=r"proxmox\.token_id.*user@realm!tokenid"):
        load_config(p)


def test_missing_env_secret_for_proxmox_names_the_variable(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RB_UNSET_PVE_SECRET", raising=False)
    p = write(tmp_path, MINIMAL + "proxmox:\n  host: pve:8006\n  token_id: chatops@pve!bot\n"
                                  "  token_secret: ${RB_UNSET_PVE_SECRET}\n")
    cfg = load_config(p)
    backends = make_backends(cfg)
    with pytest.raises(NotConfigured) as err:
        backends.proxmox()
    msg = str(err.value)
    assert "proxmox.token_secret" in msg and "RB_UNSET_PVE_SECRET is not set" in msg
    check = chatops("config", "check", "--config", str(p), env=base_env())
    assert check.returncode == 0
    assert "warning: proxmox.token_secret is ${RB_UNSET_PVE_SECRET}" in check.stderr


async def test_health_reports_a_half_configured_backend_as_failing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RB_UNSET_PVE_SECRET", raising=False)
    p = write(tmp_path, MINIMAL + "proxmox:\n  host: pve:8006\n  token_id: chatops@pve!bot\n"
                                  "  token_secret: ${RB_UNSET_PVE_SECRET}\n")
    results = {r.name: r for r in await make_backends(load_config(p)).health()}
    assert results["proxmox"].ok is False and "RB_UNSET_PVE_SECRET" in results["proxmox"].detail
    assert results["proxmox"].state is Health.misconfigured  # not "DOWN": nothing was asked, nothing failed


def test_an_empty_proxmox_section_stays_plainly_unconfigured(tmp_path: Path) -> None:
    backends = make_backends(load_config(write(tmp_path, MINIMAL)))
    with pytest.raises(NotConfigured, match=r"Proxmox is not configured: set proxmox\.host"):
        backends.proxmox()


async def test_portainer_key_from_a_missing_variable_is_named_on_use(tmp_path: Path, db: object,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.db.store import AuditStore, Database

    assert isinstance(db, Database)
    monkeypatch.delenv("RB_UNSET_PORTAINER_KEY", raising=False)
    p = write(tmp_path, MINIMAL.replace("aliases: [test]", "aliases: [test]\n    portainer: "
                                        "{url: 'http://127.0.0.1:9', endpoint_id: 1, "
                                        "api_key: '${RB_UNSET_PORTAINER_KEY}'}")
              + "users:\n  'console:alice': [operator]\n")
    cfg = load_config(p)
    engine = Engine(cfg, AuditStore(db), make_backends(cfg))
    await engine.start()
    try:
        reply = await engine.handle(Request(actor=ALICE, text="deploy chat test", confirmed=True))
        assert reply.tone is Tone.error
        assert "environments.rumpletest.portainer.api_key is not set" in reply.text
        assert "RB_UNSET_PORTAINER_KEY is not set" in reply.text
        row = engine.store.get(reply.request_id or "")
        assert row is not None and row.status == "refused" and "portainer.api_key" in (row.reason or "")
    finally:
        await engine.close()


# -- a config file that YAML reads differently from what its author meant, or that costs too much ---------------

@pytest.mark.parametrize("text, said", [
    # YAML lets a second key silently replace the first: protection or roles would quietly change.
    (MINIMAL.replace("environments:\n", "environments:\n  rumpletest: {protected: true}\n"),
     r"chatops\.yaml:3: invalid YAML: the key 'rumpletest' is given twice \(lines 2 and 3\)"),
    (MINIMAL + 'users:\n  "console:alice": [admin]\n  "console:alice": [viewer]\n',
     r"the key 'console:alice' is given twice"),
    # A key that matches no identity or channel would make its roles or rules apply to nobody.
    (MINIMAL + "channels:\n  C0OPS: {commands: [status]}\n", r"channels\.C0OPS: channel ids are a platform"),
    (MINIMAL + 'users:\n  "Slack:U1": [operator]\n', r"write the platform in lower case: 'slack:U1'"),
    (MINIMAL + 'users:\n  "teams:U2": [viewer]\n', r"start it with one of slack:, discord: or console:"),
    # Aliases that stand for a billion values, or for themselves.
    ("".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10) if i else ', '.join(['x'] * 10)}]\n" for i in range(8))
     + MINIMAL, r"expands to more than 100,000 values"),
    ("a: &a [*a]\n" + MINIMAL, r"a YAML alias refers to a value that contains it"),
    (MINIMAL + "llm: [1]\n", r"llm: Input should be a valid dictionary"),
    (MINIMAL + "schedules: {approval: sometimes}\n", r"Fix: use one of: 'at_schedule' or 'at_run'"),
])
def test_a_config_yaml_would_misread_is_refused_with_line_and_fix(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        load_config(write(tmp_path, text))


def test_undecodable_oversized_or_empty_config_paths_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "# caf\xe9\n")
    path.write_bytes(MINIMAL.encode() + b"# \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"chatops\.yaml:6: the config file is not UTF-8 text"):
        load_config(path)
    path.write_text(MINIMAL + "#" * (2 << 20))
    with pytest.raises(ConfigError, match=r"a config is at most 1,048,576"):
        load_config(path)
    res = chatops("config", "check", "--config", "", env=base_env())
    assert res.returncode == 2 and "(--config) is empty" in res.stderr and "Traceback" not in res.stderr
    res = chatops("config", "check", env=base_env(CHATOPS_CONFIG=""))
    assert res.returncode == 2 and "CHATOPS_CONFIG is empty" in res.stderr


def test_bad_environment_values_are_configuration_errors_on_every_command(tmp_path: Path) -> None:
    for args in (("db", "status"), ("run", "--as", "alice", "whoami"), ("audit", "verify")):
        res = chatops(*args, env=base_env(CHATOPS_AUDIT_UNKEYED="banana"))
        assert res.returncode == 2 and "environment variable CHATOPS_AUDIT_UNKEYED" in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr
    for url, said in (("garbage", "is not a database URL"), ("mysql://u@127.0.0.1/x", "names a mysql database"),
                      ("postgresql+psycopg://u:sekrit@127.0.0.1:notaport/x", "is not a database URL")):
        for args in (("db", "status"), ("audit", "export"), ("run", "--as", "alice", "whoami")):
            res = chatops(*args, env=base_env(DATABASE_URL=url))
            assert res.returncode == 2 and said in res.stderr, (url, args, res.stderr)
            assert "Traceback" not in res.stderr and "sekrit" not in res.stderr
    env_file = tmp_path / "chatops.env"
    env_file.write_text("A=1\n=x\n")
    res = chatops("--env-file", str(env_file), "config", "check", env=base_env())
    assert res.returncode == 2 and f"{env_file}:2: not a NAME=VALUE line" in res.stderr


def test_doctor_masks_a_password_in_the_urls_it_quotes(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("    aliases: [test]\n", "    aliases: [test]\n    portainer: "
                                          "{url: 'https://admin:PortPW123@127.0.0.1:1', endpoint_id: 1}\n"))
    res = chatops("doctor", "--config", str(path), env=base_env())
    assert "portainer" in res.stdout and "127.0.0.1:1" in res.stdout, res.stdout
    assert "PortPW123" not in res.stdout + res.stderr


def test_bad_command_line_values_are_named_not_tracebacks(tmp_path: Path) -> None:
    env = base_env(XDG_DATA_HOME=str(tmp_path / "data"), XDG_STATE_HOME=str(tmp_path / "state"))
    assert chatops("run", "--as", "alice", "whoami", env=env).returncode == 0  # (makes the SQLite audit log)
    for args, said in ((("audit", "export", "-o", str(tmp_path / "no" / "dir" / "x.csv")),
                        "No such file or directory. Nothing was written there."),
                       (("audit", "prune", "--days", "99999999999", "--dry-run"), "is not in the range"),
                       (("serve", "api", "--log-level", "BOGUS"), "Invalid value for '--log-level'")):
        res = chatops(*args, env=env)
        assert res.returncode == 2 and said in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr


@pytest.mark.parametrize("extra, said", [
    ("vms:\n  a: {vmid: 101}\n  b: {vmid: 101}\n", r"vms\.b\.vmid: vmid 101 on phoenix is also 'a'"),
    ("vms:\n  a: {vmid: 7}\n", r"vms\.a\.vmid: Input should be greater than or equal to 100"),
    ("proxmox: {timeout_s: -5}\n", r"proxmox\.timeout_s: Input should be greater than 0"),
    ("llm: {max_retries: -3}\n", r"llm\.max_retries: Input should be greater than or equal to 0"),
])
def test_values_no_backend_could_take_are_refused_at_load(tmp_path: Path, extra: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        load_config(write(tmp_path, MINIMAL + extra))
