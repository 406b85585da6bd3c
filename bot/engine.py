"""The engine: one platform-neutral path from a request to a reply.

request → plan → validate → channel rules → authorise (roles scoped to the plan's
environments) → freeze check → confirm → approve → lock → audit(started) → handler →
audit(result) → reply.  Each step that changes anything is committed to the audit store
before the next one acts on it.  A plan with a time phrase becomes a schedule instead
(bot/scheduling.py); approval cards and outcomes are also announced to the environment's
ops channels through `self.notify` (bot/notify.py), which knows no chat SDK.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bot import observe
from bot.handoff import arrival
from bot.jobs import Cause, Interruption, JobRegistry
from bot.metrics import ERRORS, HANDLER_SECONDS, PLAN_SECONDS
from bot.notify import Notifications
from bot.policy import (
    approvers,
    channel_refusal,
    check,
    lock_targets,
    needs_approval,
    roles_for,
    targets_of,
    unknown_channel_commands,
)
from bot.ratelimit import RateLimiter
from bot.redaction import redact_reply
from bot.request import Action, Actor, Button, Decision, Relay, Reply, Request, Tone
from bot.scheduling import Scheduling
from bot.upkeep import Upkeep
from commands.context import Context
from commands.examples import sample_requests
from commands.registry import CommandSpec, Kind, Registry, Whose
from commands.registry import registry as load_registry
from infra.backends import Backends
from infra.clock import Clock, SystemClock
from infra.config import Config, ConfigError, Notice, Role
from infra.db.common import DatabaseUnavailable, aware, utcnow, without_nul
from infra.db.models import RequestRow, request_row
from infra.db.store import AuditStore, named_problem, new_request_id, overdue
from infra.db.writer import Write
from infra.errors import BackendUnavailable, CannotSucceed, CommandError
from infra.redact import Redactor, secret_values
from infra.status import ACTIVE, APPROVABLE, CONFIRMABLE, PENDING, Status
from infra.wiring import same_clients
from infra.wording import counted
from llm.grammar import LEADERS
from llm.plan import Outcome, Plan, plan_hash
from llm.planner import Planner, with_when
from llm.resolve import Resolver
from llm.validate import validate

WHOLE_ID = len("r-1a2b3c4d")  # shorter: an id's first digits, looked up before the card

log = logging.getLogger("chatops.engine")
T = TypeVar("T")
# Routes that infer a plan rather than read it: always mention-checked and shown back before running.
INFERRED = ("llm", "thread")
CANDIDATES_SHOWN = 5  # requests listed under a question for a left-out request id


def shown(lines: list[str], limit: int = 4000) -> list[str]:
    """The card's lines as the audit log keeps them (what the approver saw), within a size."""
    out: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) > limit:
            out.append(f"… {counted(len(lines) - len(out), 'more line')}")
            break
        out.append(line)
        used += len(line)
    return out


# Where a request stands, said after "Request r-…" when an action finds it already past that point.
_STANDING = {Status.succeeded: "has already succeeded", Status.failed: "has already run and failed",
             Status.started: "is already running", Status.approved: "is already approved",
             Status.expired: "has already expired", Status.confirmed: "is already confirmed",
             Status.requested: "is already being handled", Status.pending_approval: "is waiting for approval",
             Status.awaiting_confirmation: "is waiting for its requester to confirm it",
             Status.scheduled: "has become a schedule"}


def standing(row: RequestRow | None) -> str:
    """"has already succeeded (approved by console:bob)", "was already denied by console:carol":
    where a request stands and who decided it, never worded as if the decider had run it."""
    if row is None:
        return "is gone"
    status = Status(row.status)
    said = _STANDING.get(status, f"was already {status.value}")
    if row.approver and status is Status.denied:
        return f"{said} by {row.approver}"
    if row.approver and status in (Status.succeeded, Status.failed, Status.started, Status.approved,
                                   Status.interrupted):
        return f"{said} (approved by {row.approver})"
    return said


def describe(spec: CommandSpec, args: dict[str, Any]) -> str:
    """The canonical one-line form of a plan ("restart n8n rumpledev tail=…")."""
    return spec.describe(args)


async def _nothing() -> None:
    return None


@dataclass
class Ran:
    """A handler's run as the engine recorded it: the reply, and what its last audit write did."""

    reply: Reply
    status: Status | None = None  # where that write left the request (None: not known)
    freed: bool = False  # that write committed, and freed the run's execution locks with it
    applied: bool = True  # False: what led to the run (`first`) found the request moved already


@dataclass(frozen=True)
class Live:
    """Everything built from one validated configuration: replaced as a whole on reload, so a
    request never sees roles from one file and inventory from another."""

    config: Config
    resolver: Resolver
    planner: Planner
    backends: Backends
    redactor: Redactor
    limiter: RateLimiter


