"""JSON from outside the bot (HTTP bodies, Slack payloads, exported files): one way to read it.

`json.loads` raises RecursionError, not a decode error, on a document nested a few thousand levels
deep (`{"a":{"a":…}}`), so every place that caught only `JSONDecodeError` answered such a body with a
crash (HTTP 500 and a traceback). Here it is one more malformed document, with the same exception
type, so the callers' own "not valid JSON" answers cover it.
"""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    """`json.loads`, with too deep a nesting raised as `json.JSONDecodeError` like any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        doc = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise json.JSONDecodeError("nested too deeply", doc, 0) from None
