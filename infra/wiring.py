"""Builds the real backend clients that the config describes (each issue adds its own)."""

from __future__ import annotations

from infra.backends import Backends
from infra.config import Config

# Config sections no backend client is built from: a reload that changes only these keeps the
# clients (and their connections); any other change builds them again.
CLIENT_FREE = frozenset({"users", "default_roles", "channels", "approvals", "limits", "rate_limits", "audit"})


def same_clients(old: Config, new: Config) -> bool:
    """Whether `make_backends` would build the same clients for `new` as for `old`."""
    parts = {k for k in type(new.inventory).model_fields if k not in CLIENT_FREE}
    return (old.base_dir == new.base_dir
            and old.inventory.model_dump(include=parts) == new.inventory.model_dump(include=parts))


def make_backends(config: Config) -> Backends:
    backends = Backends(config)
    from infra.docker_hosts import install_docker_hosts
    from infra.gpu import make_gpu_clients
    from infra.proxmox import build_proxmox, proxmox_problem

    install_docker_hosts(backends, config)
    for host, client in make_gpu_clients(config).items():
        backends.override(f"gpu:{host}", client)
    proxmox = build_proxmox(config)
    if proxmox is not None:
        backends.override("proxmox", proxmox)
    elif (why := proxmox_problem(config)) is not None:
        backends.misconfigured("proxmox", why)
    if config.inventory.llm.base_url and config.inventory.llm.model:
        from llm.agent import LLMClient  # no LangChain import until the first request

        backends.override("llm", LLMClient.from_config(config))
    return backends
