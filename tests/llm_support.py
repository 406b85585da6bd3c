"""Helpers shared by the LLM-route tests: a config pointed at the fake server, a registry
whose handlers record what ran instead of touching infrastructure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.engine import Engine
from bot.request import Actor, Reply, Request
from commands.context import Context
from commands.registry import Registry, registry
from infra.backends import Backends
from infra.config import LLM, Config
from infra.db.store import AuditStore
from llm.agent import LLMClient

MODEL = "Qwen/Qwen2.5-7B-Instruct-AWQ"
KEY = "test-key-5f2a"
ALICE = Actor("console:alice")  # operator
CAROL = Actor("console:carol")  # admin


def with_llm(config: Config, base_url: str, **settings: Any) -> Config:
    """The shipped config with its `llm` section pointed at `base_url`."""
    values: dict[str, Any] = {"base_url": base_url, "model": MODEL, "api_key": KEY, "timeout_s": 5.0,
                              "max_retries": 1}
    values.update(settings)
    inv = config.inventory.model_copy(update={"llm": LLM(**values)})
    return replace(config, inventory=inv)


def recording_registry(calls: list[tuple[str, dict[str, Any]]],
                       outputs: dict[str, Callable[[dict[str, Any]], str]] | None = None) -> Registry:
    """The real commands (names, arguments, risk) with handlers that only record the call."""
    outputs = outputs or {}
    reg = Registry()
    for spec in registry():
        async def handler(ctx: Context, args: dict[str, Any], name: str = spec.name) -> Reply:
            calls.append((name, dict(args)))
            make = outputs.get(name)
            return Reply(make(args) if make else f"ran {name}")

        reg.add(replace(spec, handler=handler, backend=None, preview=None))
    return reg


class Bot:
    """An engine on a recording registry, with the LLM client installed as Backends.llm()."""

    def __init__(self, config: Config, store: AuditStore, client: LLMClient,
                 outputs: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        backends = Backends(config)
        backends.override("llm", client)
        self.client = client
        self.engine = Engine(config, store, backends, registry=recording_registry(self.calls, outputs))

    async def say(self, text: str, actor: Actor = ALICE, thread: str | None = "T1", **kw: Any) -> Any:
        return await self.engine.handle(Request(actor=actor, text=text, platform="console", channel="C1",
                                                thread=thread, **kw))
