"""A scripted OpenAI-compatible server on loopback, answering the way vLLM does.

`/v1/chat/completions` replays a script of answers (tool calls, plain content,
arguments that are not JSON, HTTP errors, slow answers, dropped connections, bodies
that are not JSON); `/v1/models` and `/health` answer like vLLM's.  The real
langchain-openai client talks to it over real HTTP, so the request bodies it records
are exactly what vLLM would receive.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Answer:
    """One scripted reply to a chat completion."""

    tool: str | None = "plan"  # the function name called; None answers with content only
    arguments: dict[str, Any] | str | None = None  # a str is sent as is (may be broken JSON)
    content: str | None = None
    refusal: str | None = None
    status: int = 200
    delay: float = 0.0
    drop: bool = False  # close the connection without answering
    garbage: bool = False  # HTTP 200 with a body that is not JSON
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def plan(command: str, **args: Any) -> Answer:
    """The tool call a well-behaved model makes for `command` with `args`."""
    return Answer(arguments={"command": command, "args": args})


@dataclass
class FakeOpenAI:
    model: str = "Qwen/Qwen2.5-7B-Instruct-AWQ"
    api_key: str | None = None
    script: deque[Answer] = field(default_factory=deque)
    # Used when the script is empty: computes an answer from the request body.
    responder: Callable[[dict[str, Any]], Answer] | None = None
    healthy: bool = True  # /health answers 200; False: 503
    down: bool = False  # every endpoint answers 503, like a server still loading
    requests: list[dict[str, Any]] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    def add(self, *answers: Answer) -> None:
        self.script.extend(answers)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- endpoints --------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _health(self, request: web.Request) -> web.Response:
        self.probes.append("/health")
        return web.Response(status=200 if self.healthy and not self.down else 503)

    async def _models(self, request: web.Request) -> web.Response:
        self.probes.append("/v1/models")
        if self.down:
            return web.Response(status=503)
        if not self._authorised(request):
            return web.json_response({"error": {"message": "Unauthorized"}}, status=401)
        return web.json_response({"object": "list", "data": [
            {"id": self.model, "object": "model", "created": int(time.time()), "owned_by": "vllm",
             "root": self.model, "parent": None, "max_model_len": 8192}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.json_response({"error": {"message": "loading"}}, status=503)
        if not self._authorised(request):
            return web.json_response({"error": {"message": "Unauthorized", "type": "Unauthorized"}},
                                     status=401)
        body = await request.json()
        self.requests.append(body)
        if self.script:
            answer = self.script.popleft()
        elif self.responder is not None:
            answer = self.responder(body)
        else:
            answer = Answer(arguments={"command": "none", "args": {}})
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        if answer.garbage:
            return web.Response(status=200, text="<html>upstream hiccup", content_type="application/json")
        if answer.status != 200:
            return web.json_response({"object": "error", "message": f"scripted {answer.status}",
                                      "type": "InternalServerError", "code": answer.status},
                                     status=answer.status)
        return web.json_response(self._completion(body, answer))

    def _completion(self, body: dict[str, Any], answer: Answer) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer.content, "tool_calls": [],
                                   "reasoning_content": None}
        if answer.refusal is not None:
            message["refusal"] = answer.refusal
        finish = "stop"
        if answer.tool is not None:
            args = answer.arguments if isinstance(answer.arguments, str) else json.dumps(answer.arguments or {})
            message["tool_calls"] = [{"id": f"chatcmpl-tool-{uuid.uuid4().hex}", "type": "function",
                                      "function": {"name": answer.tool, "arguments": args}}]
            # vLLM ends a named tool choice with "stop", an automatic one with "tool_calls".
            finish = "stop" if isinstance(body.get("tool_choice"), dict) else "tool_calls"
        prompt = answer.prompt_tokens if answer.prompt_tokens is not None else len(json.dumps(body)) // 4
        completion = answer.completion_tokens if answer.completion_tokens is not None else 24
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish,
                             "stop_reason": None}],
                "usage": {"prompt_tokens": prompt, "total_tokens": prompt + completion,
                          "completion_tokens": completion, "prompt_tokens_details": None},
                "prompt_logprobs": None}


def sent_text(server: FakeOpenAI) -> str:
    """Everything the client sent to the model, as one string (for 'never sent' checks)."""
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in server.requests)
