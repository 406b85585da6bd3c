"""Audit retention: prune old requests into an archive; the chain still verifies."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from bot.cli import main
from bot.engine import Engine
from bot.request import Actor, Request
from infra.config import Config
from infra.db.common import utcnow
from infra.db.models import AuditCheckpoint, AuditEvent
from infra.db.retention import PRUNE_COMMAND, prune, read_archive, verify_archive
from infra.db.store import AuditStore, Database
from tests.ops_support import HeldJob, docker_backends, registry_with, restart

OLD = timedelta(days=400)


def make(config: Config, db: Database) -> Engine:
    return Engine(config, AuditStore(db), docker_backends(config), registry=registry_with(HeldJob(hold=False)))


class Clock:
    """The audit log's clock, set back: what happens meanwhile is recorded as that old, rows and
    events alike (editing the rows' times afterwards is what `audit verify` reports as tampering)."""

    def __init__(self) -> None:
        self.back = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() - self.back


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr("infra.db.store.utcnow", c)
    monkeypatch.setattr("infra.db.retention.utcnow", c)
    return c


async def populate(eng: Engine, clock: Clock) -> tuple[list[str], str, list[str]]:
    """Two old requests, an open approval, then two more old ones (400 days ago)."""
    clock.back = OLD
    early = [(await eng.handle(restart("console:alice", "n8n", "rumpledev"))).request_id or "",
             (await eng.handle(Request(actor=Actor("console:bob"), text="whoami"))).request_id or ""]
    pending = (await eng.handle(restart("console:alice", "n8n", "rumpleprod"))).request_id or ""
    late = [(await eng.handle(restart("console:bob", "nginx", "rumpledev"))).request_id or "",
            (await eng.handle(Request(actor=Actor("console:carol"), text="envs"))).request_id or ""]
    clock.back = timedelta(0)
    return early, pending, late


async def test_prune_archives_a_prefix_and_the_chain_still_verifies(config: Config, db: Database,
                                                                   tmp_path: Path, clock: Clock) -> None:
    eng = make(config, db)
    early, pending, late = await populate(eng, clock)
    assert eng.store.verify() == []
    cutoff = utcnow() - timedelta(days=365)

    dry = prune(eng.store, cutoff, None, dry_run=True)
    assert dry.requests == 2 and eng.store.get(early[0]) is not None

    first = prune(eng.store, cutoff, tmp_path / "a1.jsonl.gz")
    # The open approval stops the cut: only the two requests before it go.
    assert first.requests == 2
    assert all(eng.store.get(r) is None for r in early)
    assert eng.store.get(pending) is not None and all(eng.store.get(r) is not None for r in late)
    assert eng.store.verify() == []
    assert verify_archive(tmp_path / "a1.jsonl.gz") == []
    header, rows, events = read_archive(tmp_path / "a1.jsonl.gz")
    assert header["first_seq"] == 1 and header["through_seq"] == first.through_seq == events[-1]["seq"]
    assert {r["id"] for r in rows} == set(early)
    prune_row = eng.store.get(first.request_id or "")
    assert prune_row is not None and prune_row.command == PRUNE_COMMAND and prune_row.status == "succeeded"

    # The approval is decided (denied, back then too) and is old; the next prune continues the chain.
    clock.back = OLD
    assert "Denied" in (await eng.act("deny", pending, Actor("console:bob"))).text
    clock.back = timedelta(0)
    # Its 'denied' event came after the first prune's own events, and that prune is recent: a
    # prefix cut cannot take the approval without it, so nothing goes yet.
    assert prune(eng.store, cutoff, tmp_path / "a2.jsonl.gz").requests == 0
    # A year later the first prune's record is old as well.
    second = prune(eng.store, utcnow() + timedelta(seconds=1), tmp_path / "a2.jsonl.gz")
    assert second.requests == 4  # the approval, the two after it, the first prune's record
    assert eng.store.get(first.request_id or "") is None
    assert eng.store.verify() == []
    h2, _, _ = read_archive(tmp_path / "a2.jsonl.gz")
    assert h2["prev_hash"] == header["through_hash"] and h2["first_seq"] == header["through_seq"] + 1
    assert verify_archive(tmp_path / "a2.jsonl.gz") == []
    # New activity after pruning chains on as before.
    assert (await eng.handle(restart("console:alice", "n8n", "rumpletest"))).ok
    assert eng.store.verify() == []
    assert prune(eng.store, cutoff, tmp_path / "a3.jsonl.gz").requests == 0
    assert not (tmp_path / "a3.jsonl.gz").exists()


async def test_tampering_with_checkpoints_or_archives_is_detected(config: Config, db: Database,
                                                                  tmp_path: Path, clock: Clock) -> None:
    eng = make(config, db)
    await populate(eng, clock)
    result = prune(eng.store, utcnow() - timedelta(days=365), tmp_path / "a.jsonl.gz")
    assert eng.store.verify() == []

    with db.sessions.begin() as s:  # move the checkpoint to hide a later deletion
        s.execute(update(AuditCheckpoint).values(hash="f" * 64))
    problems = eng.store.verify()
    assert any("does not match the prune event" in p for p in problems)
    assert any(f"event {result.through_seq + 1} does not follow" in p for p in problems)
    with db.sessions.begin() as s:
        s.execute(update(AuditCheckpoint).values(hash=result.through_hash))
    assert eng.store.verify() == []

    with db.sessions.begin() as s:  # delete the checkpoint: the chain no longer starts at 1
        s.query(AuditCheckpoint).delete()
    assert any(f"events 1..{result.through_seq} are missing" in p for p in eng.store.verify())

    archive = tmp_path / "a.jsonl.gz"
    with gzip.open(archive, "rt") as f:
        lines = f.read().splitlines()
    event_line = next(i for i, line in enumerate(lines) if '"type":"event"' in line)
    ev = json.loads(lines[event_line])
    ev["actor"] = "console:mallory"
    lines[event_line] = json.dumps(ev)
    with gzip.open(archive, "wt") as f:
        f.write("\n".join(lines) + "\n")
    assert any(f"event {ev['seq']}" in p and "edited" in p for p in verify_archive(archive))


async def test_cli_prune_and_verify_with_archive(config: Config, db: Database, pg_url: str,
                                                tmp_path: Path, clock: Clock) -> None:
    eng = make(config, db)
    early, _, _ = await populate(eng, clock)
    env = {"DATABASE_URL": pg_url, "CHATOPS_CONFIG": str(config.path)}
    runner = CliRunner()
    refused = runner.invoke(main, ["audit", "prune", "--days", "365"], env=env)
    assert refused.exit_code == 2 and "never deletes without an archive" in refused.output
    archive = tmp_path / "old.jsonl.gz"
    done = runner.invoke(main, ["audit", "prune", "--days", "365", "--archive", str(archive)], env=env)
    assert done.exit_code == 0, done.output
    assert "archived 2 requests" in done.output and archive.exists()
    assert all(eng.store.get(r) is None for r in early)
    ok = runner.invoke(main, ["audit", "verify", "--archive", str(archive)], env=env)
    assert ok.exit_code == 0 and "1 archive OK" in ok.output and "audit chain OK" in ok.output
    with db.sessions.begin() as s:  # someone deletes a surviving event
        s.query(AuditEvent).filter(AuditEvent.seq == s.query(AuditEvent.seq).order_by(
            AuditEvent.seq).limit(1).scalar_subquery()).delete(synchronize_session=False)
    bad = runner.invoke(main, ["audit", "verify"], env=env)
    assert bad.exit_code == 1 and "TAMPERED" in bad.output
