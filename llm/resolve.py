"""Inventory names and aliases, resolved case-insensitively.

One `Resolver` per loaded config: it turns "prod", "Open WebUI" or "dev vm" into the
canonical environment, service or VM name, and lists the choices when it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from commands.registry import Kind
from infra.config import Config


def _norm(word: str) -> str:
    return " ".join(word.lower().replace("_", "-").split())


# the words that lead a guest's Proxmox id, by the guest's kind
_ID_LEADS = {"qemu": ("vm", "vmid", "qemu", "guest", "id"), "lxc": ("ct", "lxc", "container", "vmid", "guest", "id")}


@dataclass
class Resolver:
    config: Config
    _tables: dict[Kind, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        inv = self.config.inventory
        self._tables[Kind.env] = self._table({n: e.aliases for n, e in inv.environments.items()})
        self._tables[Kind.stack] = self._table({n: s.aliases for n, s in inv.stacks.items()})
        # a guest is also named by its Proxmox id, as people read it off the Proxmox UI ("vm 101", "ct 200")
        self._tables[Kind.vm] = self._table({n: [*v.aliases, *(f"{lead} {v.vmid}" for lead in _ID_LEADS[v.kind])]
                                             for n, v in inv.vms.items()})
        self._tables[Kind.host] = self._table({n: [] for n in inv.gpu_hosts})

    def _table_of(self, kind: Kind) -> dict[str, str]:
        """A kind's name table; services are gathered on first use, so start-up reads no compose file."""
        if kind is Kind.service and kind not in self._tables:
            services: dict[str, list[str]] = {}
            for stack_services in self.config.stack_services.values():
                for svc_name in stack_services:
                    services.setdefault(svc_name, [])
            for name, svc in self.config.inventory.services.items():
                services.setdefault(name, []).extend(svc.aliases)
            self._tables[Kind.service] = self._table(services)
        return self._tables.get(kind, {})

    @staticmethod
    def _table(names: dict[str, list[str]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, aliases in names.items():
            out[_norm(name)] = name
            for a in aliases:
                out.setdefault(_norm(a), name)
        return out

    def resolve(self, kind: Kind, word: str) -> str | None:
        table = self._table_of(kind)
        return table.get(_norm(word)) if table else None

    def choices(self, kind: Kind) -> list[str]:
        """Canonical names of a kind: inventory order for envs, stacks and VMs, else sorted."""
        names = set(self._table_of(kind).values())
        order = {Kind.env: list(self.config.inventory.environments),
                 Kind.stack: list(self.config.inventory.stacks),
                 Kind.vm: list(self.config.inventory.vms)}.get(kind)
        if order:
            return [n for n in order if n in names]
        return sorted(names)

    def words(self, kind: Kind, name: str) -> list[str]:
        """Every spelling that names `name` (its name and aliases)."""
        return [w for w, n in self._table_of(kind).items() if n == name]

    @cached_property
    def max_words(self) -> int:
        self._table_of(Kind.service)
        return max((len(w.split()) for t in self._tables.values() for w in t), default=1)

    @cached_property
    def stacks_of_service(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for stack, services in self.config.stack_services.items():
            for svc in services:
                out.setdefault(svc, []).append(stack)
        return out

    def stack_for(self, service: str, stack: str | None = None) -> str | None:
        """The stack of a service when unambiguous (or the given one if it has the service)."""
        stacks = self.stacks_of_service.get(service, [])
        if stack:
            return stack if stack in stacks else None
        return stacks[0] if len(stacks) == 1 else None

    def envs_for_stack(self, stack: str) -> list[str]:
        runs = self.config.inventory.stacks[stack].runs_on
        return list(runs) or list(self.config.inventory.environments)


