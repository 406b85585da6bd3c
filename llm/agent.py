"""The LLM route: LangChain's ChatOpenAI against the vLLM OpenAI-compatible server.

`LLMClient` is the transport (what `Backends.llm()` returns): timeouts, bounded
retries, a circuit breaker and a health probe.  `propose` is the interpretation: it
sends the user's words (never command output) with the forced `plan` tool, and turns
the answer into a `Plan` with source "llm" that has passed `llm.validate` with the
mention check.  A model answer that is not a usable plan becomes a clear refusal;
nothing it says is shown to the user verbatim or run without validation.

LangChain and openai are imported inside the methods that need them, so building the
backends (or `chatops parse` without --llm) does not pay for the import.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from commands.registry import Registry
from infra.config import LLM, Config
from infra.errors import BackendUnavailable, NotConfigured
from llm.breaker import Breaker, State
from llm.plan import Plan
from llm.resolve import Resolver
from llm.tools import NONE, NOT_FOR_MODEL, TOOL_NAME
from llm.validate import example_of, validate

if TYPE_CHECKING:
    from llm.thread import Turn

log = logging.getLogger("chatops.llm")
PROBE_TIMEOUT_S = 5.0


@dataclass
class Answer:
    """What the model said: one tool call (or none), and what it cost."""

    tool: str | None
    arguments: dict[str, Any] | None
    problem: str | None  # why the answer is not usable, if it is not
    usage: dict[str, float] = field(default_factory=dict)


class LLMClient:
    """The vLLM endpoint behind a breaker; `Backends.llm()` hands this out."""

    def __init__(self, settings: LLM, *, breaker: Breaker | None = None) -> None:
        if not settings.base_url or not settings.model:
            raise NotConfigured("The LLM route is not configured: set LLM_BASE_URL and LLM_MODEL.")
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.model = settings.model
        self.api_key = settings.api_key.get_secret_value() if settings.api_key else None
        self.breaker = breaker or Breaker(settings.breaker_failures, settings.breaker_reset_s)
        self._bound: dict[str, Any] = {}
        # Our own HTTP client for LangChain, one per event loop: langchain-openai's default one is
        # cached process-wide per URL and breaks ("Event loop is closed") when a later loop reuses it.
        self._http: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    def _http_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._http[0] is not loop:
            self._http = (loop, httpx.AsyncClient(timeout=self.settings.timeout_s))
            self._bound = {}  # models bound to the old client go with it
        return self._http[1]

    @classmethod
    def from_config(cls, config: Config) -> LLMClient:
        return cls(config.inventory.llm)

    @property
    def root_url(self) -> str:
        """The server root, where vLLM serves /health (the base URL ends in /v1)."""
        return re.sub(r"/v1$", "", self.base_url)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    # -- health -----------------------------------------------------------
    async def probe(self) -> str:
        """GET /health and /v1/models; raise BackendUnavailable unless the model is served."""
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(timeout=min(PROBE_TIMEOUT_S, self.settings.timeout_s)) as http:
                health = await http.get(f"{self.root_url}/health")
                if health.status_code != 200:
                    raise BackendUnavailable(f"the LLM server's /health answers HTTP {health.status_code}")
                models = await http.get(f"{self.base_url}/models", headers=self._headers())
        except httpx.TimeoutException:
            raise BackendUnavailable(f"the LLM server at {self.root_url} did not answer its health check "
                                     "in time") from None
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"the LLM server at {self.root_url} is unreachable "
                                     f"({type(exc).__name__})") from None
        if models.status_code in (401, 403):
            raise BackendUnavailable("the LLM server refuses our key (check LLM_API_KEY)")
        if models.status_code != 200:
            raise BackendUnavailable(f"the LLM server's /v1/models answers HTTP {models.status_code}")
        try:
            served = [m["id"] for m in models.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise BackendUnavailable("the LLM server's /v1/models answer is not a model list") from None
        if self.model not in served:
            raise BackendUnavailable(f"the LLM server serves {', '.join(served) or 'no model'}, "
                                     f"not {self.model} (check LLM_MODEL)")
        return f"{self.model} ({(time.perf_counter() - started) * 1000:.0f} ms)"

    async def ping(self) -> str:
        """For `health`: a good probe also closes an open breaker."""
        try:
            detail = await self.probe()
        except BackendUnavailable:
            if self.breaker.state is not State.closed:
                self.breaker.trip(self.breaker.last_error)
            raise
        self.breaker.success()
        return detail

    async def _gate(self) -> None:
        state = self.breaker.state
        if state is State.open:
            raise BackendUnavailable(
                f"the language model failed {self.settings.breaker_failures} times in a row "
                f"(last: {self.breaker.last_error}); I'll try it again in {self.breaker.retry_in:.0f}s")
        if state is State.due:
            try:
                await self.probe()
            except BackendUnavailable as exc:
                self.breaker.trip(str(exc))
                raise BackendUnavailable(f"the language model is still unavailable: {exc}") from None
            self.breaker.success()

    # -- completion -------------------------------------------------------
    def _chat(self, tool: dict[str, Any]) -> Any:
        http = self._http_client()
        key = json.dumps(tool, sort_keys=True)
        bound = self._bound.get(key)
        if bound is None:
            from langchain_openai import ChatOpenAI

            model = ChatOpenAI(model=self.model, base_url=self.base_url, api_key=self.api_key or "EMPTY",
                               timeout=self.settings.timeout_s, max_retries=0, temperature=0,
                               max_completion_tokens=self.settings.max_tokens, use_responses_api=False,
                               http_async_client=http)
            # A named tool choice: vLLM constrains the output to this function's schema.
            bound = model.bind_tools([tool], tool_choice=tool["function"]["name"])
            self._bound = {key: bound}
        return bound

    async def complete(self, messages: list[tuple[str, str]], tool: dict[str, Any]) -> Answer:
        """One forced tool call, with retries on transient failures; BackendUnavailable if none."""
        import openai

        await self._gate()
        chat = self._chat(tool)
        started = time.perf_counter()
        reason = "no answer"
        for attempt in range(1 + max(0, self.settings.max_retries)):
            if attempt:
                await asyncio.sleep(min(0.25 * 2 ** attempt, 2.0))
            try:
                msg = await asyncio.wait_for(chat.ainvoke(messages), self.settings.timeout_s)
            except (TimeoutError, openai.APITimeoutError):
                reason = f"no answer within {self.settings.timeout_s:g}s"
                break  # a slow model stays slow: do not make the user wait twice
            except openai.APIConnectionError:
                reason = f"cannot connect to {self.root_url}"
                continue
            except openai.APIStatusError as exc:
                if exc.status_code in (401, 403):
                    self.breaker.success()  # it is up; retrying will not help
                    raise BackendUnavailable("the LLM server refuses our key (check LLM_API_KEY)") from None
                if exc.status_code == 404:
                    self.breaker.success()
                    raise BackendUnavailable(f"the LLM server does not serve {self.model} "
                                             "(check LLM_MODEL)") from None
                reason = f"HTTP {exc.status_code} from the LLM server"
                if exc.status_code >= 500 or exc.status_code == 429:
                    continue
                break
            except (ValueError, openai.APIResponseValidationError):
                reason = "an unreadable answer from the LLM server"
                continue
            self.breaker.success()
            return self._answer(msg, started)
        self.breaker.failure(reason)
        log.warning("LLM request failed: %s", reason)
        raise BackendUnavailable(f"the language model is unavailable ({reason})")

    @staticmethod
    def _answer(msg: Any, started: float) -> Answer:
        meta = getattr(msg, "usage_metadata", None) or {}
        usage = {"latency_ms": round((time.perf_counter() - started) * 1000, 1),
                 "prompt_tokens": float(meta.get("input_tokens", 0)),
                 "completion_tokens": float(meta.get("output_tokens", 0))}
        calls = list(getattr(msg, "tool_calls", None) or [])
        invalid = list(getattr(msg, "invalid_tool_calls", None) or [])
        if invalid:
            return Answer(invalid[0].get("name"), None, "its arguments were not valid JSON", usage)
        if not calls:
            refusal = (getattr(msg, "additional_kwargs", None) or {}).get("refusal")
            return Answer(None, None, "it refused" if refusal else "it gave no plan", usage)
        if len(calls) > 1:
            return Answer(calls[0]["name"], None, "it proposed several actions at once", usage)
        return Answer(calls[0]["name"], calls[0]["args"], None, usage)


# -- interpretation -----------------------------------------------------------

_ASKING = frozenset({"is", "are", "was", "were", "did", "does", "has", "have", "had", "why", "what", "when",
                     "where", "which", "who", "whose", "how", "isn't", "aren't", "didn't", "doesn't"})
_POLITE = frozenset({"can", "could", "would", "will", "please", "pls", "plz", "kindly"})


def is_question(text: str) -> bool:
    """A question about state, as opposed to a request politely phrased as a question."""
    words = re.findall(r"[a-z']+", text.lower())
    if not words or words[0] in _POLITE:
        return False
    return words[0] in _ASKING or text.rstrip().endswith("?")


def messages_for(text: str, system: str, turn: Turn | None) -> list[tuple[str, str]]:
    """The conversation sent to the model: the rules, the thread's last plan, the user's words."""
    out = [("system", system)]
    if turn is not None:
        args = " ".join(f"{k}={v}" for k, v in turn.args.items() if v not in (None, ""))
        out.append(("system", f"Earlier in this thread the user asked for: {turn.command} {args}. "
                              "A follow-up such as 'restart it' or 'same on test' refers to it."))
    out.append(("user", text))
    return out


def interpret(answer: Answer, text: str, registry: Registry, resolver: Resolver,
              default_env: str | None = None, context: str | None = None) -> Plan:
    """The validated plan for one model answer, or a refusal saying what was wrong."""

    def refuse(why: str, attempted: str | None = None) -> Plan:
        plan = Plan.unknown(f"I couldn't use the language model's reading of that ({why}); nothing was run. "
                            "Try the explicit form, e.g. 'restart n8n on dev', or say 'help'.",
                            source="llm", attempted=attempted)
        plan.usage = answer.usage
        return plan

    if answer.problem:
        return refuse(answer.problem)
    if answer.tool != TOOL_NAME:
        return refuse(f"it called an unknown tool '{str(answer.tool)[:40]}'")
    body = answer.arguments or {}
    extra = sorted(set(body) - {"command", "args"})
    if extra:
        return refuse(f"it added fields the plan does not have: {', '.join(extra)[:80]}")
    command, args = body.get("command"), body.get("args") or {}
    if not isinstance(command, str) or not isinstance(args, dict):
        return refuse("the plan was malformed")
    if command == NONE:
        plan = Plan.unknown(None, source="llm")
        plan.usage = answer.usage
        return plan
    spec = registry.get(command)
    if spec is None or command in NOT_FOR_MODEL:
        return refuse(f"it named a command that does not exist: '{command[:40]}'")
    if spec.changes and is_question(text):
        # No `attempted`: a question asked for no action, so it leaves no audit row to follow up on.
        plan = Plan.unknown(f"That reads as a question, so I won't {command} anything. If you want that change, "
                            f"say it as a request, e.g. '{example_of(spec, resolver, registry)}'.",
                            source="llm")
        plan.usage = answer.usage
        return plan
    raw = Plan(command, dict(args), source="llm", confidence=0.8, context=context)
    mention_text = " ".join(filter(None, (text, context)))
    plan = validate(raw, resolver, registry, text=mention_text, default_env=default_env, require_mentioned=True)
    plan.context = context
    plan.usage = answer.usage
    return plan


def thread_names(turn: Turn | None, resolver: Resolver) -> str | None:
    """The values the person's own last plan in the thread gave (they count as named by them)."""
    if turn is None:
        return None
    names = [str(v) for v in turn.args.values() if v not in (None, "") and not isinstance(v, dict | list)]
    service = turn.args.get("service")
    if service and not turn.args.get("stack"):
        stack = resolver.stack_for(str(service))
        if stack:
            names.append(stack)
    return " ".join(names) or None


async def propose(client: LLMClient, text: str, *, registry: Registry, resolver: Resolver,
                  tool: dict[str, Any], system: str, turn: Turn | None = None,
                  default_env: str | None = None) -> Plan:
    """Ask the model; BackendUnavailable when it cannot answer (the caller degrades)."""
    answer = await client.complete(messages_for(text, system, turn), tool)
    return interpret(answer, text, registry, resolver, default_env, thread_names(turn, resolver))
