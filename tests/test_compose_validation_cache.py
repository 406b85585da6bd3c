"""`validate` reuses a model only for exactly the same files and environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import infra.compose as compose
from infra.compose import StackSource, validate
from infra.errors import CommandError

GOOD = "services:\n  web:\n    image: chatops-busybox:1\n    network_mode: none\n"


def source(folder: Path) -> StackSource:
    return StackSource(stack="cached", workdir=folder, content=(folder / "compose.yaml").read_text())


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record each real `docker-compose` run (the real binary still runs)."""
    seen: list[list[str]] = []
    real = compose.run_compose

    async def counting(args: list[str], **kw: object) -> compose.ComposeResult:
        seen.append(args)
        return await real(args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(compose, "run_compose", counting)
    return seen


async def test_unchanged_source_is_validated_once(tmp_path: Path, calls: list[list[str]]) -> None:
    (tmp_path / "compose.yaml").write_text(GOOD)
    first = await validate("cachetest", source(tmp_path))
    again = await validate("cachetest", source(tmp_path))
    assert first == again and list(first["services"]) == ["web"]
    assert sum("config" in c for c in calls) == 1


async def test_an_edit_after_validation_is_validated_again(tmp_path: Path, calls: list[list[str]]) -> None:
    (tmp_path / "compose.yaml").write_text(GOOD)
    await validate("cachetest", source(tmp_path))
    (tmp_path / "compose.yaml").write_text(GOOD.replace("image:", "imagee:"))
    with pytest.raises(CommandError, match="not valid"):
        await validate("cachetest", source(tmp_path))
    assert sum("config" in c for c in calls) == 2


async def test_a_new_env_file_or_variable_is_validated_again(tmp_path: Path, calls: list[list[str]],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text(GOOD.replace("chatops-busybox:1", "${IMG:?set IMG}"))
    monkeypatch.setenv("IMG", "chatops-busybox:1")
    assert (await validate("cachetest", source(tmp_path)))["services"]["web"]["image"] == "chatops-busybox:1"
    (tmp_path / ".env").write_text("IMG=chatops-busybox:2\n")  # a file next to it: considered
    os.utime(tmp_path / ".env")
    monkeypatch.setenv("IMG", "chatops-busybox:3")
    model = await validate("cachetest", source(tmp_path))
    assert model["services"]["web"]["image"] == "chatops-busybox:3"
    assert sum("config" in c for c in calls) == 2
