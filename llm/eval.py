"""Evaluation of the plain-language routes against a file of expected plans.

Each line of the cases file is `{"text": ..., "expect": {"command": ..., "args": {...}}}`
or `"expect": null` (the text must give no command).  `"clarify": true` in `expect`
means the command is right but an argument is missing, so the plan must ask.

A case is correct when the command matches, every expected argument matches, no
other non-text argument is present, and the plan asks a question exactly when the
case says it should.  Free-text arguments (reason, description, topic) are compared
only when the case names them.  An expected value of `"*"` means "any value, but
present" (held-out cases use it for `since`, whose exact spelling a writer cannot know:
"this morning" may be 12h or 6h).  A **wrong action** is a complete plan for a changing
command that is not correct: a change aimed at a target, revision or request that
was not asked for, or any change where none was asked for.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commands.registry import Kind, Registry
from llm.plan import Plan
from llm.planner import Planner
from llm.validate import validate
from llm.values import ID_KINDS, id_ref


class CasesError(Exception):
    """A cases file that cannot be read, with the line at fault."""


@dataclass(frozen=True)
class Case:
    text: str
    expect: dict[str, Any] | None
    line: int


@dataclass
class Outcome:
    case: Case
    plan: Plan
    correct: bool
    wrong_action: bool
    latency_ms: float


@dataclass
class CommandScore:
    total: int = 0
    correct: int = 0
    got: Counter[str] = field(default_factory=Counter)


@dataclass
class Report:
    outcomes: list[Outcome]
    route: str
    name: str = ""  # the cases file (regression set, held-out set)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def correct(self) -> int:
        return sum(o.correct for o in self.outcomes)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def wrong_actions(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.wrong_action]

    def per_command(self) -> dict[str, CommandScore]:
        out: dict[str, CommandScore] = {}
        for o in self.outcomes:
            key = expected_label(o.case.expect)
            score = out.setdefault(key, CommandScore())
            score.total += 1
            if o.correct:
                score.correct += 1
            else:
                score.got[plan_label(o.plan)] += 1
        return dict(sorted(out.items()))

    def latency(self, q: float) -> float:
        values = sorted(o.latency_ms for o in self.outcomes)
        if not values:
            return 0.0
        k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
        return values[k]

    def usage(self) -> dict[str, float]:
        """Summed LLM statistics from plans that carry `usage` (set by the LLM route)."""
        totals: dict[str, float] = {"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                    "llm_latency_ms": 0}
        for o in self.outcomes:
            if o.plan.usage:
                totals["llm_calls"] += 1
                totals["prompt_tokens"] += o.plan.usage.get("prompt_tokens", 0) or 0
                totals["completion_tokens"] += o.plan.usage.get("completion_tokens", 0) or 0
                totals["llm_latency_ms"] += o.plan.usage.get("latency_ms", 0) or 0
        return totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": self.name, "route": self.route, "cases": self.total, "correct": self.correct,
            "accuracy": round(self.accuracy, 4), "wrong_actions": len(self.wrong_actions),
            "latency_ms": {"p50": round(self.latency(0.5), 3), "p95": round(self.latency(0.95), 3)},
            "usage": self.usage(),
            "per_command": {k: {"total": s.total, "correct": s.correct, "got": dict(s.got)}
                            for k, s in self.per_command().items()},
            "misses": [{"line": o.case.line, "text": o.case.text, "expect": o.case.expect,
                        "got": o.plan.to_dict(), "wrong_action": o.wrong_action}
                       for o in self.outcomes if not o.correct],
        }


def expected_label(expect: dict[str, Any] | None) -> str:
    if expect is None:
        return "null"
    return str(expect["command"]) + ("?" if expect.get("clarify") else "")


def plan_label(plan: Plan) -> str:
    if plan.command is None:
        return "null"
    return plan.command + ("?" if plan.clarify else "")


def load_cases(path: str | Path) -> list[Case]:
    cases: list[Case] = []
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CasesError(f"cannot read {path}: {exc.strerror}") from None
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        n = data[: exc.start].count(b"\n") + 1
        raise CasesError(f"{path}:{n}: not UTF-8 text (byte {data[exc.start]:#04x})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CasesError(f"{path}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "expect" not in row:
            raise CasesError(f"{path}:{n}: each line needs \"text\" (a string) and \"expect\"")
        expect = row["expect"]
        if expect is not None and (not isinstance(expect, dict) or "command" not in expect
                                   or not isinstance(expect.get("args", {}), dict)):
            raise CasesError(f"{path}:{n}: \"expect\" must be null or {{\"command\": ..., \"args\": {{...}}}}")
        cases.append(Case(row["text"], expect, n))
    if not cases:
        raise CasesError(f"{path}: no cases")
    return cases


ANY = "*"


def _same(kind: Kind | None, got: Any, want: Any) -> bool:
    if want == ANY:
        return got not in (None, "")
    if kind is Kind.text:
        return " ".join(str(got).lower().split()) == " ".join(str(want).lower().split())
    if kind is not None and kind.value in ID_KINDS:
        # an id is the same id however its lead is spelled ("7c2e", "req-7c2e", "r-7c2e"): the store
        # resolves each to the one request whose id starts with those digits
        lead = ID_KINDS[kind.value]
        return id_ref(str(got), lead, bare="slot") == id_ref(str(want), lead, bare="slot") is not None
    return str(got) == str(want)


def judge(case: Case, plan: Plan, registry: Registry) -> tuple[bool, bool]:
    """(correct, wrong_action) for one plan."""
    spec = registry.get(plan.command) if plan.command else None
    changes_now = bool(plan.complete and spec and spec.changes)
    expect = case.expect
    if expect is None:
        return plan.command is None, changes_now
    correct = plan.command == expect["command"] and (plan.clarify is not None) == bool(expect.get("clarify"))
    if correct and spec is not None:
        want = expect.get("args") or {}
        for key, value in want.items():
            arg = spec.arg(key)
            if key not in plan.args or not _same(arg.kind if arg else None, plan.args[key], value):
                correct = False
        for key, value in plan.args.items():
            arg = spec.arg(key)
            if key not in want and value is not None and not (arg and arg.kind is Kind.text):
                correct = False
    return correct, changes_now and not correct


async def evaluate(cases: list[Case], planner: Planner, *, use_llm: bool = False, name: str = "") -> Report:
    """Run every case through the planner as the bot would (plan, then validate)."""
    outcomes: list[Outcome] = []
    for case in cases:
        t0 = time.perf_counter()
        plan = await planner.plan(case.text, use_llm=use_llm)
        usage = plan.usage
        plan = validate(plan, planner.resolver, planner.registry, text=case.text,
                        require_mentioned=plan.source == "llm")
        plan.usage = plan.usage or usage  # validation builds a new plan; the model's cost stays counted
        ms = (time.perf_counter() - t0) * 1000
        correct, wrong = judge(case, plan, planner.registry)
        outcomes.append(Outcome(case, plan, correct, wrong, ms))
    return Report(outcomes, "llm" if use_llm else "grammar", name)


def format_summary(reports: list[Report]) -> str:
    """One line per set: accuracy and wrong actions side by side (regression vs held-out)."""
    width = max(len(r.name) for r in reports)
    return "\n".join(f"{r.name:<{width}}  {r.correct:>4}/{r.total:<4} accuracy {r.accuracy:6.1%}   "
                     f"wrong actions {len(r.wrong_actions)}" for r in reports)


def format_report(report: Report, *, misses: int = 40) -> str:
    """The human summary: accuracy, wrong actions, a per-command confusion table, latency."""
    lines = [f"set: {report.name}" if report.name else "",
             f"route: {report.route}   cases: {report.total}   correct: {report.correct}   "
             f"accuracy: {report.accuracy:.1%}",
             f"WRONG ACTIONS: {len(report.wrong_actions)}",
             f"latency per request: p50 {report.latency(0.5):.3f} ms   p95 {report.latency(0.95):.3f} ms"]
    usage = report.usage()
    if usage["llm_calls"]:
        lines.append(f"LLM: {usage['llm_calls']:.0f} calls, {usage['prompt_tokens']:.0f} prompt tokens, "
                     f"{usage['completion_tokens']:.0f} completion tokens")
    lines.append("")
    lines.append(f"{'expected':<18}{'ok':>5}{'total':>7}  misses (what came instead)")
    for key, score in report.per_command().items():
        got = ", ".join(f"{k}×{v}" for k, v in score.got.most_common())
        lines.append(f"{key:<18}{score.correct:>5}{score.total:>7}  {got}")
    wrong = report.wrong_actions
    if wrong:
        lines.append("")
        lines.append("wrong actions:")
        for o in wrong:
            lines.append(f"  line {o.case.line}: {o.case.text!r} → {o.plan.command} {json.dumps(o.plan.args)}")
    missed = [o for o in report.outcomes if not o.correct and not o.wrong_action]
    if missed and misses:
        lines.append("")
        lines.append(f"misses ({len(missed)}):")
        for o in missed[:misses]:
            want = "null" if o.case.expect is None else f"{expected_label(o.case.expect)} " \
                f"{json.dumps(o.case.expect.get('args', {}))}"
            lines.append(f"  line {o.case.line}: {o.case.text!r}\n      want {want}\n      got  "
                         f"{plan_label(o.plan)} {json.dumps(o.plan.args)}  {o.plan.clarify or ''}"[:400])
        if len(missed) > misses:
            lines.append(f"  … {len(missed) - misses} more (--json lists them all)")
    return "\n".join(line for i, line in enumerate(lines) if line or i)
