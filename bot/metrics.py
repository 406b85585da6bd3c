"""Prometheus metrics of the bot process.

One registry of our own (not prometheus-client's global one), so a library that
registers metrics of its own cannot clash with ours and tests can read exact values.
Counters and histograms are process-wide; the database-backed gauges (pending
approvals, open requests) are computed at scrape time by `AuditCollector`, so every
replica reports the same, true number rather than what it happened to see.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from infra.db.store import AuditStore

log = logging.getLogger("chatops.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)

# Latency buckets: the parser is sub-millisecond, backends take seconds to minutes.
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

REQUESTS = Counter("chatops_requests_total", "Requests handled, by command and outcome (the audit status "
                   "the request ended in, or not_understood / error / shutting_down)",
                   ["command", "outcome"], registry=REGISTRY)
REQUEST_SECONDS = Histogram("chatops_request_duration_seconds", "Time from request to reply, by command",
                            ["command"], buckets=_SLOW, registry=REGISTRY)
PLAN_SECONDS = Histogram("chatops_plan_duration_seconds", "Time to turn text into a plan, by route "
                         "(grammar = the deterministic parser, llm = the language-model route)",
                         ["route"], buckets=_FAST, registry=REGISTRY)
HANDLER_SECONDS = Histogram("chatops_handler_duration_seconds", "Time a command handler ran, by command "
                            "and the backend it talks to (docker, proxmox, gpu, none)",
                            ["command", "backend"], buckets=_SLOW, registry=REGISTRY)
ERRORS = Counter("chatops_errors_total", "Errors, by kind (command = a clear refusal from a handler, "
                 "handler = an unexpected exception in a handler, internal = elsewhere in the engine, "
                 "database = the audit database unreachable)", ["kind"], registry=REGISTRY)
RATE_LIMITED = Counter("chatops_rate_limited_total", "Changing requests refused by a rate limit, by scope",
                       ["scope"], registry=REGISTRY)
JOBS_RUNNING = Gauge("chatops_jobs_running", "Command handlers running in this process now",
                     registry=REGISTRY)
JOBS_INTERRUPTED = Counter("chatops_jobs_interrupted_total", "Jobs cut off by a shutdown after the grace "
                           "period", registry=REGISTRY)
ALERTS_RECEIVED = Counter("chatops_alerts_received_total", "Alertmanager notifications received, by the "
                          "group's status (firing, resolved)", ["status"], registry=REGISTRY)
SCHEDULE_RUNS = Counter("chatops_schedule_runs_total", "Scheduled occurrences taken by this process, by "
                        "outcome (the run's audit status, or missed)", ["outcome"], registry=REGISTRY)
API_REQUESTS = Counter("chatops_api_requests_total", "HTTP API calls, by endpoint and answer code",
                       ["endpoint", "code"], registry=REGISTRY)
BUSY = Counter("chatops_busy_total", "Requests a chat adapter turned away because it already had "
               "limits.max_in_flight in flight (answered 'busy', nothing run), by adapter", ["adapter"],
               registry=REGISTRY)
IN_FLIGHT = Gauge("chatops_adapter_in_flight", "Requests a chat adapter is working on now, by adapter",
                  ["adapter"], registry=REGISTRY)
UP = Gauge("chatops_accepting_requests", "1 while this process accepts new requests, 0 while it shuts down",
           registry=REGISTRY)


class AuditCollector(Collector):
    """Gauges read from the audit database at scrape time (true across replicas)."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # computed per scrape; nothing to pre-register

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from infra.status import PENDING, Status

        open_statuses = (*PENDING, Status.requested, Status.confirmed, Status.approved, Status.started)
        up = GaugeMetricFamily("chatops_database_up", "1 when the audit database answered this scrape")
        try:
            counts = self.store.count_by_status(open_statuses)  # an index range, not the whole log
        except Exception as exc:  # a scrape reports, it never raises
            log.warning("metrics: audit database unreachable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        pending = GaugeMetricFamily("chatops_pending_approvals", "Requests waiting for an approver")
        pending.add_metric([], counts.get(Status.pending_approval, 0))
        yield pending
        try:
            from infra.db.events import oldest_age_s

            oldest = oldest_age_s(self.store, Status.pending_approval)
        except Exception as exc:
            log.warning("metrics: could not read the oldest pending approval: %s", exc)
            oldest = None
        age = GaugeMetricFamily("chatops_pending_approval_oldest_seconds",
                                "Age of the oldest request waiting for an approver (0 when none waits)")
        age.add_metric([], oldest or 0.0)
        yield age
        open_ = GaugeMetricFamily("chatops_requests_open", "Requests not yet final, by status", labels=["status"])
        for status in open_statuses:
            open_.add_metric([status], counts.get(status, 0))
        yield open_
