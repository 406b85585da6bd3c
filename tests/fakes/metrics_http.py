"""A loopback HTTP server that serves a Prometheus text page, as exporters and vLLM do."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsServer:
    """Serves `render()` at /metrics on 127.0.0.1:<free port>; `status` and `delay_s` simulate trouble."""

    def __init__(self, render: Callable[[], str], path: str = "/metrics") -> None:
        self.render = render
        self.path = path
        self.status = 200
        self.delay_s = 0.0
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if self.path.split("?")[0] != outer.path:
                    self.send_error(404)
                    return
                body = (outer.render() if outer.status == 200 else "internal error\n").encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}{self.path}"

    def __enter__(self) -> MetricsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
