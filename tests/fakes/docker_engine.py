"""A small Docker Engine API stand-in on a unix socket, for failure paths dockerd can't be made to take.

It speaks the Engine's HTTP API (the docker SDK does the talking): version, container list
and inspect, restart.  It can refuse one container's restart with an API error, go away
(drop every connection) after a number of restarts, as an engine that dies mid-change does,
or lose a container between the list and its inspect (another project's `down` racing a
`status`).
`silent_socket` is an engine that accepts connections and never answers.
"""

from __future__ import annotations

import json
import re
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "1.43"
PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"


def container(cid: str, name: str, project: str, service: str) -> dict[str, Any]:
    """`docker inspect` output, trimmed to what the bot reads."""
    return {"Id": cid, "Name": f"/{name}", "RestartCount": 0, "Image": "sha256:" + "0" * 64,
            "Config": {"Image": "n8n:1", "Labels": {PROJECT: project, SERVICE: service}, "Env": []},
            "State": {"Status": "running", "Running": True, "StartedAt": "2024-01-01T00:00:00Z"}}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    engine: FakeDockerEngine


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        eng = self.server.engine
        url = urlsplit(self.path)
        path = re.sub(r"^/v[0-9.]+", "", url.path)
        eng.calls.append(f"{method} {path}")
        if eng.gone:
            self.close_connection = True  # an engine that went away: the connection just drops
            return
        if method == "GET" and path == "/version":
            return self._send(200, {"Version": "24.0.0", "ApiVersion": API, "MinAPIVersion": "1.12"})
        if method == "GET" and path == "/containers/json":
            wanted = json.loads(parse_qs(url.query).get("filters", ["{}"])[0]).get("label", [])
            return self._send(200, [{"Id": c["Id"], "Labels": c["Config"]["Labels"]}
                                    for c in eng.containers.values() if eng.matches(c, wanted)])
        m = re.fullmatch(r"/containers/([^/]+)/(json|restart)", path)
        cid = eng.resolve(m.group(1)) if m else None
        if m is None or cid is None:
            return self._send(404, {"message": f"No such container: {m.group(1) if m else path}"})
        if method == "GET" and m.group(2) == "json":
            if cid in eng.vanish_on_inspect:  # removed by someone else since it was listed
                del eng.containers[cid]
                return self._send(404, {"message": f"No such container: {cid}"})
            return self._send(200, eng.containers[cid])
        if method == "POST" and m.group(2) == "restart":
            if cid in eng.refuse_restart:
                return self._send(500, {"message": f"cannot restart container {cid}: device busy"})
            eng.restarted.append(cid)
            eng.containers[cid]["RestartCount"] += 1
            if eng.die_after_restarts is not None and len(eng.restarted) >= eng.die_after_restarts:
                eng.gone = True
            return self._send(204)
        return self._send(404, {"message": "page not found"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._route("POST")


class FakeDockerEngine:
    def __init__(self, sock: Path) -> None:
        self.sock = sock
        self.containers: dict[str, dict[str, Any]] = {}
        self.refuse_restart: set[str] = set()
        self.vanish_on_inspect: set[str] = set()
        self.die_after_restarts: int | None = None
        self.gone = False
        self.restarted: list[str] = []
        self.calls: list[str] = []
        self._server = _Server(str(sock), _Handler)
        self._server.engine = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    @staticmethod
    def matches(c: dict[str, Any], wanted: list[str]) -> bool:
        labels = c["Config"]["Labels"]
        for w in wanted:
            key, _, value = w.partition("=")
            if key not in labels or (value and labels[key] != value):
                return False
        return True

    def resolve(self, ref: str) -> str | None:
        """A full id from an id prefix (as the Engine accepts) or a name."""
        hits = [c for c, a in self.containers.items() if c.startswith(ref) or a["Name"] == f"/{ref}"]
        return hits[0] if len(hits) == 1 else None

    def add(self, cid: str, name: str, project: str, service: str) -> None:
        self.containers[cid] = container(cid, name, project, service)

    def __enter__(self) -> FakeDockerEngine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def silent_socket(path: Path) -> socket.socket:
    """A listening unix socket nobody accepts on: connects succeed, requests never get an answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(64)
    return s
