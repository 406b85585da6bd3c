"""The audit log, reviewed from chat."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.request import Reply, Table
from commands.context import Context
from commands.registry import ME, Arg, Kind, Phrasing, command
from infra.config import Role
from infra.db.common import AuditFilter, aware
from infra.errors import CannotSucceed
from infra.wording import counted
from llm.values import parse_since

AUDIT_ARGS = (
    Arg("user", Kind.user, required=False, positional=False, help="who asked (alice, slack:U123 or me)",
        cues=("by", "user", "from", "for")),
    Arg("approver", Kind.user, required=False, positional=False, decided_by=True,
        help="who approved or denied it (by button or by typing; me for yourself)"),
    Arg("env", Kind.env, required=False, positional=False, help="environment"),
    Arg("command", Kind.command, required=False, positional=False, help="command name"),
    # the words people use for a status ("failing", "waiting") are infra/status.py's, read by the parser
    Arg("status", Kind.status, required=False, positional=False, help="request status"),
    Arg("since", Kind.duration, required=False, positional=False, help="15m, 2h, 1d or an ISO date"),
    Arg("limit", Kind.integer, required=False, positional=False, default=20, minimum=1, maximum=500,
        help="rows to show"),
)


NOTE_CHARS = 160


def _note(text: str) -> tuple[str, bool]:
    """One line of at most NOTE_CHARS for the table, and whether anything was left out."""
    flat = " ".join(text.split())
    if len(flat) <= NOTE_CHARS:
        return flat, False
    return flat[:NOTE_CHARS - 1].rstrip() + "…", True
# The columns the table below shows (the query reads no others).
SHOWN = ("id", "created_at", "actor", "command", "env", "target", "status", "approver", "error", "reason", "result")


def resolve_user(ctx: Context, user: str) -> str:
    """`alice` → the configured identity ending in `:alice`, else the asker's platform; `me` → the asker."""
    if user.lower() == ME:
        return ctx.actor.id
    if ":" in user:
        return user
    matches = [u for u in ctx.config.inventory.users if u.split(":", 1)[1] == user]
    return matches[0] if len(matches) == 1 else f"{ctx.actor.platform}:{user}"


@command("audit", summary="review the audit log", args=AUDIT_ARGS,
         examples=("audit", "audit env=prod since=1d", "audit user=alice status=failed limit=50",
                   "audit approver=bob status=approved"),
         words=("history",),
         phrasing=Phrasing(
             nouns=("audit", "audit log", "history", "what happened", "activity", "changelog", "who did",
                    "recent changes", "requests", "actions", "audit entries", "audit trail",
                    "entries", "what changed", "what was done", "what ran", "what has happened", "what has changed",
                    "what happened", "what changes"),
             formats=("what did {user} do", "what has {user} done", "what did {user} change",
                      "what has {user} changed", "what has {user} been doing", "what did {user} run"),
             answers_past=True))
async def audit(ctx: Context, args: dict[str, Any]) -> Reply:
    """Newest first. Everyone sees their own requests (with approver=me, those they decided); admins see all."""
    user = resolve_user(ctx, args["user"]) if args.get("user") else None
    approver = resolve_user(ctx, args["approver"]) if args.get("approver") else None
    if not ctx.has(Role.admin) and approver != ctx.actor.id:  # (what you decided, you have seen)
        if user and user != ctx.actor.id:
            raise CannotSucceed(f"Only admins can review other people's requests ({user}'s here); "
                               "'audit' alone shows your own.")
        user = ctx.actor.id
    since = parse_since(args["since"]) if args.get("since") else None
    cap = ctx.config.inventory.limits.max_audit_limit
    limit = min(int(args["limit"]), cap)
    rows = await asyncio.to_thread(ctx.store.page, AuditFilter(
        user=user, approver=approver, env=args.get("env"), command=args.get("command"), status=args.get("status"),
        since=since, limit=limit, columns=SHOWN))
    notes = [_note(r.error or r.reason or r.result or "") for r in rows]
    table = [[r.id, f"{aware(r.created_at):%Y-%m-%d %H:%M:%S}", r.actor, r.command or "-",
              r.env or "-", r.target or "-", r.status, r.approver or "", note]
             for r, (note, _) in zip(rows, notes, strict=True)]
    scope = ("" if user is None and approver else f" of {user or 'everyone'}") + (
        f" decided by {approver}" if approver else "")
    capped = f" (limit={args['limit']} capped at {cap} by limits.max_audit_limit)" if limit < int(args["limit"]) else ""
    if any(cut for _, cut in notes):
        capped += (f" Notes ending in '…' are shortened to {NOTE_CHARS} characters; "
                   "'chatops audit export --format json' has them whole.")
    if not rows:  # (no empty table under it)
        nobody = scope.replace(" of everyone", "") if user is None else scope
        return Reply(f"No requests{nobody} match.{capped}")
    return Reply(f"{counted(len(rows), 'request')}{scope}, newest first.{capped}",
                 tables=[Table(["id", "when (UTC)", "who", "command", "env", "target", "status",
                                "approver", "note"], table)])
