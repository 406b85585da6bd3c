"""The evaluation harness (llm/eval.py, `chatops eval nl`) and the cases file it gates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from commands.registry import registry
from infra.config import Config
from llm.eval import Case, CasesError, evaluate, judge, load_cases
from llm.plan import Plan
from llm.planner import Planner
from tests.conftest import DATA, ROOT

CASES = DATA / "nl-cases.jsonl"
# Written blind from COMMANDS.md by helpers who never read llm/: set-an and set-ao (scored once as they came,
# 467/500 with 1 wrong action, never tuned on but for that one wrong action's class) and set-ar and set-as
# (the last round, 472/500 with no wrong action, never tuned on), less texts an earlier set held
# (docs/language.md, "The sixth pass"). Earlier held-out sets (set-n and set-o until the sixth pass), once
# seen, moved to CASES (what the grammar reads right) and KNOWN_MISSES (what it still misses).
HELDOUT = DATA / "nl-heldout.jsonl"
# Earlier blind sets' cases the grammar still misses: kept in sight, never a wrong action.
KNOWN_MISSES = DATA / "nl-known-misses.jsonl"
# Reached 100.0% (8332/8332 after the sixth pass) on the grammar route; the floor leaves room for a few
# misses after inventory edits.
# Raise it as the grammar improves; never lower it to make a change pass.
ACCURACY_FLOOR = 0.995
# Issue 13's bar on requests the project has never seen.
HELDOUT_FLOOR = 0.90


async def test_grammar_route_on_the_cases_file(config: Config) -> None:
    cases = load_cases(CASES)
    assert len(cases) >= 250
    report = await evaluate(cases, Planner(config, registry()))
    wrong = [(o.case.text, o.plan.command, o.plan.args) for o in report.wrong_actions]
    assert wrong == []
    assert report.accuracy >= ACCURACY_FLOOR, [m["text"] for m in report.to_dict()["misses"]]


async def test_grammar_route_on_the_held_out_set(config: Config) -> None:
    cases = load_cases(HELDOUT)
    assert len(cases) >= 200
    report = await evaluate(cases, Planner(config, registry()), name="held-out")
    assert [(o.case.text, o.plan.command, o.plan.args) for o in report.wrong_actions] == []
    assert report.accuracy >= HELDOUT_FLOOR, [m["text"] for m in report.to_dict()["misses"]]


async def test_known_misses_stay_misses_not_wrong_actions(config: Config) -> None:
    cases = load_cases(KNOWN_MISSES)
    report = await evaluate(cases, Planner(config, registry()), name="known misses")
    assert [(o.case.text, o.plan.command, o.plan.args) for o in report.wrong_actions] == []


def test_judge_takes_a_star_as_any_present_value() -> None:
    reg = registry()
    want = {"command": "logs", "args": {"service": "nginx", "env": "rumpledev", "since": "*"}}
    assert judge(_case(want), Plan("logs", {"service": "nginx", "env": "rumpledev", "since": "12h"}), reg)[0]
    assert not judge(_case(want), Plan("logs", {"service": "nginx", "env": "rumpledev"}), reg)[0]


async def test_the_models_usage_survives_validation(config: Config) -> None:
    """Usage used to be dropped by validation (25 LLM calls counted for 132 requests)."""
    from llm.validate import validate

    raw = Plan("restart", {"service": "n8n", "env": "dev"}, source="llm",
               usage={"latency_ms": 5.0, "prompt_tokens": 10.0, "completion_tokens": 2.0})
    planner = Planner(config, registry())
    assert validate(raw, planner.resolver, planner.registry, text="restart n8n on dev").usage == raw.usage
    refused = validate(Plan("restart", {"service": "n8n", "env": "rumpleprod"}, source="llm", usage={"x": 1.0}),
                       planner.resolver, planner.registry, text="restart n8n on dev", require_mentioned=True)
    assert refused.command is None and refused.usage == {"x": 1.0}


def test_cases_cover_every_command_and_the_null_cases() -> None:
    cases = load_cases(CASES)
    expected = {c.expect["command"] for c in cases if c.expect}
    assert expected == set(registry().names())
    assert sum(c.expect is None for c in cases) >= 60


def _case(expect: dict[str, object] | None) -> Case:
    return Case("x", expect, 1)


def test_judge_counts_a_change_to_an_unasked_target_as_a_wrong_action() -> None:
    reg = registry()
    want = {"command": "restart", "args": {"service": "nginx", "env": "rumpledev"}}
    assert judge(_case(want), Plan("restart", {"service": "nginx", "env": "rumpledev"}), reg) == (True, False)
    assert judge(_case(want), Plan("restart", {"service": "nginx", "env": "rumpleprod"}), reg) == (False, True)
    assert judge(_case(None), Plan("stop", {"service": "nginx", "env": "rumpledev"}), reg) == (False, True)
    # a question is never an action, and a read-only miss is a miss, not a wrong action
    assert judge(_case(None), Plan("stop", {"service": "nginx"}, clarify="Which environment?"), reg) == (False, False)
    assert judge(_case(want), Plan("logs", {"service": "nginx", "env": "rumpledev"}), reg) == (False, False)
    assert judge(_case(None), Plan.unknown("no"), reg) == (True, False)


def test_judge_compares_text_arguments_only_when_asked() -> None:
    reg = registry()
    plan = Plan("lock", {"env": "rumpleprod", "reason": "the release"})
    assert judge(_case({"command": "lock", "args": {"env": "rumpleprod"}}), plan, reg)[0]
    assert not judge(_case({"command": "lock", "args": {"env": "rumpleprod", "reason": "demo"}}), plan, reg)[0]
    extra = Plan("logs", {"service": "nginx", "env": "rumpledev", "tail": 10})
    assert not judge(_case({"command": "logs", "args": {"service": "nginx", "env": "rumpledev"}}), extra, reg)[0]


def test_bad_cases_files_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "status dev", "expect": null}\n{"text": 3}\n')
    with pytest.raises(CasesError, match=r"bad.jsonl:2"):
        load_cases(bad)
    bad.write_text("not json\n")
    with pytest.raises(CasesError, match="not JSON"):
        load_cases(bad)


def test_cli_eval_nl_json_and_text(tmp_path: Path) -> None:
    small = tmp_path / "cases.jsonl"
    small.write_text("\n".join(json.dumps(c) for c in [
        {"text": "restart n8n on dev",
         "expect": {"command": "restart", "args": {"service": "n8n", "env": "rumpledev"}}},
        {"text": "don't restart n8n", "expect": None},
        {"text": "status dev", "expect": {"command": "stacks", "args": {}}},
    ]) + "\n")
    runner = CliRunner()
    out = runner.invoke(main, ["eval", "nl", str(small), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert (report["cases"], report["correct"], report["wrong_actions"]) == (3, 2, 0)
    assert report["per_command"]["stacks"]["got"] == {"status": 1}
    assert set(report["latency_ms"]) == {"p50", "p95"}
    text = runner.invoke(main, ["eval", "nl", str(small)])
    assert "accuracy: 66.7%" in text.output and "WRONG ACTIONS: 0" in text.output
    assert runner.invoke(main, ["eval", "nl", str(small), "--fail-under", "0.9"]).exit_code == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[]\n")
    failed = runner.invoke(main, ["eval", "nl", str(bad)])
    assert failed.exit_code == 2 and "bad.jsonl:1" in failed.output
    # several files: each scored on its own, then one line per set
    two = runner.invoke(main, ["eval", "nl", str(small), str(small), "--json"])
    sets = json.loads(two.output)["sets"]
    assert [(s["set"], s["cases"], s["correct"]) for s in sets] == [(str(small), 3, 2)] * 2
    summary = runner.invoke(main, ["eval", "nl", str(small), str(small)]).output.splitlines()[-2:]
    assert all("accuracy  66.7%" in line and "wrong actions 0" in line for line in summary)


def test_llm_usage_is_summed_when_plans_carry_it() -> None:
    from llm.eval import Outcome, Report

    plans = [Plan("gpu", usage={"latency_ms": 100, "prompt_tokens": 50, "completion_tokens": 7}),
             Plan("gpu", usage={"latency_ms": 50, "prompt_tokens": 40, "completion_tokens": 3}), Plan("gpu")]
    report = Report([Outcome(_case({"command": "gpu", "args": {}}), p, True, False, 1.0) for p in plans], "llm")
    assert report.usage() == {"llm_calls": 2, "prompt_tokens": 90, "completion_tokens": 10, "llm_latency_ms": 150}


def test_parse_does_not_import_the_llm_stack_or_the_database() -> None:
    """`chatops parse` must start fast: no langchain, sqlalchemy or matplotlib on its path."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "bot.cli", "parse", "--json",
                           "bounce n8n on dev please"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["command"] == "restart"
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & {"langchain", "langchain_core", "langchain_openai", "sqlalchemy", "matplotlib",
                           "openai", "alembic", "proxmoxer", "requests", "urllib3", "docker"}
