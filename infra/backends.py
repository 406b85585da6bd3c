"""The infrastructure backends the command handlers use, built lazily from config.

Each accessor either returns a client for the named target or raises `NotConfigured`
with the config key to set, so a missing backend is an answer, not a crash.  Tests
and other processes can install their own clients with `override`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from infra.config import Config
from infra.errors import NotConfigured


class Health(StrEnum):
    """What a health probe found, as `health` shows it."""

    ok = "ok"
    down = "DOWN"                     # configured and built, but it did not answer (or answered an error)
    misconfigured = "MISCONFIGURED"   # named in the config, but no client could be built (a variable unset, …)
    not_configured = "not configured"  # not named in the config: not used, nothing wrong


@dataclass(frozen=True)
class HealthResult:
    name: str
    state: Health
    detail: str

    @property
    def ok(self) -> bool | None:
        """True when it answered, False when it is down or misconfigured, None when it is not used."""
        return None if self.state is Health.not_configured else self.state is Health.ok


@dataclass
class Backends:
    config: Config
    _clients: dict[str, Any] = field(default_factory=dict)
    # Backends the config names but could not build (a secret's variable unset, …): key → why.
    _problems: dict[str, str] = field(default_factory=dict)

    def override(self, key: str, client: Any) -> None:
        """Install a client for `docker:ENV`, `proxmox`, `gpu:HOST` or `llm`."""
        self._clients[key] = client

    def misconfigured(self, key: str, why: str) -> None:
        """Record why a configured backend has no client; its accessor raises that, not the generic hint."""
        self._problems[key] = why

    def _cached(self, key: str) -> Any | None:
        client = self._clients.get(key)
        if client is None and key in self._problems:
            raise NotConfigured(self._problems[key])
        return client

    def docker(self, env: str) -> Any:
        client = self._cached(f"docker:{env}")
        if client is not None:
            return client
        raise NotConfigured(
            f"The Docker backend for {env} is not configured: set environments.{env}.docker.host "
            f"(or environments.{env}.portainer) in {self.config.path.name}.")

    def proxmox(self) -> Any:
        client = self._cached("proxmox")
        if client is not None:
            return client
        raise NotConfigured(
            f"Proxmox is not configured: set proxmox.host, proxmox.token_id and proxmox.token_secret "
            f"in {self.config.path.name} (or PROXMOX_HOST, PROXMOX_TOKEN_ID, PROXMOX_TOKEN_SECRET).")

    def gpu(self, host: str) -> Any:
        client = self._cached(f"gpu:{host}")
        if client is not None:
            return client
        raise NotConfigured(
            f"No GPU source is configured for {host}: set gpu_hosts.{host}.source to nvml, "
            "nvidia-smi or prometheus.")

    def llm(self) -> Any:
        client = self._cached("llm")
        if client is not None:
            return client
        raise NotConfigured("The LLM route is not configured: set LLM_BASE_URL and LLM_MODEL.")

    def require(self, backend: str | None, args: dict[str, Any]) -> None:
        """Raise NotConfigured before a change is proposed that could not run anyway."""
        if backend == "docker" and args.get("env"):
            self.docker(args["env"])
        elif backend == "proxmox":
            self.proxmox()
        elif backend == "gpu":
            for host in ([args["host"]] if args.get("host") else list(self.config.inventory.gpu_hosts)):
                self.gpu(host)

    async def health(self) -> list[HealthResult]:
        """Reachability of every backend except the database (the engine adds that)."""
        out: list[HealthResult] = []
        for env in self.config.inventory.environments:
            out.append(await self._probe(f"docker:{env}", lambda e=env: self.docker(e)))
        out.append(await self._probe("proxmox", self.proxmox))
        for host in self.config.inventory.gpu_hosts:
            out.append(await self._probe(f"gpu:{host}", lambda h=host: self.gpu(h)))
        out.append(await self._probe("llm", self.llm))
        return out

    async def _probe(self, name: str, get: Any) -> HealthResult:
        try:
            client = get()
        except NotConfigured as exc:
            if name in self._problems:  # configured, but broken: a failure, not an absence
                return HealthResult(name, Health.misconfigured, str(exc))
            return HealthResult(name, Health.not_configured, "not configured")
        ping = getattr(client, "ping", None)
        if ping is None:
            return HealthResult(name, Health.ok, "configured")
        try:
            detail = await ping()
            return HealthResult(name, Health.ok, str(detail or "ok"))
        except Exception as exc:  # a probe reports, it never raises
            return HealthResult(name, Health.down, str(exc)[:200] or type(exc).__name__)
