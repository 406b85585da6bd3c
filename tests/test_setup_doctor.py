"""`chatops init` and `chatops doctor` against real peers: the test Docker engine and the
protocol stand-ins on loopback (Proxmox over HTTPS, vLLM's OpenAI API, Slack, Discord)."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT
from .docker_fixtures import SOCK, docker_client
from .fakes.discord_api import FakeDiscord
from .fakes.openai_server import FakeOpenAI
from .fakes.prometheus_server import free_port
from .fakes.proxmox_api import ProxmoxFake
from .fakes.slack_api import FakeSlack

__all__ = ["docker_client"]
TOKEN_ID = "chatops@pve!bot"
SECRET = "0b7c5f3e-6b1d-4d0a-9f7e-0d1c2b3a4f5e"
MODEL = "Qwen/Qwen2.5-7B-Instruct-AWQ"


@dataclass
class Peers:
    proxmox: ProxmoxFake
    llm: FakeOpenAI
    slack: FakeSlack
    slack_api: str
    discord: FakeDiscord


@pytest.fixture
def proxmox(tmp_path: Path) -> Iterator[ProxmoxFake]:
    fake = ProxmoxFake(tmp_path / "pve", tokens={TOKEN_ID: SECRET}).start()
    yield fake
    fake.stop()


@pytest.fixture
async def peers(proxmox: ProxmoxFake) -> AsyncIterator[Peers]:
    llm = FakeOpenAI(model=MODEL, api_key="vllm-key")
    await llm.start()
    slack = FakeSlack()
    slack_api = await slack.start()
    async with FakeDiscord() as discord:
        yield Peers(proxmox, llm, slack, slack_api, discord)
    await slack.stop()
    await llm.stop()


async def chatops(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """The CLI as a real process; the stand-ins keep serving on this test's event loop meanwhile."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", *args, cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode or 0, out.decode(), err.decode()


def base_env(tmp_path: Path, p: Peers, **extra: str) -> dict[str, str]:
    drop = ("DATABASE_URL", "CHATOPS_CONFIG", "SLACK_BOT_TOKEN", "DISCORD_TOKEN", "LLM_BASE_URL", "LLM_MODEL",
            "LLM_API_KEY", "PROXMOX_HOST", "PROXMOX_TOKEN_ID", "PROXMOX_TOKEN_SECRET", "GPU_SOURCE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), SLACK_API_URL=p.slack_api,
               DISCORD_API_URL=p.discord.base)
    env.update(extra)
    return env


def answers(p: Peers, **override: object) -> dict[str, object]:
    a: dict[str, object] = {
        "docker_hosts": {"dev": SOCK, "prod": {"host": SOCK, "protected": True}},
        "proxmox": {"host": p.proxmox.host, "token_id": TOKEN_ID, "token_secret": SECRET,
                    "ca_bundle": str(p.proxmox.ca_path)},
        "gpu": {"host": "phoenix", "source": "nvidia-smi", "ssh": "gpu@phoenix"},
        "llm": {"base_url": p.llm.base_url, "api_key": "vllm-key"},
        "slack": {"bot_token": p.slack.token, "app_token": p.slack.app_token},
        "discord": {"token": "test-token", "guild_id": "123456789012345678"},
        "admin": "slack:U0ADMIN",
    }
    a.update(override)
    return a


async def test_init_from_answers_writes_a_config_that_config_check_accepts(
        tmp_path: Path, peers: Peers, docker_client: object) -> None:
    file = tmp_path / "answers.yaml"
    file.write_text(yaml.safe_dump(answers(peers)))
    out = tmp_path / "conf"
    env = base_env(tmp_path, peers)
    code, stdout, stderr = await chatops("init", "--answers", str(file), "--out", str(out), env=env)
    assert code == 0, stdout + stderr
    for name in ("docker:dev", "docker:prod", "proxmox", "llm", "slack", "discord"):
        assert f"✔ {name}:" in stdout, stdout
    config, secrets = out / "chatops.yaml", out / "chatops.env"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    text = config.read_text()
    assert text.startswith("# chatops configuration written by 'chatops init'")
    for secret in (SECRET, "vllm-key", peers.slack.token, "test-token"):
        assert secret not in text and secret in secrets.read_text()
    inv = yaml.safe_load(text)
    assert inv["environments"]["prod"]["protected"] is True
    assert inv["llm"]["model"] == MODEL  # taken from what the server serves
    assert inv["users"] == {"slack:U0ADMIN": ["admin"]}

    code, stdout, stderr = await chatops("--env-file", str(secrets), "config", "check", "--config", str(config),
                                         env=env)
    assert code == 0 and ": OK (2 environments" in stdout, stdout + stderr
    assert "warning" not in stderr, stderr
    code, stdout, stderr = await chatops("--env-file", str(secrets), "doctor", "--config", str(config), env=env)
    assert "✘ gpu:phoenix" in stdout  # no ssh to a 'phoenix' here: the one expected failure, with its fix
    for name in ("config", "database", "docker:dev", "proxmox", "llm", "slack", "discord"):
        assert f"✔ {name}:" in stdout, stdout


