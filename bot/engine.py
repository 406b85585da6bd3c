"""The engine: one platform-neutral path from a request to a reply.

request → plan → validate → authorise → freeze check → confirm → approve → lock →
audit(started) → handler → audit(result) → reply.  Each step that changes anything
is committed to the audit store before the next one acts on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from bot import observe
from bot.jobs import JobRegistry
from bot.metrics import ERRORS, HANDLER_SECONDS, PLAN_SECONDS
from bot.policy import authorise, lock_targets, protected
from bot.ratelimit import RateLimiter
from bot.redaction import redact_reply
from bot.request import Actor, Button, Reply, Request, Tone
from commands.context import Context
from commands.registry import CommandSpec, Registry
from commands.registry import registry as load_registry
from infra.backends import Backends
from infra.config import Config, Role
from infra.db.common import DatabaseUnavailable, aware, utcnow
from infra.db.models import RequestRow
from infra.db.store import AuditStore, new_request_id
from infra.errors import CannotRun, CommandError
from infra.redact import Redactor, secret_values
from llm.grammar import LEADERS
from llm.plan import Plan, plan_hash
from llm.planner import Planner
from llm.resolve import Resolver
from llm.validate import validate

log = logging.getLogger("chatops.engine")
T = TypeVar("T")
CONFIRMABLE = ("awaiting_confirmation",)
APPROVABLE = ("pending_approval",)
# Routes that infer a plan rather than read it: always mention-checked and shown back before running.
INFERRED = ("llm", "thread")


def describe(spec: CommandSpec, args: dict[str, Any]) -> str:
    """The canonical one-line form of a plan ("restart n8n rumpledev tail=…")."""
    parts = [spec.name]
    for a in spec.args:
        v = args.get(a.name)
        if v is None:
            continue
        if a.positional and a.required:
            parts.append(str(v))
        else:
            text = str(v)
            parts.append(f'{a.name}="{text}"' if " " in text else f"{a.name}={text}")
    return " ".join(parts)


class Engine:
    def __init__(self, config: Config, store: AuditStore, backends: Backends | None = None,
                 registry: Registry | None = None, planner: Planner | None = None) -> None:
        self.config = config
        self.store = store
        self.registry = registry or load_registry()
        self.resolver = Resolver(config)
        self.backends = backends or Backends(config)
        self.planner = planner or Planner(config, self.registry, self.resolver, backends=self.backends,
                                          store=store)
        self.redactor = Redactor(secret_values(config.inventory, config.settings))
        store.redactor = self.redactor  # the audit log masks what it writes with the same secrets
        self.jobs = JobRegistry()
        self.limiter = RateLimiter(config, store, self.registry)

    # -- plumbing ---------------------------------------------------------
    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        result = await asyncio.to_thread(fn, *args, **kwargs)
        observe.saw_row(result)  # the request's id and latest status, for logs and metrics
        return result

    async def start(self) -> list[RequestRow]:
        """Register this process and mark what a crashed one left running as interrupted."""
        await self._db(self.store.register_worker)
        interrupted = await self._db(self.store.recover)
        await self._db(self.store.expire_due)
        for row in interrupted:
            log.warning("request %s (%s) was interrupted by a restart", row.id, row.command)
        return interrupted

    async def close(self) -> None:
        await self._db(self.store.close)

    async def shutdown(self, grace_s: float) -> list[str]:
        """Accept no new requests; let running jobs finish within `grace_s`, interrupt the rest."""
        return await self.jobs.drain(grace_s)

    def _closing(self, req: Request) -> Reply:
        observe.note(outcome="shutting_down")
        log.info("refused a request while shutting down")
        return self._error("I'm restarting right now and not taking new requests; nothing was run. "
                           f"Ask again in a minute (ref {req.correlation_id}).")

    def _row(self, req: Request, plan: Plan, status: str, **fields: Any) -> RequestRow:
        spec = self.registry.get(plan.command or plan.attempted or "")
        args = plan.args  # the store masks secrets in everything it writes
        env = args.get("env") if isinstance(args.get("env"), str) else None
        target = args.get("service") or args.get("stack") or args.get("vm") or args.get("request")
        return RequestRow(
            id=new_request_id(), actor=req.actor.id, platform=req.platform, channel=req.channel,
            thread=req.thread, text=req.text[:2000], source=plan.source,
            command=plan.command or plan.attempted, args=args, env=env,
            target=str(target) if target else None, changes=bool(spec and spec.changes),
            status=status, correlation_id=req.correlation_id, **fields)

    def _requested_detail(self, row: RequestRow) -> dict[str, Any]:
        return {"command": row.command, "args": row.args, "actor": row.actor, "source": row.source,
                "text": row.text}

    def _error(self, text: str, rid: str | None = None) -> Reply:
        return Reply(text, tone=Tone.error, request_id=rid)  # masked with the reply at handle()/act()

    def _unavailable(self, exc: DatabaseUnavailable) -> Reply:
        return self._error(f"The audit database is unreachable ({exc}); nothing was run. "
                           "Try again when it is back.")

    # -- the request path -------------------------------------------------
    async def handle(self, req: Request) -> Reply:
        with observe.scope(req.correlation_id, req.actor.id, req.platform, req.channel, req.command):
            if not self.jobs.accepting:
                return self._closing(req)
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

    async def plan(self, req: Request) -> Plan:
        """The validated plan for a request, without side effects."""
        limit = self.config.inventory.limits.max_text_chars
        if len(req.text) > limit:
            # Not parsed, but when it starts with a command word an action was asked for: audit it.
            words = [w for w in req.text[:200].lower().split() if w not in LEADERS][:2]
            attempted = next(filter(None, (self.registry.command_for_word(" ".join(words[:n]))
                                           for n in (2, 1) if len(words) >= n)), None)
            return Plan.unknown(f"That message is too long ({len(req.text)} characters; "
                                f"the limit is {limit}). Send the command alone.", attempted=attempted)
        if req.command:
            raw = Plan(req.command, dict(req.args or {}), source="slash")
        else:
            began = time.perf_counter()
            raw = await self.planner.plan(req.text, channel=req.channel, thread=req.thread,
                                          actor=req.actor.id)
            PLAN_SECONDS.labels(raw.source or "unknown").observe(time.perf_counter() - began)
        # Model and thread plans: every target must be in the user's words (now or earlier in the thread).
        plan = validate(raw, self.resolver, self.registry, text=" ".join(filter(None, (req.text, raw.context))),
                        default_env=self.config.default_env(req.channel),
                        require_mentioned=raw.source in INFERRED)
        observe.note(command=plan.command or plan.attempted)
        return plan

    async def _handle(self, req: Request) -> Reply:
        plan = await self.plan(req)
        if not plan.complete:
            return await self._unresolved(req, plan)
        assert plan.command is not None
        spec = self.registry[plan.command]
        roles = self.config.roles_of(req.actor.id)
        denied = authorise(spec, roles)
        if denied:
            row = self._row(req, plan, "refused", reason=denied)
            await self._db(self.store.create, row, [("requested", self._requested_detail(row)),
                                                    ("refused", {"reason": denied})])
            return self._error(denied, row.id)
        if not spec.changes:
            return await self._run_read(req, plan, spec, roles)
        return await self._propose_change(req, plan, spec)

    async def _unresolved(self, req: Request, plan: Plan) -> Reply:
        text = plan.clarify or ("I didn't catch an ops request there. Say 'help' to see what I can "
                                "do, e.g. 'status rumpletest' or 'restart n8n on dev'.")
        if plan.attempted:
            row = self._row(req, plan, "refused", reason=text)
            await self._db(self.store.create, row, [("requested", self._requested_detail(row)),
                                                    ("refused", {"reason": text})])
            return Reply(text, tone=Tone.question, request_id=row.id)
        return Reply(text, tone=Tone.question)

    def _context(self, req: Request, rid: str, roles: frozenset[Role]) -> Context:
        async def report(text: str) -> None:
            clean = self.redactor.text(text)
            await self._db(self.store.note, rid, "progress", req.actor.id, {"text": clean})
            if req.on_progress is not None:
                await req.on_progress(Reply(clean, tone=Tone.pending, request_id=rid))

        return Context(config=self.config, store=self.store, backends=self.backends,
                       resolver=self.resolver, actor=req.actor, roles=roles, request=req,
                       request_id=rid, engine=self, report=report)

    def _full_args(self, spec: CommandSpec, args: dict[str, Any]) -> dict[str, Any]:
        out = dict(args)
        for a in spec.args:
            if out.get(a.name) is None and a.default is not None:
                out[a.name] = a.default
        return out

    async def _run_read(self, req: Request, plan: Plan, spec: CommandSpec,
                        roles: frozenset[Role]) -> Reply:
        row = self._row(req, plan, "started")
        await self._db(self.store.create, row, [("requested", self._requested_detail(row)),
                                                ("started", {})])
        return await self._invoke(req, spec, plan.args, row.id, roles, req.actor)

    async def _invoke(self, req: Request, spec: CommandSpec, args: dict[str, Any], rid: str,
                      roles: frozenset[Role], actor: Actor) -> Reply:
        """Run a handler whose `started` row is committed; record and return the outcome."""
        ctx = self._context(req, rid, roles)
        began = time.perf_counter()

        cut: list[bool] = []

        async def interrupted(by_shutdown: bool) -> Reply:
            cut.append(by_shutdown)
            return await self._interrupted(spec, rid, req, by_shutdown)

        try:
            reply = await self.jobs.run(rid, spec.name, spec.handler(ctx, self._full_args(spec, args)),
                                        on_cancel=interrupted)
            if cut and not cut[0]:
                raise asyncio.CancelledError  # recorded; now honour the caller's cancellation
            if cut:
                return reply
        except CommandError as exc:
            ERRORS.labels("command").inc()
            msg = str(exc)
            await self._db(self.store.transition, rid, ("started",), "failed", actor.id,
                           {"error": msg}, error=msg)
            return self._error(msg, rid)
        except DatabaseUnavailable as exc:
            # Lost mid-run (a progress note could not be written): the handler had started and may
            # have changed things, so "nothing was run" would be untrue.
            ERRORS.labels("database").inc()
            log.error("audit database lost while %s ran [%s]: %s", spec.name, req.correlation_id, exc)
            return self._error(f"The audit database became unreachable while {spec.name} was running "
                               f"({exc}), so I stopped it there; what it had done by then is not known: "
                               f"check the target. Request {rid} stays 'started' until the bot's next "
                               "start marks it interrupted.", rid)
        except Exception as exc:
            ERRORS.labels("handler").inc()
            log.exception("handler %s failed [%s]", spec.name, req.correlation_id)
            msg = f"internal error in {spec.name} (ref {req.correlation_id})"
            await self._db(self.store.transition, rid, ("started",), "failed", actor.id,
                           {"error": msg, "type": type(exc).__name__}, error=msg)
            return self._error(f"{spec.name} failed on my side (ref {req.correlation_id}); "
                               "the audit log records it.", rid)
        finally:
            HANDLER_SECONDS.labels(spec.name, spec.backend or "none").observe(time.perf_counter() - began)
        reply.request_id = reply.request_id or rid
        outcome = "failed" if reply.tone is Tone.error else "succeeded"
        summary = reply.text[:500]
        try:
            await self._db(self.store.transition, rid, ("started",), outcome, actor.id,
                           {"result": summary}, result=summary if outcome == "succeeded" else None,
                           error=summary if outcome == "failed" else None)
        except DatabaseUnavailable as exc:
            reply.text += (f"\n(It ran, but its result could not be written to the audit log: {exc}. "
                           f"Request {rid} stays 'started' until the bot's next start marks it.)")
        return reply

    async def _interrupted(self, spec: CommandSpec, rid: str, req: Request, by_shutdown: bool) -> Reply:
        """A job was cancelled: record it as interrupted (its outcome is unknown) and say so."""
        why = "the bot shut down" if by_shutdown else "its caller went away"
        msg = (f"interrupted: {why} before {spec.name} finished; what it had done so far is not known, "
               "check the target's state")
        await self._db(self.store.transition, rid, ("started",), "interrupted", "system",
                       {"reason": msg}, error=msg)
        return self._error(f"{spec.name} was interrupted because {why} before it finished (ref "
                           f"{req.correlation_id}). Check the target's state before asking again.", rid)

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
        if spec.preview is None:
            return []
        ctx = self._context(req, "", roles)
        try:
            return await spec.preview(ctx, self._full_args(spec, args))
        except CannotRun:
            raise  # the request cannot succeed: refused before confirmation or approval
        except CommandError as exc:
            return [f"(preview unavailable: {exc})"]

    async def _propose_change(self, req: Request, plan: Plan, spec: CommandSpec) -> Reply:
        targets = lock_targets(self.config, plan.args) if spec.backend else []
        try:
            self.backends.require(spec.backend, plan.args)
            frozen = await self._frozen(spec, targets)
        except CommandError as exc:
            frozen = str(exc)
        if not frozen and self.redactor.data(plan.args) != plan.args:
            # The audit log keeps arguments redacted, so such a plan could never match its hash later.
            frozen = ("An argument of that request looks like a secret (a token, key or password); "
                      "I won't store or run it. Leave the secret out and ask again.")
        roles = self.config.roles_of(req.actor.id)
        if not frozen:
            limited = await self._db(self.limiter.check, spec, req.actor.id, req.channel, roles)
            frozen = limited.message(req.channel or "") if limited else None
        if frozen:
            row = self._row(req, plan, "refused", reason=frozen)
            await self._db(self.store.create, row, [("requested", self._requested_detail(row)),
                                                    ("refused", {"reason": frozen})])
            return self._error(frozen, row.id)
        needs_approval = spec.approval and protected(self.config, plan.args)
        digest = plan_hash(spec.name, plan.args)
        expires = utcnow() + timedelta(minutes=self.config.inventory.approvals.expiry_minutes)
        asks = (spec.confirm or plan.source in INFERRED) and not req.confirmed
        lines: list[str] = []
        if asks or needs_approval:
            try:
                lines = await self._preview(req, spec, plan.args, roles)
            except CannotRun as exc:
                row = self._row(req, plan, "refused", reason=str(exc))
                await self._db(self.store.create, row, [("requested", self._requested_detail(row)),
                                                        ("refused", {"reason": str(exc)})])
                return self._error(str(exc), row.id)
        if asks:
            row = self._row(req, plan, "awaiting_confirmation", plan_hash=digest, expires_at=expires)
            await self._db(self.store.create, row, [("requested", self._requested_detail(row)),
                                                    ("awaiting_confirmation", {"plan_hash": digest})])
            note = " It needs an approver's OK after that (protected target)." if needs_approval else ""
            return Reply(f"I understood: {describe(spec, plan.args)}. Run it?{note}",
                         tone=Tone.question, title="Confirm", fields=self._card(spec, plan.args, lines),
                         buttons=[Button("Run it", "confirm", row.id, digest, "primary"),
                                  Button("Cancel", "cancel", row.id, digest)],
                         request_id=row.id, private=True)
        if needs_approval:
            row = self._row(req, plan, "pending_approval", plan_hash=digest, expires_at=expires)
            await self._db(self.store.create, row, [("requested", self._requested_detail(row)),
                                                    ("pending_approval", {"plan_hash": digest})])
            return await self._approval_card(req, spec, plan.args, row, roles, lines)
        row = self._row(req, plan, "requested", plan_hash=digest)
        await self._db(self.store.create, row, [("requested", self._requested_detail(row))])
        return await self._execute(req, row, roles, ("requested",))

    def _card(self, spec: CommandSpec, args: dict[str, Any], lines: list[str]) -> list[tuple[str, str]]:
        fields = [("Command", describe(spec, args))]
        for key in ("env", "stack", "service", "vm", "snapshot"):
            if args.get(key):
                fields.append((key.capitalize(), str(args[key])))
        if lines:
            fields.append(("What will happen", "\n".join(lines)))
        return fields

    def approvers(self, requester: str) -> list[str]:
        return [u for u in self.config.inventory.users
                if u != requester and Role.approver in self.config.roles_of(u)]

    async def _approval_card(self, req: Request, spec: CommandSpec, args: dict[str, Any],
                             row: RequestRow, roles: frozenset[Role], lines: list[str] | None = None) -> Reply:
        if lines is None:
            lines = await self._preview(req, spec, args, roles)
        mins = self.config.inventory.approvals.expiry_minutes
        return Reply(
            f"{describe(spec, args)} targets a protected system and needs approval from another "
            f"approver. Request {row.id} waits {mins} minutes: 'approve {row.id}' or 'deny {row.id}'.",
            tone=Tone.pending, title=f"Approval needed: {row.id}",
            fields=[*self._card(spec, args, lines), ("Requested by", req.actor.id)],
            buttons=[Button("Approve", "approve", row.id, row.plan_hash or "", "primary"),
                     Button("Deny", "deny", row.id, row.plan_hash or "", "danger")],
            request_id=row.id, mentions=self.approvers(req.actor.id))

    async def _execute(self, req: Request, row: RequestRow, roles: frozenset[Role],
                       from_status: tuple[str, ...], actor: Actor | None = None) -> Reply:
        """Take the locks, mark started (committed), run, record the result."""
        actor = actor or req.actor
        assert row.command is not None
        spec = self.registry[row.command]
        # The requester's roles as configured now: a role taken away while a request waited counts.
        denied = authorise(spec, roles)
        if denied:
            await self._db(self.store.transition, row.id, from_status, "refused", actor.id,
                           {"reason": denied}, reason=denied)
            return self._error(f"Request {row.id} was not run: {row.actor} no longer may. {denied}", row.id)
        if plan_hash(spec.name, row.args) != row.plan_hash:
            msg = "The stored plan does not match the hash it was confirmed with; not running it."
            await self._db(self.store.transition, row.id, from_status, "failed", actor.id,
                           {"error": msg}, error=msg)
            return self._error(msg, row.id)
        targets = lock_targets(self.config, row.args) if spec.backend else []
        frozen = await self._frozen(spec, targets)
        if frozen:
            await self._db(self.store.transition, row.id, from_status, "refused", actor.id,
                           {"reason": frozen}, reason=frozen)
            return self._error(frozen, row.id)
        if targets:
            holder = await self._db(self.store.acquire, targets, row.id)
            if holder:
                msg = (f"Another change ({holder}) is running on {', '.join(targets)}; nothing was "
                       "changed. Ask again when it has finished.")
                await self._db(self.store.transition, row.id, from_status, "failed", actor.id,
                               {"error": msg}, error=msg)
                return self._error(msg, row.id)
        try:
            started = await self._db(self.store.transition, row.id, from_status, "started", actor.id,
                                     {"plan_hash": row.plan_hash})
            if started is None:
                current = await self._db(self.store.get, row.id)
                status = current.status if current else "gone"
                return Reply(f"Request {row.id} is already {status}; nothing was run twice.",
                             tone=Tone.info, request_id=row.id)
            run_req = Request(actor=req.actor, text=row.text, platform=req.platform,
                              channel=req.channel, thread=req.thread,
                              correlation_id=row.correlation_id, on_progress=req.on_progress)
            return await self._invoke(run_req, spec, row.args, row.id, roles, actor)
        finally:
            if targets:
                await self._release(row.id)

    async def _release(self, rid: str) -> None:
        """Free a run's locks; if the database is gone the run's own reply still stands."""
        try:
            await self._db(self.store.release, rid)
        except DatabaseUnavailable as exc:
            log.error("could not free the execution locks of %s (%s); the next start frees them", rid, exc)

    # -- buttons and approve/deny ----------------------------------------
    async def act(self, action: str, request_id: str, actor: Actor, plan_digest: str = "",
                  reason: str | None = None, req: Request | None = None) -> Reply:
        """A confirm/cancel/approve/deny from a button or command; safe to call twice."""
        req = req or Request(actor=actor, text=f"{action} {request_id}", platform=actor.platform)
        with observe.scope(req.correlation_id, actor.id, actor.platform, req.channel, action):
            if not self.jobs.accepting:
                return self._closing(req)
            try:
                reply = await self._act(action, request_id.strip().lower(), actor, plan_digest, reason, req)
            except DatabaseUnavailable as exc:
                ERRORS.labels("database").inc()
                observe.note(outcome="database_unavailable")
                reply = self._unavailable(exc)
            return redact_reply(self.redactor, reply)

    async def _act(self, action: str, rid: str, actor: Actor, digest: str, reason: str | None,
                   req: Request | None) -> Reply:
        row = await self._db(self.store.get, rid)
        if row is None:
            return self._error(f"There is no request {rid}.")
        req = req or Request(actor=actor, text=f"{action} {rid}", platform=actor.platform)
        roles = self.config.roles_of(actor.id)
        expires = aware(row.expires_at)
        if row.status in CONFIRMABLE + APPROVABLE and expires and expires <= utcnow():
            await self._db(self.store.transition, rid, CONFIRMABLE + APPROVABLE, "expired", "system",
                           {"reason": "not decided in time"})
            return self._error(f"Request {rid} expired before it was decided; ask again if it is "
                               "still needed.", rid)
        if digest and row.plan_hash and digest != row.plan_hash:
            return self._error(f"Request {rid} is not the plan this button was made for; nothing done.", rid)
        if action in ("confirm", "cancel"):
            return await self._confirm(action, row, actor, req, roles)
        if action not in ("approve", "deny"):
            return self._error(f"Unknown action '{action}'.", rid)
        if Role.approver not in roles:
            return self._error(f"You need the approver role to {action} requests.", rid)
        if actor.id == row.actor:
            return self._error(f"You can't {action} your own request {rid}; another approver must.", rid)
        if row.status not in APPROVABLE:
            by = f" by {row.approver}" if row.approver else ""
            return Reply(f"Request {rid} is already {row.status}{by}; nothing was done twice.",
                         tone=Tone.info, request_id=rid)
        if action == "deny":
            why = reason or None
            moved = await self._db(self.store.transition, rid, APPROVABLE, "denied", actor.id,
                                   {"reason": why}, approver=actor.id, reason=why)
            if moved is None:
                return await self._already(rid)
            return Reply(f"Denied {rid} ({row.command} for {row.actor})." + (f" Reason: {why}" if why else ""),
                         tone=Tone.warning, request_id=rid)
        assert row.command is not None
        if plan_hash(row.command, row.args) != row.plan_hash:
            return self._error(f"Request {rid} changed since it was requested; not approved.", rid)
        moved = await self._db(self.store.transition, rid, APPROVABLE, "approved", actor.id,
                               {"plan_hash": row.plan_hash}, approver=actor.id)
        if moved is None:
            return await self._already(rid)
        run_as = Request(actor=Actor(row.actor), text=row.text, platform=row.platform,
                         channel=row.channel, thread=row.thread, correlation_id=row.correlation_id,
                         on_progress=req.on_progress)
        result = await self._execute(run_as, moved, self.config.roles_of(row.actor), ("approved",), actor)
        result.text = f"Approved {rid} ({row.command} for {row.actor}). {result.text}"
        return result

    async def _already(self, rid: str) -> Reply:
        row = await self._db(self.store.get, rid)
        status = row.status if row else "gone"
        by = f" by {row.approver}" if row and row.approver else ""
        return Reply(f"Request {rid} was already {status}{by}; nothing was done twice.",
                     tone=Tone.info, request_id=rid)

    async def _confirm(self, action: str, row: RequestRow, actor: Actor, req: Request,
                       roles: frozenset[Role]) -> Reply:
        if actor.id != row.actor:
            return self._error(f"Only {row.actor} can {action} their request {row.id}.", row.id)
        if row.status not in CONFIRMABLE:
            return Reply(f"Request {row.id} is already {row.status}; nothing was done twice.",
                         tone=Tone.info, request_id=row.id)
        if action == "cancel":
            moved = await self._db(self.store.transition, row.id, CONFIRMABLE, "cancelled", actor.id, {})
            if moved is None:
                return await self._already(row.id)
            return Reply(f"Cancelled {row.id}; nothing was changed.", tone=Tone.info, request_id=row.id)
        assert row.command is not None
        spec = self.registry[row.command]
        if spec.approval and protected(self.config, row.args):
            try:
                lines = await self._preview(req, spec, row.args, roles)
            except CannotRun as exc:  # it stopped being possible since the card: never ask an approver
                await self._db(self.store.transition, row.id, CONFIRMABLE, "refused", actor.id,
                               {"reason": str(exc)}, reason=str(exc))
                return self._error(str(exc), row.id)
            moved = await self._db(self.store.transition, row.id, CONFIRMABLE, "pending_approval",
                                   actor.id, {"plan_hash": row.plan_hash})
            if moved is None:
                return await self._already(row.id)
            return await self._approval_card(req, spec, row.args, moved, roles, lines)
        moved = await self._db(self.store.transition, row.id, CONFIRMABLE, "requested", actor.id,
                               {"confirmed": True})
        if moved is None:
            return await self._already(row.id)
        return await self._execute(req, moved, roles, ("requested",))
