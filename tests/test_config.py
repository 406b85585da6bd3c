"""Config loading: the shipped inventory, and broken files that must stop start-up clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import ConfigError, Role, load_config

from .conftest import ROOT

GOOD = (ROOT / "chatops.yaml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "compose" / "chat").mkdir(parents=True, exist_ok=True)
    (tmp_path / "compose" / "chat" / "compose.yaml").write_text("services:\n  open-webui:\n    image: x:1\n")
    p = tmp_path / "chatops.yaml"
    p.write_text(text)
    return p


MINIMAL = """\
environments:
  rumpletest:
    aliases: [test]
stacks:
  chat: {path: compose/chat}
"""


def test_shipped_inventory_matches_the_spec() -> None:
    cfg = load_config(ROOT / "chatops.yaml")
    inv = cfg.inventory
    assert list(inv.environments) == ["rumple", "rumpleprod", "rumpletest", "rumpledev", "phoenix"]
    assert inv.environments["rumple"].protected and inv.environments["rumpleprod"].protected
    assert not inv.environments["rumpletest"].protected
    assert set(inv.stacks) == {"web", "chat", "workflows", "data", "monitoring", "video", "docs", "agent",
                               "llm", "gpu-metrics", "chatops"}
    assert cfg.stack_services["web"] == ("nginx", "cloudflared")
    assert {n: v.vmid for n, v in inv.vms.items()} == {"rumpledev": 101, "rumpletest": 102, "rumpleprod": 103,
                                                       "portainer": 200, "llm": 201}
    assert cfg.vm_protected("rumpleprod") and not cfg.vm_protected("rumpledev")
    assert cfg.roles_of("console:bob") >= {Role.operator, Role.approver}
    assert cfg.roles_of("console:nobody") == frozenset({Role.viewer})
    assert cfg.roles_of("console:carol") >= {Role.admin, Role.approver, Role.operator}


def test_env_var_references_fill_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PVE_SECRET", "s3cr3t-value")
    p = write(tmp_path, MINIMAL + "proxmox:\n  host: pve:8006\n  token_secret: ${PVE_SECRET}\n"
              "  token_id: ${UNSET_VAR_XYZ}\n  ca_bundle: ${UNSET_CA:-/etc/ca.pem}\n")
    cfg = load_config(p)
    assert cfg.inventory.proxmox.token_secret is not None
    assert cfg.inventory.proxmox.token_secret.get_secret_value() == "s3cr3t-value"
    assert cfg.inventory.proxmox.token_id is None
    assert cfg.inventory.proxmox.ca_bundle == "/etc/ca.pem"
    assert "s3cr3t" not in repr(cfg.inventory)


@pytest.mark.parametrize(("text", "expect"), [
    ("environments:\n  rumpletest:\n    aliases: [test\n", ["chatops.yaml:", "invalid YAML", "Fix:"]),
    (MINIMAL.replace("aliases: [test]", "aliases: [test]\n    protectd: true"),
     ["chatops.yaml:4:", "environments.rumpletest.protectd", "unknown key", "protected"]),
    (MINIMAL + "  web: {path: compose/web}\n",
     ["chatops.yaml:6:", "stacks.web.path", "no compose file", "compose.yaml"]),
    (MINIMAL.replace("stacks:", "  rumpledev:\n    aliases: [test]\nstacks:"),
     ["environments.rumpledev.aliases.0", "'test' is already a name or alias of 'rumpletest'"]),
    (MINIMAL.replace("aliases: [test]", "aliases: [test]\n    protected: maybe"),
     ["chatops.yaml:4:", "environments.rumpletest.protected", "true or false"]),
    (MINIMAL + "users:\n  alice: [operator]\n", ["users.alice", "console:alice"]),
    (MINIMAL + "users:\n  'console:alice': [superuser]\n", ["users.console:alice.0", "'viewer', 'operator'"]),
    (MINIMAL + "channels:\n  'slack:C1': {default_env: nowhere}\n", ["channels.slack:C1.default_env",
                                                                       "unknown environment 'nowhere'"]),
    ("- just\n- a list\n", ["must be a mapping"]),
])
def test_broken_config_names_file_line_key_and_fix(tmp_path: Path, text: str, expect: list[str]) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    for part in expect:
        assert part in msg, msg
    assert str(p) in msg


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yaml")


def test_config_check_cli(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "bot.cli", "config", "check"], capture_output=True, text=True,
                        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "CHATOPS_CONFIG": str(ROOT / "chatops.yaml")})
    assert ok.returncode == 0, ok.stderr
    assert "OK (5 environments, 11 stacks" in ok.stdout
    bad = write(tmp_path, MINIMAL.replace("stacks:", "stackz:"))
    res = subprocess.run([sys.executable, "-m", "bot.cli", "config", "check", "--config", str(bad)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2
    assert "stackz" in res.stderr and "unknown key" in res.stderr
    assert "Traceback" not in res.stderr
