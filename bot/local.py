"""The first minute: on the embedded defaults, offer the local Docker engine as `local`.

When no inventory is configured (no --config, no CHATOPS_CONFIG) and a Docker engine
answers on this machine, the console adds two environments on it, `local` and its
protected copy `local-prod`, and the example stack `compose/hello`, so that deploy,
status, logs, restart, rollback, audit and the approval flow work for real on a laptop.
The person at the keyboard is an operator there (console identities are claimed, not
proven: `--as carol` already gives admin, so this grants nothing new); approving a
`local-prod` change takes a second console user (`/as bob`).  A configured inventory is
never touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config import PROJECT_ROOT

LOCAL = "local"
LOCAL_PROD = "local-prod"
EXAMPLE_STACK = "hello"
EXAMPLE_DIR = PROJECT_ROOT / "compose" / EXAMPLE_STACK
PROBE_TIMEOUT_S = 3


@dataclass(frozen=True)
class LocalEngine:
    host: str
    version: str
    tls: dict[str, str] | None = None


def _candidates() -> list[str]:
    if os.environ.get("DOCKER_HOST"):
        return [os.environ["DOCKER_HOST"]]
    out = ["unix:///var/run/docker.sock"]
    if os.environ.get("XDG_RUNTIME_DIR"):  # rootless Docker
        out.append(f"unix://{os.environ['XDG_RUNTIME_DIR']}/docker.sock")
    out.append(f"unix://{Path.home() / '.docker/run/docker.sock'}")  # Docker Desktop
    return out


def _tls() -> dict[str, str] | None:
    if not os.environ.get("DOCKER_TLS_VERIFY"):
        return None
    certs = Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
    return {"ca": str(certs / "ca.pem"), "cert": str(certs / "cert.pem"), "key": str(certs / "key.pem")}


def find_engine() -> tuple[LocalEngine | None, list[str]]:
    """The first Docker engine that answers here, and what was tried and why it failed."""
    import docker
    from docker.tls import TLSConfig

    tried: list[str] = []
    tls = _tls()
    for host in _candidates():
        if host.startswith("unix://") and not Path(host[len("unix://"):]).exists():
            tried.append(f"{host}: no such socket")
            continue
        try:
            tls_cfg = TLSConfig(client_cert=(tls["cert"], tls["key"]), ca_cert=tls["ca"], verify=True) if (
                tls and host.startswith("tcp://")) else None
            client = docker.DockerClient(base_url=host, timeout=PROBE_TIMEOUT_S, tls=tls_cfg or False)
            try:
                version = str(client.version().get("Version", "?"))
            finally:
                client.close()
        except Exception as exc:  # any failure means "no engine here"; say which
            tried.append(f"{host}: {str(exc).splitlines()[0][:200] or type(exc).__name__}")
            continue
        return LocalEngine(host, version, tls if host.startswith("tcp://") else None), tried
    return None, tried


def overlay(engine: LocalEngine, user: str) -> dict[str, Any]:
    """The inventory entries added on the embedded defaults (merged under the shipped file's)."""
    prefix = os.environ.get("CHATOPS_LOCAL_PREFIX", "chatops-")
    docker: dict[str, Any] = {"host": engine.host}
    if engine.tls:
        docker["tls"] = engine.tls
    common = {"docker": docker, "deploy_timeout_s": 120}
    return {
        "environments": {
            LOCAL: {**common, "description": "this machine's Docker engine (example stacks)",
                    "aliases": ["laptop"], "project_prefix": f"{prefix}local-"},
            LOCAL_PROD: {**common, "description": "a protected copy on this machine's engine: "
                         "changes need a second person's approval", "protected": True,
                         "aliases": ["laptop-prod"], "project_prefix": f"{prefix}local-prod-"},
        },
        "stacks": {EXAMPLE_STACK: {"path": str(EXAMPLE_DIR),
                                   "description": "example: one tiny service that greets and logs",
                                   "runs_on": [LOCAL, LOCAL_PROD]}},
        "users": {user: ["operator"]},
    }


def intro(engine: LocalEngine, actor: str, approver: str | None) -> list[str]:
    second = f"'/as {approver.split(':', 1)[1]}'" if approver else "another approver"
    return [
        f"A Docker engine answers on {engine.host} (Docker {engine.version}): environment '{LOCAL}' runs "
        f"the example stack '{EXAMPLE_STACK}' there, and '{LOCAL_PROD}' is a protected copy.",
        f"Try: deploy {EXAMPLE_STACK} {LOCAL} · status {LOCAL} · logs {EXAMPLE_STACK} {LOCAL} · "
        f"rollback {EXAMPLE_STACK} {LOCAL} · audit",
        f"Approvals: 'deploy {EXAMPLE_STACK} {LOCAL_PROD}' as {actor} waits for an approver; {second} "
        "and 'approve ID' lets it run.",
    ]


def no_engine(tried: list[str]) -> list[str]:
    return [
        "No Docker engine answers here (" + "; ".join(tried) + "), so deploy, status and logs have "
        "nothing to act on yet.",
        "To try them for real: install Docker (Docker Engine on Linux, Docker Desktop on macOS/Windows), "
        "make sure 'docker version' works for you, and start the console again; or point DOCKER_HOST at "
        "an engine. To configure the team's hosts: 'chatops init'.",
    ]
