"""The HTTP API for automation (n8n, CI) and the Alertmanager webhook receiver.

`chatops serve api [--port N]` (alone or next to `slack`/`discord`).  A bearer token maps to
the identity `api:NAME` with the roles `api_tokens.NAME` gives it; its requests go through the
same engine as chat, with two differences that suit automation: the language model never
reads API text (the canonical grammar or a structured command, nothing guessed), and the
caller's request counts as the confirmation a change asks for (as `chatops run --yes` does).
Approval is never implied: a change on a protected environment posts its card to the
environment's ops channel and answers 202; `GET /api/v1/requests/{id}` follows it.

Bad input gets a specific 4xx and, when the body asked for something, an audit row of its
refusal (actor `api:NAME`, or `api:unauthenticated` for a bad token).  docs/api.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.alerts import AlertReceiver, PayloadError, parse
from bot.metrics import API_REQUESTS
from bot.openapi import spec as openapi_spec
from bot.policy import targets_of
from bot.request import API_PLATFORM, Actor, Reply, Request, Tone
from infra import untrusted_json
from infra.api_tokens import identify
from infra.config import UNAUTHENTICATED_TOKEN, Role
from infra.db.common import DatabaseUnavailable, aware
from infra.db.models import RequestRow
from infra.status import Status
from infra.wording import plural
from llm.values import REQUEST_ID
from llm.when import split_when

if TYPE_CHECKING:
    from bot.app import App
    from bot.engine import Engine

log = logging.getLogger("chatops.api")

PLATFORM = API_PLATFORM
UNAUTHENTICATED = f"{PLATFORM}:{UNAUTHENTICATED_TOKEN}"
DEFAULT_PORT = 8080
REQUESTS_PATH = "/api/v1/requests"
ALERTMANAGER_PATH = "/api/v1/alertmanager"
REQUEST_KEYS = ("text", "command", "args", "when", "wait")
# What a request's final audit status answers on POST.
CODES = {Status.succeeded: 200, Status.failed: 200, Status.scheduled: 201, Status.pending_approval: 202,
         Status.started: 202, Status.requested: 202, Status.approved: 202, Status.awaiting_confirmation: 202,
         Status.refused: 403, Status.denied: 403, Status.expired: 403, Status.cancelled: 403,
         Status.interrupted: 200, Status.missed: 200}


class TooLarge(Exception):
    pass


class BadRequest(Exception):
    """A body that cannot be a request; `text`/`command` are what it asked for, when readable."""

    def __init__(self, message: str, text: str = "", command: str | None = None, *, parsed: bool = True) -> None:
        super().__init__(message)
        self.text, self.command, self.parsed = text, command, parsed


def printable(raw: bytes | str, limit: int = 200) -> str:
    """A preview of a body for the audit log: no NUL or other control characters (PostgreSQL text refuses NUL)."""
    text = raw[:limit].decode("utf-8", "replace") if isinstance(raw, bytes) else raw[:limit]
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str))


def _stamp(value: Any) -> str | None:
    a = aware(value)
    return a.isoformat() if a else None


def row_json(row: RequestRow) -> dict[str, Any]:
    return {"id": row.id, "status": row.status, "command": row.command, "args": row.args, "env": row.env,
            "actor": row.actor, "approver": row.approver, "result": row.result, "error": row.error,
            "reason": row.reason, "schedule_id": row.schedule_id, "created_at": _stamp(row.created_at),
            "updated_at": _stamp(row.updated_at)}


def reply_json(reply: Reply) -> dict[str, Any]:
    return {"text": reply.text, "title": reply.title, "tone": reply.tone.value,
            "fields": [list(f) for f in reply.fields],
            "tables": [{"title": t.title, "columns": t.columns, "rows": t.rows} for t in reply.tables]}


def bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The body, refusing past `limit` bytes whatever Content-Length claims, and TimeoutError when it has
    not arrived whole within `timeout_s` (a client that stalls or trickles would hold its connection)."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge
    chunks, size = [], 0
    async with asyncio.timeout(timeout_s):
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise TooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def request_fields(body: bytes) -> dict[str, Any]:
    """The request object of a POST /api/v1/requests body, or BadRequest saying what is wrong."""
    try:
        data = untrusted_json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("The body is not UTF-8 text; send a JSON object.", printable(body), parsed=False) from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"The body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                         "send a JSON object such as {\"text\": \"status rumpletest\"}.",
                         printable(body), parsed=False) from None
    if not isinstance(data, dict):
        raise BadRequest(f"The body is JSON but not an object (it is {type(data).__name__}); send "
                         "{\"text\": …} or {\"command\": …, \"args\": {…}}.")
    text: str = printable(data["text"], 2000) if isinstance(data.get("text"), str) else ""
    command: str | None = data["command"] if isinstance(data.get("command"), str) else None
    unknown = sorted(set(data) - set(REQUEST_KEYS))
    if unknown:
        raise BadRequest(f"Unknown {plural(len(unknown), 'field')} {', '.join(unknown)}; the fields are "
                         f"{', '.join(REQUEST_KEYS)}.", text, command)
    if ("text" in data) == ("command" in data):
        raise BadRequest("Give exactly one of 'text' (the request in words) and 'command' (with 'args').",
                         text, command)
    if "text" in data and (not isinstance(data["text"], str) or not data["text"].strip()):
        raise BadRequest("'text' must be a non-empty string.", text, command)
    if "command" in data and (not isinstance(data["command"], str) or not data["command"].strip()):
        raise BadRequest("'command' must be a command name such as 'restart'.", text, command)
    args = data.get("args", {})
    if not isinstance(args, dict) or any(not isinstance(v, str | int | float | bool) for v in args.values()):
        raise BadRequest("'args' must be an object of plain values, e.g. {\"service\": \"n8n\", \"env\": "
                         "\"rumpledev\"}.", text, command)
    if "args" in data and "command" not in data:
        raise BadRequest("'args' goes with 'command'; with 'text' write the arguments in the text.", text)
    for key in ("when",):
        if key in data and not isinstance(data[key], str):
            raise BadRequest(f"'{key}' must be a string such as 'at 22:00 today'.", text, command)
    wait = data.get("wait", 0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait) or wait < 0:
        raise BadRequest("'wait' must be a number of seconds (0 or more).", text, command)
    return data


class ApiServer:
    """The aiohttp application: routes, token checks, and the requests still running after their answer."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.alerts = AlertReceiver(engine)
        self._tasks: set[asyncio.Task[Reply]] = set()

    @property
    def limits(self) -> Any:
        return self.engine.config.inventory.api

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=max(self.limits.max_body_bytes, self.limits.max_alert_body_bytes) + 1)
        app.router.add_post(REQUESTS_PATH, self.create)
        app.router.add_get(REQUESTS_PATH + "/{id}", self.show)
        app.router.add_post(ALERTMANAGER_PATH, self.alertmanager)
        app.router.add_get("/api/v1/openapi.json", self.openapi)
        return app

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- helpers ------------------------------------------------------------
    def _answer(self, endpoint: str, data: Any, status: int) -> web.Response:
        API_REQUESTS.labels(endpoint, str(status)).inc()
        headers = {"WWW-Authenticate": 'Bearer realm="chatops"'} if status == 401 else None
        return _json(data, status, headers)

    async def _refused(self, endpoint: str, actor: str, status: int, message: str, text: str = "",
                       command: str | None = None) -> web.Response:
        """A 4xx whose body asked for something: audit the refusal first, then answer with its id. The
        message may quote the body (an unknown field's name), so it is masked as a chat reply would be."""
        message = self.engine.redactor.text(message)
        req = Request(actor=Actor(actor), text=text or f"({endpoint})", platform=PLATFORM, route="api")
        reply = await self.engine.refuse(req, message, attempted=self._attempted(text, command))
        return self._answer(endpoint, {"error": message, "request_id": reply.request_id}, status)

    def _too_slow(self, endpoint: str, then: str = "") -> web.Response:
        """408: the body did not arrive whole within api.body_timeout_s (nothing of it is read)."""
        return self._answer(endpoint, {"error": f"The body did not arrive within {self.limits.body_timeout_s:g} s "
                                                f"(api.body_timeout_s){then}."}, 408)

    def _attempted(self, text: str, command: str | None) -> str | None:
        """The command a refused body asked for, as far as its first words say (for the audit row)."""
        reg = self.engine.registry
        if command:
            return command if command in reg else None
        words = text[:200].lower().split()
        return next(filter(None, (reg.command_for_word(" ".join(words[:n])) for n in (2, 1) if len(words) >= n)),
                    None)

    def _identity(self, request: web.Request) -> tuple[str | None, str]:
        token = bearer(request)
        ident = identify(self.engine.config, token)
        # (worded so that the audit log's redaction, which masks `key: value` shapes, leaves it readable)
        why = ("No bearer token was sent. Send the header Authorization with the value 'Bearer' and the "
               "token ('chatops api token create NAME' makes one)." if token is None
               else "Unknown API token; nothing was read or run.")
        return ident, why

    # -- POST /api/v1/requests ---------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        ep = "requests"
        ident, why = self._identity(request)
        actor = ident or UNAUTHENTICATED
        limit = self.limits.max_body_bytes
        if not self.engine.jobs.accepting:
            return self._answer(ep, {"error": "The bot is restarting; nothing was run. Try again shortly."}, 503)
        try:
            body = await read_body(request, limit, self.limits.body_timeout_s)
        except TimeoutError:
            return self._too_slow(ep, "; nothing was read or run")
        except TooLarge:
            if ident is None:  # from nobody: a 401, and no row (nothing readable was asked for)
                return self._answer(ep, {"error": why}, 401)
            return await self._refused(ep, actor, 413, f"The body is larger than {limit} bytes "
                                       "(api.max_body_bytes); nothing was read or run.",
                                       text=f"(a body over {limit} bytes, not read)")
        try:
            data = request_fields(body)
        except BadRequest as exc:
            if ident is None:
                if exc.parsed and (exc.text or exc.command):  # from nobody, only a readable ask is audited
                    return await self._refused(ep, actor, 401, why, exc.text, exc.command)
                return self._answer(ep, {"error": why}, 401)
            return await self._refused(ep, actor, 400, str(exc), exc.text, exc.command)
        text, command = printable(data.get("text", ""), 2000), data.get("command")
        if ident is None:
            return await self._refused(ep, actor, 401, why, text or command or "", command)
        when = None
        if data.get("when"):
            rest, when = split_when(data["when"])
            if when is None or rest.strip():
                return await self._refused(ep, ident, 422, f"'when' must be a time phrase such as 'at 22:00 today' "
                                           f"or 'every night at 02:00', not '{data['when'][:80]}'.",
                                           text or command or "", command)
        args = dict(data.get("args") or {}) if command else None
        line = text or " ".join([command or "", *(f"{k}={v}" for k, v in (args or {}).items())])
        wait = min(float(data.get("wait") or 0), self.limits.max_wait_s)
        return await self._run(ep, Request(
            actor=Actor(ident), text=line, platform=PLATFORM, command=command, args=args, confirmed=True,
            route="api", allow_llm=False, when=when), wait)

    async def _run(self, ep: str, req: Request, wait: float) -> web.Response:
        recorded = asyncio.Event()
        ids: list[str] = []

        def on_recorded(rid: str) -> None:
            ids.append(rid)
            recorded.set()

        req.on_recorded = on_recorded
        task = asyncio.ensure_future(self.engine.handle(req))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        marker = asyncio.ensure_future(recorded.wait())
        try:
            await asyncio.wait({task, marker}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and ids and wait < self.limits.max_wait_s:
                # A read is answered with its result (it is bounded by its backend's own timeouts), and
                # a schedule with its id (arming it runs nothing).
                row = await asyncio.to_thread(self.engine.store.get, ids[0])
                if row is not None and (not row.changes or row.schedule_id):
                    wait = self.limits.max_wait_s
            if not task.done() and wait > 0:
                await asyncio.wait({task}, timeout=wait)
        finally:
            marker.cancel()
        reply = task.result() if task.done() else None
        rid = reply.request_id if reply is not None else (ids[0] if ids else None)
        if rid is None:
            assert reply is not None
            if reply.tone is Tone.error and not reply.request_id:  # database down or an internal error
                return self._answer(ep, {"error": reply.text}, 503)
            # Not understood: no audit row yet, but an action was asked for.
            return await self._refused(ep, req.actor.id, 422, reply.text, req.text, req.command)
        try:
            row = await asyncio.to_thread(self.engine.store.get, rid)
        except DatabaseUnavailable as exc:
            return self._answer(ep, {"error": f"The audit database is unreachable: {exc}", "request_id": rid}, 503)
        if row is None:
            return self._answer(ep, {"error": "the request row vanished", "request_id": rid}, 500)
        status = Status(row.status)
        code = CODES.get(status, 200)
        if status is Status.refused and reply is not None and reply.tone is Tone.question:
            code = 422
        out = row_json(row)
        if reply is not None:
            out["reply"] = reply_json(reply)
        return self._answer(ep, out, code)

    # -- GET /api/v1/requests/{id} -------------------------------------------------
    async def show(self, request: web.Request) -> web.Response:
        ep = "request"
        ident, why = self._identity(request)
        if ident is None:
            return self._answer(ep, {"error": why}, 401)
        rid = request.match_info["id"].strip().lower()
        missing = {"error": f"There is no request {rid[:40]} for {ident}."}
        if not REQUEST_ID.match(rid):
            return self._answer(ep, {"error": f"'{rid[:40]}' is not a request id (r-1a2b3c4d)."}, 404)
        try:
            row = await asyncio.to_thread(self.engine.store.get, rid)
            events = await asyncio.to_thread(self.engine.store.events, rid) if row else []
        except DatabaseUnavailable as exc:
            return self._answer(ep, {"error": f"The audit database is unreachable: {exc}"}, 503)
        cfg = self.engine.config
        if row is None or (row.actor != ident and
                           Role.admin not in cfg.roles_of(ident, targets_of(cfg, row.args))):
            return self._answer(ep, missing, 404)
        out = row_json(row)
        out["events"] = [{"kind": ev.kind, "at": _stamp(ev.at), "actor": ev.actor} for ev in events]
        return self._answer(ep, out, 200)

    # -- POST /api/v1/alertmanager ---------------------------------------------------
    async def alertmanager(self, request: web.Request) -> web.Response:
        ep = "alertmanager"
        ident, why = self._identity(request)
        if ident is None:
            return self._answer(ep, {"error": why}, 401)
        limit = self.limits.max_alert_body_bytes
        try:
            body = await read_body(request, limit, self.limits.body_timeout_s)
            note = parse(untrusted_json.loads(body.decode("utf-8")))
        except TimeoutError:
            return self._too_slow(ep)
        except TooLarge:
            return self._answer(ep, {"error": f"The body is larger than {limit} bytes (api.max_alert_body_bytes)."},
                                413)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._answer(ep, {"error": f"The body is not valid JSON: {exc}"}, 400)
        except PayloadError as exc:
            return self._answer(ep, {"error": str(exc)}, 400)
        try:
            result = await self.alerts.receive(note)
        except DatabaseUnavailable as exc:
            # 5xx: Alertmanager retries later, which is what should happen.
            return self._answer(ep, {"error": f"The audit database is unreachable: {exc}"}, 503)
        return self._answer(ep, result, 200)

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(openapi_spec(self.engine.registry))


async def start(server: ApiServer, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(server.web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)


async def serve(app: App, *, http: bool, port: int, stop: asyncio.Event, host: str = "127.0.0.1") -> None:
    """`chatops serve api`: the API until `stop` is set; requests still running finish first."""
    server = ApiServer(app.engine)
    runner, bound = await start(server, host, port)
    log.info("HTTP API on http://%s:%d/api/v1 (OpenAPI at /api/v1/openapi.json)", host, bound)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await server.drain()
