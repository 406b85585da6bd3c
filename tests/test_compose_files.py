"""Every stack under compose/ passes `docker compose config`, with pinned images and no public tunnel ports."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from infra.compose import compose_binary, read_dotenv

ROOT = Path(__file__).resolve().parent.parent
STACKS = sorted(p.parent for p in (ROOT / "compose").glob("*/compose.yaml"))


def _config(folder: Path, tmp_path: Path) -> dict:
    """`config` with every variable .env.example names set to a placeholder."""
    values = {k: v or "placeholder-value" for k, v in read_dotenv(folder / ".env.example").items()}
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["CHATOPS_ENV_FILE"] = str(env_file)  # the chatops stack's env_file (compose/chatops/compose.yaml)
    out = subprocess.run([compose_binary(), "-f", str(folder / "compose.yaml"), "--env-file", str(env_file),
                          "config", "--format", "json"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, f"{folder.name}: {out.stdout}{out.stderr}"
    return json.loads(out.stdout)


@pytest.mark.parametrize("folder", STACKS, ids=lambda p: p.name)
def test_stack_is_valid_and_pinned(folder: Path, tmp_path: Path) -> None:
    model = _config(folder, tmp_path)
    assert model["services"], folder.name
    for name, svc in model["services"].items():
        image = svc.get("image", "")
        if "build" in svc:
            continue
        tag = image.rsplit("/", 1)[-1]
        assert ":" in tag or "@" in image, f"{folder.name}/{name}: image {image} has no pinned tag"
        assert not image.endswith(":latest"), f"{folder.name}/{name}: image {image} uses :latest"


@pytest.mark.parametrize("folder", STACKS, ids=lambda p: p.name)
def test_required_secrets_are_documented(folder: Path) -> None:
    """A `${VAR:?...}` in a compose file has a line in that stack's .env.example."""
    text = (folder / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    documented = set(read_dotenv(folder / ".env.example")) if (folder / ".env.example").exists() else set()
    assert required <= documented, f"{folder.name}: add {sorted(required - documented)} to .env.example"


def test_web_stack_publishes_no_port(tmp_path: Path) -> None:
    model = _config(ROOT / "compose" / "web", tmp_path)
    assert all(not svc.get("ports") for svc in model["services"].values())
    assert model["networks"]["edge"]["internal"] is True
    assert "edge" not in model["services"]["cloudflared"]["networks"]
    conf = (ROOT / "compose" / "web" / "nginx.conf").read_text()
    for sub in ("chat", "workflows", "docs", "video", "monitoring"):
        assert f"server_name {sub}.*;" in conf


def test_monitoring_joins_the_bot_network_only_with_its_override(tmp_path: Path) -> None:
    """The base stack runs anywhere; the override adds the bot's network for scraping and the audit DB."""
    folder = ROOT / "compose" / "monitoring"
    base = _config(folder, tmp_path)
    assert "chatops-observability" not in base.get("networks", {})
    grafana_mounts = {v["target"] for v in base["services"]["grafana"]["volumes"]}
    assert "/var/lib/grafana/dashboards/chatops" in grafana_mounts
    env_file = tmp_path / "o.env"
    env_file.write_text("GRAFANA_ADMIN_PASSWORD=x\n")
    out = subprocess.run([compose_binary(), "-f", str(folder / "compose.yaml"), "-f",
                          str(folder / "compose.chatops.yaml"), "--env-file", str(env_file), "config", "--format",
                          "json"], capture_output=True, text=True, timeout=60)
    merged = json.loads(out.stdout)
    assert merged["networks"]["chatops-observability"]["external"] is True
    assert "chatops-observability" in merged["services"]["prometheus"]["networks"]
    scrape = (folder / "prometheus.yml").read_text()
    assert 'job_name: chatops' in scrape and "bot:9464" in scrape
