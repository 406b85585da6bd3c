"""No `.env` value in the audit database: revisions keep the model's shape and keyed fingerprints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.engine import Engine
from bot.request import Tone
from infra.db.deployments import DeploymentStore
from infra.db.store import Database
from infra.fingerprint import fingerprint, is_fingerprint, key_id, same, stored_model
from tests.docker_fixtures import DockerWorld, docker_client, docker_engine, world
from tests.test_docker_stacks import ask

__all__ = ["docker_client", "docker_engine", "world"]

SECRETS = ("files-dotenv-secret-5521", "tok-from-env-file-7781", "s3cret-from-dotenv-42")


def everything_stored(db: Database) -> str:
    """Every value of every row of every table, as text."""
    out = []
    with db.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                out.append(json.dumps([str(v) for v in row]))
    return "\n".join(out)


async def test_no_env_value_anywhere_in_the_audit_database(world: DockerWorld, docker_engine: Engine,
                                                          db: Database) -> None:
    # Deploys, a redeploy with a changed secret, a failed deploy, a rollback, logs, status.
    assert (await ask(docker_engine, "deploy files dinline")).tone is Tone.success
    assert (await ask(docker_engine, "deploy app dtest")).tone is Tone.success
    dotenv = world.compose_dir / "files" / ".env"
    dotenv.write_text(dotenv.read_text() + "GREETING=rotated-greeting-value-99\n")
    card = await ask(docker_engine, "deploy files dinline", yes=False)
    assert "~ web: environment GREETING changed" in dict(card.fields)["What will happen"]
    assert (await ask(docker_engine, "deploy files dinline")).tone is Tone.success
    (world.compose_dir / "files" / "app.conf").write_text("broken\n")
    file = world.compose_dir / "files" / "compose.yaml"
    file.write_text(file.read_text().replace('test: ["CMD", "test", "-s", "/etc/app/app.conf"]',
                                             'test: ["CMD", "sh", "-c", "echo $$FILES_SECRET; exit 1"]')
                    .replace("retries: 3", "retries: 1"))
    failed = await ask(docker_engine, "deploy files dinline")
    assert failed.tone is Tone.error and "unhealthy" in failed.text, failed.text
    assert "files-dotenv-secret-5521" not in failed.text and "[redacted]" in failed.text
    assert (await ask(docker_engine, "rollback files dinline")).tone is Tone.success
    assert (await ask(docker_engine, "logs worker dtest tail=100")).tone is not Tone.error
    stored = everything_stored(db)
    for secret in (*SECRETS, "rotated-greeting-value-99"):
        assert secret not in stored, secret
    rev = DeploymentStore(db).history("dinline", "files")[0]
    env = rev.model["services"]["web"]["environment"]
    assert set(env) >= {"APP_TOKEN", "FILES_SECRET", "GREETING"} and all(is_fingerprint(v) for v in env.values())
    assert same(env["FILES_SECRET"], "files-dotenv-secret-5521") is True
    assert same(env["FILES_SECRET"], "another value") is False


def test_fingerprints_are_keyed_and_say_when_they_cannot_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import fingerprint as fp

    monkeypatch.setenv("CHATOPS_FINGERPRINT_KEY", "key-one")
    fp.fingerprint_key.cache_clear()
    one = fingerprint("hunter2-password")
    assert one.startswith(f"fp:{key_id()}:") and "hunter2" not in one
    assert same(one, "hunter2-password") is True and same(one, "hunter3-password") is False
    monkeypatch.setenv("CHATOPS_FINGERPRINT_KEY", "key-two")
    fp.fingerprint_key.cache_clear()
    assert fingerprint("hunter2-password") != one
    assert same(one, "hunter2-password") is None  # made under another key: not "changed"
    fp.fingerprint_key.cache_clear()


def test_key_file_is_made_once_in_the_state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import fingerprint as fp

    monkeypatch.delenv("CHATOPS_FINGERPRINT_KEY", raising=False)
    monkeypatch.setenv("CHATOPS_DATA_DIR", str(tmp_path / "state"))
    fp.fingerprint_key.cache_clear()
    first = fp.fingerprint_key()
    assert (tmp_path / "state" / "fingerprint.key").stat().st_mode & 0o777 == 0o600
    fp.fingerprint_key.cache_clear()
    assert fp.fingerprint_key() == first
    fp.fingerprint_key.cache_clear()


def test_stored_model_masks_dotenv_values_but_keeps_image_references() -> None:
    model = {"services": {"web": {"image": "registry.example/app:secret-tag-123",
                                  "command": ["run", "--password=pa$$word-x9"],
                                  "environment": {"A": "pa$$word-x9", "B": None}}},
             "configs": {"c": {"content": "password = pa$$word-x9\n"}}}
    out = stored_model(model, ["pa$word-x9", "secret-tag-123"])
    text = json.dumps(out)
    assert "pa$$word-x9" not in text and "pa$word-x9" not in text
    assert out["services"]["web"]["image"] == "registry.example/app:secret-tag-123"
    assert out["services"]["web"]["command"] == ["run", "--password=[redacted]"]
    assert is_fingerprint(out["services"]["web"]["environment"]["A"])
    assert out["services"]["web"]["environment"]["B"] is None
    assert is_fingerprint(out["configs"]["c"]["content"])


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_migration_0012_fingerprints_existing_rows(kind: str, pg_url: str, tmp_path: Path) -> None:
    db = Database(pg_url if kind == "postgresql" else f"sqlite:///{tmp_path}/audit.sqlite3")
    try:
        db.migrate("0010")
        model = {"services": {"db": {"image": "postgres:16", "environment": {"POSTGRES_PASSWORD": "old-s3cret-77"},
                                     "healthcheck": {"test": ["CMD", "pg_isready", "-p", "old-s3cret-77"]}}}}
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO deployments (env, stack, action, status, created_at, actor, compose_hash, compose, "
                "model, images, error) VALUES ('e', 's', 'deploy', 'failed', CURRENT_TIMESTAMP, 'a', 'h', 'c', "
                ":model, '{}', 'failed: old-s3cret-77 rejected')"), {"model": json.dumps(model)})
        db.migrate("0012")
        assert "old-s3cret-77" not in everything_stored(db)
        rev = DeploymentStore(db).history("e", "s")[0]
        assert same(rev.model["services"]["db"]["environment"]["POSTGRES_PASSWORD"], "old-s3cret-77") is True
        assert rev.error == "failed: [redacted] rejected"
    finally:
        db.dispose()
