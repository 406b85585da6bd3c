"""A loopback stand-in for Portainer CE that follows its documented HTTP API.

Stacks API: `GET /api/stacks?filters={"EndpointID":N}`, `POST
/api/stacks/create/standalone/string?endpointId=N` ({name, stackFileContent, env}),
`PUT /api/stacks/{id}?endpointId=N` ({stackFileContent, env, prune, pullImage}),
`GET /api/stacks/{id}/file`, `POST /api/stacks/{id}/start|stop?endpointId=N`,
`DELETE /api/stacks/{id}?endpointId=N`; `GET /api/system/status`.  Like Portainer, it
deploys stacks with Docker Compose on the endpoint's engine (the real test dockerd),
and `/api/endpoints/{N}/docker/...` is a proxy to that engine.  Auth: `X-API-Key`.
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
        if request.headers.get("X-API-Key") != self.api_key:
            return web.json_response({"message": "Unauthorized", "details": "A valid authorisation token is missing"},
                                     status=401)
        body: dict[str, Any] = {}
        if request.can_read_body and request.content_type == "application/json" \
                and "/docker/" not in request.path:
            body = await request.json()
        self.calls.append((request.method, request.path_qs, body))
        return await handler(request)

    def _endpoint(self, request: web.Request) -> web.Response | None:
        raw = request.query.get("endpointId")
        if raw is None:
            return web.json_response({"message": "Invalid query parameter: endpointId"}, status=400)
        if int(raw) != self.endpoint_id:
            return web.json_response({"message": "Unable to find an environment with the specified identifier"},
                                     status=404)
        return None

    async def _compose(self, stack: dict[str, Any], *args: str) -> tuple[int, str]:
        folder = self._dir / str(stack["Id"])
        env = {**os.environ, "DOCKER_HOST": f"unix://{self.docker_socket}"}
        env.update({e["name"]: e["value"] for e in stack.get("Env") or []})
        proc = await asyncio.create_subprocess_exec(
            compose_binary(), "-p", stack["Name"], "-f", str(folder / "docker-compose.yml"), *args,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    def _write(self, stack: dict[str, Any], content: str) -> None:
        folder = self._dir / str(stack["Id"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "docker-compose.yml").write_text(content)

    def _get(self, request: web.Request) -> dict[str, Any] | None:
        return self.stacks.get(int(request.match_info["id"]))

    # -- handlers ---------------------------------------------------------
    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"Version": "2.21.5", "InstanceID": "fake-portainer"})

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
        if any(s["Name"] == name for s in self.stacks.values()):
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
            return web.json_response({"message": "Unable to find an environment"}, status=404)
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
