"""Portainer CE as a way to reach an environment: its stacks API and its Docker proxy.

Stacks are standalone Compose stacks created from file content
(`POST /api/stacks/create/standalone/string?endpointId=N`) and redeployed with
`PUT /api/stacks/{id}?endpointId=N`; container work goes through the Docker proxy at
`/api/endpoints/{N}/docker`, so the same Docker SDK code serves both kinds of target.
Authentication is an access token in the `X-API-Key` header.

Portainer runs Compose in its own folder, where none of the bot's files exist: the bot
sends the stack self-contained (infra/selfcontained.py) and the `.env` values as the
stack's `env`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from infra.config import Config, PortainerTarget
from infra.errors import BackendUnavailable, CommandError, NotConfigured

if TYPE_CHECKING:
    from infra.compose import Deployable
    from infra.docker_hosts import DockerHost

STACK_TYPE_COMPOSE = 2
STATUS_ACTIVE, STATUS_INACTIVE = 1, 2
_CHANGING = ("POST", "PUT", "DELETE")
_NO_ENDPOINT = "unable to find an environment"


class PortainerRefused(CommandError):
    """Portainer answered with an error status; the message is its own."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _detail(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).rstrip(".")


class PortainerClient:
    """The few Portainer endpoints the bot needs, over httpx; errors name the config key to fix."""

    def __init__(self, url: str, endpoint_id: int, api_key: str, *, verify: bool | str = True,
                 timeout: float = 600.0, key: str = "environments.*.portainer") -> None:
        self.url = url.rstrip("/")
        self.endpoint_id = endpoint_id
        self.key = key  # the config key of this target, for messages
        self._headers = {"X-API-Key": api_key, "Accept": "application/json"}
        self._verify = verify
        self._timeout = timeout

    def explain(self, status: int, message: str) -> str | None:
        """What a 401/403 or a missing endpoint means, naming the config key to fix; None otherwise."""
        if status in (401, 403):
            return (f"Portainer at {self.url} refused the API key ({status}: {message.rstrip('.')}); "
                    f"check {self.key}.api_key (an access token from Portainer's user settings).")
        if status == 404 and _NO_ENDPOINT in message.lower():
            return (f"Portainer at {self.url} has no environment (endpoint) {self.endpoint_id}; "
                    f"check {self.key}.endpoint_id (the number in the environment's URL in Portainer).")
        return None

    async def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                       json: Any = None) -> Any:
        try:
            async with httpx.AsyncClient(base_url=self.url, headers=self._headers, verify=self._verify,
                                         timeout=self._timeout) as client:
                resp = await client.request(method, path, params=params, json=json)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            raise BackendUnavailable(f"Portainer at {self.url} is unreachable: {_detail(exc)}. "
                                     "Nothing was changed.") from exc
        except httpx.HTTPError as exc:
            if method in _CHANGING:
                raise BackendUnavailable(
                    f"The connection to Portainer at {self.url} dropped after the request ({method} "
                    f"{path}) was sent: {_detail(exc)}. The stack may have changed; check what runs "
                    "before asking again.") from exc
            raise BackendUnavailable(f"Portainer at {self.url} did not answer: {_detail(exc)}. "
                                     "Nothing was changed.") from exc
        if resp.status_code >= 400:
            told = self.explain(resp.status_code, _message(resp))
            if told:
                raise BackendUnavailable(told)
            raise PortainerRefused(resp.status_code,
                                   f"Portainer answered {resp.status_code} to {method} {path}: {_message(resp)}")
        if not resp.content:
            return None
        return resp.json()

    async def ping(self) -> str:
        """Portainer's version (a public call: it does not check the key; see `endpoint`)."""
        status = await self._request("GET", "/api/system/status")
        return f"Portainer {status.get('Version', '?')}" if isinstance(status, dict) else "Portainer"

    async def endpoint(self) -> dict[str, Any]:
        """The configured environment; needs a valid key, and fails on a wrong endpoint id."""
        found: dict[str, Any] = await self._request("GET", f"/api/endpoints/{self.endpoint_id}")
        return found

    async def stacks(self) -> list[dict[str, Any]]:
        """Stacks on this endpoint."""
        import json as _json

        found = await self._request("GET", "/api/stacks",
                                    params={"filters": _json.dumps({"EndpointID": self.endpoint_id})})
        return [s for s in (found or []) if s.get("EndpointId") == self.endpoint_id]

    async def find(self, name: str) -> dict[str, Any] | None:
        return next((s for s in await self.stacks() if s.get("Name") == name), None)

    async def create(self, name: str, content: str, env: Mapping[str, str]) -> dict[str, Any]:
        body = {"name": name, "stackFileContent": content, "env": _env_list(env)}
        created: dict[str, Any] = await self._request(
            "POST", "/api/stacks/create/standalone/string", params={"endpointId": self.endpoint_id}, json=body)
        return created

    async def update(self, stack_id: int, content: str, env: Mapping[str, str], *,
                     prune: bool = True, pull: bool = False) -> dict[str, Any]:
        body = {"stackFileContent": content, "env": _env_list(env), "prune": prune, "pullImage": pull}
        updated: dict[str, Any] = await self._request(
            "PUT", f"/api/stacks/{stack_id}", params={"endpointId": self.endpoint_id}, json=body)
        return updated

    async def file(self, stack_id: int) -> str:
        data = await self._request("GET", f"/api/stacks/{stack_id}/file")
        return str((data or {}).get("StackFileContent", ""))

    async def start(self, stack_id: int) -> dict[str, Any]:
        out: dict[str, Any] = await self._request("POST", f"/api/stacks/{stack_id}/start",
                                                  params={"endpointId": self.endpoint_id})
        return out

    async def stop(self, stack_id: int) -> dict[str, Any]:
        out: dict[str, Any] = await self._request("POST", f"/api/stacks/{stack_id}/stop",
                                                  params={"endpointId": self.endpoint_id})
        return out

    async def delete(self, stack_id: int) -> None:
        await self._request("DELETE", f"/api/stacks/{stack_id}", params={"endpointId": self.endpoint_id})


