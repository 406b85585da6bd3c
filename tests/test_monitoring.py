"""The monitoring stack knows the bot: alert rules (checked and unit-tested with promtool),
Alertmanager routing to the bot's receiver, and the GPU/vLLM dashboard's queries run by a real
Prometheus against the DCGM and vLLM stand-ins."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.alerts import AlertReceiver, Notification
from bot.http_api import ALERTMANAGER_PATH, DEFAULT_PORT
from infra.config import Config
from infra.db.store import Database
from tests.conftest import ROOT
from tests.events_support import Recorder, engine_for, recording_registry
from tests.fakes.dcgm_exporter import FakeGpu, render_dcgm
from tests.fakes.metrics_http import MetricsServer
from tests.fakes.prometheus_server import PrometheusProcess
from tests.fakes.vllm_server import FakeVllm
from tests.test_compose_files import _config as compose_config

MON = ROOT / "compose" / "monitoring"
REQUIRED = {"ChatopsBotDown", "ChatopsAuditDatabaseUnreachable", "ChatopsApprovalWaitingTooLong",
            "ChatopsDeployFailures", "GpuTooHot", "VllmQueueLong"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(binary).exists():
        pytest.skip("promtool is not installed (it comes with the prometheus package)")
    return subprocess.run([binary, *args], cwd=MON, capture_output=True, text=True, timeout=120)


def rules() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((MON / "rules").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out[rule["alert"]] = rule
    return out


def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    files = [str(p.relative_to(MON)) for p in sorted((MON / "rules").glob("*.rules.yml"))]
    checked = promtool("check", "rules", *files)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", *[str(p.relative_to(MON)) for p in (MON / "rules" / "tests").glob("*.yml")])
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert f"{len(files)} rule files found" in config.stdout
    found = rules()
    assert set(found) >= REQUIRED
    for name, rule in found.items():
        assert rule["labels"]["severity"] in ("page", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    # Every required alert has a promtool case that makes it fire.
    cases = yaml.safe_load((MON / "rules" / "tests" / "rules.test.yml").read_text())["tests"]
    fired = {t["alertname"] for c in cases for t in c["alert_rule_test"] if t["exp_alerts"]}
    assert fired >= REQUIRED


def test_alertmanager_hands_groups_to_the_bots_receiver(tmp_path: Path) -> None:
    am = yaml.safe_load((MON / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in am["receivers"]}
    assert am["route"]["receiver"] in receivers
    assert "env" in am["route"]["group_by"]  # one environment per group: one ops channel per card
    (hook,) = receivers[am["route"]["receiver"]]["webhook_configs"]
    assert hook["send_resolved"] is True  # resolved alerts edit the card
    assert hook["url"] == f"http://bot:{DEFAULT_PORT}{ALERTMANAGER_PATH}"  # what `serve api` listens on
    auth = hook["http_config"]["authorization"]
    assert auth["type"] == "Bearer" and "credentials" not in auth  # the token is a Compose secret
    model = compose_config(MON, tmp_path)
    svc = model["services"]["alertmanager"]
    mounts = {v["target"]: v for v in svc["volumes"]}
    (secret,) = svc["secrets"]  # from the environment: no file needed on a remote engine's host
    assert auth["credentials_file"] == secret["target"] == f"/run/secrets/{secret['source']}"
    assert model["secrets"][secret["source"]]["environment"] == "ALERTMANAGER_CHATOPS_TOKEN"
    assert "/etc/alertmanager/alertmanager.yml" in mounts
    assert ":" in svc["image"] and not svc["image"].endswith(":latest")
    prom = model["services"]["prometheus"]
    assert "/etc/prometheus/rules" in {v["target"] for v in prom["volumes"]}
    scrape = yaml.safe_load((MON / "prometheus.yml").read_text())
    assert scrape["rule_files"] == ["rules/*.rules.yml"]
    assert scrape["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    override = yaml.safe_load((MON / "compose.chatops.yaml").read_text())
    assert "chatops-observability" in override["services"]["alertmanager"]["networks"]


async def test_what_the_rules_label_routes_to_an_environment_with_buttons(config: Config, db: Database) -> None:
    """The labels each rule's alert carries (from its promtool case) reach a known environment, and the
    service label fills the card's buttons."""
    e = engine_for(config, db, recording_registry(Recorder()))
    receiver = AlertReceiver(e)
    cases = yaml.safe_load((MON / "rules" / "tests" / "rules.test.yml").read_text())["tests"]
    for case in cases:
        for t in case["alert_rule_test"]:
            for alert in t["exp_alerts"]:
                labels = {"alertname": t["alertname"], **{k: str(v) for k, v in alert["exp_labels"].items()}}
                note = Notification.model_validate({"groupKey": t["alertname"], "status": "firing",
                                                    "alerts": [{"status": "firing", "labels": labels}]})
                parts, unrouted = receiver.split(note)
                assert unrouted == [] and [p.env for p in parts] == ["phoenix"], t["alertname"]
                labels_of = [b.label for b in await receiver._buttons(parts[0], "k")]
                if labels.get("service") == "vllm":
                    assert labels_of == ["Status llm", "Logs vllm", "Restart vllm…"]
                elif labels.get("service") == "bot":
                    assert "Restart bot…" in labels_of
                else:
                    assert labels_of == ["Status phoenix"] or labels_of == []


# -- the GPU and vLLM dashboard, queried by a real Prometheus ---------------------------------------

GPUS = [FakeGpu(0, "GPU-11111111-2222-3333-4444-555555555555"), FakeGpu(1, "GPU-66666666-7777-8888-9999-000000000000")]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    vllm = FakeVllm()
    vllm.set(running=3, waiting=12, kv=0.42)
    with MetricsServer(lambda: render_dcgm(GPUS)) as dcgm, MetricsServer(vllm.render) as vl:
        prom = PrometheusProcess(tmp_path_factory.mktemp("prom"), {"dcgm": dcgm.address, "vllm": vl.address})
        prom.start()
        try:
            yield prom
        finally:
            prom.stop()


def test_every_gpu_and_vllm_panel_query_returns_data(prometheus: PrometheusProcess) -> None:
    board = json.loads((MON / "grafana" / "dashboards" / "chatops" / "gpu-vllm.json").read_text())
    queries = [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]
    assert len(queries) >= 8
    pending = dict(queries)
    deadline = time.monotonic() + 60  # rate() needs two scrapes (they are a second apart)
    while pending and time.monotonic() < deadline:
        for title, expr in list(pending.items()):
            got = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=5).json()
            assert got["status"] == "success", (title, got)
            if got["data"]["result"]:
                del pending[title]
        time.sleep(0.5)
    assert pending == {}, f"panels with no data from the exporters: {sorted(pending)}"
