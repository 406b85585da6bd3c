"""What a Slack request may look like, checked before Bolt reads it.

Bolt parses the body and reads the timestamp header before any listener runs, and assumes
Slack's shapes while doing it: a signed `payload=[1,2]` or `"actions": "x"` raised inside
Bolt and came back as HTTP 500.  Here the shapes Bolt and our listeners read are declared
once; a body that does not fit gets a 400 and a log line, and nothing runs.  Keys not listed
are not looked at; `null` is accepted wherever Slack may leave a field out.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

from infra import untrusted_json

Shape = type | dict[str, Any] | list[Any]

_TEXT: dict[str, Any] = {"type": str, "text": str}
_USER = {"id": str, "username": str, "name": str, "team_id": str}
_ACTION = {"type": str, "action_id": str, "block_id": str, "value": str, "action_ts": str, "text": _TEXT}
_EVENT = {"type": str, "subtype": str, "user": str, "bot_id": str, "channel": str, "channel_type": str,
          "text": str, "ts": str, "thread_ts": str, "event_ts": str, "team": str}
# The top level of an interactive `payload`, an Events API body, or a JSON request.
BODY: dict[str, Any] = {
    "type": str, "token": str, "team_id": str, "api_app_id": str, "event_id": str, "challenge": str,
    "trigger_id": str, "response_url": str, "event": _EVENT, "event_time": int,
    "authorizations": [{"team_id": str, "user_id": str, "enterprise_id": str, "is_bot": bool}],
    "team": {"id": str, "domain": str}, "enterprise": {"id": str}, "user": _USER,
    "channel": {"id": str, "name": str}, "actions": [_ACTION],
    "container": {"type": str, "message_ts": str, "channel_id": str, "thread_ts": str, "is_ephemeral": bool},
    "message": {"type": str, "ts": str, "thread_ts": str, "text": str, "user": str, "bot_id": str,
                "blocks": [dict]},
    "view": {"id": str, "callback_id": str, "type": str},
}
TIMESTAMP = re.compile(r"^\d{1,12}$")


def misfit(value: Any, shape: Shape, at: str = "body") -> str | None:
    """Where `value` first leaves `shape` (e.g. "payload.actions[0].value is int"), or None if it fits."""
    if value is None:
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{at} is {type(value).__name__}, not an object"
        for key, sub in shape.items():
            if key in value and (why := misfit(value[key], sub, f"{at}.{key}")):
                return why
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{at} is {type(value).__name__}, not a list"
        for i, item in enumerate(value):
            if item is None or (why := misfit(item, shape[0], f"{at}[{i}]")):
                return why or f"{at}[{i}] is null"
        return None
    ok = isinstance(value, shape) and not (shape is int and isinstance(value, bool))
    return None if ok else f"{at} is {type(value).__name__}, not {shape.__name__}"


def problem(headers: Any, raw: bytes) -> tuple[int, str] | None:
    """(HTTP status, why) when a request cannot be for us; None when Bolt may have it."""
    ts = headers.get("X-Slack-Request-Timestamp")
    if ts is not None and not TIMESTAMP.match(ts.strip()):
        return 401, "X-Slack-Request-Timestamp is not a number"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return 400, "the body is not UTF-8"
    if not text.strip():
        return None  # nothing to parse: Bolt answers it (401 unsigned, 404 unhandled)
    content_type = headers.get("Content-Type", "")
    try:
        if "application/json" in content_type or text.lstrip().startswith(("{", "[")):
            return _fits(untrusted_json.loads(text), "body")
        form = parse_qs(text)
        if "payload" in form:
            return _fits(untrusted_json.loads(form["payload"][0]), "payload")
    except json.JSONDecodeError as exc:
        return 400, f"the body is not valid JSON ({exc.msg})"
    return None  # a slash command: form fields, which Bolt reads as text


def _fits(data: Any, at: str) -> tuple[int, str] | None:
    if not isinstance(data, dict):
        return 400, f"the {at} is {type(data).__name__}, not an object"
    why = misfit(data, BODY, at)
    return (400, why) if why else None
