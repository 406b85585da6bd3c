"""Helpers shared by the GPU tests: stand-in executables on PATH, engine requests, waiting."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from bot.engine import Engine
from bot.request import Actor, Reply, Request

FAKES = Path(__file__).resolve().parent / "fakes"
NVSMI_DATA = Path(__file__).resolve().parent / "data" / "nvidia-smi"
T = TypeVar("T")


@dataclass
class StandIns:
    bin: Path
    data: Path
    nvsmi_log: Path
    ssh_log: Path
    monkeypatch: pytest.MonkeyPatch

    def scenario(self, name: str) -> None:
        self.monkeypatch.setenv("FAKE_NVSMI_SCENARIO", name)

    def calls(self) -> list[str]:
        return self.nvsmi_log.read_text().splitlines() if self.nvsmi_log.exists() else []

    def ssh_calls(self) -> list[str]:
        return self.ssh_log.read_text().splitlines() if self.ssh_log.exists() else []


def install_standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, with_nvsmi: bool = True) -> StandIns:
    """`nvidia-smi` and `ssh` stand-ins first on PATH; the recordings copied so a test may add to them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    data = tmp_path / "nvidia-smi"
    shutil.copytree(NVSMI_DATA, data)
    tools = {"ssh": "ssh_standin.py"}
    if with_nvsmi:
        tools["nvidia-smi"] = "nvidia_smi_standin.py"
    for name, script in tools.items():
        exe = bin_dir / name
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKES / script}" "$@"\n')
        exe.chmod(0o755)
    # Only the stand-ins and the basics: a real nvidia-smi or ssh on this machine must not answer.
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_NVSMI_DATA", str(data))
    s = StandIns(bin_dir, data, tmp_path / "nvsmi.log", tmp_path / "ssh.log", monkeypatch)
    monkeypatch.setenv("FAKE_NVSMI_LOG", str(s.nvsmi_log))
    monkeypatch.setenv("FAKE_SSH_LOG", str(s.ssh_log))
    s.scenario("phoenix")
    return s


async def ask(engine: Engine, text: str, user: str = "console:alice") -> Reply:
    return await engine.handle(Request(Actor(user), text))


async def eventually(check: Callable[[], Awaitable[T | None]], timeout_s: float = 30.0, what: str = "") -> T:
    """Poll until `check` returns something truthy (Prometheus needs a scrape or two to see a change)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = await check()
            if value:
                return value
            last = value
        except Exception as exc:  # keep polling; report the last failure
            last = exc
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")