def _env_list(env: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def _message(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300]
    if isinstance(data, dict):
        parts = [str(data[k]).strip() for k in ("message", "details") if data.get(k)]
        return (": ".join(parts) or str(data))[:600]
    return str(data)[:300]


def pinned_content(content: str, pins: Mapping[str, str]) -> str:
    """The compose text with each pinned service's image replaced (Portainer takes one file)."""
    if not pins:
        return content
    data = yaml.safe_load(content) or {}
    for svc, ref in pins.items():
        if svc in (data.get("services") or {}):
            data["services"][svc]["image"] = ref
    return yaml.safe_dump(data, sort_keys=False)


def adopt_steps(project: str, env: str, stack: str) -> str:
    """How to hand a Compose project started outside Portainer over to it."""
    return (f"Compose project {project} already runs on {env}, started outside Portainer, and Portainer "
            f"will not create a stack over it ('already exists'). To hand it to Portainer: "
            f"(1) on the engine's host, stop it where it was started: `docker compose -p {project} down` "
            "(containers and its default network go; named volumes and their data stay), or remove its "
            f"containers on Portainer's Containers page; (2) ask 'deploy {stack} {env}' again: the bot "
            f"creates Portainer stack {project}, which reuses the same named volumes. Nothing was changed.")


class PortainerDriver:
    """Stacks on a Portainer endpoint: create the stack the first time, redeploy it after."""

    kind = "portainer"

    def __init__(self, client: PortainerClient, env: str = "") -> None:
        self.client = client
        self.env = env

    async def check(self) -> str | None:
        found = await self.client.endpoint()
        state = {1: "up", 2: "down"}.get(int(found.get("Status") or 0), "unknown state")
        return f"Portainer endpoint {self.client.endpoint_id} '{found.get('Name', '?')}' ({state})"

    async def outside(self, project: str, host: DockerHost) -> str | None:
        if await self.client.find(project) is not None:
            return None
        if not await host.containers(project):
            return None
        stack = host.stack_of(project) or project
        return adopt_steps(project, self.env, stack)

    async def up(self, deployable: Deployable) -> str:
        from infra.docker_hosts import DeployFailed

        project = deployable.project
        env = {**deployable.dotenv, **deployable.compose_env}
        try:
            existing = await self.client.find(project)
            if existing is None:
                try:
                    made = await self.client.create(project, deployable.content, env)
                except PortainerRefused as exc:
                    if exc.status == 409:
                        raise DeployFailed(adopt_steps(project, self.env, project)) from exc
                    raise
                return f"created Portainer stack {made.get('Id')} ({project})"
            if existing.get("Status") == STATUS_INACTIVE:
                await self.client.start(int(existing["Id"]))
            await self.client.update(int(existing["Id"]), deployable.content, env)
            return f"redeployed Portainer stack {existing['Id']} ({project})"
        except BackendUnavailable:
            raise
        except DeployFailed:
            raise
        except CommandError as exc:
            raise DeployFailed(str(exc)) from exc

    async def down(self, project: str) -> str:
        existing = await self.client.find(project)
        if existing is None:
            return f"no Portainer stack {project}"
        await self.client.delete(int(existing["Id"]))
        return f"deleted Portainer stack {existing['Id']}"


def portainer_host(config: Config, env: str, cfg: PortainerTarget, prefix: str) -> DockerHost:
    """A DockerHost whose Docker calls go through Portainer's proxy and deploys through its stacks API."""
    from docker.tls import TLSConfig

    from infra.docker_hosts import DockerHost

    key_name = f"environments.{env}.portainer"
    if cfg.api_key is None:
        raise NotConfigured(f"{key_name}.api_key is not set (an access token from "
                            "Portainer's user settings, usually ${PORTAINER_API_KEY})"
                            f"{config.unset_note(f'{key_name}.api_key')}.")
    key = cfg.api_key.get_secret_value()
    verify: bool | str = cfg.ca_bundle or cfg.verify_ssl
    client = PortainerClient(cfg.url, cfg.endpoint_id, key, verify=verify, key=key_name)
    base = f"{cfg.url.rstrip('/')}/api/endpoints/{cfg.endpoint_id}/docker"
    tls = None
    if base.startswith("https://"):
        tls = TLSConfig(verify=verify)
        base = "tcp://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "tcp://" + base.removeprefix("http://")
    return DockerHost(env, base, tls=tls, headers={"X-API-Key": key}, driver=PortainerDriver(client, env),
                      project_prefix=prefix, where=f"Portainer {cfg.url} endpoint {cfg.endpoint_id}",
                      shares_files=False, explain=client.explain)
