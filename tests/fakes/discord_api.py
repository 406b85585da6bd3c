"""A Discord REST stand-in on loopback for the real discord.py HTTP client.

It answers the endpoints the bot uses (login, command sync, interaction callbacks,
webhook follow-ups and edits, channel messages, typing) with Discord's JSON shapes,
keeps the messages it was sent so edits can be followed, records every call, and checks
each body against Discord's documented limits: a broken limit answers 400 "Invalid Form
Body" exactly as Discord would and is listed in `problems`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, web

BOT_ID = "999999999999999999"
APP_ID = BOT_ID
NAME_RE = re.compile(r"^[-_\w]{1,32}$")


@dataclass
class Call:
    method: str
    route: str
    path: str
    query: dict[str, str]
    body: Any
    files: list[tuple[str, bytes]] = field(default_factory=list)
    message_id: str | None = None


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON exactly as Discord labels it (discord.py compares the content type verbatim)."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


# -- limit checks ------------------------------------------------------------------------

def embed_problems(embeds: list[dict[str, Any]]) -> list[str]:
    out = []
    if len(embeds) > 10:
        out.append(f"{len(embeds)} embeds (max 10)")
    total = 0
    for i, e in enumerate(embeds):
        title, desc = e.get("title") or "", e.get("description") or ""
        footer = (e.get("footer") or {}).get("text") or ""
        author = (e.get("author") or {}).get("name") or ""
        fields = e.get("fields") or []
        if len(title) > 256:
            out.append(f"embed {i} title {len(title)} > 256")
        if len(desc) > 4096:
            out.append(f"embed {i} description {len(desc)} > 4096")
        if len(fields) > 25:
            out.append(f"embed {i} has {len(fields)} fields > 25")
        if len(footer) > 2048:
            out.append(f"embed {i} footer {len(footer)} > 2048")
        total += len(title) + len(desc) + len(footer) + len(author)
        for j, f in enumerate(fields):
            name, value = f.get("name") or "", f.get("value") or ""
            if not name or not value:
                out.append(f"embed {i} field {j} has an empty name or value")
            if len(name) > 256:
                out.append(f"embed {i} field {j} name {len(name)} > 256")
            if len(value) > 1024:
                out.append(f"embed {i} field {j} value {len(value)} > 1024")
            total += len(name) + len(value)
    if total > 6000:
        out.append(f"embeds total {total} characters > 6000")
    return out


def component_problems(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    if len(rows) > 5:
        out.append(f"{len(rows)} action rows (max 5)")
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row.get("type") != 1:
            out.append(f"component {i} is type {row.get('type')}, not an action row")
            continue
        children = row.get("components") or []
        if not 1 <= len(children) <= 5:
            out.append(f"action row {i} has {len(children)} components (1 to 5)")
        for b in children:
            if b.get("type") != 2:
                continue
            if b.get("style") not in (1, 2, 3, 4, 5, 6):
                out.append(f"button style {b.get('style')}")
            if len(b.get("label") or "") > 80:
                out.append("button label > 80")
            cid = b.get("custom_id")
            if b.get("style") != 5:
                if not cid or len(cid) > 100:
                    out.append(f"button custom_id {cid!r} missing or > 100 characters")
                elif cid in seen:
                    out.append(f"duplicate custom_id {cid!r}")
                else:
                    seen.add(cid)
    return out


def message_problems(body: dict[str, Any], files: int = 0) -> list[str]:
    out = []
    content = body.get("content") or ""
    if len(content) > 2000:
        out.append(f"content {len(content)} > 2000")
    out += embed_problems(body.get("embeds") or [])
    out += component_problems(body.get("components") or [])
    if files > 10:
        out.append(f"{files} files (max 10)")
    am = body.get("allowed_mentions")
    if am is not None and "parse" in am and "users" in am and "users" in am["parse"]:
        out.append("allowed_mentions: 'users' in both parse and users")
    return out


def _option_chars(o: dict[str, Any]) -> int:
    n = len(o.get("name", "")) + len(o.get("description", ""))
    n += sum(len(c["name"]) + len(str(c["value"])) for c in o.get("choices") or [])
    return n + sum(_option_chars(s) for s in o.get("options") or [])


def command_problems(cmds: list[dict[str, Any]]) -> list[str]:
    out = []

    def check(o: dict[str, Any], where: str) -> None:
        name = o.get("name", "")
        if not NAME_RE.match(name) or name != name.lower():
            out.append(f"{where}: bad name {name!r}")
        desc = o.get("description", "")
        if (o.get("type", 1) in (1, 2) or "description" in o) and not 1 <= len(desc) <= 100:
            out.append(f"{where}: description length {len(desc)} (1 to 100)")
        opts = o.get("options") or []
        if len(opts) > 25:
            out.append(f"{where}: {len(opts)} options (max 25)")
        optional_seen = False
        for sub in opts:
            if sub.get("type") in (1, 2):
                check(sub, f"{where} {sub.get('name')}")
                continue
            check(sub, f"{where} option {sub.get('name')}")
            if sub.get("required"):
                if optional_seen:
                    out.append(f"{where}: required option {sub['name']} after an optional one")
            else:
                optional_seen = True
            if sub.get("autocomplete") and sub.get("choices"):
                out.append(f"{where}: option {sub['name']} has both choices and autocomplete")
            if len(sub.get("choices") or []) > 25:
                out.append(f"{where}: option {sub['name']} has more than 25 choices")

    for c in cmds:
        check(c, f"/{c.get('name')}")
        chars = _option_chars(c)
        if chars > 8000:
            out.append(f"/{c.get('name')}: {chars} characters of names, descriptions and choices (max 8000)")
    return out


# -- the server ------------------------------------------------------------------------

class FakeDiscord:
    """Run with `async with FakeDiscord() as api:`; `api.base` is the value for Route.BASE."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.problems: list[str] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.interactions: dict[str, dict[str, Any]] = {}  # token → {channel_id, message, original}
        self.bot_user = {"id": BOT_ID, "username": "chatops", "discriminator": "0", "global_name": None,
                         "avatar": None, "bot": True, "flags": 0, "verified": True, "mfa_enabled": False}
        self._ids = itertools.count(1_300_000_000_000_000_000)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base = ""

    # -- lifecycle -------------------------------------------------------------------
    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_get("/api/v10/users/@me", self.me)
        r.add_get("/api/v10/oauth2/applications/@me", self.application)
        r.add_put("/api/v10/applications/{app}/guilds/{guild}/commands", self.put_commands)
        r.add_put("/api/v10/applications/{app}/commands", self.put_commands)
        r.add_post("/api/v10/interactions/{iid}/{token}/callback", self.callback)
        r.add_post("/api/v10/webhooks/{app}/{token}", self.followup)
        r.add_patch("/api/v10/webhooks/{app}/{token}/messages/{mid}", self.webhook_edit)
        r.add_get("/api/v10/webhooks/{app}/{token}/messages/{mid}", self.webhook_get)
        r.add_delete("/api/v10/webhooks/{app}/{token}/messages/{mid}", self.webhook_delete)
        r.add_post("/api/v10/channels/{cid}/messages", self.channel_send)
        r.add_patch("/api/v10/channels/{cid}/messages/{mid}", self.channel_edit)
        r.add_post("/api/v10/channels/{cid}/typing", self.typing)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}/api/v10"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- helpers for tests ----------------------------------------------------------
    def interaction(self, payload: dict[str, Any]) -> None:
        """Tell the stand-in about an interaction the gateway is about to deliver."""
        info: dict[str, Any] = {"channel_id": payload["channel_id"], "original": None}
        if "message" in payload:
            msg = self.messages.setdefault(payload["message"]["id"], dict(payload["message"]))
            info["original"] = msg["id"]
        self.interactions[payload["token"]] = info

    def of(self, route: str) -> list[Call]:
        return [c for c in self.calls if c.route == route]

    async def wait_for(self, pred: Callable[[FakeDiscord], Any], timeout: float = 15.0) -> Any:
        """Wait until `pred(self)` is truthy (a bound on waiting, not a timing assertion)."""
        async def until() -> Any:
            async with self._changed:
                while not (got := pred(self)):
                    await self._changed.wait()
                return got
        return await asyncio.wait_for(until(), timeout)

    def snowflake(self) -> str:
        return str(next(self._ids))

    # -- plumbing -------------------------------------------------------------------
    async def _read(self, request: web.Request) -> tuple[Any, list[tuple[str, bytes]]]:
        if request.content_type.startswith("multipart/"):
            body: Any = None
            files = []
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                data = await part.read()
                if part.name == "payload_json":
                    body = json.loads(data)
                else:
                    files.append((part.filename or part.name or "", bytes(data)))
            return body, files
        if request.can_read_body:
            return await request.json(), []
        return None, []

    async def _record(self, request: web.Request, route: str, body: Any, files: list[tuple[str, bytes]],
                      message_id: str | None = None) -> Call:
        call = Call(request.method, route, request.path, dict(request.query), body, files, message_id)
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        return call

    def _invalid(self, problems: list[str]) -> web.Response:
        self.problems.extend(problems)
        return _json({"code": 50035, "message": "Invalid Form Body",
                                  "errors": {"_errors": [{"code": "BASE_TYPE_INVALID", "message": p}
                                                         for p in problems]}}, status=400)

    def _unauthorised(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != "Bot test-token":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return None

    def _message(self, channel_id: str, body: dict[str, Any], files: list[tuple[str, bytes]], *,
                 flags: int = 0, mid: str | None = None, webhook: bool = False) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        mid = mid or self.snowflake()
        msg = {
            "id": mid, "channel_id": channel_id, "author": self.bot_user, "content": body.get("content") or "",
            "timestamp": now, "edited_timestamp": None, "tts": False, "mention_everyone": False,
            "mentions": [], "mention_roles": [], "pinned": False, "type": 20 if webhook else 0,
            "flags": flags | int(body.get("flags") or 0), "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "attachments": [{"id": self.snowflake(), "filename": name, "size": len(data),
                             "url": f"http://127.0.0.1/attachments/{name}",
                             "proxy_url": f"http://127.0.0.1/attachments/{name}"} for name, data in files],
        }
        if webhook:
            msg["webhook_id"] = APP_ID
            msg["application_id"] = APP_ID
        if "message_reference" in body:
            msg["message_reference"] = body["message_reference"]
        self.messages[mid] = msg
        return msg

    def _edit(self, mid: str, body: dict[str, Any], files: list[tuple[str, bytes]]) -> dict[str, Any]:
        msg = self.messages[mid]
        for key in ("content", "embeds", "components"):
            if key in body:
                msg[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        if "attachments" in body or files:
            msg["attachments"] = [{"id": self.snowflake(), "filename": name, "size": len(data),
                                   "url": f"http://127.0.0.1/attachments/{name}",
                                   "proxy_url": f"http://127.0.0.1/attachments/{name}"} for name, data in files]
        msg["flags"] = int(msg.get("flags") or 0) & ~128  # no longer "loading"
        msg["edited_timestamp"] = datetime.now(UTC).isoformat()
        return msg

    # -- endpoints ------------------------------------------------------------------
    async def me(self, request: web.Request) -> web.Response:
        await self._record(request, "me", None, [])
        if (bad := self._unauthorised(request)) is not None:
            return bad
        return _json(self.bot_user)

    async def application(self, request: web.Request) -> web.Response:
        await self._record(request, "application", None, [])
        return _json({
            "id": APP_ID, "name": "chatops", "icon": None, "description": "", "rpc_origins": [],
            "bot_public": False, "bot_require_code_grant": False, "verify_key": "0" * 64, "flags": 0,
            "owner": {"id": "1", "username": "owner", "discriminator": "0", "avatar": None},
            "team": None, "summary": "", "interactions_endpoint_url": None})

    async def put_commands(self, request: web.Request) -> web.Response:
        body, _ = await self._read(request)
        await self._record(request, "commands", body, [])
        problems = command_problems(body)
        if problems:
            return self._invalid(problems)
        guild = request.match_info.get("guild")
        out = []
        for c in body:
            full = {**c, "id": self.snowflake(), "application_id": APP_ID, "version": self.snowflake(),
                    "default_member_permissions": None, "type": c.get("type", 1)}
            if guild:
                full["guild_id"] = guild
            out.append(full)
        self.commands[guild or "global"] = out
        return _json(out)

    async def callback(self, request: web.Request) -> web.Response:
        body, files = await self._read(request)
        token = request.match_info["token"]
        info = self.interactions.setdefault(token, {"channel_id": "0", "original": None})
        kind = body.get("type")
        data = body.get("data") or {}
        problems = message_problems(data, len(files)) if kind in (4, 7) else []
        if problems:
            await self._record(request, "callback", body, files)
            return self._invalid(problems)
        ephemeral = bool(int(data.get("flags") or 0) & 64)
        if kind in (4, 5):  # a new message (or its "thinking" placeholder)
            msg = self._message(info["channel_id"], data if kind == 4 else {}, files, webhook=True,
                                flags=(64 if ephemeral else 0) | (128 if kind == 5 else 0))
            info["original"] = msg["id"]
        elif kind == 7 and info["original"]:
            self._edit(info["original"], data, files)
        await self._record(request, "callback", body, files, info["original"])
        resource: dict[str, Any] = {"type": kind}
        if kind in (4, 5, 7) and info["original"]:
            resource["message"] = self.messages[info["original"]]
        return _json({
            "interaction": {"id": request.match_info["iid"], "type": 2, "response_message_id": info["original"],
                            "response_message_loading": kind == 5, "response_message_ephemeral": ephemeral},
            "resource": resource})

    async def followup(self, request: web.Request) -> web.Response:
        body, files = await self._read(request)
        problems = message_problems(body, len(files))
        if problems:
            await self._record(request, "followup", body, files)
            return self._invalid(problems)
        info = self.interactions.get(request.match_info["token"], {"channel_id": "0"})
        msg = self._message(info["channel_id"], body, files, webhook=True)
        await self._record(request, "followup", body, files, msg["id"])
        return _json(msg)

    def _webhook_mid(self, request: web.Request) -> str | None:
        mid = request.match_info["mid"]
        if mid == "@original":
            return self.interactions.get(request.match_info["token"], {}).get("original")
        return mid if mid in self.messages else None

    async def webhook_edit(self, request: web.Request) -> web.Response:
        body, files = await self._read(request)
        mid = self._webhook_mid(request)
        problems = message_problems(body, len(files))
        if problems:
            await self._record(request, "edit", body, files, mid)
            return self._invalid(problems)
        if mid is None:
            await self._record(request, "edit", body, files, mid)
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        msg = self._edit(mid, body, files)
        await self._record(request, "edit", body, files, mid)
        return _json(msg)

    async def webhook_get(self, request: web.Request) -> web.Response:
        mid = self._webhook_mid(request)
        if mid is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        return _json(self.messages[mid])

    async def webhook_delete(self, request: web.Request) -> web.Response:
        mid = self._webhook_mid(request)
        await self._record(request, "delete", None, [], mid)
        if mid:
            self.messages.pop(mid, None)
        return web.Response(status=204)

    async def channel_send(self, request: web.Request) -> web.Response:
        if (bad := self._unauthorised(request)) is not None:
            return bad
        body, files = await self._read(request)
        problems = message_problems(body, len(files))
        if problems:
            await self._record(request, "send", body, files)
            return self._invalid(problems)
        msg = self._message(request.match_info["cid"], body, files)
        await self._record(request, "send", body, files, msg["id"])
        return _json(msg)

    async def channel_edit(self, request: web.Request) -> web.Response:
        if (bad := self._unauthorised(request)) is not None:
            return bad
        body, files = await self._read(request)
        mid = request.match_info["mid"]
        problems = message_problems(body, len(files))
        if problems or mid not in self.messages:
            await self._record(request, "channel_edit", body, files, mid)
            return self._invalid(problems) if problems else _json(
                {"message": "Unknown Message", "code": 10008}, status=404)
        msg = self._edit(mid, body, files)
        await self._record(request, "channel_edit", body, files, mid)
        return _json(msg)

    async def typing(self, request: web.Request) -> web.Response:
        await self._record(request, "typing", None, [])
        return web.Response(status=204)
