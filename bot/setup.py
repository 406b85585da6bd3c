"""`chatops init`: ask what the team has, check each answer live, write config and secrets.

The answers (asked at a terminal, or read from an answers file so that set-up can be
scripted and tested) become a commented `chatops.yaml` that refers to every secret as
`${VAR}`, and an env file holding the secrets, created with mode 600.  Each answer that
reaches something (a Docker engine, Portainer, Proxmox, Prometheus, vLLM, Slack, Discord)
is checked with `bot.checks` before it is written; a failed check is reported with its
fix, the files are still written, and the exit status says that something failed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot import checks
from bot.checks import Check
from infra.config import COMPOSE_FILE_NAMES, PROJECT_ROOT

Ask = Callable[[str, str], str]  # (question, default) → answer


class AnswersError(Exception):
    """The answers file is unreadable or has a value of the wrong shape."""


@dataclass
class Result:
    config: str
    env: dict[str, str]
    checks: list[Check] = field(default_factory=list)


def _q(value: Any) -> str:
    """A YAML scalar, quoted when it needs to be."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _env_line(key: str, value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@!+=,-]*", value):
        return f"{key}={value}"
    return f"{key}='" + value.replace("'", "'\\''") + "'"


def read_answers(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AnswersError(f"{path}: cannot read the answers file ({exc}).") from exc
    if not isinstance(data, dict):
        raise AnswersError(f"{path}: the answers file must be a mapping (see docs/setup.md).")
    return data


def interview(ask: Ask, confirm: Callable[[str], bool]) -> dict[str, Any]:
    """The questions at a terminal; empty answers skip a part."""
    a: dict[str, Any] = {}
    if confirm("Do you reach your Docker hosts directly (unix://, tcp://, ssh://)?"):
        hosts: dict[str, Any] = {}
        while True:
            name = ask("Environment name (empty when done)", "")
            if not name:
                break
            host = ask(f"Docker host of {name}", "unix:///var/run/docker.sock")
            hosts[name] = {"host": host, "protected": confirm(f"Is {name} protected (changes need approval)?")}
        a["docker_hosts"] = hosts
    elif confirm("Do you use Portainer?"):
        url = ask("Portainer URL", "https://portainer:9443")
        key = ask("Portainer access token", "")
        envs: dict[str, Any] = {}
        while True:
            name = ask("Environment name (empty when done)", "")
            if not name:
                break
            envs[name] = {"endpoint_id": int(ask(f"Portainer endpoint id of {name}", "1")),
                          "protected": confirm(f"Is {name} protected?")}
        a["portainer"] = {"url": url, "api_key": key, "environments": envs}
    if confirm("Do you have a Proxmox VE API token?"):
        a["proxmox"] = {"host": ask("Proxmox host[:port]", "phoenix:8006"),
                        "token_id": ask("Token id (user@realm!tokenid)", "chatops@pve!bot"),
                        "token_secret": ask("Token secret", ""),
                        "ca_bundle": ask("CA file of its certificate (empty: the system's)", "") or None}
    source = ask("GPU source (prometheus, nvidia-smi, nvml; empty: none)", "")
    if source:
        gpu: dict[str, Any] = {"host": ask("GPU host name", "phoenix"), "source": source}
        if source == "prometheus":
            gpu["prometheus_url"] = ask("Prometheus URL", "http://phoenix:9090")
        elif source == "nvidia-smi":
            gpu["ssh"] = ask("ssh target ([user@]host)", "phoenix")
        a["gpu"] = gpu
    url = ask("vLLM URL (OpenAI API, ends in /v1; empty: none)", "")
    if url:
        a["llm"] = {"base_url": url, "model": ask("Model (empty: the one it serves)", "") or None,
                    "api_key": ask("API key (empty: none)", "") or None}
    token = ask("Slack bot token (xoxb-…; empty: no Slack)", "")
    if token:
        a["slack"] = {"bot_token": token, "app_token": ask("Slack app token (xapp-…, Socket Mode)", "") or None,
                      "signing_secret": ask("Slack signing secret (HTTP mode; empty: none)", "") or None}
    token = ask("Discord bot token (empty: no Discord)", "")
    if token:
        a["discord"] = {"token": token, "guild_id": ask("Discord server (guild) id", "") or None}
    a["admin"] = ask("The first admin (slack:U…, discord:123…, console:NAME)", "")
    return a


def _stacks(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {d.name: str(d) for d in sorted(folder.iterdir())
            if d.is_dir() and any((d / f).is_file() for f in COMPOSE_FILE_NAMES)}


def _str(answers: dict[str, Any], *path: str) -> str | None:
    node: Any = answers
    for key in path:
        if not isinstance(node, dict):
            raise AnswersError(f"'{'.'.join(path[:-1])}' must be a mapping")
        node = node.get(key)
    if node is None or node == "":
        return None
    if isinstance(node, dict | list):
        raise AnswersError(f"'{'.'.join(path)}' must be a single value")
    return str(node)


def build(answers: dict[str, Any], *, live: bool = True) -> Result:
    """The config text, the secrets, and the live check of each answer."""
    secrets: dict[str, str] = {}
    found: list[Check] = []
    out = ["# chatops configuration written by 'chatops init'. Check it with 'chatops config check',",
           "# everything it reaches with 'chatops doctor'. Keys and defaults: docs/configuration.md.",
           "# Secrets are ${VARIABLES} from the env file written beside this one (mode 600): load it with",
           "# 'chatops --env-file FILE …' or systemd's EnvironmentFile=.", ""]

    envs: list[str] = ["environments:"]
    hosts = answers.get("docker_hosts") or {}
    if not isinstance(hosts, dict):
        raise AnswersError("'docker_hosts' must map environment names to a host or {host, protected}")
    for name, spec in hosts.items():
        spec = spec if isinstance(spec, dict) else {"host": spec}
        host = _str(spec, "host")
        if not host:
            raise AnswersError(f"docker_hosts.{name} needs a host (unix://, tcp:// or ssh://)")
        envs += [f"  {name}:", f"    protected: {_q(bool(spec.get('protected')))}",
                 f"    docker: {{host: {_q(host)}}}"]
        if live:
            found.append(checks.docker(str(name), host))
    portainer = answers.get("portainer")
    if portainer:
        url, key = _str(answers, "portainer", "url"), _str(answers, "portainer", "api_key")
        if not url:
            raise AnswersError("portainer.url is missing")
        if key:
            secrets["PORTAINER_API_KEY"] = key
        verify = portainer.get("verify_ssl", True) is not False
        ca = _str(answers, "portainer", "ca_bundle")
        for name, spec in (portainer.get("environments") or {}).items():
            spec = spec if isinstance(spec, dict) else {"endpoint_id": spec}
            endpoint = int(spec.get("endpoint_id", 1))
            envs += [f"  {name}:", f"    protected: {_q(bool(spec.get('protected')))}",
                     "    portainer:", f"      url: {_q(url)}", f"      endpoint_id: {endpoint}",
                     "      api_key: ${PORTAINER_API_KEY}", f"      verify_ssl: {_q(verify)}"]
            if ca:
                envs.append(f"      ca_bundle: {_q(ca)}")
            if live:
                found.append(checks.portainer(str(name), url, endpoint, key or "", verify, ca))
    if len(envs) == 1:
        envs = ["environments: {}  # none given; add one per environment, e.g.",
                "# dev: {docker: {host: unix:///var/run/docker.sock}}"]
    out += ["# Environments: where stacks run. protected: true makes every change wait for a second",
            "# person's approval.", *envs, ""]

    stacks_dir = Path(_str(answers, "stacks_dir") or PROJECT_ROOT / "compose").expanduser().resolve()
    stacks = _stacks(stacks_dir)
    out += [f"# Stacks: one folder with a compose file each, found under {stacks_dir}.", "stacks:"]
    out += [f"  {name}: {{path: {_q(path)}}}" for name, path in stacks.items()] or ["  {}"]
    out.append("")

    px = answers.get("proxmox")
    if px:
        host, token_id = _str(answers, "proxmox", "host"), _str(answers, "proxmox", "token_id")
        secret = _str(answers, "proxmox", "token_secret") or ""
        if not (host and token_id):
            raise AnswersError("proxmox needs host and token_id (user@realm!tokenid)")
        verify = px.get("verify_ssl", True) is not False
        ca = _str(answers, "proxmox", "ca_bundle")
        secrets["PROXMOX_TOKEN_SECRET"] = secret
        out += ["# Proxmox VE API token (Datacenter → Permissions → API Tokens); VMs go under 'vms:'.",
                "proxmox:", f"  host: {_q(host)}", f"  token_id: {_q(token_id)}",
                "  token_secret: ${PROXMOX_TOKEN_SECRET}", f"  verify_ssl: {_q(verify)}"]
        if ca:
            out.append(f"  ca_bundle: {_q(ca)}")
        out += ["vms: {}  # e.g. rumpledev: {node: phoenix, kind: qemu, vmid: 101}", ""]
        if live:
            found.append(checks.proxmox(host, token_id, secret, verify, ca))

    gpu = answers.get("gpu")
    if gpu:
        host = _str(answers, "gpu", "host") or "gpu"
        source = _str(answers, "gpu", "source")
        if source not in ("nvml", "nvidia-smi", "prometheus"):
            raise AnswersError("gpu.source must be nvml, nvidia-smi or prometheus")
        lines = [f"    source: {source}"]
        url = _str(answers, "gpu", "prometheus_url")
        if source == "prometheus":
            if not url:
                raise AnswersError("gpu.prometheus_url is needed with source prometheus")
            lines.append(f"    prometheus_url: {_q(url)}")
            if live:
                found.append(checks.prometheus(f"gpu:{host}", url))
        ssh = _str(answers, "gpu", "ssh")
        if ssh:
            lines.append(f"    ssh: {_q(ssh)}")
        out += ["# GPU metrics (docs/gpu.md).", "gpu_hosts:", f"  {host}:", *lines, ""]

    llm = answers.get("llm")
    if llm:
        url = _str(answers, "llm", "base_url")
        if not url:
            raise AnswersError("llm.base_url is missing (the server's OpenAI API, ending in /v1)")
        model, key = _str(answers, "llm", "model"), _str(answers, "llm", "api_key")
        check = checks.llm(url, model, key) if live else None
        if check:
            found.append(check)
        if not model and check and check.ok:
            model = check.detail.split(" serves ", 1)[1].split(",")[0]
        out += ["# The LLM route (vLLM's OpenAI API); without it, plain language uses the grammar only.",
                "llm:", f"  base_url: {_q(url)}"]
        if model:
            out.append(f"  model: {_q(model)}")
        if key:
            secrets["LLM_API_KEY"] = key
            out.append("  api_key: ${LLM_API_KEY}")
        out.append("")

    for key, var in (("bot_token", "SLACK_BOT_TOKEN"), ("app_token", "SLACK_APP_TOKEN"),
                     ("signing_secret", "SLACK_SIGNING_SECRET")):
        if (value := _str(answers, "slack", key) if answers.get("slack") else None):
            secrets[var] = value
    if "SLACK_BOT_TOKEN" in secrets and live:
        found.append(checks.slack(secrets["SLACK_BOT_TOKEN"], os.environ.get("SLACK_API_URL")))
    if answers.get("discord"):
        if (token := _str(answers, "discord", "token")):
            secrets["DISCORD_TOKEN"] = token
            if live:
                found.append(checks.discord(token, os.environ.get("DISCORD_API_URL")))
        if (guild := _str(answers, "discord", "guild_id")):
            secrets["DISCORD_GUILD_ID"] = guild

    admin = _str(answers, "admin")
    if admin and ":" not in admin:
        raise AnswersError(f"admin '{admin}' needs its platform: slack:{admin}, discord:{admin} or console:{admin}")
    out += ["# Roles: viewer (read), operator (change), approver (approve others' changes), admin.", "users:"]
    out += [f"  {_q(admin)}: [admin]"] if admin else ["  {}  # e.g. \"slack:U012ABCDEF\": [admin]"]
    out += ["default_roles: [viewer]", "", "approvals:", "  expiry_minutes: 30", ""]
    return Result("\n".join(out), secrets, found)


def write(result: Result, config_path: Path, env_path: Path, *, force: bool) -> None:
    """Write both files; the env file is created with mode 600 before any secret goes in."""
    for path in (config_path, env_path):
        if path.exists() and not force:
            raise FileExistsError(f"{path} exists; pass --force to replace it")
    config_path.parent.mkdir(parents=True, exist_ok=True)
    env_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(result.config)
    if env_path.exists():
        env_path.unlink()
    fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Secrets for chatops (written by 'chatops init'). Keep this file to its owner (mode 600).\n")
        for key, value in result.env.items():
            f.write(_env_line(key, value) + "\n")
    os.chmod(env_path, 0o600)


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def load_env_file(path: str) -> None:
    """Put an env file's variables into this process's environment (those already set win)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AnswersError(f"{path}: cannot read the env file ({exc.strerror or exc}).") from exc
    except UnicodeDecodeError as exc:
        raise AnswersError(f"{path}: the env file is not UTF-8 text (byte {exc.start}).") from exc
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.removeprefix("export ").partition("=")
        if not eq or not ENV_NAME.fullmatch(key.strip()) or "\0" in value:
            # (a line the shell would not read as NAME=VALUE: it is a mistake, and a secret may hang on it)
            raise AnswersError(f"{path}:{n}: not a NAME=VALUE line (NAME: letters, digits and '_', not starting "
                               "with a digit; no NUL in the value).")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1].replace("'\\''", "'")
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        os.environ.setdefault(key.strip(), value)
