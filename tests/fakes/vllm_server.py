"""vLLM's /metrics page, produced the way vLLM produces it: prometheus_client gauges and counters
with vLLM's metric names and labels (V1 engine: model_name + engine; V0: model_name only)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class FakeVllm:
    def __init__(self, model: str = "Qwen/Qwen2.5-14B-Instruct", v1: bool = True, engines: int = 1) -> None:
        self.registry = CollectorRegistry()
        self.v1 = v1
        self.model = model
        self.engines = [str(i) for i in range(engines)] if v1 else [""]
        labels = ["model_name", "engine"] if v1 else ["model_name"]
        r = self.registry
        self.running = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
                             labels, registry=r)
        self.waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                             labels, registry=r)
        kv_name = "vllm:kv_cache_usage_perc" if v1 else "vllm:gpu_cache_usage_perc"
        self.kv = Gauge(kv_name, "KV-cache usage. 1 means 100 percent usage.", labels, registry=r)
        self.prompt = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=r)
        self.latency = Histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                                 labels, registry=r, buckets=(0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0))
        for i in range(len(self.engines)):
            self.set(0, 0, 0.0, i)

    def _labels(self, engine: str) -> dict[str, str]:
        return {"model_name": self.model, "engine": engine} if self.v1 else {"model_name": self.model}

    def set(self, running: int, waiting: int, kv: float, engine: int = 0) -> None:
        """Set one engine's gauges (the others keep theirs)."""
        eng = self.engines[engine]
        self.running.labels(**self._labels(eng)).set(running)
        self.waiting.labels(**self._labels(eng)).set(waiting)
        self.kv.labels(**self._labels(eng)).set(kv)
        self.prompt.labels(**self._labels(eng)).inc(1234)
        self.latency.labels(**self._labels(eng)).observe(0.9)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
