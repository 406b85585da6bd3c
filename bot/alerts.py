"""Alerts in: Alertmanager's webhook notifications, posted to the environment's ops channel.

Alertmanager sends one JSON document per *group* (its `group_by`), again on every change and
every `repeat_interval`, and once more when the group resolves.  Each group becomes one
message per ops channel (per environment named by the alerts' labels); later deliveries of
the same group edit that message, so a channel holds one card per problem, not one per repeat.

The card's buttons are plans the labels fill: every command declared `on_alert=True` whose
required arguments the labels (environment, service, stack) supply — read commands such as
`status` and `logs`, and a suggested change (`restart`).  A click asks for that plan *as the
person who clicked*, through the engine: their roles, the confirmation, the approval on a
protected environment, the audit log.  Nothing runs because an alert arrived.

Payload format: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.metrics import ALERTS_RECEIVED
from bot.notify import Target
from bot.redaction import redact_reply
from bot.request import Button, Reply, Tone
from commands.registry import Kind
from infra.config import Notice
from infra.db.events import EventStore
from infra.wording import counted
from llm.plan import Plan, plan_hash
from llm.validate import validate

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger("chatops.alerts")
MAX_SERVICES_WITH_BUTTONS = 5
# A claim without a message older than this was left by a delivery that died: take it over.
STALE_CLAIM = timedelta(minutes=2)


class PayloadError(ValueError):
    """A webhook body that is not Alertmanager's format; the message says what is wrong."""


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class AlertIn(_Loose):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class Notification(_Loose):
    """Alertmanager's webhook body (version 4)."""

    version: str = "4"
    groupKey: str = Field(min_length=1)
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AlertIn] = Field(min_length=1)


def parse(body: Any) -> Notification:
    try:
        return Notification.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise PayloadError(f"not an Alertmanager webhook notification: {where}: {first['msg']} "
                           f"({counted(exc.error_count(), 'problem')})") from None


@dataclass
class Part:
    """The alerts of one group that name one environment."""

    env: str
    alerts: list[AlertIn] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"


