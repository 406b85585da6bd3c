"""The documented production config (docs/examples/chatops.prod.yaml) passes `chatops config check`,
takes its hosts and secrets from the environment, and shows every key the config models accept;
docs/configuration.md names every key too."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from infra.config import Inventory, load_config

from .conftest import ROOT

EXAMPLE = ROOT / "docs" / "examples" / "chatops.prod.yaml"
CONFIG_DOC = ROOT / "docs" / "configuration.md"

ENV = {
    "RUMPLE_DOCKER_HOST": "ssh://deploy@rumple.example.org",
    "PORTAINER_URL": "https://portainer.phoenix.lan:9443",
    "PORTAINER_API_KEY": "ptr_example_key_0123456789",
    "RUMPLETEST_DOCKER_HOST": "tcp://rumpletest.lan:2376",
    "RUMPLEDEV_DOCKER_HOST": "ssh://deploy@rumpledev.lan",
    "PHOENIX_DOCKER_HOST": "ssh://deploy@phoenix.lan",
    "PROXMOX_HOST": "phoenix.lan:8006",
    "PROXMOX_TOKEN_ID": "chatops@pve!bot",
    "PROXMOX_TOKEN_SECRET": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "PROMETHEUS_URL": "http://prometheus.phoenix.lan:9090",
    "VLLM_METRICS_URL": "http://phoenix.lan:8000/metrics",
    "LLM_BASE_URL": "http://phoenix.lan:8000/v1",
    "LLM_MODEL": "Qwen/Qwen2.5-7B-Instruct-AWQ",
    "LLM_API_KEY": "vllm-example-key",
}


def installed(tmp_path: Path) -> Path:
    """The example where it is meant to live: next to the project's compose/ folders."""
    (tmp_path / "compose").symlink_to(ROOT / "compose", target_is_directory=True)
    target = tmp_path / "chatops.yaml"
    target.write_text(EXAMPLE.read_text())
    return target


def check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", "config", "check", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env})


def test_prod_example_passes_config_check(tmp_path: Path) -> None:
    res = check(installed(tmp_path), ENV)
    assert res.returncode == 0, res.stderr
    assert "OK (5 environments, 11 stacks, 5 VMs, 4 users)" in res.stdout


def test_prod_example_with_a_bad_host_from_the_environment_fails_check(tmp_path: Path) -> None:
    res = check(installed(tmp_path), {**ENV, "RUMPLE_DOCKER_HOST": "rumple.example.org"})
    assert res.returncode == 2
    assert "environments.rumple.docker.host" in res.stderr and "Traceback" not in res.stderr


def test_prod_example_takes_hosts_and_secrets_from_the_environment(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("DOCKER_TLS_DIR", "PORTAINER_ENDPOINT_RUMPLEPROD", "PORTAINER_CA_BUNDLE", "PROXMOX_CA_BUNDLE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    inv = load_config(installed(tmp_path)).inventory
    assert inv.environments["rumple"].docker and inv.environments["rumple"].docker.host == ENV["RUMPLE_DOCKER_HOST"]
    portainer = inv.environments["rumpleprod"].portainer
    assert portainer and portainer.endpoint_id == 3 and portainer.ca_bundle is None  # default; unset → not set
    assert portainer.api_key and portainer.api_key.get_secret_value() == ENV["PORTAINER_API_KEY"]
    tls = inv.environments["rumpletest"].docker.tls if inv.environments["rumpletest"].docker else None
    assert tls and tls.ca == "/etc/chatops/docker-tls/ca.pem"
    assert inv.proxmox.token_secret and inv.proxmox.token_secret.get_secret_value() == ENV["PROXMOX_TOKEN_SECRET"]
    assert inv.llm.model == ENV["LLM_MODEL"] and inv.gpu_hosts["phoenix"].prometheus_url == ENV["PROMETHEUS_URL"]
    assert inv.rate_limits.per_user_per_hour == 20 and inv.audit.retention_days == 365


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `Model`, `Model | None` or `dict[str, Model]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, dict):
        for arg in get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        out.append(prefix + name)
        sub = _model_of(field.annotation)
        if sub is not None:
            out.extend(_keys(sub, f"{prefix}{name}."))
    return out


ALL_KEYS = _keys(Inventory)


def test_the_key_list_walks_nested_models() -> None:
    assert {"environments.docker.tls.ca", "environments.portainer.verify_ssl", "proxmox.poll_s",
            "gpu_hosts.prometheus_selector", "audit.archive_dir", "rate_limits.exempt_roles"} <= set(ALL_KEYS)


@pytest.mark.parametrize("key", ALL_KEYS)
def test_prod_example_shows_every_key(key: str) -> None:
    """Each key appears in the example, set or (for alternatives such as `ssh`) in a comment."""
    assert re.search(rf"(^|[\s{{,#]){re.escape(key.rsplit('.', 1)[-1])}:", EXAMPLE.read_text(), re.M), key


@pytest.mark.parametrize("key", ALL_KEYS)
def test_configuration_doc_names_every_key(key: str) -> None:
    name = key.rsplit(".", 1)[-1]
    spans = re.findall(r"`([^`\n]+)`", CONFIG_DOC.read_text())
    assert any(re.search(rf"(^|[.\s]){re.escape(name)}($|[.:\s])", span) for span in spans), key
