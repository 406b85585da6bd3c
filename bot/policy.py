"""Policy: who may run what, where, what counts as protected, which locks a change takes.

Roles may be scoped to environments (`users: {"slack:U1": {roles: [operator], envs: [rumpledev]}}`)
and channels may limit the commands and environments they accept.  Both are decided here, from
the plan's arguments, so every route (typed command, plain language, the model, a button, the
HTTP API, a schedule) gets the same answer.
"""

from __future__ import annotations

from typing import Any

from bot.request import Actor
from commands.registry import CommandSpec, Registry
from infra.config import Config, Role
from infra.wording import join_choices


def authorise(spec: CommandSpec, roles: frozenset[Role], where: str = "", actor: str = "") -> str | None:
    """None when allowed; otherwise the refusal to show (`where`: ' on rumpleprod' for scoped roles)."""
    needed = Role(spec.needed_role)
    if needed in roles:
        return None
    have = ", ".join(sorted(r.value for r in roles)) or "no roles"
    there = " there" if where else ""
    # where the grant lives: a person's under `users`, an automation token's under `api_tokens`
    fix = (f"An admin can give it under 'api_tokens' ('{actor.split(':', 1)[1]}') in the config."
           if Actor(actor).automated else "Ask an admin to add you to 'users' in the config.")
    return f"'{spec.name}' needs the {needed.value} role{where}; you have {have}{there}. {fix}"


def targets_of(config: Config, args: dict[str, Any]) -> frozenset[str]:
    """The environments a plan touches: its env, and the environments behind its VM.

    A VM behind no environment (an LXC such as `llm`) is named `vm:NAME`, which no scoped
    grant and no channel `envs` list covers: only unscoped roles act on it.
    """
    out: set[str] = set()
    env, vm = args.get("env"), args.get("vm")
    if isinstance(env, str) and env in config.inventory.environments:
        out.add(env)
    if isinstance(vm, str) and vm in config.inventory.vms:
        out.update(config.envs_of_vm(vm) or [f"vm:{vm}"])
    return frozenset(out)


def where(envs: frozenset[str]) -> str:
    return f" on {join_choices(sorted(envs), 'and')}" if envs else ""


def roles_for(config: Config, actor: str, args: dict[str, Any]) -> frozenset[Role]:
    """The actor's roles for a plan with these arguments (scoped grants applied)."""
    return config.roles_of(actor, targets_of(config, args))


def check(config: Config, spec: CommandSpec, actor: str, args: dict[str, Any]) -> str | None:
    """The role check for a plan, scoped to the environments it touches."""
    envs = targets_of(config, args)
    scoped = config.scoped(actor) is not None and bool(envs)
    return authorise(spec, config.roles_of(actor, envs), where(envs) if scoped else "", actor)


def channel_refusal(config: Config, channel: str | None, command: str, args: dict[str, Any], *,
                    envs_only: bool = False) -> str | None:
    """Why this channel does not take this request (None when it does).

    `envs_only`: a decision (approve/deny by button or by id) on a request asked elsewhere is
    checked against the channel's environments only; `commands` says what may be asked there.
    """
    chan = config.inventory.channels.get(channel or "")
    if chan is None:
        return None
    if not envs_only and chan.commands is not None and command not in chan.commands:
        return (f"This channel does not take '{command}' requests (it takes: "
                f"{', '.join(chan.commands) or 'none'}); nothing was run. Ask in another channel.")
    if chan.envs is not None:
        outside = sorted(targets_of(config, args) - set(chan.envs))
        if outside:
            return (f"This channel does not act on {join_choices(outside, 'or')} (it takes: "
                    f"{', '.join(chan.envs) or 'none'}); nothing was run. Ask in that environment's channel.")
    return None


def unknown_channel_commands(config: Config, registry: Registry) -> list[str]:
    """`channels.X.commands` entries that name no command (a typo would silently refuse everything)."""
    out = []
    for name, chan in config.inventory.channels.items():
        for cmd in chan.commands or []:
            if cmd not in registry:
                out.append(f"channels.{name}.commands: unknown command '{cmd}' (commands: "
                           f"{', '.join(registry.names())})")
    return out


def approvers(config: Config, requester: str, args: dict[str, Any]) -> list[str]:
    """Everyone but the requester who may approve a request with these arguments."""
    envs = targets_of(config, args)
    return [u for u in config.inventory.users
            if u != requester and Role.approver in config.roles_of(u, envs)]


def protected(config: Config, args: dict[str, Any]) -> bool:
    """A change is protected when its environment or VM is."""
    env, vm = args.get("env"), args.get("vm")
    if env in config.inventory.environments and config.env_protected(env):
        return True
    return bool(vm in config.inventory.vms and config.vm_protected(vm))


def needs_approval(config: Config, spec: CommandSpec, args: dict[str, Any]) -> bool:
    """Whether a request waits for another person's OK: a changing command that asks for approvals, on a
    protected target.  The one rule for a change asked now, a schedule, and a scheduled run."""
    return spec.changes and spec.approval and protected(config, args)


def lock_targets(config: Config, args: dict[str, Any]) -> list[str]:
    """Execution-lock keys: an environment and the VM behind it lock together."""
    keys: set[str] = set()
    env, vm = args.get("env"), args.get("vm")
    if env in config.inventory.environments:
        keys.add(f"env:{env}")
        behind = config.inventory.environments[env].vm
        if behind:
            keys.add(f"vm:{behind}")
    if vm in config.inventory.vms:
        keys.add(f"vm:{vm}")
        keys.update(f"env:{e}" for e in config.envs_of_vm(vm))
    return sorted(keys)
