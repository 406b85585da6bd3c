"""A loopback stand-in for Portainer CE that follows its documented HTTP API.

Stacks API: `GET /api/stacks?filters={"EndpointID":N}`, `POST
/api/stacks/create/standalone/string?endpointId=N` ({name, stackFileContent, env}),
`PUT /api/stacks/{id}?endpointId=N` ({stackFileContent, env, prune, pullImage}),
`GET /api/stacks/{id}/file`, `POST /api/stacks/{id}/start|stop?endpointId=N`,
`DELETE /api/stacks/{id}?endpointId=N`; `GET /api/endpoints/{N}`; `GET /api/system/status`
(public, as in Portainer: it checks no key).  Like Portainer, it deploys stacks with Docker
Compose on the endpoint's engine (the real test dockerd) from its own folder
(`compose/{id}/docker-compose.yml`, the env in `stack.env` passed with `--env-file`), so a
stack that points at files next to the bot's copy finds none; it refuses to create a stack
whose name a Compose project on the engine already uses; `/api/endpoints/{N}/docker/...` is
a proxy to that engine.  Auth: `X-API-Key`.  `drop_after` makes the next changing call
act and then drop the connection without an answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from infra.compose import compose_binary


@dataclass
class FakePortainer:
    api_key: str
    endpoint_id: int
    docker_socket: str  # filesystem path of the engine's unix socket
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    stacks: dict[int, dict[str, Any]] = field(default_factory=dict)
    url: str = ""
    _dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fake-portainer-")))
    # Method of the next call to act on and then answer with a dropped connection ("PUT", "POST").
    drop_after: str | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None

    # -- lifecycle --------------------------------------------------------
    def start(self) -> FakePortainer:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application(middlewares=[self._auth], client_max_size=16 * 1024 * 1024)
            app.router.add_get("/api/system/status", self._status)
            app.router.add_get(r"/api/endpoints/{eid:\d+}", self._endpoint_info)
            app.router.add_get("/api/stacks", self._list)
            app.router.add_post("/api/stacks/create/standalone/string", self._create)
            app.router.add_put(r"/api/stacks/{id:\d+}", self._update)
            app.router.add_delete(r"/api/stacks/{id:\d+}", self._delete)
            app.router.add_get(r"/api/stacks/{id:\d+}/file", self._file)
            app.router.add_post(r"/api/stacks/{id:\d+}/{action:start|stop}", self._start_stop)
            app.router.add_route("*", r"/api/endpoints/{eid:\d+}/docker/{path:.*}", self._proxy)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    # -- helpers ----------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/api/system/status":  # public in Portainer
            return await handler(request)
        if request.headers.get("X-API-Key") != self.api_key:
            return web.json_response({"message": "Invalid API key", "details": "Unauthorized"}, status=401)
        body: dict[str, Any] = {}
        if request.can_read_body and request.content_type == "application/json" \
                and "/docker/" not in request.path:
            body = await request.json()
        self.calls.append((request.method, request.path_qs, body))
        response: web.StreamResponse = await handler(request)
        if self.drop_after and request.method == self.drop_after:
            self.drop_after = None
            assert request.transport is not None
            request.transport.close()  # it acted; the answer never arrives
        return response

    def _endpoint(self, request: web.Request) -> web.Response | None:
        raw = request.query.get("endpointId")
        if raw is None:
            return web.json_response({"message": "Invalid query parameter: endpointId"}, status=400)
        if int(raw) != self.endpoint_id:
            return _no_endpoint()
        return None

    async def _compose(self, stack: dict[str, Any], *args: str) -> tuple[int, str]:
        folder = self._dir / str(stack["Id"])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
        env["DOCKER_HOST"] = f"unix://{self.docker_socket}"
        proc = await asyncio.create_subprocess_exec(
            compose_binary(), "-p", stack["Name"], "--project-directory", str(folder), "--env-file",
            str(folder / "stack.env"), "-f", str(folder / "docker-compose.yml"), *args,
            env=env, cwd=str(folder), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    def _write(self, stack: dict[str, Any], content: str) -> None:
        folder = self._dir / str(stack["Id"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "docker-compose.yml").write_text(content)
        # As Portainer does: the stack's env becomes stack.env, given to Compose with --env-file.
        (folder / "stack.env").write_text("".join(f"{e['name']}={e['value']}\n" for e in stack.get("Env") or []))

    async def _projects_on_engine(self) -> set[str]:
        conn = aiohttp.UnixConnector(path=self.docker_socket)
        async with aiohttp.ClientSession(connector=conn) as session, session.get(
                "http://docker/containers/json", params={"all": "1", "filters": json.dumps(
                    {"label": ["com.docker.compose.project"]})}) as resp:
            found = await resp.json()
        return {c["Labels"]["com.docker.compose.project"] for c in found}

    def _get(self, request: web.Request) -> dict[str, Any] | None:
        return self.stacks.get(int(request.match_info["id"]))

    # -- handlers ---------------------------------------------------------
    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"Version": "2.21.5", "InstanceID": "fake-portainer"})

    async def _endpoint_info(self, request: web.Request) -> web.Response:
        if int(request.match_info["eid"]) != self.endpoint_id:
            return _no_endpoint()
        return web.json_response({"Id": self.endpoint_id, "Name": "local", "Type": 1, "Status": 1,
                                  "URL": f"unix://{self.docker_socket}"})

    async def _list(self, request: web.Request) -> web.Response:
        filters = json.loads(request.query.get("filters") or "{}")
        eid = filters.get("EndpointID")
        return web.json_response([s for s in self.stacks.values() if eid is None or s["EndpointId"] == eid])

    async def _create(self, request: web.Request) -> web.Response:
        bad = self._endpoint(request)
        if bad is not None:
            return bad
        body = await request.json()
        name, content = body.get("name") or body.get("Name"), body.get("stackFileContent")
        if not name or not content:
            return web.json_response({"message": "Invalid request payload"}, status=400)
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            return web.json_response({"message": "Invalid stack name"}, status=400)
        # Portainer checks its own stacks and the Compose projects on the engine (checkUniqueStackNameInDocker).
        if any(s["Name"] == name for s in self.stacks.values()) or name in await self._projects_on_engine():
            return web.json_response({"message": f"A stack with the normalized name '{name}' already exists"},
                                     status=409)
        sid = max(self.stacks, default=0) + 1
        stack = {"Id": sid, "Name": name, "Type": 2, "EndpointId": self.endpoint_id, "Status": 1,
                 "Env": body.get("env") or [], "EntryPoint": "docker-compose.yml", "CreatedBy": "api"}
        self._write(stack, content)
        code, out = await self._compose(stack, "up", "-d")
        if code != 0:
            return web.json_response({"message": "Failed to deploy a stack", "details": out.strip()},
                                     status=500)
        self.stacks[sid] = stack
        return web.json_response(stack)

    async def _update(self, request: web.Request) -> web.Response:
        bad = self._endpoint(request)
        if bad is not None:
            return bad
        stack = self._get(request)
        if stack is None:
            return web.json_response({"message": "Unable to find a stack with the specified identifier"},
                                     status=404)
        body = await request.json()
        stack["Env"] = body.get("env") or []
        self._write(stack, body["stackFileContent"])
        args = ["up", "-d", *(["--remove-orphans"] if body.get("prune") else [])]
        code, out = await self._compose(stack, *args)
        if code != 0:
            return web.json_response({"message": "Failed to deploy a stack", "details": out.strip()},
                                     status=500)
        return web.json_response(stack)

    async def _file(self, request: web.Request) -> web.Response:
        stack = self._get(request)
        if stack is None:
            return web.json_response({"message": "not found"}, status=404)
        content = (self._dir / str(stack["Id"]) / "docker-compose.yml").read_text()
        return web.json_response({"StackFileContent": content})

    async def _start_stop(self, request: web.Request) -> web.Response:
        bad = self._endpoint(request)
        if bad is not None:
            return bad
        stack = self._get(request)
        if stack is None:
            return web.json_response({"message": "not found"}, status=404)
        action = request.match_info["action"]
        if (action == "start") == (stack["Status"] == 1):
            return web.json_response({"message": f"Stack is already {'active' if action == 'start' else 'inactive'}"},
                                     status=400)
        code, out = await self._compose(stack, *(["up", "-d"] if action == "start" else ["stop"]))
        if code != 0:
            return web.json_response({"message": out.strip()}, status=500)
        stack["Status"] = 1 if action == "start" else 2
        return web.json_response(stack)

    async def _delete(self, request: web.Request) -> web.Response:
        bad = self._endpoint(request)
        if bad is not None:
            return bad
        stack = self.stacks.pop(int(request.match_info["id"]), None)
        if stack is None:
            return web.json_response({"message": "not found"}, status=404)
        await self._compose(stack, "down", "-t", "2")
        return web.Response(status=204)

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        if int(request.match_info["eid"]) != self.endpoint_id:
            return _no_endpoint()
        path = "/" + request.match_info["path"]
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "x-registry-auth")}
        conn = aiohttp.UnixConnector(path=self.docker_socket)
        async with aiohttp.ClientSession(connector=conn) as session, session.request(
                request.method, f"http://docker{path}", params=request.query, data=body or None,
                headers=headers) as resp:
            data = await resp.read()
            out = web.Response(body=data, status=resp.status)
            if "Content-Type" in resp.headers:
                out.headers["Content-Type"] = resp.headers["Content-Type"]
            return out


def _no_endpoint() -> web.Response:
    return web.json_response({"message": "Unable to find an environment with the specified identifier inside "
                                         "the database", "details": "object not found inside the database"},
                             status=404)
