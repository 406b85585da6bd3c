"""Builds the real backend clients that the config describes (each issue adds its own)."""

from __future__ import annotations

from infra.backends import Backends
from infra.config import Config
from infra.proxmox import build_proxmox


def make_backends(config: Config) -> Backends:
    backends = Backends(config)
    proxmox = build_proxmox(config)
    if proxmox is not None:
        backends.override("proxmox", proxmox)
    return backends
