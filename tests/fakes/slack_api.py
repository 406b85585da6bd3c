"""A Slack Web API stand-in on loopback, spoken to by the real slack_sdk client.

It answers the methods the bot uses (auth.test, chat.postMessage, chat.update,
chat.postEphemeral, the three steps of files_upload_v2, response_url posts), keeps
the messages it was sent, and checks their shape against Slack's documented limits:
a call Slack would reject gets Slack's error back *and* lands in `violations`, so a
test fails on a message real Slack would have refused.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_TEXT = 40000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_HEADER = 150
BLOCK_TYPES = {"section", "header", "context", "actions", "divider", "image", "rich_text"}


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None


@dataclass
class FakeSlack:
    token: str = "xoxb-test-token"
    app_token: str = "xapp-test-token"
    bot_user: str = "UBOT"
    bot_id: str = "BBOT"
    team: str = "T0TEST"
    calls: list[Call] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    # channel → error that chat.postMessage answers there (e.g. not_in_channel)
    channel_errors: dict[str, str] = field(default_factory=dict)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    base: str = ""

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self._seq = 0
        self._ws: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{hook}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        return f"{self.base}/api/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def response_url(self, name: str = "") -> str:
        return f"{self.base}/respond/{name or uuid.uuid4().hex[:8]}"

    # -- what tests look at --------------------------------------------------
    def of(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> Any:
        """Wait until predicate(self) is truthy; returns its value (fails the test on timeout)."""
        async def check() -> Any:
            async with self._changed:
                while not (value := predicate(self)):
                    await self._changed.wait()
                return value
        return await asyncio.wait_for(check(), timeout)

    async def _record(self, method: str, args: dict[str, Any], token: str | None) -> None:
        self.calls.append(Call(method, args, token))
        async with self._changed:
            self._changed.notify_all()

    # -- shape checks ----------------------------------------------------------
    def _check_blocks(self, method: str, args: dict[str, Any]) -> str | None:
        text = args.get("text") or ""
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if not text and not blocks:
            return "no_text"
        if len(text) > MAX_TEXT:
            return "msg_too_long"
        if blocks is None:
            return None
        problems = []
        if len(blocks) > MAX_BLOCKS:
            problems.append(f"{len(blocks)} blocks > {MAX_BLOCKS}")
        for i, b in enumerate(blocks):
            kind = b.get("type")
            if kind not in BLOCK_TYPES:
                problems.append(f"block {i}: unknown type {kind}")
            if kind == "section":
                t = (b.get("text") or {}).get("text")
                fields = b.get("fields") or []
                if t is None and not fields:
                    problems.append(f"block {i}: section without text or fields")
                if t is not None and not (0 < len(t) <= MAX_SECTION):
                    problems.append(f"block {i}: section text of {len(t)} chars")
                if len(fields) > MAX_FIELDS:
                    problems.append(f"block {i}: {len(fields)} fields")
                problems += [f"block {i}: field of {len(f['text'])} chars" for f in fields
                             if not (0 < len(f.get("text", "")) <= MAX_FIELD)]
            elif kind == "header":
                t = b.get("text", {})
                if t.get("type") != "plain_text" or not (0 < len(t.get("text", "")) <= MAX_HEADER):
                    problems.append(f"block {i}: bad header")
            elif kind == "context":
                els = b.get("elements") or []
                if not (0 < len(els) <= 10) or any(len(e.get("text", "")) > MAX_SECTION for e in els):
                    problems.append(f"block {i}: bad context")
            elif kind == "actions":
                els = b.get("elements") or []
                ids = [e.get("action_id") for e in els]
                if not (0 < len(els) <= 25) or len(set(ids)) != len(ids):
                    problems.append(f"block {i}: bad actions")
                for e in els:
                    if len(e.get("value", "")) > 2000 or len(e.get("text", {}).get("text", "")) > 75:
                        problems.append(f"block {i}: button too long")
                    if e.get("style") not in (None, "primary", "danger"):
                        problems.append(f"block {i}: bad button style")
        if problems:
            self.violations.append(f"{method}: " + "; ".join(problems))
            return "invalid_blocks"
        return None

    # -- handlers --------------------------------------------------------------
    @staticmethod
    async def _args(request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.can_read_body:
            args.update(dict(parse_qsl((await request.read()).decode())))
        return args

    def _ok(self, **data: Any) -> web.Response:
        return web.json_response({"ok": True, **data})

    @staticmethod
    def _err(error: str) -> web.Response:
        return web.json_response({"ok": False, "error": error})

    def _ts(self) -> str:
        self._seq += 1
        return f"{int(time.time())}.{self._seq:06d}"

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        args = await self._args(request)
        await self._record(method, args, token)
        expected = self.app_token if method == "apps.connections.open" else self.token
        if token != expected:
            return self._err("invalid_auth")
        if method == "apps.connections.open":
            return self._ok(url=f"{self.base.replace('http://', 'ws://')}/socket")
        if method == "auth.test":
            return self._ok(url="https://fake.slack/", team="fake", user="chatops", team_id=self.team,
                            user_id=self.bot_user, bot_id=self.bot_id, is_enterprise_install=False)
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            return await self._chat(method, args)
        if method == "files.getUploadURLExternal":
            if not args.get("filename") or int(args.get("length") or 0) <= 0:
                self.violations.append(f"{method}: filename and a positive length are required")
                return self._err("invalid_arguments")
            fid = "F" + uuid.uuid4().hex[:10].upper()
            return self._ok(upload_url=f"{self.base}/upload/{fid}", file_id=fid)
        if method == "files.completeUploadExternal":
            files = json.loads(args["files"]) if isinstance(args.get("files"), str) else args.get("files")
            missing = [f["id"] for f in files or [] if f["id"] not in self.uploads]
            if not files or missing or not args.get("channel_id"):
                self.violations.append(f"{method}: completes files never uploaded ({missing}) or no channel")
                return self._err("invalid_arguments")
            return self._ok(files=[{"id": f["id"], "title": f.get("title")} for f in files])
        return self._err("unknown_method")

    async def _chat(self, method: str, args: dict[str, Any]) -> web.Response:
        channel = args.get("channel")
        if not channel:
            return self._err("channel_not_found")
        error = self._check_blocks(method, args)
        if error:
            return self._err(error)
        if method == "chat.postMessage":
            if channel in self.channel_errors:
                return self._err(self.channel_errors[channel])
            ts = self._ts()
            self.messages[(channel, ts)] = dict(args)
            return self._ok(channel=channel, ts=ts, message={"text": args.get("text"), "ts": ts})
        if method == "chat.update":
            key = (channel, args.get("ts", ""))
            if key not in self.messages:
                self.violations.append(f"chat.update of a message never posted: {key}")
                return self._err("message_not_found")
            self.messages[key] = {**self.messages[key], **args}
            return self._ok(channel=channel, ts=key[1], text=args.get("text"))
        if not args.get("user"):
            self.violations.append("chat.postEphemeral without user")
            return self._err("user_not_in_channel")
        return self._ok(message_ts=self._ts())

    # -- Socket Mode -----------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "connection_info": {"app_id": "A1"}, "debug_info": {"host": "fake"}})
        self._connected.set()
        async for msg in ws:
            if msg.type == web.WSMsgType.TEXT:
                data = json.loads(msg.data)
                await self._record("socket_ack", data, None)
                fut = self._acks.pop(data.get("envelope_id", ""), None)
                if fut is not None and not fut.done():
                    fut.set_result(data)
        self._connected.clear()
        return ws

    async def socket_send(self, kind: str, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Deliver one envelope to the connected app; return its acknowledgement."""
        await asyncio.wait_for(self._connected.wait(), timeout)
        assert self._ws is not None
        eid = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[eid] = fut
        await self._ws.send_json({"envelope_id": eid, "type": kind, "payload": payload,
                                  "accepts_response_payload": kind != "events_api", "retry_attempt": 0})
        return await asyncio.wait_for(fut, timeout)

    @property
    def socket_connected(self) -> bool:
        return self._connected.is_set()

    async def _upload(self, request: web.Request) -> web.Response:
        fid = request.match_info["file_id"]
        data = await request.read()
        self.uploads[fid] = data
        await self._record("upload", {"file_id": fid, "length": len(data)}, None)
        return web.Response(text=f"OK - {len(data)}")

    async def _respond(self, request: web.Request) -> web.Response:
        args = await request.json()
        error = self._check_blocks("response_url", args) if args.get("blocks") or args.get("text") else None
        await self._record("response_url", {**args, "hook": request.match_info["hook"]}, None)
        if error:
            return web.Response(status=400, text=error)
        return web.Response(text="ok")
