"""Run the bot where the engine cannot see the stack folder (started by tests/test_remote_stacks.py).

This process lives in a private mount namespace: the stack folder is a tmpfs only it sees,
and its home is mounted read-only.  The engine is reached over tcp:// on loopback (a relay to
the test engine's socket), so `inline_files: auto` treats it as remote.  It runs the
scenario given as JSON lines of requests and prints one JSON line per reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading

from bot.engine import Engine
from bot.request import Actor, Request
from infra.config import load_config
from infra.db.store import AuditStore, Database
from infra.wiring import make_backends


class _Relay(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def relay_to(unix_path: str) -> int:
    """A tcp://127.0.0.1:PORT that forwards every connection to the engine's unix socket."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(unix_path)

            def pump(src: socket.socket, dst: socket.socket) -> None:
                try:
                    while data := src.recv(65536):
                        dst.sendall(data)
                except OSError:
                    pass
                finally:
                    for s in (src, dst):
                        with contextlib.suppress(OSError):
                            s.shutdown(socket.SHUT_RDWR)

            t = threading.Thread(target=pump, args=(up, self.request), daemon=True)
            t.start()
            pump(self.request, up)
            t.join(5)

    server = _Relay(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


def git(folder: str, *args: str) -> None:
    run = subprocess.run(["git", "-C", folder, "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
                         capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"git {args}: {run.stdout}{run.stderr}")


async def main(steps: list[dict[str, str]]) -> None:
    port = relay_to(os.environ["CHATOPS_TEST_DOCKER_HOST"].removeprefix("unix://"))
    os.environ["CHATOPS_TEST_TCP_DOCKER"] = f"tcp://127.0.0.1:{port}"
    config = load_config(os.environ["CHATOPS_CONFIG"])
    db = Database(os.environ["DATABASE_URL"])
    db.migrate()
    engine = Engine(config, AuditStore(db), make_backends(config))
    await engine.start()
    folder = os.environ["CHATOPS_TEST_COMPOSE"]
    try:
        for step in steps:
            if "edit" in step:  # change a file of the stack and commit it
                path = os.path.join(folder, step["edit"])
                with open(path) as f:
                    text = f.read()
                with open(path, "w") as f:
                    f.write(text.replace(step["old"], step["new"]))
                git(folder, "commit", "-qam", step["edit"])
                if step.get("tag"):
                    git(folder, "tag", step["tag"])
                continue
            reply = await engine.handle(Request(actor=Actor("console:alice"), text=step["ask"],
                                                confirmed=step.get("yes", "1") == "1"))
            print(json.dumps({"ask": step["ask"], "tone": reply.tone.value, "text": reply.text,
                              "fields": reply.fields, "tables": [t.rows for t in reply.tables]}), flush=True)
    finally:
        await engine.close()
        db.dispose()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
