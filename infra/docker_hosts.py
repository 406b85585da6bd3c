"""One environment's Docker engine, reached the way its config says.

`environments.X.docker.host` (unix://, tcp:// with TLS client certificates, ssh://) or
`environments.X.portainer` (Portainer's Docker proxy with an API key).  Container work
goes through the Docker SDK; stack deploys go through a `StackDriver` (Compose v2 for
direct hosts, Portainer's stacks API for Portainer endpoints).  The SDK client is made
on first use, because docker-py asks the daemon for its API version when it is built
and an unreachable host must be an answer, not a start-up failure.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.tls import TLSConfig

from infra.config import Config, DockerTLS
from infra.errors import BackendUnavailable, CommandError, NotConfigured

if TYPE_CHECKING:
    from infra.compose import Deployable

T = TypeVar("T")
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
PINNED_REF_LABEL = "org.chatops.image-ref"  # set by a rollback's pin (infra/compose.py)
API_TIMEOUT_S = 30


class DeployFailed(CommandError):
    """The engine (or Portainer) refused or failed a deploy; message is the tool's own output."""


class StackDriver(Protocol):
    """How a stack's desired state reaches an engine."""

    kind: str

    async def up(self, deployable: Deployable) -> str:
        """Bring the project to the deployable's state; return the tool's output."""
        ...

    async def down(self, project: str) -> str:
        ...

    async def check(self) -> str | None:
        """Whatever besides the engine must answer (Portainer's API and key); a description."""
        ...

    async def outside(self, project: str, host: DockerHost) -> str | None:
        """Why `project` cannot be deployed by this driver as things stand (with the steps), or None."""
        ...


@dataclass(frozen=True)
class ContainerState:
    """What `status` shows per container (computed like `docker ps`/`docker stats`)."""

    id: str
    name: str
    project: str
    service: str
    state: str             # running, exited, restarting, created, paused, dead
    health: str | None     # healthy, unhealthy, starting, or None without a healthcheck
    restarts: int
    image: str
    image_id: str
    started_at: datetime | None
    exit_code: int | None = None
    cpu_pct: float | None = None
    mem_bytes: int | None = None
    mem_limit: int | None = None
    config_hash: str | None = None   # Compose's hash of the service config it was created from
    pinned_ref: str | None = None    # the reference a rollback pinned by ID or digest
    health_log: str | None = None    # the health check's last output, when it has one

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.health in (None, "healthy")

    @property
    def image_name(self) -> str:
        """The image as a person names it: the reference, never a bare sha256."""
        return image_label(self.image, self.pinned_ref)


def short_digest(ref: str, keep: int = 12) -> str:
    """'repo@sha256:0123456789ab' / 'sha256:0123456789ab' instead of 64 hex digits."""
    return re.sub("sha256:([0-9a-f]{" + str(keep) + "})[0-9a-f]+", r"sha256:\1", ref)


def image_label(image: str, pinned_ref: str | None = None) -> str:
    if pinned_ref and pinned_ref != image:
        return f"{pinned_ref} (pinned {short_digest(image.split('@')[-1])})"
    return short_digest(image)


def cpu_percent(stats: Mapping[str, Any]) -> float | None:
    """CPU % as the docker CLI computes it (delta of container over delta of system × CPUs)."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    try:
        cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        sys_delta = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    online = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
    if sys_delta <= 0 or cpu_delta < 0:
        return 0.0
    return cpu_delta / sys_delta * online * 100.0


def memory_usage(stats: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Memory used minus page cache (cgroup v1 total_inactive_file, v2 inactive_file), and limit."""
    mem = stats.get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None, mem.get("limit")
    detail = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        v = detail.get(key)
        if v is not None and v < usage:
            return usage - v, mem.get("limit")
    return usage, mem.get("limit")


def _parse_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-"):
        return None
    v = value.rstrip("Z")
    if "." in v:
        head, frac = v.split(".", 1)
        v = f"{head}.{frac[:6]}"
    try:
        return datetime.fromisoformat(v).replace(tzinfo=UTC)
    except ValueError:
        return None


def _health_log(st: Mapping[str, Any]) -> str | None:
    log = (st.get("Health") or {}).get("Log") or []
    if not log:
        return None
    last = log[-1] or {}
    out = str(last.get("Output") or "").strip()
    code = last.get("ExitCode")
    return f"exit {code}: {out}" if out else f"exit {code}"


