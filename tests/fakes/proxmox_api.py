"""A Proxmox VE API stand-in over HTTPS on 127.0.0.1, for the real proxmoxer client.

It follows the public API schema for the endpoints the bot uses: every answer is a
`{"data": ...}` envelope; errors carry the message in the HTTP reason phrase (as
pveproxy does); changing calls return a UPID and run as tasks that take a while,
lock the guest, write a task log and end with an exit status ("OK" or the error);
`GET /nodes/{node}/tasks/{upid}/status`; snapshot lists end with the `current`
pseudo-snapshot; 401 without a valid `PVEAPIToken=USER@REALM!TOKENID=SECRET` header,
403 when the token lacks the privilege.  The certificate is made at start-up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ALL_PRIVILEGES = frozenset({"VM.Audit", "VM.Snapshot", "VM.Snapshot.Rollback", "Sys.Audit"})
TASK_TYPES = {("qemu", "snapshot"): "qmsnapshot", ("qemu", "rollback"): "qmrollback",
              ("qemu", "delsnapshot"): "qmdelsnapshot", ("lxc", "snapshot"): "vzsnapshot",
              ("lxc", "rollback"): "vzrollback", ("lxc", "delsnapshot"): "vzdelsnapshot"}
LOCKS = {"snapshot": "snapshot", "rollback": "rollback", "delsnapshot": "snapshot-delete"}


# -- TLS material ------------------------------------------------------------
def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chatops test Proxmox CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phoenix")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = folder / "pve-ca.pem", folder / "pve-ssl.pem", folder / "pve-ssl.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


# -- state -------------------------------------------------------------------
@dataclass
class FakeGuest:
    node: str
    kind: str
    vmid: int
    name: str
    status: str = "running"
    lock: str | None = None
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    current_parent: str | None = None
    booted: float = field(default_factory=time.time)


@dataclass
class FakeTask:
    upid: str
    node: str
    user: str
    type: str
    guest: FakeGuest
    started: float
    duration: float
    apply: Any  # callable run when the task ends well
    error: str | None
    log: list[str]
    exitstatus: str | None = None


class HTTPError(Exception):
    def __init__(self, code: int, reason: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.errors = code, reason, errors


class Drop(Exception):
    """Close the connection without an answer (the network dropped)."""


class ProxmoxFake:
    """The fake Proxmox node(s).  Tests reach into its state to arrange and to check."""

    def __init__(self, folder: Path, *, tokens: dict[str, str] | None = None,
                 privileges: dict[str, frozenset[str]] | None = None, task_seconds: float = 0.2,
                 version: str = "8.2.4") -> None:
        self.folder = folder
        self.tokens = dict(tokens or {"chatops@pve!bot": "0b7c5f3e-6b1d-4d0a-9f7e-0d1c2b3a4f5e"})
        self.privileges = dict(privileges or {t: ALL_PRIVILEGES for t in self.tokens})
        self.task_seconds = task_seconds
        self.version = version
        self.guests: dict[tuple[str, str, int], FakeGuest] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.fail_next: dict[str, str] = {}  # action → exit status of the next such task
        self.hold = False  # while true, running tasks do not finish
        self.drop_task_status = 0  # answer that many task-status reads by dropping the connection
        # A task's log stays empty until it ends (a slow storage step writes nothing for a while);
        # an empty log is answered as pveproxy does, with the single line {"n": 1, "t": "no content"}.
        self.quiet_tasks = False
        self.requests: list[tuple[str, str]] = []
        self.auth_headers: list[str] = []
        self.max_running: dict[int, int] = {}  # vmid → most tasks seen running at once
        self._lock = threading.RLock()
        self._pid = 0x1000
        self.ca_path, cert, key = make_certificates(folder)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                              do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle --------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ProxmoxFake:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_guest(self, node: str, kind: str, vmid: int, name: str, **kw: Any) -> FakeGuest:
        g = FakeGuest(node, kind, vmid, name, **kw)
        self.guests[(node, kind, vmid)] = g
        return g

    def add_snapshot(self, guest: FakeGuest, name: str, description: str = "", snaptime: int | None = None,
                     vmstate: bool = False) -> None:
        entry: dict[str, Any] = {"name": name, "description": description,
                                 "snaptime": snaptime or int(time.time())}
        if guest.current_parent:
            entry["parent"] = guest.current_parent
        if guest.kind == "qemu":
            entry["vmstate"] = int(vmstate)
        guest.snapshots[name] = entry
        guest.current_parent = name

    def guest(self, vmid: int) -> FakeGuest:
        return next(g for g in self.guests.values() if g.vmid == vmid)

    def posts(self, suffix: str = "") -> list[str]:
        return [p for m, p in self.requests if m in ("POST", "DELETE") and p.endswith(suffix)]

    # -- tasks ------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        if self.hold:
            return
        for t in self.tasks.values():
            if t.exitstatus is None and now - t.started >= t.duration:
                t.guest.lock = None
                if t.error:
                    t.exitstatus = t.error
                    t.log.append(f"TASK ERROR: {t.error}")
                else:
                    t.apply()
                    t.exitstatus = "OK"
                    t.log.append("TASK OK")

    def _start_task(self, user: str, guest: FakeGuest, action: str, apply: Any, log: list[str],
                    error: str | None = None) -> str:
        self._pid += 1
        start = int(time.time())
        ttype = TASK_TYPES[(guest.kind, action)]
        upid = f"UPID:{guest.node}:{self._pid:08X}:{self._pid * 7:08X}:{start:08X}:{ttype}:{guest.vmid}:{user}:"
        injected = self.fail_next.pop(action, None)
        error = error or injected
        duration = 0.0 if error and not injected else self.task_seconds
        if not error or injected:
            guest.lock = LOCKS[action]
        running = 1 + sum(1 for t in self.tasks.values() if t.guest is guest and t.exitstatus is None)
        self.max_running[guest.vmid] = max(self.max_running.get(guest.vmid, 0), running)
        self.tasks[upid] = FakeTask(upid, guest.node, user, ttype, guest, time.monotonic(), duration,
                                    apply, error, list(log))
        return upid

    # -- request handling -------------------------------------------------
    def handle(self, method: str, path: str, auth: str, params: dict[str, str]) -> Any:
        with self._lock:
            self.requests.append((method, path))
            self.auth_headers.append(auth)
            self._tick()
            token = self._authenticate(auth)
            parts = [unquote(p) for p in path.strip("/").split("/")]
            if parts[:2] != ["api2", "json"]:
                raise HTTPError(501, f"Method '{method} {path}' not implemented")
            return self._route(method, parts[2:], token, params)

    def _authenticate(self, auth: str) -> str:
        if not auth.startswith("PVEAPIToken="):
            raise HTTPError(401, "No ticket")
        ident, sep, secret = auth[len("PVEAPIToken="):].partition("=")
        if not sep or self.tokens.get(ident) != secret:
            raise HTTPError(401, "invalid token value!")
        return ident

    def _need(self, token: str, priv: str, path: str) -> None:
        if priv not in self.privileges.get(token, frozenset()):
            raise HTTPError(403, f"Permission check failed ({path}, {priv})")

    def _guest_for(self, node: str, kind: str, vmid: str) -> FakeGuest:
        g = self.guests.get((node, kind, int(vmid))) if vmid.isdigit() else None
        if g is None:
            conf = "qemu-server" if kind == "qemu" else "lxc"
            raise HTTPError(500, f"Configuration file 'nodes/{node}/{conf}/{vmid}.conf' does not exist")
        return g

    def _route(self, method: str, p: list[str], token: str, q: dict[str, str]) -> Any:
        if method == "GET" and p == ["version"]:
            return {"version": self.version, "release": self.version.rsplit(".", 1)[0],
                    "repoid": "d4a1b2c3e5f60718"}
        if len(p) >= 4 and p[0] == "nodes" and p[2] == "tasks":
            return self._task(method, p, token, q)
        if len(p) >= 5 and p[0] == "nodes" and p[2] in ("qemu", "lxc"):
            g = self._guest_for(p[1], p[2], p[3])
            acl = f"/vms/{g.vmid}"
            rest = p[4:]
            if method == "GET" and rest == ["status", "current"]:
                self._need(token, "VM.Audit", acl)
                return self._status(g)
            if rest == ["snapshot"] and method == "GET":
                self._need(token, "VM.Audit", acl)
                out = [dict(s) for s in g.snapshots.values()]
                current: dict[str, Any] = {"name": "current", "description": "You are here!",
                                           "digest": "5a1e" + f"{len(g.snapshots):04x}" * 9}
                if g.current_parent:
                    current["parent"] = g.current_parent
                if g.kind == "qemu":
                    current["running"] = int(g.status == "running")
                return [*out, current]
            if rest == ["snapshot"] and method == "POST":
                self._need(token, "VM.Snapshot", acl)
                return self._snapshot(token, g, q)
            if len(rest) == 3 and rest[0] == "snapshot" and rest[2] == "rollback" and method == "POST":
                self._need(token, "VM.Snapshot.Rollback", acl)
                return self._rollback(token, g, rest[1])
            if len(rest) == 2 and rest[0] == "snapshot" and method == "DELETE":
                self._need(token, "VM.Snapshot", acl)
                return self._delete(token, g, rest[1])
            if len(rest) == 3 and rest[0] == "snapshot" and rest[2] == "config" and method == "GET":
                self._need(token, "VM.Audit", acl)
                if rest[1] not in g.snapshots:
                    raise HTTPError(500, f"snapshot '{rest[1]}' does not exist")
                return {"name": rest[1]}
        raise HTTPError(501, f"Method '{method} /{'/'.join(p)}' not implemented")

    def _status(self, g: FakeGuest) -> dict[str, Any]:
        running = g.status == "running"
        d: dict[str, Any] = {"vmid": g.vmid, "name": g.name, "status": g.status,
                             "uptime": int(time.time() - g.booted) + 3600 if running else 0,
                             "cpu": 0.0731 if running else 0, "cpus": 4 if g.kind == "qemu" else 2,
                             "mem": 3 * 1024**3 if running else 0, "maxmem": 8 * 1024**3,
                             "disk": 0, "maxdisk": 64 * 1024**3, "netin": 1234, "netout": 5678}
        if g.kind == "qemu":
            d.update(qmpstatus=g.status, ha={"managed": 0}, pid=4242 if running else None)
        else:
            d["type"] = "lxc"
        if g.lock:
            d["lock"] = g.lock
        return {k: v for k, v in d.items() if v is not None}

    def _snapshot(self, token: str, g: FakeGuest, q: dict[str, str]) -> str:
        name = q.get("snapname", "")
        if not name:
            raise HTTPError(400, "Parameter verification failed.", {"snapname": "property is missing"})
        if name == "current":
            raise HTTPError(500, "unable to use snapshot name 'current' (reserved name)")
        vmstate = q.get("vmstate") in ("1", "true")
        if vmstate and g.kind != "qemu":
            raise HTTPError(400, "Parameter verification failed.", {"vmstate": "property is not defined"})
        error = None
        if g.lock:
            error = f"VM {g.vmid} is locked ({g.lock})"
        elif name in g.snapshots:
            error = f"snapshot name '{name}' already used"
        description = q.get("description", "")

        def apply() -> None:
            self.add_snapshot(g, name, description, vmstate=vmstate)

        log = ([f"snapshotting 'drive-scsi0' (local-lvm:vm-{g.vmid}-disk-0)"] if g.kind == "qemu"
               else [f"create snapshot '{name}' of subvol-{g.vmid}-disk-0"])
        if vmstate:
            log.insert(0, "saving VM state and RAM using storage 'local-lvm'")
        return self._start_task(token, g, "snapshot", apply, log, error)

    @staticmethod
    def _existing_snapshot_error(g: FakeGuest, name: str) -> str | None:
        """Why a task on an existing snapshot fails, as Proxmox words it (None: it can run)."""
        if g.lock:
            return f"VM {g.vmid} is locked ({g.lock})"
        if name not in g.snapshots:
            return f"snapshot '{name}' does not exist"
        return None

    def _rollback(self, token: str, g: FakeGuest, name: str) -> str:
        error = self._existing_snapshot_error(g, name)

        def apply() -> None:
            g.current_parent = name
            if not g.snapshots[name].get("vmstate"):
                g.status = "stopped"

        return self._start_task(token, g, "rollback", apply, [f"rolling back to snapshot '{name}'"], error)

    def _delete(self, token: str, g: FakeGuest, name: str) -> str:
        error = self._existing_snapshot_error(g, name)

        def apply() -> None:
            gone = g.snapshots.pop(name)
            for s in g.snapshots.values():
                if s.get("parent") == name:
                    if gone.get("parent"):
                        s["parent"] = gone["parent"]
                    else:
                        s.pop("parent", None)
            if g.current_parent == name:
                g.current_parent = gone.get("parent")

        return self._start_task(token, g, "delsnapshot", apply, [f"delete snapshot '{name}'"], error)

    def _task(self, method: str, p: list[str], token: str, q: dict[str, str]) -> Any:
        upid = p[3]
        t = self.tasks.get(upid)
        if t is None or t.node != p[1]:
            raise HTTPError(500, f"unable to parse worker upid '{upid}'" if not upid.startswith("UPID:")
                            else f"no such task '{upid}'")
        if t.user != token:
            self._need(token, "Sys.Audit", f"/nodes/{t.node}")
        if method == "GET" and p[4:] == ["status"]:
            if self.drop_task_status > 0:
                self.drop_task_status -= 1
                raise Drop()
            st: dict[str, Any] = {"upid": t.upid, "node": t.node, "pid": int(upid.split(":")[2], 16),
                                  "pstart": int(upid.split(":")[3], 16), "starttime": int(upid.split(":")[4], 16),
                                  "type": t.type, "id": str(t.guest.vmid), "user": t.user,
                                  "status": "running" if t.exitstatus is None else "stopped"}
            if t.exitstatus is not None:
                st["exitstatus"] = t.exitstatus
            return st
        if method == "GET" and p[4:] == ["log"]:
            start, limit = int(q.get("start", 0)), int(q.get("limit", 50))
            lines = t.log if t.exitstatus is not None or not self.quiet_tasks else []
            if not lines:
                return [{"n": 1, "t": "no content"}]  # PVE::Tools::dump_logfile on an empty file
            return [{"n": i + 1, "t": line} for i, line in enumerate(lines)][start:start + limit]
        raise HTTPError(501, f"Method '{method} /{'/'.join(p)}' not implemented")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed handshakes (an untrusting client) and dropped connections are test cases


def _handler_for(fake: ProxmoxFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "pve-api-daemon/3.0"
        disable_nagle_algorithm = True  # headers and body go out in separate writes

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            params.update({k: v[-1] for k, v in parse_qs(body).items()})
            try:
                data = fake.handle(method, url.path, self.headers.get("Authorization", ""), params)
                self._send(200, "OK", {"data": data})
            except HTTPError as exc:
                payload: dict[str, Any] = {"data": None}
                if exc.errors:
                    payload["errors"] = exc.errors
                self._send(exc.code, exc.reason, payload if exc.code != 401 else None)
            except Drop:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

        def _send(self, code: int, reason: str, payload: Any) -> None:
            raw = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(code, reason)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Cache-Control", "max-age=0")
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler
