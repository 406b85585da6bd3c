"""Builds the real backend clients that the config describes (each issue adds its own)."""

from __future__ import annotations

from infra.backends import Backends
from infra.config import Config


def make_backends(config: Config) -> Backends:
    backends = Backends(config)
    from infra.gpu import make_gpu_clients
    for host, client in make_gpu_clients(config).items():
        backends.override(f"gpu:{host}", client)
    return backends