def state_of(attrs: Mapping[str, Any], stats: Mapping[str, Any] | None = None) -> ContainerState:
    """A ContainerState from `docker inspect` output (and optionally one stats sample)."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    st = attrs.get("State") or {}
    health = (st.get("Health") or {}).get("Status")
    cpu = mem = limit = None
    if stats:
        cpu = cpu_percent(stats)
        mem, limit = memory_usage(stats)
    return ContainerState(
        id=attrs.get("Id", "")[:12], name=(attrs.get("Name") or "").lstrip("/"),
        project=labels.get(PROJECT_LABEL, ""), service=labels.get(SERVICE_LABEL, ""),
        state=st.get("Status", "unknown"), health=health, restarts=int(attrs.get("RestartCount") or 0),
        image=(attrs.get("Config") or {}).get("Image", ""), image_id=attrs.get("Image", ""),
        started_at=_parse_time(st.get("StartedAt")) if st.get("Running") else None,
        exit_code=st.get("ExitCode") if not st.get("Running") or st.get("Restarting") else None,
        cpu_pct=cpu, mem_bytes=mem, mem_limit=limit, config_hash=labels.get(CONFIG_HASH_LABEL),
        pinned_ref=labels.get(PINNED_REF_LABEL), health_log=_health_log(st) if health else None)


class DockerHost:
    """The Docker engine of one environment: SDK calls run in threads, errors become answers."""

    def __init__(self, env: str, base_url: str, *, tls: TLSConfig | None = None,
                 headers: Mapping[str, str] | None = None, driver: StackDriver | None = None,
                 compose_env: Mapping[str, str] | None = None, project_prefix: str = "",
                 where: str | None = None, timeout: int = API_TIMEOUT_S,
                 shares_files: bool | None = None,
                 explain: Callable[[int, str], str | None] | None = None) -> None:
        self.env = env
        self.base_url = base_url
        self.where = where or base_url
        # Whether the engine sees the bot's files; None: ask it once (see `sees_our_files`).
        self._shares_files = shares_files if shares_files is not None else \
            (None if base_url.startswith(("unix://", "npipe://")) else False)
        # Turns an API error (status, explanation) into an answer naming what to fix (Portainer's key…).
        self._explain = explain
        self.project_prefix = project_prefix
        self.compose_env = dict(compose_env or {})
        self._tls = tls
        self._headers = dict(headers or {})
        self._timeout = timeout
        self._client: docker.DockerClient | None = None
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"docker-{env}")
        if driver is None:
            from infra.compose import ComposeDriver

            driver = ComposeDriver(self)
        self.driver: StackDriver = driver

    # -- plumbing ---------------------------------------------------------
    def project(self, stack: str) -> str:
        """The Compose project name of a stack here (a prefix tells envs on one engine apart)."""
        return f"{self.project_prefix}{stack}"

    def stack_of(self, project: str) -> str | None:
        if self.project_prefix and not project.startswith(self.project_prefix):
            return None
        return project[len(self.project_prefix):]

    def _make_client(self) -> docker.DockerClient:
        kwargs: dict[str, Any] = {"base_url": self.base_url, "timeout": self._timeout}
        if self._tls is not None:
            kwargs["tls"] = self._tls
        if self.base_url.startswith("ssh://"):
            kwargs["use_ssh_client"] = True
        if self._headers:
            # A proxy (Portainer) speaks for many engines: pin the API version, add the key.
            client = docker.DockerClient(version="1.41", **kwargs)
            client.api.headers.update(self._headers)
            return client
        return docker.DockerClient(**kwargs)

    def _sdk(self) -> docker.DockerClient:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    async def call(self, fn: Callable[[docker.DockerClient], T]) -> T:
        """Run one SDK call in a worker thread; connection trouble becomes BackendUnavailable."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(self._sdk()))
        except docker.errors.APIError as exc:
            told = self._explain(exc.status_code or 0, str(exc.explanation or exc)) if self._explain else None
            if told:
                raise BackendUnavailable(told) from exc
            if isinstance(exc, docker.errors.NotFound):
                raise CommandError(f"Not found on {self.env}: {exc.explanation or exc}") from exc
            raise CommandError(f"The Docker engine of {self.env} refused: "
                               f"{exc.explanation or exc}") from exc
        except requests.exceptions.Timeout as exc:
            self._client = None
            # The engine may have acted on a request it never answered: don't claim it did nothing.
            raise BackendUnavailable(
                f"The Docker engine of {self.env} ({self.where}) did not answer within {self._timeout}s "
                "(it accepted the connection, then went silent); whether that call took effect is "
                "not known.") from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            self._client = None
            # Only a connection that never opened proves the call did nothing; one dropped after
            # the request went out may have acted.
            outcome = "Nothing was changed." if _never_connected(exc) else \
                "The connection dropped mid-call: whether that call took effect is not known."
            raise BackendUnavailable(
                f"The Docker engine of {self.env} ({self.where}) is unreachable: "
                f"{_short(exc)}. {outcome}") from exc

    async def sees_our_files(self) -> bool:
        """Whether a bind mount of one of the bot's paths would find the bot's file (inline_files: auto).

        Only a local socket can; and only when the engine runs on this very machine, not on the
        host of the container the bot runs in (the engine's host name is then another).
        """
        if self._shares_files is None:
            try:
                info = await self.call(lambda c: c.info())
            except CommandError:
                return False  # can't tell now: self-contained works on any engine
            self._shares_files = str(info.get("Name") or "") == socket.gethostname()
        return self._shares_files

    async def ping(self) -> str:
        """The engine's version; through Portainer, first a call that checks the key and endpoint."""
        before = await self.driver.check()
        info = await self.call(lambda c: c.version())
        docker_v = f"Docker {info.get('Version', '?')} (API {info.get('ApiVersion', '?')})"
        return f"{before}, {docker_v}" if before else docker_v

    async def reachable(self) -> None:
        """That the engine answers, before a change: Docker's `/_ping` (the version call `ping` makes costs
        the engine more); through Portainer, the check of its key and endpoint as well."""
        if self.driver.kind != "compose":
            await self.ping()
            return
        await self.call(lambda c: c.ping())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._pool.shutdown(wait=False)

    # -- containers -------------------------------------------------------
    async def containers(self, project: str | None = None, service: str | None = None, *,
                         stats: bool = False) -> list[ContainerState]:
        """Compose containers here (all states), optionally of one project/service."""
        labels = [PROJECT_LABEL if project is None else f"{PROJECT_LABEL}={project}"]
        if service is not None:
            labels.append(f"{SERVICE_LABEL}={service}")
        found = await self.call(lambda c: c.api.containers(all=True, filters={"label": labels}))
        ids = [c["Id"] for c in found if (c.get("Labels") or {}).get(ONEOFF_LABEL) != "True"]
        got = await asyncio.gather(*(self._container_or_none(i, stats) for i in ids))
        return [c for c in got if c is not None]

    async def _container_or_none(self, cid: str, stats: bool) -> ContainerState | None:
        """A container listed a moment ago may be gone by now (another project's `down`): skip it."""
        attrs = await self.call(_inspect_or_none(cid))
        if attrs is None:
            return None
        return await self._with_stats(cid, attrs, stats)

    async def container(self, cid: str, *, stats: bool = False) -> ContainerState:
        attrs = await self.call(lambda c: c.api.inspect_container(cid))
        return await self._with_stats(cid, attrs, stats)

    async def _with_stats(self, cid: str, attrs: Mapping[str, Any], stats: bool) -> ContainerState:
        sample = None
        if stats and (attrs.get("State") or {}).get("Running"):
            try:
                sample = await self.call(lambda c: c.api.stats(cid, stream=False))
            except CommandError:
                sample = None  # it stopped between inspect and stats
        return state_of(attrs, sample)

    async def restart(self, cid: str, timeout: int = 10) -> None:
        await self.call(lambda c: c.api.restart(cid, timeout=timeout))

    async def stop(self, cid: str, timeout: int = 10) -> None:
        await self.call(lambda c: c.api.stop(cid, timeout=timeout))

    async def start(self, cid: str) -> None:
        await self.call(lambda c: c.api.start(cid))

    async def logs(self, cid: str, tail: int, since: datetime | None = None) -> str:
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "tail": tail, "timestamps": False}
        if since is not None:
            kwargs["since"] = int(since.timestamp())
        raw = await self.call(lambda c: c.api.logs(cid, **kwargs))
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    async def stack_env_values(self, cid: str) -> list[str]:
        """Values of the environment variables the stack set (the container's, less the image's)."""
        attrs = await self.call(lambda c: c.api.inspect_container(cid))
        mine = (attrs.get("Config") or {}).get("Env") or []
        try:
            image = await self.call(lambda c: c.api.inspect_image(attrs.get("Image", "")))
            base = set((image.get("Config") or {}).get("Env") or [])
        except CommandError:
            base = set()
        return [e.split("=", 1)[1] for e in mine if "=" in e and e not in base]

    async def image_ref(self, image_id: str, wanted: str) -> dict[str, str | None]:
        """The image that actually runs: its ID and, when a registry knows it, repo@digest."""
        attrs = await self.call(lambda c: c.api.inspect_image(image_id))
        digests: list[str] = attrs.get("RepoDigests") or []
        repo = wanted.split("@", 1)[0].rsplit(":", 1)[0] if "/" in wanted or ":" in wanted else wanted
        digest = next((d for d in digests if d.split("@", 1)[0] == repo), digests[0] if digests else None)
        return {"image": wanted, "id": attrs.get("Id", image_id), "digest": digest}

    async def image_id(self, ref: str) -> str | None:
        """The ID of the image `ref` names on this engine, or None when it has no such image."""
        def inspect(c: docker.DockerClient) -> Any:
            try:
                return c.api.inspect_image(ref).get("Id")
            except docker.errors.NotFound:
                return None
        return await self.call(inspect)  # type: ignore[no-any-return]