async def test_init_reports_a_bad_answer_with_its_fix_and_still_writes(tmp_path: Path, peers: Peers) -> None:
    file = tmp_path / "answers.yaml"
    bad = answers(peers, proxmox={"host": peers.proxmox.host, "token_id": TOKEN_ID, "token_secret": "wrong",
                                  "ca_bundle": str(peers.proxmox.ca_path)})
    bad.pop("docker_hosts")
    file.write_text(yaml.safe_dump(bad))
    code, stdout, _ = await chatops("init", "--answers", str(file), "--out", str(tmp_path / "c"),
                                    env=base_env(tmp_path, peers))
    assert code == 1
    assert "✘ proxmox:" in stdout and "refused the token chatops@pve!bot" in stdout
    assert "fix: Create an API token under Datacenter → Permissions → API Tokens" in stdout
    assert (tmp_path / "c" / "chatops.yaml").is_file()
    again, stdout, stderr = await chatops("init", "--answers", str(file), "--out", str(tmp_path / "c"),
                                          env=base_env(tmp_path, peers))
    assert again == 2 and "exists; pass --force" in stderr


async def test_init_needs_answers_without_a_terminal(tmp_path: Path, peers: Peers) -> None:
    code, _, stderr = await chatops("init", "--out", str(tmp_path), env=base_env(tmp_path, peers))
    assert code == 2 and "pass --answers FILE" in stderr
    (tmp_path / "a.yaml").write_text("admin: bob\n")
    code, _, stderr = await chatops("init", "--answers", str(tmp_path / "a.yaml"), "--out", str(tmp_path),
                                    env=base_env(tmp_path, peers))
    assert code == 2 and "needs its platform: slack:bob" in stderr


def doctor_config(tmp_path: Path, p: Peers, *, ca: bool, llm_url: str) -> Path:
    cfg = {
        "environments": {"dev": {"docker": {"host": f"unix://{tmp_path}/no-engine.sock"}}},
        "proxmox": {"host": p.proxmox.host, "token_id": TOKEN_ID, "token_secret": "${PROXMOX_TOKEN_SECRET}",
                    **({"ca_bundle": str(p.proxmox.ca_path)} if ca else {})},
        "llm": {"base_url": llm_url, "model": MODEL},
        "users": {"slack:U0ADMIN": ["admin"]},
    }
    path = tmp_path / f"doctor-{ca}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def fix_of(stdout: str, name: str) -> str:
    lines = stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith(f"✘ {name}:"))
    return lines[at + 1]


async def test_doctor_names_the_fix_for_each_failure(tmp_path: Path, peers: Peers) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: vLLM is down
    env = base_env(tmp_path, peers, PROXMOX_TOKEN_SECRET="not-the-secret", SLACK_BOT_TOKEN="xoxb-revoked")
    code, stdout, stderr = await chatops("doctor", "--config", str(doctor_config(tmp_path, peers, ca=True,
                                                                                  llm_url=down)), env=env)
    assert code == 1, stdout + stderr
    assert "Start Docker there (systemctl start docker) or correct environments.dev.docker.host" in fix_of(
        stdout, "docker:dev")
    assert "Create an API token under Datacenter → Permissions → API Tokens" in fix_of(stdout, "proxmox")
    assert "start vLLM" in fix_of(stdout, "llm") and "LLM_BASE_URL" in fix_of(stdout, "llm")
    assert "invalid_auth" in stdout and "Bot User OAuth Token" in fix_of(stdout, "slack")
    assert "✔ database:" in stdout and stdout.splitlines()[-1] == "2 ok, 4 to fix."

    # The certificate of the Proxmox stand-in is signed by its own CA: without ca_bundle it is not trusted.
    env.update(PROXMOX_TOKEN_SECRET=SECRET, LLM_API_KEY="vllm-key")
    code, stdout, _ = await chatops("doctor", "--config", str(doctor_config(tmp_path, peers, ca=False,
                                                                             llm_url=peers.llm.base_url)), env=env)
    assert code == 1
    fix = fix_of(stdout, "proxmox")
    assert "certificate this machine does not trust" in fix and "proxmox.ca_bundle" in fix
    assert "/etc/pve/pve-root-ca.pem" in fix
    assert "✔ llm:" in stdout


async def test_doctor_on_an_invalid_config_prints_its_fixes(tmp_path: Path, peers: Peers) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("environments:\n  dev:\n    protectd: true\n")
    code, stdout, _ = await chatops("doctor", "--config", str(bad), env=base_env(tmp_path, peers))
    assert code == 1
    assert "✘ config: the configuration is not valid" in stdout
    assert "environments.dev.protectd: unknown key. Fix: remove it or correct its spelling" in stdout
