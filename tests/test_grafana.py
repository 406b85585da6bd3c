"""The provisioned Grafana dashboards: every query runs against what the bot really exposes.

The audit dashboard's SQL is executed (Grafana macros expanded the way Grafana's PostgreSQL
data source expands them) against a populated audit schema; the bot dashboard's PromQL may
only name metrics the bot's registry actually exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest
from sqlalchemy import text

from bot.engine import Engine
from bot.metrics import REGISTRY, AuditCollector
from bot.request import Actor, Request
from infra.config import Config
from infra.db.store import AuditStore, Database
from tests.conftest import ROOT
from tests.ops_support import HeldJob, docker_backends, registry_with, restart

GRAFANA = ROOT / "compose" / "monitoring" / "grafana"
DASHBOARDS = GRAFANA / "dashboards" / "chatops"


def dashboard(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARDS / name).read_text())
    return data


def datasources() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "chatops.yaml").read_text())
    return {d["uid"]: d for d in data["datasources"]}


def targets(board: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(p, t) for p in board["panels"] for t in p["targets"]]


def expand_macros(sql: str) -> str:
    """Grafana's PostgreSQL macros, for a 30-day range ending now."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN now() - interval '30 days' AND now()", sql)
    return re.sub(r"\$__timeGroupAlias\((\w+),\s*'1h'\)",
                  r"to_timestamp(floor(extract(epoch from \1) / 3600) * 3600) AS time", sql)


def test_provisioning_files_are_consistent() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "chatops.yaml").read_text())
    (prov,) = provider["providers"]
    assert prov["type"] == "file" and prov["options"]["path"] == "/var/lib/grafana/dashboards/chatops"
    ds = datasources()
    assert ds["chatops-prometheus"]["type"] == "prometheus"
    audit = ds["chatops-audit"]
    assert audit["type"] == "grafana-postgresql-datasource"
    assert audit["secureJsonData"]["password"] == "${CHATOPS_AUDIT_DB_PASSWORD}"  # never a literal secret
    assert not any(d.get("isDefault") for d in ds.values()), "leave the default data source to the stack owner"
    uids = set()
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        assert board["uid"] not in uids
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel, target in targets(board):
            assert panel["datasource"]["uid"] in ds, f"{path.name}: {panel['title']}"
            assert target["datasource"]["uid"] == panel["datasource"]["uid"]
    assert uids == {"chatops-bot", "chatops-audit-log", "chatops-gpu-vllm"}


async def test_bot_dashboard_names_only_exported_metrics(config: Config, db: Database) -> None:
    eng = Engine(config, AuditStore(db), docker_backends(config), registry=registry_with(HeldJob(hold=False)))
    assert (await eng.handle(restart("console:alice", "n8n", "rumpledev"))).ok
    collector = AuditCollector(eng.store)
    REGISTRY.register(collector)
    try:
        exported = generate_latest(REGISTRY).decode()
    finally:
        REGISTRY.unregister(collector)
    names = set(re.findall(r"^# TYPE (\w+) ", exported, re.M))
    series = set(re.findall(r"^(\w+)[{ ]", exported, re.M))
    board = dashboard("chatops-bot.json")
    used = set()
    for panel, target in targets(board):
        for name in re.findall(r"\bchatops_\w+", target["expr"]):
            used.add(name)
            family = re.sub(r"_(bucket|count|sum)$", "", name)
            assert name in series or name in names or family in names, f"{panel['title']}: {name} is not exported"
    # Every family the bot exports has a panel (so a new metric gets one too).
    families = {re.sub(r"_(bucket|count|sum|total|created)$", "", n) for n in names if n.startswith("chatops_")}
    shown = {re.sub(r"_(bucket|count|sum|total|created)$", "", n) for n in used}
    assert families - shown == set()


async def test_audit_dashboard_queries_run_against_the_audit_schema(config: Config, db: Database) -> None:
    job = HeldJob(hold=False)
    eng = Engine(config, AuditStore(db), docker_backends(config), registry=registry_with(job))
    assert (await eng.handle(restart("console:alice", "n8n", "rumpledev"))).ok
    job.fail = RuntimeError("docker went away")
    assert not (await eng.handle(restart("console:bob", "nginx", "rumpletest"))).ok
    job.fail = None
    pending = await eng.handle(restart("console:alice", "n8n", "rumpleprod"))
    assert (await eng.act("approve", pending.request_id or "", Actor("console:bob"))).ok
    assert not (await eng.handle(restart("console:nobody", "n8n", "rumpledev"))).ok  # refused
    assert (await eng.handle(Request(actor=Actor("console:carol"), text="whoami"))).ok
    results: dict[str, list[Any]] = {}
    with db.engine.connect() as conn:
        for panel, target in targets(dashboard("chatops-audit.json")):
            rows = conn.execute(text(expand_macros(target["rawSql"]).replace(":", r"\:"))).mappings().all()
            results[panel["title"]] = [dict(r) for r in rows]
    by_env = {(r["metric"], r["value"]) for r in results["Changes by environment"]}
    assert {("rumpledev", 2), ("rumpletest", 1), ("rumpleprod", 1)} <= by_env
    outcomes = {r["metric"] for r in results["Changes by outcome"]}
    assert {"succeeded", "failed", "refused"} <= outcomes
    who = results["Who did what"]
    assert {r["actor"] for r in who} == {"console:alice", "console:bob", "console:nobody"}
    assert all(r["command"] == "restart" for r in who)  # reads (whoami) are not "changes"
    approved = next(r for r in who if r["id"] == pending.request_id)
    assert approved["approver"] == "console:bob" and approved["status"] == "succeeded"
    failures = results["Failures and interruptions"]
    assert len(failures) == 1 and "internal error in restart" in failures[0]["error"]
    assert results["Refusals by reason"][0]["refusals"] == 1
    people = {r["actor"]: r for r in results["Changes per person"]}
    assert people["console:alice"]["succeeded"] == 2 and people["console:bob"]["failed"] == 1
    assert results["Approvals by approver"] == [{"approver": "console:bob", "approved": 1, "denied": 0}]
    assert results["Waiting for approval now"] == []


def test_dashboards_are_plain_files_without_secrets() -> None:
    for path in [*DASHBOARDS.glob("*.json"), *Path(GRAFANA / "provisioning").rglob("*.yaml")]:
        body = path.read_text()
        assert not re.search(r"password\s*[:=]\s*['\"]?[^$\s'\"]", body, re.I), path
