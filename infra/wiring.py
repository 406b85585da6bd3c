"""Builds the real backend clients that the config describes (each issue adds its own)."""

from __future__ import annotations

from infra.backends import Backends
from infra.config import Config


def make_backends(config: Config) -> Backends:
    return Backends(config)
