"""Builds the real backend clients that the config describes (each issue adds its own)."""

from __future__ import annotations

from infra.backends import Backends
from infra.config import Config
from infra.docker_hosts import install_docker_hosts


def make_backends(config: Config) -> Backends:
    backends = Backends(config)
    install_docker_hosts(backends, config)
    return backends
