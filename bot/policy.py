"""Policy: who may run what, what counts as protected, which locks a change takes."""

from __future__ import annotations

from typing import Any

from commands.registry import CommandSpec
from infra.config import Config, Role


def authorise(spec: CommandSpec, roles: frozenset[Role]) -> str | None:
    """None when allowed; otherwise the refusal to show."""
    needed = Role(spec.needed_role)
    if needed in roles:
        return None
    have = ", ".join(sorted(r.value for r in roles)) or "no roles"
    return (f"'{spec.name}' needs the {needed.value} role; you have {have}. "
            "Ask an admin to add you to 'users' in the config.")


def protected(config: Config, args: dict[str, Any]) -> bool:
    """A change is protected when its environment or VM is."""
    env, vm = args.get("env"), args.get("vm")
    if env in config.inventory.environments and config.env_protected(env):
        return True
    return bool(vm in config.inventory.vms and config.vm_protected(vm))


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