def _inspect_or_none(cid: str) -> Callable[[docker.DockerClient], Any]:
    def inspect(c: docker.DockerClient) -> Any:
        try:
            return c.api.inspect_container(cid)
        except docker.errors.NotFound:
            return None
    return inspect


def _never_connected(exc: BaseException) -> bool:
    """True when the chain of causes shows the connection was never made (refused, no socket, DNS)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        seen.append(e)
        if isinstance(e, (ConnectionRefusedError, FileNotFoundError, requests.exceptions.ConnectTimeout,
                          urllib3.exceptions.NewConnectionError, urllib3.exceptions.NameResolutionError)):
            return True
        todo += [a for a in e.args if isinstance(a, BaseException)]
        todo += [c for c in (e.__cause__, e.__context__, getattr(e, "reason", None))
                 if isinstance(c, BaseException)]
    return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    return msg[:300]


# ---------------------------------------------------------------------------
# Building hosts from config


@dataclass
class _TLSFiles:
    """Compose wants ca.pem/cert.pem/key.pem in one folder; link them there if needed."""

    tls: DockerTLS
    base: Path
    _dir: Path | None = field(default=None)

    def path(self, name: str | None) -> Path | None:
        if not name:
            return None
        p = Path(name).expanduser()
        return p if p.is_absolute() else self.base / p

    def cert_dir(self) -> Path:
        ca, cert, key = self.path(self.tls.ca), self.path(self.tls.cert), self.path(self.tls.key)
        files = {"ca.pem": ca, "cert.pem": cert, "key.pem": key}
        parents = {p.parent for p in files.values() if p}
        if len(parents) == 1 and all(p is None or p.name == n for n, p in files.items()):
            return parents.pop()
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="chatops-tls-"))
            for n, p in files.items():
                if p:
                    (self._dir / n).symlink_to(p)
        return self._dir


def make_docker_host(config: Config, env: str) -> DockerHost | None:
    """The client an environment's config describes, or None when it names none."""
    cfg = config.inventory.environments[env]
    prefix = cfg.project_prefix
    if cfg.portainer is not None:
        from infra.portainer import portainer_host

        return portainer_host(config, env, cfg.portainer, prefix)
    if cfg.docker is None or not cfg.docker.host:
        return None
    host = cfg.docker.host
    compose_env = {"DOCKER_HOST": host}
    tls = None
    if cfg.docker.tls is not None:
        files = _TLSFiles(cfg.docker.tls, config.base_dir)
        cert, key, ca = files.path(cfg.docker.tls.cert), files.path(cfg.docker.tls.key), files.path(cfg.docker.tls.ca)
        tls = TLSConfig(client_cert=(str(cert), str(key)) if cert and key else None,
                        ca_cert=str(ca) if ca else None, verify=str(ca) if ca else True)
        compose_env.update({"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(files.cert_dir())})
    return DockerHost(env, host, tls=tls, compose_env=compose_env, project_prefix=prefix)


def install_docker_hosts(backends: Any, config: Config) -> None:
    """Put a DockerHost for every environment that names one into `backends`."""
    for env in config.inventory.environments:
        try:
            host = make_docker_host(config, env)
        except NotConfigured as exc:
            # Configured but unusable (e.g. Portainer without its key): say exactly that on use.
            backends.misconfigured(f"docker:{env}", str(exc))
            continue
        if host is not None:
            backends.override(f"docker:{env}", host)


def docker_env_for(host: DockerHost) -> dict[str, str]:
    """The process environment for a docker-compose run against this host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(host.compose_env)
    return env