class AlertReceiver:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rows = EventStore(engine.store)

    # -- labels -> inventory ----------------------------------------------------
    def _label(self, labels: dict[str, str], keys: list[str], kind: Kind) -> str | None:
        for key in keys:
            if labels.get(key):
                found = self.engine.resolver.resolve(kind, labels[key])
                if found:
                    return found
        return None

    def split(self, note: Notification) -> tuple[list[Part], list[AlertIn]]:
        """The group's alerts by environment; those naming none (or an unknown one) apart."""
        cfg = self.engine.config.inventory.alerts
        parts: dict[str, Part] = {}
        unrouted: list[AlertIn] = []
        for alert in note.alerts:
            labels = {**note.commonLabels, **alert.labels}
            env = self._label(labels, cfg.env_labels, Kind.env)
            if env is None:
                unrouted.append(alert)
                continue
            parts.setdefault(env, Part(env)).alerts.append(alert)
        return list(parts.values()), unrouted

    # -- the card -----------------------------------------------------------------
    async def _buttons(self, part: Part, key: str) -> list[Button]:
        """One button per `on_alert` command the labels fill (deduplicated), reads before changes."""
        e = self.engine
        cfg = e.config.inventory.alerts
        services: list[tuple[str | None, str | None]] = []
        for alert in part.alerts:
            service = self._label(alert.labels, cfg.service_labels, Kind.service)
            stack = self._label(alert.labels, cfg.stack_labels, Kind.stack)
            if (service, stack) not in services:
                services.append((service, stack))
        plans: list[Plan] = []
        for service, stack in services[:MAX_SERVICES_WITH_BUTTONS]:
            given: dict[str, Any] = {"env": part.env, "service": service,
                                     "stack": stack or (e.resolver.stack_for(service) if service else None)}
            for spec in e.registry:
                if not spec.on_alert:
                    continue
                args = {a.name: given[a.name] for a in spec.args if given.get(a.name)}
                if any(a.name not in args for a in spec.required):
                    continue
                plan = validate(Plan(spec.name, args, source="alert"), e.resolver, e.registry)
                if plan.complete and all((p.command, p.args) != (plan.command, plan.args) for p in plans):
                    plans.append(plan)
        plans.sort(key=lambda p: e.registry[p.command or ""].changes)
        out = []
        for plan in plans[:25]:
            assert plan.command is not None
            spec = e.registry[plan.command]
            digest = plan_hash(spec.name, plan.args)
            sug = await e._db(self.rows.add_suggestion, spec.name, plan.args, digest, f"alert:{key}")
            what = plan.args.get("service") or plan.args.get("stack") or plan.args.get("env")
            label = f"{spec.name.capitalize()} {what}" + ("…" if spec.changes else "")
            out.append(Button(label, "run", sug.id, digest, "danger" if spec.changes else "default"))
        return out

    def _card(self, note: Notification, part: Part, buttons: list[Button]) -> Reply:
        cfg = self.engine.config.inventory.alerts
        firing = part.status == "firing"
        name = note.groupLabels.get("alertname") or note.commonLabels.get("alertname") or "alert"
        count = sum(1 for a in part.alerts if a.status == "firing")
        title = (f"FIRING ({count}): {name} on {part.env}" if firing else f"RESOLVED: {name} on {part.env}")
        lines = []
        summary = note.commonAnnotations.get("summary") or note.commonAnnotations.get("description")
        if summary:
            lines.append(summary)
        for alert in part.alerts[:cfg.max_alerts_shown]:
            labels = " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())
                              if k not in ("alertname",) and k not in note.groupLabels)
            what = alert.annotations.get("summary") or alert.annotations.get("description") or ""
            since = f" since {alert.startsAt:%Y-%m-%d %H:%M} UTC" if alert.startsAt else ""
            lines.append(f"• [{alert.status}] {alert.labels.get('alertname', name)} {labels}{since}"
                         + (f": {what}" if what else ""))
        more = len(part.alerts) - cfg.max_alerts_shown + note.truncatedAlerts
        if more > 0:
            lines.append(f"… and {counted(more, 'more alert')} in this group (see Alertmanager).")
        fields = [("Environment", part.env)]
        if note.groupLabels:
            fields.append(("Group", ", ".join(f"{k}={v}" for k, v in sorted(note.groupLabels.items()))))
        if note.externalURL:
            fields.append(("Alertmanager", note.externalURL))
        if not firing:
            lines.append("All alerts of this group are resolved.")
        return Reply("\n".join(lines) or title, tone=Tone.error if firing else Tone.success, title=title[:140],
                     fields=fields, buttons=buttons if firing else [])

    # -- delivery ----------------------------------------------------------------
    async def receive(self, note: Notification) -> dict[str, Any]:
        """Post or edit one card per environment and ops channel; say what was done."""
        e = self.engine
        ALERTS_RECEIVED.labels(note.status).inc()
        parts, unrouted = self.split(note)
        result: dict[str, Any] = {"posted": [], "edited": [], "skipped": [], "unrouted": [], "failed": []}
        for alert in unrouted:
            log.warning("alert %s names no known environment (labels %s); not posted",
                        alert.labels.get("alertname"), sorted(alert.labels))
            result["unrouted"].append({"alertname": alert.labels.get("alertname"),
                                       "reason": "no known environment in its labels"})
        for part in parts:
            targets = e.notify.targets([part.env], Notice.alerts)
            if not targets:
                result["unrouted"].append({"env": part.env, "reason": "no ops channel takes alerts there"})
                continue
            key = hashlib.sha256(f"{note.groupKey}|{part.env}".encode()).hexdigest()
            buttons = await self._buttons(part, key) if part.status == "firing" else []
            card = redact_reply(e.redactor, self._card(note, part, buttons))
            for target in targets:
                outcome = await self._deliver(key, target, card, part.status)
                result[outcome].append({"env": part.env, "channel": target.qualified, "status": part.status})
        return result

    async def _deliver(self, key: str, target: Target, card: Reply, status: str) -> str:
        e = self.engine
        post = await e._db(self.rows.alert_post, key, target.platform, target.channel)
        if post is not None and post.message:
            ok = await e.notify.edit(target, post.message, card)
            if ok:
                await e._db(self.rows.update_alert_post, post.id, status=status)
                return "edited"
            return "failed"
        if post is None:
            post = await e._db(self.rows.claim_alert_post, key, target.platform, target.channel, status)
        else:
            # Claimed by a delivery that has not posted yet: still posting (skip), or gone (take it over).
            post = await e._db(self.rows.take_over_alert_post, post, STALE_CLAIM)
        if post is None:  # another delivery of this group (another replica) is posting it right now
            return "skipped"
        message = await e.notify.post(target, card)
        if message is None:
            await e._db(self.rows.drop_alert_post, post.id)  # the next delivery tries again
            return "failed"
        await e._db(self.rows.update_alert_post, post.id, message=message, status=status)
        return "posted"