class Engine:
    # How long `cancel` waits for a cancelled job to record its end before answering.
    cancel_wait_s = 30.0

    def __init__(self, config: Config, store: AuditStore, backends: Backends | None = None,
                 registry: Registry | None = None, planner: Planner | None = None,
                 clock: Clock | None = None,
                 backends_for: Callable[[Config], Backends] | None = None) -> None:
        self.store = store
        self.registry = registry or load_registry(config.inventory.plugins)
        self._check_channels(config)
        self.clock: Clock = clock or SystemClock()
        # Builds the backend clients for a configuration (infra.wiring.make_backends); without it a
        # reload keeps the clients it has.
        self.backends_for = backends_for
        self.live = self._live(config, backends or (backends_for or Backends)(config), planner)
        # The ops channels: adapters register how to post there (bot/notify.py).
        self.notify = Notifications(lambda: self.config)
        self.schedules = Scheduling(self)
        store.redactor = self.redactor  # the audit log masks what it writes with the same secrets
        self.jobs = JobRegistry()
        self.upkeep: Upkeep | None = None
        self._accepted: set[asyncio.Task[Any]] = set()

    def _live(self, config: Config, backends: Backends, planner: Planner | None = None) -> Live:
        resolver = Resolver(config)
        return Live(config=config, resolver=resolver, backends=backends,
                    planner=planner or Planner(config, self.registry, resolver, backends=backends, store=self.store),
                    redactor=Redactor(secret_values(config.inventory, config.settings)),
                    limiter=RateLimiter(config, self.store, self.registry))

    # The configuration in force and what is built from it: read at each use, never kept.
    @property
    def config(self) -> Config:
        return self.live.config

    @property
    def resolver(self) -> Resolver:
        return self.live.resolver

    @property
    def planner(self) -> Planner:
        return self.live.planner

    @property
    def backends(self) -> Backends:
        return self.live.backends

    @property
    def redactor(self) -> Redactor:
        return self.live.redactor

    @property
    def limiter(self) -> RateLimiter:
        return self.live.limiter

    def config_status(self) -> tuple[bool, str]:
        """Whether the config file as it is now is the one in force, and what `health` says about it."""
        name = self.config.path.name
        if self.upkeep is None:
            return True, f"{name} (as loaded at start)"
        state = self.upkeep.config
        since = f"{state.loaded_at:%Y-%m-%d %H:%M:%S} UTC"
        if state.problem:
            first = state.problem.splitlines()[0]
            return False, f"{first[:300]} — still in force: {name} as loaded at {since}"
        return True, f"{name}, loaded at {since}"

    def _check_channels(self, config: Config) -> None:
        """Channel rules name commands of this registry (team plugins included), or the file is wrong."""
        unknown = unknown_channel_commands(config, self.registry)
        if unknown:
            raise ConfigError(f"{config.path}: " + f"\n{config.path}: ".join(unknown)
                              + "\nFix: use command names from 'help'.")

    def reload(self, config: Config) -> None:
        """Put a new validated configuration in force for every decision from now on (one swap)."""
        self._check_channels(config)
        old = self.live
        if self.backends_for is None or same_clients(old.config, config):
            backends = dataclasses.replace(old.backends, config=config)
        else:
            backends = self.backends_for(config)
        live = self._live(config, backends)
        self.store.redactor = live.redactor
        self.live = live

    # -- plumbing ---------------------------------------------------------
    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        result = await asyncio.to_thread(fn, *args, **kwargs)
        observe.saw_row(result)  # the request's id and latest status, for logs and metrics
        return result

    async def _write(self, submit: Callable[..., Future[T]], *args: Any, **kwargs: Any) -> T:
        """An audit write (`store.*_later`): wait for the commit that holds it without holding a thread,
        so the writes of many requests at once share transactions (infra/db/writer.py), and the results of
        one transaction reach the loop in one wake-up (bot/handoff.py).  A cancelled request still gets
        the write it asked for, as when it ran in a thread."""
        result = await arrival(submit(*args, **kwargs))
        observe.saw_row(result)  # the request's id and latest status, for logs and metrics
        return result

    async def start(self, upkeep: Upkeep | None = None) -> list[RequestRow]:
        """Check the schema is this code's, register this process, and mark what a crashed one
        left running as interrupted.

        Refuses (AuditKeyError) when CHATOPS_AUDIT_KEY is not the key of the audit chain.  Then
        the background work starts: linking audit events, logging the chain head, reloading the
        config file when it changes (bot/upkeep.py).
        """
        await self._db(self.store.db.require_current)
        await self._db(self.store.check_key)
        await self._db(self.store.register_worker)
        interrupted = await self._db(self.store.recover)
        await self.expire_due()
        for row in interrupted:
            log.warning("request %s (%s) was interrupted by a restart", row.id, row.command)
        if self.upkeep is None:
            self.upkeep = upkeep or Upkeep(self)
            self.upkeep.start()
        return interrupted

    async def close(self) -> None:
        if self.upkeep is not None:
            await self.upkeep.stop()
            self.upkeep = None
        await self._db(self.store.close)

    @contextmanager
    def _accept(self) -> Iterator[None]:
        """Count a request from its arrival to its reply, so a shutdown waits for it."""
        task = asyncio.current_task()
        if task is None or task in self._accepted:
            yield
            return
        self._accepted.add(task)
        try:
            yield
        finally:
            self._accepted.discard(task)

    async def shutdown(self, grace_s: float, record_s: float = 10.0) -> list[str]:
        """Accept no new requests; let every accepted one finish within `grace_s`; interrupt the
        handlers still running then (recorded as such) and let their requests write that down."""
        self.jobs.stop_accepting()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(grace_s, 0)
        me = asyncio.current_task()
        waiting = [t for t in self._accepted if t is not me and not t.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=max(grace_s, 0))
        cut = await self.jobs.drain(max(deadline - loop.time(), 0), record_s)
        left = [t for t in self._accepted if t is not me and not t.done()]
        if left:
            await asyncio.wait(left, timeout=record_s)
        still = sum(1 for t in left if not t.done())
        if still:
            log.error("%s did not finish recording within %.0fs of the shutdown", counted(still, "accepted request"),
                      record_s)
        return cut

    def _closing(self, req: Request) -> Reply:
        observe.note(outcome="shutting_down")
        log.info("refused a request while shutting down")
        return self._error("I'm restarting right now and not taking new requests; nothing was run. "
                           f"Ask again in a minute (ref {req.correlation_id}).")

    def _row(self, req: Request, plan: Plan, status: Status, **fields: Any) -> RequestRow:
        spec = self.registry.get(plan.command or plan.attempted or "")
        args = plan.args  # the store masks secrets in everything it writes
        env = args.get("env") if isinstance(args.get("env"), str) else None
        target = args.get("service") or args.get("stack") or args.get("vm") or args.get("request")
        # built as a plain dict (`request_row`): the store writes it with Core, never through a session,
        # and the constructor's instrumented writes were a tenth of a read command's engine time
        return request_row(dict(
            id=new_request_id(), actor=req.actor.id, platform=req.platform, channel=req.channel,
            thread=req.thread, text=req.text[:2000], source=plan.source,
            command=plan.command or plan.attempted, args=args, env=env,
            target=str(target) if target else None, changes=bool(spec and spec.changes),
            status=status, correlation_id=req.correlation_id, **fields))

    def _requested_detail(self, row: RequestRow) -> dict[str, Any]:
        return {"command": row.command, "args": row.args, "actor": row.actor, "source": row.source,
                "text": row.text}

    async def _create(self, req: Request, row: RequestRow, *events: tuple[str, dict[str, Any]]) -> RequestRow:
        """Commit a new request row with its `requested` event (and any after it); tell the caller its id."""
        await self._write(self.store.create_later, row, [(Status.requested, self._requested_detail(row)), *events])
        self._recorded(req, row)
        return row

    @staticmethod
    def _recorded(req: Request, row: RequestRow) -> None:
        if req.on_recorded is not None:
            req.on_recorded(row.id)

    async def _refuse(self, req: Request, plan: Plan, reason: str, tone: Tone = Tone.error) -> Reply:
        """Record a request that will not run (requested + refused, one transaction) and say why."""
        row = self._row(req, plan, Status.refused, reason=reason)
        await self._create(req, row, (Status.refused, {"reason": reason}))
        return Reply(reason, tone=tone, request_id=row.id)

    async def refuse(self, req: Request, reason: str, attempted: str | None = None) -> Reply:
        """Audit a request refused before it could be read (the HTTP API's bad bodies and tokens)."""
        with observe.scope(req.correlation_id, req.actor.id, req.platform, req.channel, attempted):
            plan = Plan.unknown(reason, source=req.route, attempted=attempted)
            try:
                return redact_reply(self.redactor, await self._refuse(req, plan, reason))
            except DatabaseUnavailable as exc:
                return self._unavailable(exc)

    def _error(self, text: str, rid: str | None = None) -> Reply:
        return Reply(text, tone=Tone.error, request_id=rid)  # masked with the reply at handle()/act()

    def _unavailable(self, exc: DatabaseUnavailable) -> Reply:
        return self._error(f"{exc.headline()}; nothing was run. {exc.advice}")

    # -- the request path -------------------------------------------------
    async def handle(self, req: Request) -> Reply:
        with observe.scope(req.correlation_id, req.actor.id, req.platform, req.channel, req.command):
            if not self.jobs.accepting:
                return self._closing(req)
            with self._accept():
                # No NUL past this point: PostgreSQL's text cannot hold one (infra.db.common.without_nul).
                req.text, req.command, req.args = without_nul(req.text), without_nul(req.command), without_nul(req.args)
                return redact_reply(self.redactor, await self._handle_safely(req))

    async def _handle_safely(self, req: Request) -> Reply:
        try:
            return await self._handle(req)
        except DatabaseUnavailable as exc:
            ERRORS.labels("database").inc()
            observe.note(outcome="database_unavailable")
            return self._unavailable(exc)
        except Exception:
            ERRORS.labels("internal").inc()
            observe.note(outcome="error")
            log.exception("unexpected error [%s]", req.correlation_id)
            return self._error(f"Something went wrong on my side (ref {req.correlation_id}); "
                               "nothing more was done. The log has the details.")

    def _named_first(self, text: str) -> str | None:
        """The command whose own word opens the text ("approve r-…", "/ops lock prod"), if any."""
        words = [w.strip(",:;!?.") for w in text[:200].lower().split()]
        words = [w for w in words if w.lstrip("@") not in LEADERS][:2]
        return next(filter(None, (self.registry.command_for_word(" ".join(words[:n]))
                                  for n in (2, 1) if len(words) >= n)), None)

    async def plan(self, req: Request) -> Plan:
        """The validated plan for a request, without side effects."""
        limit = self.config.inventory.limits.max_text_chars
        if len(req.text) > limit:
            # Not parsed, but when it starts with a command word an action was asked for: audit it.
            attempted = self._named_first(req.text)
            return Plan.unknown(f"That message is too long ({len(req.text)} characters; "
                                f"the limit is {limit}). Send the command alone.", attempted=attempted)
        if req.command:
            raw = Plan(req.command, dict(req.args or {}), source=req.route, when=req.when)
        else:
            began = time.perf_counter()
            raw = await self.planner.plan(req.text, channel=req.channel, thread=req.thread,
                                          actor=req.actor.id, use_llm=None if req.allow_llm else False)
            PLAN_SECONDS.labels(raw.source or "unknown").observe(time.perf_counter() - began)
            raw = with_when(raw, req.when)  # the API's `when` beside a text
        # Model and thread plans: every target must be in the user's words (now or earlier in the thread).
        plan = validate(raw, self.resolver, self.registry, text=" ".join(filter(None, (req.text, raw.context))),
                        default_env=self.config.default_env(req.channel),
                        require_mentioned=raw.source in INFERRED)
        if raw.when is not None:
            plan.when = raw.when
            if raw.when.problem and plan.clarify is None:
                plan = Plan(None, plan.args, plan.source, raw.when.problem, 0.0, plan.command)
        if plan.complete:
            plan = self._unconfirmed_guess(req, raw, plan) or await self._whole_ids(plan)
        observe.note(command=plan.command or plan.attempted)
        return plan

    def _unconfirmed_guess(self, req: Request, raw: Plan, plan: Plan) -> Plan | None:
        """The question for a change the plain-language reader read whole but was not sure of (a word it
        could not place: "restart n8n dev blorp") on a route where nobody sees an "I understood: …" card
        before it runs (the HTTP API, `--yes`): there, acting on the part it understood would be a guess.
        (A reading that asked for a value the channel's default then gave is not a guess.)"""
        spec = self.registry[plan.command or ""]
        if not (req.confirmed and not req.command and spec.changes and raw.source == "grammar" and raw.complete
                and raw.confidence < self.config.inventory.llm.grammar_confidence):
            return None
        return Plan(None, plan.args, plan.source,
                    f"That reads as '{describe(spec, plan.args)}', but not word for word, and a request sent "
                    f"this way runs without a confirmation, so nothing was run. Send it in the canonical "
                    f"form: {spec.usage}.", 0.0, plan.command)

    async def _whole_ids(self, plan: Plan) -> Plan:
        """An id given by its first digits ("approve r-5d2d") as the whole id of the one request or schedule
        it names, so the card says exactly what will be decided; none or several is a question, asked
        before anything is confirmed."""
        spec = self.registry[plan.command or ""]
        for arg in spec.args:
            value = plan.args.get(arg.name)
            if arg.kind not in (Kind.request, Kind.schedule) or not isinstance(value, str) or len(value) >= WHOLE_ID:
                continue
            rows: list[Any] = await self._db(
                self.store.find if arg.kind is Kind.request else self.schedules.rows.find_schedules, value)
            problem = named_problem(arg.kind.value, value, rows)
            if problem is None:
                plan = dataclasses.replace(plan, args={**plan.args, arg.name: rows[0].id})
                continue
            return Plan(None, plan.args, plan.source, problem if rows else f"{problem} Nothing was done.", 0.0,
                        plan.command, decided=Outcome.ask)
        return plan

    async def _handle(self, req: Request) -> Reply:
        plan = await self.plan(req)
        if not plan.complete:
            return await self._unresolved(req, plan)
        assert plan.command is not None
        spec = self.registry[plan.command]
        # Where it was asked, and whether this person may do it there: the same on every route.
        denied = (channel_refusal(self.config, req.channel, spec.name, plan.args)
                  or check(self.config, spec, req.actor.id, plan.args))
        if denied:
            return await self._refuse(req, plan, denied)
        roles = roles_for(self.config, req.actor.id, plan.args)
        if plan.when is not None:
            return await self.schedules.propose(req, plan, spec, roles)
        if not spec.changes:
            return await self._run_read(req, plan, spec, roles)
        return await self._propose_change(req, plan, spec)

    async def _unresolved(self, req: Request, plan: Plan) -> Reply:
        if plan.clarify is None:
            hint = " or ".join(f"'{e}'" for e in sample_requests(self.config, self.resolver, self.registry))
            text = "I didn't catch an ops request there. Say 'help' to see what I can do" + (
                f", e.g. {hint}." if hint else ".")
        else:
            text = plan.clarify + await self._candidates(req, plan)
        if plan.attempted:
            return await self._refuse(req, plan, text, Tone.question)
        return Reply(text, tone=Tone.question)

    async def _candidates(self, req: Request, plan: Plan) -> str:
        """Under the question for a left-out request id ("deny that one"), the requests it could name, as
        its argument declares them (`Candidates`): listed for the person to say, never picked for them.
        Only for someone the command is open to (a viewer's "approve" lists nobody's requests)."""
        spec = self.registry.get(plan.attempted or "")
        want = next((a.candidates for a in spec.args if a.candidates and a.name not in plan.args), None) \
            if spec else None
        if spec is None or want is None or check(self.config, spec, req.actor.id, plan.args):
            return ""
        me = req.actor.id
        rows = await self._db(self.store.requests_in, want.statuses, me if want.whose is Whose.own else None,
                              me if want.whose is Whose.others else None, CANDIDATES_SHOWN + 1)
        if not rows:
            return f"\n{want.heading}: none."
        listed = [f"{r.id} ({self.said(r)}, by {r.actor})" for r in rows[:CANDIDATES_SHOWN]]
        more = [f"and more ('{want.listed_by}' lists them all)"] if len(rows) > CANDIDATES_SHOWN else []
        return f"\n{want.heading}: {'; '.join(listed + more)}."

    def said(self, row: RequestRow) -> str:
        """A recorded request in its canonical form ("restart hello local-prod"), as lists show it."""
        spec = self.registry.get(row.command or "")
        return spec.describe(row.args or {}) if spec else (row.command or "?")

    def _context(self, req: Request, rid: str, roles: frozenset[Role], card: list[str] | None = None) -> Context:
        last: list[str] = []

        async def report(text: str, **detail: Any) -> None:
            clean = self.redactor.text(text)
            if last == [clean]:
                return  # nothing changed since the last line: neither the log nor the chat needs it again
            last[:] = [clean]
            await self._write(self.store.note_later, rid, "progress", req.actor.id, {"text": clean, **detail})
            if req.on_progress is not None:
                await req.on_progress(Reply(clean, tone=Tone.pending, request_id=rid))

        return Context(config=self.config, store=self.store, backends=self.backends,
                       resolver=self.resolver, actor=req.actor, roles=roles, request=req,
                       request_id=rid, engine=self, report=report, card=card)

    def _full_args(self, spec: CommandSpec, args: dict[str, Any]) -> dict[str, Any]:
        out = dict(args)
        for a in spec.args:
            if out.get(a.name) is None and a.default is not None:
                out[a.name] = a.default
        return out

    async def _run_read(self, req: Request, plan: Plan, spec: CommandSpec,
                        roles: frozenset[Role]) -> Reply:
        row = self._row(req, plan, Status.started)
        await self._create(req, row, (Status.started, {}))
        return (await self._invoke(req, spec, plan.args, row.id, roles, req.actor)).reply

    async def _invoke(self, req: Request, spec: CommandSpec, args: dict[str, Any], rid: str,
                      roles: frozenset[Role], actor: Actor, card: list[str] | None = None,
                      locks: bool = False) -> Ran:
        """Run a handler whose `started` row is committed; record and return the outcome.

        `locks`: the run holds execution locks, which the outcome's audit write frees (one commit)."""
        ctx = self._context(req, rid, roles, card)
        began = time.perf_counter()

        cut: list[Interruption] = []
        cut_ran: list[Ran] = []

        async def end(to: Status, detail: dict[str, Any], reply: Reply, by: str | None = None,
                      **fields: Any) -> Ran:
            moved = await self._write(self.store.transition_later, rid, (Status.started,), to, by or actor.id,
                                      detail, free_locks=locks, **fields)
            return Ran(reply, Status(moved.status) if moved else None, freed=locks)

        async def interrupted(why: Interruption) -> Reply:
            cut.append(why)
            cut_ran.append(await self._interrupted(spec, rid, req, why, end))
            return cut_ran[0].reply

        try:
            reply = await self.jobs.run(rid, spec.name, spec.handler(ctx, self._full_args(spec, args)),
                                        on_cancel=interrupted, correlation_id=req.correlation_id)
            if cut and cut[0].cause is Cause.caller:
                raise asyncio.CancelledError  # recorded; now honour the caller's cancellation
            if cut:
                return Ran(reply, cut_ran[0].status, cut_ran[0].freed) if cut_ran else Ran(reply)
        except CannotSucceed as exc:
            # Found before it changed anything (the handler's own check): refused, not failed.
            msg = str(exc)
            return await end(Status.refused, {"reason": msg}, self._error(msg, rid), reason=msg)
        except CommandError as exc:
            ERRORS.labels("command").inc()
            msg = str(exc)
            return await end(Status.failed, {"error": msg}, self._error(msg, rid), error=msg)
        except DatabaseUnavailable as exc:
            # Lost mid-run (a progress note could not be written): the handler had started and may
            # have changed things, so "nothing was run" would be untrue.
            ERRORS.labels("database").inc()
            log.error("audit database lost while %s ran [%s]: %s", spec.name, req.correlation_id, exc)
            return Ran(self._error(f"{exc.while_running(spec.name)}, so I stopped it there; what it had done "
                                   "by then is not known: "
                                   f"check the target. Request {rid} stays 'started' until the bot's next "
                                   "start marks it interrupted.", rid))
        except Exception as exc:
            ERRORS.labels("handler").inc()
            log.exception("handler %s failed [%s]", spec.name, req.correlation_id)
            msg = f"internal error in {spec.name} (ref {req.correlation_id})"
            return await end(Status.failed, {"error": msg, "type": type(exc).__name__},
                             self._error(f"{spec.name} failed on my side (ref {req.correlation_id}); "
                                         "the audit log records it.", rid), error=msg)
        finally:
            HANDLER_SECONDS.labels(spec.name, spec.backend or "none").observe(time.perf_counter() - began)
        reply.request_id = reply.request_id or rid
        outcome = Status.failed if reply.tone is Tone.error else Status.succeeded
        summary = reply.text[:500]
        try:
            return await end(outcome, {"result": summary}, reply,
                             result=summary if outcome is Status.succeeded else None,
                             error=summary if outcome is Status.failed else None)
        except DatabaseUnavailable as exc:
            reply.text += (f"\n(It ran, but its result could not be written to the audit log: {exc}. "
                           f"Request {rid} stays 'started' until the bot's next start marks it.)")
        return Ran(reply)

    async def _interrupted(self, spec: CommandSpec, rid: str, req: Request, cut: Interruption,
                           end: Callable[..., Awaitable[Ran]]) -> Ran:
        """A job was cancelled: record it as interrupted (its outcome is unknown) and say so."""
        if cut.cause is Cause.person:
            why = f"{cut.by} cancelled it" + (f" ({cut.reason})" if cut.reason else "")
        else:
            why = "the bot shut down" if cut.cause is Cause.shutdown else "its caller went away"
        msg = (f"interrupted: {why} before {spec.name} finished; what it had done so far is not known, "
               "check the target's state")
        detail: dict[str, Any] = {"reason": msg, "cause": cut.cause.value}
        if cut.by:
            detail["cancelled_by"] = cut.by
        return await end(Status.interrupted, detail,
                         self._error(f"{spec.name} was interrupted because {why} before it finished (ref "
                                     f"{req.correlation_id}). Check the target's state before asking again.", rid),
                         by=cut.by or "system", error=msg)

    # -- changes ----------------------------------------------------------
    async def _frozen(self, spec: CommandSpec, targets: list[str]) -> str | None:
        if spec.backend is None:
            return None
        locks = await self._db(self.store.env_locks)
        for key in targets:
            kind, _, name = key.partition(":")
            if kind == "env" and name in locks:
                lk = locks[name]
                why = f" ({lk.reason})" if lk.reason else ""
                return (f"{name} is frozen by {lk.locked_by} since "
                        f"{aware(lk.locked_at):%Y-%m-%d %H:%M} UTC{why}: no changes until an admin "
                        f"says 'unlock {name}'.")
        return None

    async def _preview(self, req: Request, spec: CommandSpec, args: dict[str, Any],
                       roles: frozenset[Role]) -> list[str]:
        """What the change will do, for its card; raises CannotSucceed when it cannot work at all.

        Only a backend that does not answer (BackendUnavailable) leaves the card with a note: the
        change may still work by the time it runs, so people decide with that in view. Every other
        error says something about the request itself (a git ref that is not known, a compose file
        that does not validate, a backend not configured): it cannot work as asked, so nobody is
        asked to confirm or approve it.
        """
        if spec.preview is None:
            return []
        ctx = self._context(req, "", roles)
        try:
            return await spec.preview(ctx, self._full_args(spec, args))
        except CannotSucceed:
            raise
        except BackendUnavailable as exc:
            return [f"(preview unavailable: {exc})"]
        except CommandError as exc:
            raise CannotSucceed(str(exc)) from exc

    async def _propose_change(self, req: Request, plan: Plan, spec: CommandSpec) -> Reply:
        targets = lock_targets(self.config, plan.args) if spec.backend else []
        try:
            self.backends.require(spec.backend, plan.args)
            frozen = await self._frozen(spec, targets)
        except CommandError as exc:
            frozen = str(exc)
        frozen = frozen or self.secret_argument(plan)
        roles = roles_for(self.config, req.actor.id, plan.args)
        if not frozen:
            limited = await self._db(self.limiter.check, spec, req.actor.id, req.channel, roles)
            frozen = limited.message(req.channel or "") if limited else None
        if frozen:
            return await self._refuse(req, plan, frozen)
        approval = needs_approval(self.config, spec, plan.args)
        digest = plan_hash(spec.name, plan.args)
        expires = utcnow() + timedelta(minutes=self.config.inventory.approvals.expiry_minutes)
        confirming = self.must_confirm(req, plan, spec)
        lines: list[str] = []
        if confirming or approval:
            # Nobody is asked to confirm or approve what its own preview shows cannot work.
            try:
                lines = await self._preview(req, spec, plan.args, roles)
            except CannotSucceed as exc:
                return await self._refuse(req, plan, str(exc))
        if confirming:
            row = self._row(req, plan, Status.awaiting_confirmation, plan_hash=digest, expires_at=expires)
            await self._create(req, row, (Status.awaiting_confirmation,
                                          {"plan_hash": digest, "preview": shown(lines)}))
            note = " It needs an approver's OK after that (protected target)." if approval else ""
            return Reply(f"I understood: {describe(spec, plan.args)}. Run it?{note}",
                         tone=Tone.question, title="Confirm", fields=self._card(spec, plan.args, lines),
                         buttons=[Button("Run it", Action.confirm, row.id, digest, "primary"),
                                  Button("Cancel", Action.cancel, row.id, digest)],
                         request_id=row.id, private=True)
        approved_by = await self.schedules.preapproved(req, digest) if approval else None
        if approved_by is not None:
            # A run of a schedule approved when it was scheduled (bound to this plan hash).
            row = self._row(req, plan, Status.approved, plan_hash=digest, approver=approved_by,
                            schedule_id=req.schedule)
            await self._create(req, row, (Status.approved, {"plan_hash": digest, "schedule": req.schedule,
                                                             "approved_when_scheduled": True}))
            return (await self._execute(req, row, roles, (Status.approved,))).reply
        if approval:
            row = self._row(req, plan, Status.pending_approval, plan_hash=digest, expires_at=expires,
                            schedule_id=req.schedule)
            await self._create(req, row, (Status.pending_approval, {"plan_hash": digest, "preview": shown(lines)}))
            return await self._approval_card(req, spec, row, lines)
        row = self._row(req, plan, Status.requested, plan_hash=digest, schedule_id=req.schedule)
        # the request is written with its start (one commit), or alone before a refusal
        creating = self.store.creating(row, [(Status.requested, self._requested_detail(row))])
        return (await self._execute(req, row, roles, (Status.requested,), first=[creating])).reply

    def secret_argument(self, plan: Plan) -> str | None:
        """Why a change (now or scheduled) whose arguments hold something secret-looking is refused: the
        audit log keeps arguments redacted, so such a plan could never match its hash later."""
        if self.redactor.data(plan.args) == plan.args:
            return None
        return ("An argument of that request looks like a secret (a token, key or password); "
                "I won't store or run it. Leave the secret out and ask again.")

    def must_confirm(self, req: Request, plan: Plan, spec: CommandSpec) -> bool:
        """Whether a change (run now or scheduled) waits for its requester's "Run it" first: when its command
        asks for that, when the model or the thread read it, and when it was read from plain language, even a
        command whose canonical form acts at once (approve, deny, lock, …): a misread sentence is a proposal,
        never an act (docs/safety.md).  `--yes` and the HTTP API have confirmed already."""
        plain = plan.source == "grammar" and not req.command and self._named_first(req.text) != spec.name
        return spec.changes and (spec.confirm or plan.source in INFERRED or plain) and not req.confirmed

    def _card(self, spec: CommandSpec, args: dict[str, Any], lines: list[str]) -> list[tuple[str, str]]:
        fields = [("Command", describe(spec, args))]
        for key in ("env", "stack", "service", "vm", "snapshot"):
            if args.get(key):
                fields.append((key.capitalize(), str(args[key])))
        if lines:
            fields.append(("What will happen", "\n".join(lines)))
        return fields

    def approvers(self, requester: str, args: dict[str, Any] | None = None) -> list[str]:
        """Who may approve a request of `requester` on these targets: every other approver in scope."""
        return approvers(self.config, requester, args or {})

    async def _approval_card(self, req: Request, spec: CommandSpec, row: RequestRow, lines: list[str]) -> Reply:
        mins = self.config.inventory.approvals.expiry_minutes
        who = self.approvers(row.actor, row.args)
        may = ", ".join(who) if who else ("nobody: no other user has the approver role for this in the config; "
                                          f"{row.actor} can withdraw it ('withdraw {row.id}')")
        when = await self.schedules.when_of(row)
        card = Reply(
            f"{describe(spec, row.args)}{when and f' ({when})'} targets a protected system and needs approval "
            f"from another approver. Request {row.id} waits {mins} minutes: 'approve {row.id}' or "
            f"'deny {row.id}'; {row.actor} can take it back with 'withdraw {row.id}'.",
            tone=Tone.pending, title=f"Approval needed: {row.id}",
            fields=[*self._card(spec, row.args, lines), *([("When", when)] if when else []),
                    ("Requested by", row.actor), ("Who may approve", may)],
            buttons=[Button("Approve", Action.approve, row.id, row.plan_hash or "", "primary"),
                     Button("Deny", Action.deny, row.id, row.plan_hash or "", "danger"),
                     Button("Withdraw", Action.withdraw, row.id, row.plan_hash or "")],
            request_id=row.id, mentions=who)
        # The environment's ops channel sees every approval card too (not twice where it was asked).
        self.notify.announce(Notice.approvals, targets_of(self.config, row.args),
                             redact_reply(self.redactor, card), besides=req.channel)
        return card

    async def _execute(self, req: Request, row: RequestRow, roles: frozenset[Role],
                       from_status: tuple[Status, ...], actor: Actor | None = None,
                       shown_in: str | None = None, first: Sequence[Write[Any]] = ()) -> Ran:
        """Take the locks, mark started (committed), run, record the result (and free the locks with it).

        `first`: what led here and is not written yet (the request itself, a confirmation), after which
        the request is in `from_status`: written in the transaction that marks the run started, or on its
        own before a refusal or a schedule, so the log shows it either way."""
        actor = actor or req.actor
        assert row.command is not None
        spec = self.registry[row.command]
        refusal: tuple[Status, str, str] | None = None  # what it becomes, why, and what the reply says
        # The requester's roles as configured now: a role taken away while a request waited counts.
        denied = check(self.config, spec, row.actor, row.args)
        if denied:
            refusal = (Status.refused, denied, f"Request {row.id} was not run: {row.actor} no longer may. {denied}")
        elif plan_hash(spec.name, row.args) != row.plan_hash:
            msg = "The stored plan does not match the hash it was confirmed with; not running it."
            refusal = (Status.failed, msg, msg)
        scheduling = refusal is None and await self.schedules.is_scheduling(row)
        targets = lock_targets(self.config, row.args) if spec.backend else []
        card: list[str] | None = None  # the card the person saw, read beside the freeze check
        if refusal is None and not scheduling:
            # (a request still `requested` was asked without a card: `--yes`, the API, a schedule's run)
            seen = self._card_shown(row.id) if row.status != Status.requested else _nothing()
            frozen, card = await asyncio.gather(self._frozen(spec, targets), seen)
            if frozen:
                refusal = (Status.refused, frozen, frozen)
        if first and (refusal or scheduling):
            for write in first:
                if await self._write(self.store.submit, write) is None:
                    already = await self._already(row.id)
                    return Ran(already.reply, already.status, applied=False)
            self._recorded(req, row)
            first = ()
        if refusal is not None:
            to, why, shown = refusal
            key = "reason" if to is Status.refused else "error"
            await self._write(self.store.transition_later, row.id, from_status, to, actor.id, {key: why},
                              **{key: why})
            return Ran(self._error(shown, row.id))
        if scheduling:
            return Ran(await self.schedules.arm(row, from_status, actor))
        ran: Ran | None = None
        try:
            # the locks and "started" in one commit: no second write on the way to running
            started, holder = await self._db(self.store.start, row.id, from_status, actor.id,
                                             {"plan_hash": row.plan_hash}, targets, first)
            observe.saw_row(started)  # (the request's id and status for the logs, as every write gives them)
            if first and (started is not None or holder):
                self._recorded(req, row)
            if holder:
                msg = (f"Another change ({holder}) is running on {', '.join(targets)}; nothing was "
                       "changed. Ask again when it has finished.")
                # refused, not failed: it never ran (docs/safety.md; the API answers 403, not "it ran and failed")
                await self._write(self.store.transition_later, row.id, from_status, Status.refused, actor.id,
                                  {"reason": msg}, reason=msg)
                return Ran(self._error(msg, row.id))
            if started is None:
                current = await self._db(self.store.get, row.id)
                return Ran(Reply(f"Request {row.id} {standing(current)}; nothing was run twice.",
                                 tone=Tone.info, request_id=row.id),
                           Status(current.status) if current else None, applied=not first)
            run_req = Request(actor=req.actor, text=row.text, platform=req.platform,
                              channel=req.channel, thread=req.thread,
                              correlation_id=row.correlation_id, on_progress=req.on_progress,
                              schedule=req.schedule, scheduled_for=req.scheduled_for)
            ran = await self._invoke(run_req, spec, row.args, row.id, roles, actor, card, locks=bool(targets))
        finally:
            if targets and not (ran and ran.freed):
                await self._release(row.id)
        self._announce_outcome(spec, row.id, ran.reply, besides=(req.channel, shown_in))
        return ran

    async def expire_due(self, now: datetime | None = None) -> list[RequestRow]:
        """Expire the requests nobody decided in time, and say so in their environments' ops channels.

        Runs at start and periodically (bot/upkeep.py), so a request expires when its time is up, not
        only when someone clicks its card; each expiry is audited before it is announced.
        """
        expired = await self._db(self.store.expire_due, now)
        for row in expired:
            spec = self.registry.get(row.command or "")
            if spec is None:
                continue
            reply = Reply(f"Request {row.id} expired: nobody decided on {describe(spec, row.args)} "
                          f"(asked by {row.actor}) in time, so it did not run. Ask again if it is still needed.",
                          tone=Tone.warning, title=f"Expired: {row.id}", request_id=row.id)
            self._announce_outcome(spec, row.id, reply)
        return expired

    def _announce_outcome(self, spec: CommandSpec, rid: str, reply: Reply,
                          besides: tuple[str | None, ...] = ()) -> None:
        """Post a change's outcome to its environments' ops channels (not where it is already shown).

        In the background: the reply never waits for a chat platform, and a database or platform
        error there is logged, never mistaken for the request's own outcome.
        """
        self.notify.spawn(self._post_outcome(spec, rid, reply, besides))

    async def _post_outcome(self, spec: CommandSpec, rid: str, reply: Reply, besides: tuple[str | None, ...]) -> None:
        try:
            row = await self._db(self.store.get, rid)
        except DatabaseUnavailable as exc:
            log.warning("outcome of %s not announced: %s", rid, exc)
            return
        if row is None or row.command is None:
            return
        envs = targets_of(self.config, row.args)
        targets = [t for t in self.notify.targets(envs, Notice(spec.notice)) if t.qualified not in besides]
        if not targets:
            return
        fields = [("Requested by", row.actor)]
        if row.approver:
            fields.append(("Approved by", row.approver))
        notice = Reply(reply.text[:1500], tone=reply.tone,
                       title=f"{describe(spec, row.args)}: {row.status}"[:140], fields=fields, request_id=rid)
        await self.notify.post_all(targets, redact_reply(self.redactor, notice))

    async def _card_shown(self, rid: str) -> list[str] | None:
        """The preview lines of the last card a person saw for this request (None: no card)."""
        events = await self._db(self.store.events, rid)
        return next((list(e.detail["preview"]) for e in reversed(events)
                     if e.kind in PENDING and isinstance(e.detail.get("preview"), list)), None)

    async def _release(self, rid: str) -> None:
        """Free a run's locks; if the database is gone the run's own reply still stands."""
        try:
            await self._db(self.store.release, rid)
        except DatabaseUnavailable as exc:
            log.error("could not free the execution locks of %s (%s); the next start frees them", rid, exc)

    # -- buttons and approve/deny/withdraw --------------------------------
    async def act(self, action: str, request_id: str, actor: Actor, plan_digest: str | None = None,
                  reason: str | None = None, req: Request | None = None) -> Reply:
        """A confirm/cancel/approve/deny/withdraw from a button or command; safe to call twice.

        `plan_digest`: the plan hash a button carries (mandatory for a button: an empty one is
        refused); None for a decision typed by request id (`approve r-…`) or the console prompt.
        """
        return (await self.decide(action, request_id, actor, plan_digest, reason, req)).reply

    async def decide(self, action: str, request_id: str, actor: Actor, plan_digest: str | None = None,
                     reason: str | None = None, req: Request | None = None) -> Decision:
        """Like `act`, and says whether this actor's action moved the request, and to what."""
        req = req or Request(actor=actor, text=f"{action} {request_id}", platform=actor.platform)
        with observe.scope(req.correlation_id, actor.id, actor.platform, req.channel, action):
            if not self.jobs.accepting:
                return Decision(self._closing(req))
            with self._accept():
                try:
                    decision = await self._act(action, request_id.strip().lower(), actor, plan_digest,
                                               reason, req)
                except DatabaseUnavailable as exc:
                    ERRORS.labels("database").inc()
                    observe.note(outcome="database_unavailable")
                    decision = Decision(self._unavailable(exc))
                decision.reply = redact_reply(self.redactor, decision.reply)
                return decision

    async def _named_request(self, ref: str) -> RequestRow | Reply:
        """The one request an id or its first digits name ("approve r-7c2e", as people copy ids); a
        refusal that says which when none or several match."""
        rows = await self._db(self.store.find, ref)
        problem = named_problem("request", ref, rows)
        return self._error(problem) if problem else rows[0]

    async def _act(self, action: str, rid: str, actor: Actor, digest: str | None, reason: str | None,
                   req: Request) -> Decision:
        if action == Action.run:
            if not digest:  # only an alert's button asks for a suggested plan, and it carries its hash
                return Decision(self._error("That button carries no plan hash; nothing was done."))
            return Decision(await self.schedules.suggested(rid, digest, actor, req), applied=True)
        row = await self._named_request(rid)
        if isinstance(row, Reply):
            return Decision(row)
        rid = row.id
        status = Status(row.status)
        roles = roles_for(self.config, actor.id, row.args)
        if action in ("approve", "deny"):
            # A decision is taken in a channel that takes its environment (the channel's `envs`).
            elsewhere = channel_refusal(self.config, req.channel, row.command or "", row.args, envs_only=True)
            if elsewhere:
                return await self._decision_refused(action, row, actor, elsewhere)
        if overdue(row, utcnow()):
            moved = await self._write(self.store.transition_later, rid, PENDING, Status.expired, "system",
                                      {"reason": "not decided in time"})
            return Decision(self._error(f"Request {rid} expired before it was decided; ask again if it "
                                        "is still needed.", rid), status=Status.expired if moved else status)
        if digest is not None and (not digest or digest != row.plan_hash):
            # A button always names the plan it was made for; one without, or for another, does nothing.
            return self._unmoved(self._error(f"Request {rid} is not the plan this button was made for; "
                                             "nothing done.", rid), row)
        try:
            act = Action(action)
        except ValueError:
            return self._unmoved(self._error(f"Unknown action '{action}'.", rid), row)
        if act in (Action.confirm, Action.cancel):
            return await self._confirm(act, row, actor, req, roles)
        if act is Action.withdraw:
            return await self._withdraw(row, actor, reason)
        if Role.approver not in roles:
            return await self._decision_refused(act, row, actor, f"You need the approver role to {act} requests.")
        if act is Action.approve and actor.automated:
            # "Another person's approval": a token's roles never stand in for one (docs/api.md).
            return await self._decision_refused(act, row, actor, f"{actor.id} is an automation token; an approval "
                                                f"is a person's decision, so {rid} waits for an approver in chat.")
        if actor.id == row.actor:
            return await self._decision_refused(act, row, actor, f"You can't {act} your own request {rid}; another "
                                                f"approver must. You can take it back with 'withdraw {rid}'.")
        if status not in APPROVABLE:
            return self._unmoved(Reply(f"Request {rid} {standing(row)}; nothing was done twice.",
                                       tone=Tone.info, request_id=rid), row)
        if act is Action.deny:
            why = reason or None
            moved = await self._write(self.store.transition_later, rid, APPROVABLE, Status.denied, actor.id,
                                      {"reason": why}, approver=actor.id, reason=why)
            if moved is None:
                return await self._already(rid)
            denied = Reply(f"Denied {rid} ({row.command} for {row.actor}) by {actor.id}; nothing was "
                           "changed." + (f" Reason: {why}" if why else ""), tone=Tone.warning,
                           request_id=rid, mentions=[row.actor], mention_label="Requested by")
            spec_denied = self.registry.get(row.command or "")
            if spec_denied is not None:
                self._announce_outcome(spec_denied, rid, denied, besides=(req.channel, row.channel))
            return Decision(self._tell_requester(denied, row, req), applied=True, status=Status.denied)
        assert row.command is not None
        if plan_hash(row.command, row.args) != row.plan_hash:
            return self._unmoved(self._error(f"Request {rid} changed since it was requested; not approved.",
                                             rid), row)
        moved = await self._write(self.store.transition_later, rid, APPROVABLE, Status.approved, actor.id,
                                  {"plan_hash": row.plan_hash}, approver=actor.id)
        if moved is None:
            return await self._already(rid)
        run_as = Request(actor=Actor(row.actor), text=row.text, platform=row.platform,
                         channel=row.channel, thread=row.thread, correlation_id=row.correlation_id,
                         on_progress=req.on_progress, schedule=row.schedule_id)
        ran = await self._execute(run_as, moved, roles_for(self.config, row.actor, row.args),
                                  (Status.approved,), actor, shown_in=req.channel)
        return await self._applied(self._told(ran.reply, f"Approved by {actor.id}", row, req), rid, ran.status)

    def _told(self, result: Reply, decision: str, row: RequestRow, req: Request) -> Reply:
        """The run's own outcome, with the decision on a line of its own and the requester named.

        "✘ Approved r-1 … prod is frozen" read as approved and failed at once: the decision
        is a field, the text is only what happened when it ran.
        """
        result.fields = [("Decision", f"{decision} ({row.command} for {row.actor})"), *result.fields]
        result.request_id = result.request_id or row.id
        if not result.mentions:
            result.mentions, result.mention_label = [row.actor], "Requested by"
        return self._tell_requester(result, row, req)

    @staticmethod
    def _tell_requester(reply: Reply, row: RequestRow, req: Request) -> Reply:
        """When a request is decided (or stopped) away from where it was asked, say so there too."""
        if row.channel and req.channel and (row.channel, row.thread) != (req.channel, req.thread):
            lines = [reply.text, *(f"{k}: {v}" for k, v in reply.fields if k == "Decision")]
            reply.relays.append(Relay(row.channel, row.thread, Reply(
                "\n".join(lines), tone=reply.tone, title=reply.title, request_id=row.id,
                mentions=[row.actor], mention_label="Requested by")))
        return reply

    async def _decision_refused(self, action: str, row: RequestRow, actor: Actor, why: str) -> Decision:
        """An approve or deny this actor may not take: told to them only, and written on the request as a
        `decision_refused` event (no status change), so an attempt to approve without the right shows in
        the audit log like every other refusal."""
        await self._write(self.store.note_later, row.id, "decision_refused", actor.id,
                          {"action": str(action), "reason": why})
        return self._unmoved(self._error(why, row.id), row)

    @staticmethod
    def _unmoved(reply: Reply, row: RequestRow) -> Decision:
        return Decision(reply, applied=False, status=Status(row.status))

    async def _applied(self, reply: Reply, rid: str, status: Status | None = None) -> Decision:
        """This actor moved the request; report where it ended (it may have run since): `status` when
        the run's own last write says so, else as the database has it now."""
        if status is not None:
            return Decision(reply, applied=True, status=status)
        row = await self._db(self.store.get, rid)
        return Decision(reply, applied=True, status=Status(row.status) if row else None)

    async def _already(self, rid: str) -> Decision:
        row = await self._db(self.store.get, rid)
        return Decision(Reply(f"Request {rid} {standing(row)}; nothing was done twice.",
                              tone=Tone.info, request_id=rid),
                        status=Status(row.status) if row else None)

    async def _withdraw(self, row: RequestRow, actor: Actor, reason: str | None) -> Decision:
        """The requester takes back a request that still waits for a person; audited."""
        if actor.id != row.actor:
            return self._unmoved(self._error(f"Only {row.actor} can withdraw their request {row.id}"
                                             + ("; an approver can deny it." if row.status in APPROVABLE
                                                else "."), row.id), row)
        if row.status not in PENDING:
            return self._unmoved(Reply(f"Request {row.id} {standing(row)}; there is nothing to "
                                       "withdraw." + (f" To stop it while it runs: 'cancel {row.id}'."
                                                      if row.status in ACTIVE else ""),
                                       tone=Tone.info, request_id=row.id), row)
        moved = await self._write(self.store.transition_later, row.id, PENDING, Status.withdrawn, actor.id,
                                  {"reason": reason}, reason=reason)
        if moved is None:
            return await self._already(row.id)
        return Decision(Reply(f"Withdrew {row.id} ({row.command} for {row.actor}); nothing was changed."
                              + (f" Reason: {reason}" if reason else ""), tone=Tone.info, request_id=row.id),
                        applied=True, status=Status.withdrawn)

    async def _confirm(self, action: Action, row: RequestRow, actor: Actor, req: Request,
                       roles: frozenset[Role]) -> Decision:
        if actor.id != row.actor:
            return self._unmoved(self._error(f"Only {row.actor} can {action} their request {row.id}.",
                                             row.id), row)
        if row.status not in CONFIRMABLE:
            return self._unmoved(Reply(f"Request {row.id} {standing(row)}; nothing was done twice.",
                                       tone=Tone.info, request_id=row.id), row)
        if action is Action.cancel:
            moved = await self._write(self.store.transition_later, row.id, CONFIRMABLE, Status.cancelled, actor.id, {})
            if moved is None:
                return await self._already(row.id)
            return Decision(Reply(f"Cancelled {row.id}; nothing was changed.", tone=Tone.info,
                                  request_id=row.id), applied=True, status=Status.cancelled)
        assert row.command is not None
        spec = self.registry[row.command]
        if needs_approval(self.config, spec, row.args) and await self.schedules.approve_now(row):
            try:
                lines = await self._preview(req, spec, row.args, roles)
            except CannotSucceed as exc:
                # It could have worked when it was asked; not any more (a snapshot deleted since).
                why = str(exc)
                moved = await self._write(self.store.transition_later, row.id, CONFIRMABLE, Status.refused, actor.id,
                                          {"reason": why}, reason=why)
                if moved is None:
                    return await self._already(row.id)
                return Decision(self._error(why, row.id), applied=True, status=Status.refused)
            moved = await self._write(self.store.transition_later, row.id, CONFIRMABLE, Status.pending_approval,
                                      actor.id, {"plan_hash": row.plan_hash, "preview": shown(lines)})
            if moved is None:
                return await self._already(row.id)
            return Decision(await self._approval_card(req, spec, moved, lines), applied=True,
                            status=Status.pending_approval)
        # "confirmed" is written with "started" (one commit), or alone before a refusal
        ran = await self._execute(req, row, roles, (Status.confirmed,),
                                  first=[self.store.moving(row.id, CONFIRMABLE, Status.confirmed, actor.id)])
        if not ran.applied:
            return Decision(ran.reply, status=ran.status)
        return await self._applied(ran.reply, row.id, ran.status)

    # -- cancelling a running change ---------------------------------------
    async def cancel(self, request_id: str, actor: Actor, reason: str | None = None,
                     req: Request | None = None) -> Decision:
        """Stop a running change (`cancel ID`, Ctrl-C in the console); audited as interrupted by `actor`.

        Its requester, an approver or an admin may. A request still waiting for a person is
        withdrawn by its requester instead (others deny it). Waits up to `cancel_wait_s` for
        the job to record its end, then says where it stands.
        """
        rid = request_id.strip().lower()
        req = req or Request(actor=actor, text=f"cancel {rid}", platform=actor.platform)
        with observe.scope(req.correlation_id, actor.id, actor.platform, req.channel, "cancel"):
            try:
                decision = await self._cancel(rid, actor, reason, req)
            except DatabaseUnavailable as exc:
                ERRORS.labels("database").inc()
                decision = Decision(self._unavailable(exc))
            decision.reply = redact_reply(self.redactor, decision.reply)
            return decision

    async def _cancel(self, rid: str, actor: Actor, reason: str | None, req: Request) -> Decision:
        row = await self._named_request(rid)
        if isinstance(row, Reply):
            return Decision(row)
        rid = row.id
        roles = self.config.roles_of(actor.id)
        if actor.id != row.actor and not roles & {Role.approver, Role.admin}:
            return self._unmoved(self._error(
                f"Only {row.actor} (who asked for it), an approver or an admin can cancel {rid}.", rid), row)
        status = Status(row.status)
        if status in PENDING:
            if actor.id == row.actor:
                return await self._act(Action.withdraw, rid, actor, None, reason, req)
            return self._unmoved(self._error(f"Request {rid} has not started; it waits for "
                                             f"{'approval' if status in APPROVABLE else 'confirmation'}. "
                                             + (f"You can deny it ('deny {rid}')." if Role.approver in roles
                                                else f"An approver can deny it ('deny {rid}')."), rid), row)
        if status not in ACTIVE:
            return self._unmoved(Reply(f"Request {rid} is not running: it {standing(row)}. Nothing to cancel.",
                                       tone=Tone.info, request_id=rid), row)
        job = self.jobs.cancel(rid, actor.id, reason)
        if job is None:
            row = await self._db(self.store.get, rid) or row
            if Status(row.status) in ACTIVE:
                return self._unmoved(self._error(
                    f"Request {rid} ({row.command}) runs in another bot process ({row.owner}); this one "
                    "can't stop it. Ask there, or wait for it to end.", rid), row)
            return self._unmoved(Reply(f"Request {rid} ended before it could be cancelled: it "
                                       f"{standing(row)}.", tone=Tone.info, request_id=rid), row)
        await asyncio.wait({job.task}, timeout=self.cancel_wait_s)
        after = await self._db(self.store.get, rid) or row
        what = f"{row.command} for {row.actor}"
        if after.status == Status.interrupted:
            stopped = Reply(f"Cancelled {rid} ({what}) by {actor.id} while it ran. What it had done by then "
                            "stays done: check the target's state before asking again.", tone=Tone.warning,
                            request_id=rid, mentions=[row.actor] if row.actor != actor.id else [],
                            mention_label="Requested by")
            # The requester's own request answers where they asked ("… because console:bob cancelled it").
            return Decision(stopped, applied=True, status=Status.interrupted)
        if after.status in ACTIVE:
            return Decision(Reply(f"Asked {rid} ({what}) to stop; it has not stopped after "
                                  f"{self.cancel_wait_s:g}s. The audit log records how it ends.",
                                  tone=Tone.warning, request_id=rid), applied=True, status=Status(after.status))
        return Decision(Reply(f"Request {rid} ({what}) finished before it could be stopped: it "
                              f"{after.status}.", tone=Tone.info, request_id=rid),
                        status=Status(after.status))
