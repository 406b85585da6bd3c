"""vLLM's queue from its /metrics page (served on loopback, produced by prometheus_client as vLLM
does), and the in-flight guard other commands attach to their confirmation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.request import Actor, Request, Tone
from commands.args import ENV, SERVICE, STACK, STACK_KV
from commands.context import Context
from commands.llm_guard import guard_applies, llm_guard_lines, llm_in_flight, with_llm_guard
from commands.registry import Registry, command
from infra.config import Config, load_config
from infra.errors import BackendUnavailable
from infra.gpu.vllm_metrics import VllmMetrics, parse_metrics
from infra.wiring import make_backends
from tests.conftest import ROOT, make_engine
from tests.fakes.dcgm_exporter import FakeGpu, render_dcgm
from tests.fakes.metrics_http import MetricsServer
from tests.fakes.prometheus_server import free_port
from tests.fakes.vllm_server import FakeVllm


@pytest.fixture
def vllm() -> Iterator[tuple[FakeVllm, MetricsServer]]:
    fake = FakeVllm(engines=2)
    with MetricsServer(fake.render) as server:
        yield fake, server


async def test_queue_v1_two_engines(vllm: tuple[FakeVllm, MetricsServer]) -> None:
    fake, server = vllm
    fake.set(running=3, waiting=1, kv=0.25, engine=0)
    fake.set(running=2, waiting=4, kv=0.62, engine=1)
    q = await VllmMetrics(server.url).queue()
    assert (q.running, q.waiting, q.in_flight) == (5, 5, 10)
    assert q.kv_cache_pct == pytest.approx(62.0)  # the fullest engine
    assert q.models == ("Qwen/Qwen2.5-14B-Instruct",)


def test_queue_v0_names() -> None:
    fake = FakeVllm(v1=False, model="meta-llama/Llama-3.1-8B-Instruct")
    fake.set(running=1, waiting=0, kv=0.1)
    text = fake.render()
    assert "vllm:gpu_cache_usage_perc{" in text and "engine=" not in text
    q = parse_metrics(text)
    assert (q.running, q.waiting) == (1, 0) and q.kv_cache_pct == pytest.approx(10.0)


def test_not_a_vllm_page() -> None:
    with pytest.raises(BackendUnavailable, match="is it vLLM's /metrics"):
        parse_metrics(render_dcgm([FakeGpu(0, "GPU-1")]))
    with pytest.raises(BackendUnavailable, match="not Prometheus text"):
        parse_metrics("vllm:num_requests_running{model_name=\"x\" 3\n<html>")


async def test_http_errors(vllm: tuple[FakeVllm, MetricsServer]) -> None:
    _, server = vllm
    server.status = 500
    with pytest.raises(BackendUnavailable, match="answered HTTP 500"):
        await VllmMetrics(server.url).queue()
    server.status = 200
    server.delay_s = 2.0
    with pytest.raises(BackendUnavailable, match=r"did not answer within 0\.3s"):
        await VllmMetrics(server.url, timeout_s=0.3).queue()
    with pytest.raises(BackendUnavailable, match="unreachable"):
        await VllmMetrics(f"http://127.0.0.1:{free_port()}/metrics").queue()


# -- the guard --------------------------------------------------------------------------

def guard_config(monkeypatch: pytest.MonkeyPatch, url: str | None) -> Config:
    monkeypatch.delenv("GPU_SOURCE", raising=False)
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    if url:
        monkeypatch.setenv("VLLM_METRICS_URL", url)
    else:
        monkeypatch.delenv("VLLM_METRICS_URL", raising=False)
    return load_config(ROOT / "chatops.yaml")


def context(config: Config, db: Any) -> Context:
    engine = make_engine(config, db, backends=make_backends(config))
    req = Request(Actor("console:alice"), "restart vllm on phoenix")
    return Context(config=config, store=engine.store, backends=engine.backends, resolver=engine.resolver,
                   actor=req.actor, roles=frozenset(config.roles_of(req.actor.id)), request=req, request_id="",
                   engine=engine)


def test_guard_applies_only_to_the_inference_server() -> None:
    assert guard_applies("restart", {"service": "vllm", "env": "phoenix"})
    assert guard_applies("deploy", {"stack": "llm", "env": "phoenix"})
    assert guard_applies("restore", {"vm": "llm", "snapshot": "x"})
    assert not guard_applies("restart", {"service": "n8n", "env": "rumpledev"})
    assert not guard_applies("deploy", {"stack": "chat", "env": "phoenix"})
    assert not guard_applies("start", {"service": "vllm", "env": "phoenix"})


async def test_in_flight_and_lines(vllm: tuple[FakeVllm, MetricsServer], db: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake, server = vllm
    ctx = context(guard_config(monkeypatch, server.url), db)
    fake.set(running=1, waiting=2, kv=0.5, engine=0)
    assert await llm_in_flight(ctx) == 3
    assert await llm_guard_lines(ctx, "restart", {"service": "vllm", "env": "phoenix"}) == [
        "vLLM is serving 3 requests (2 waiting); restarting vllm drops them."]
    assert await llm_guard_lines(ctx, "deploy", {"stack": "llm", "env": "phoenix"}) == [
        "vLLM is serving 3 requests (2 waiting); deploying the llm stack drops them."]
    assert await llm_guard_lines(ctx, "restart", {"service": "n8n", "env": "rumpledev"}) == []
    fake.set(running=0, waiting=0, kv=0.0, engine=0)
    assert await llm_in_flight(ctx) == 0
    assert await llm_guard_lines(ctx, "stop", {"service": "vllm", "env": "phoenix"}) == [
        "vLLM is idle (no requests in flight)."]
    server.status = 502
    assert await llm_in_flight(ctx) is None
    (line,) = await llm_guard_lines(ctx, "restart", {"service": "vllm", "env": "phoenix"})
    assert "queue unreadable" in line and "HTTP 502" in line and "may be dropped" in line


async def test_guard_without_vllm_configured(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context(guard_config(monkeypatch, None), db)
    assert await llm_in_flight(ctx) is None
    (line,) = await llm_guard_lines(ctx, "restart", {"service": "vllm", "env": "phoenix"})
    assert "not configured" in line and "vllm_metrics_url" in line


async def test_guard_on_a_confirmation_card(vllm: tuple[FakeVllm, MetricsServer], db: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A changing command declared with the guard shows the count on its confirmation, and runs
    nothing until confirmed."""
    fake, server = vllm
    config = guard_config(monkeypatch, server.url)
    ran: list[dict[str, Any]] = []
    reg = Registry()

    async def compose_preview(ctx: Context, args: dict[str, Any]) -> list[str]:
        return [f"the {args['stack']} stack will be redeployed"]

    @command("restart", summary="restart", args=(SERVICE, ENV, STACK_KV), changes=True, registry=reg,
             preview=with_llm_guard("restart"))
    async def restart(ctx: Context, args: dict[str, Any]) -> Any:
        ran.append(args)
        raise AssertionError("must not run before confirmation")

    @command("deploy", summary="deploy", args=(STACK, ENV), changes=True, registry=reg,
             preview=with_llm_guard("deploy", compose_preview))
    async def deploy(ctx: Context, args: dict[str, Any]) -> Any:
        ran.append(args)
        raise AssertionError("must not run before confirmation")

    engine = make_engine(config, db, registry=reg, backends=make_backends(config))
    fake.set(running=4, waiting=1, kv=0.3, engine=1)
    reply = await engine.handle(Request(Actor("console:alice"), "restart vllm phoenix", command="restart",
                                        args={"service": "vllm", "env": "phoenix"}))
    assert reply.tone is Tone.question and reply.buttons, reply.text
    assert dict(reply.fields)["What will happen"] == (
        "vLLM is serving 5 requests (1 waiting); restarting vllm drops them.")
    reply = await engine.handle(Request(Actor("console:alice"), "deploy llm phoenix", command="deploy",
                                        args={"stack": "llm", "env": "phoenix"}))
    assert dict(reply.fields)["What will happen"].splitlines() == [
        "the llm stack will be redeployed",
        "vLLM is serving 5 requests (1 waiting); deploying the llm stack drops them."]
    assert ran == []
