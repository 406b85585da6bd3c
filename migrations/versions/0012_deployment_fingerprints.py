"""deployments: no secrets at rest; environment values and inline files become keyed fingerprints

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 09:00:00

Rows recorded before this kept the resolved Compose model, every `.env` value in clear.
Each row's model keeps its shape; every environment value (and inline config content)
becomes `fp:KEYID:HMAC` under the bot's fingerprint key (infra/fingerprint.py), and those
values are masked wherever else they appear in the row (the model's other fields, the error).
A downgrade cannot bring the values back: it leaves the fingerprints.
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

deployments = sa.table("deployments", sa.column("id", sa.Integer), sa.column("model", sa.JSON),
                       sa.column("error", sa.Text))


def _values(model: dict) -> list[str]:
    out: list[str] = []
    for svc in (model.get("services") or {}).values():
        env = svc.get("environment") if isinstance(svc, dict) else None
        if isinstance(env, dict):
            out += [str(v).replace("$$", "$") for v in env.values() if v is not None]
    return out


def upgrade() -> None:
    from infra.fingerprint import MASK, is_fingerprint, stored_model

    conn = op.get_bind()
    rows = conn.execute(sa.select(deployments.c.id, deployments.c.model, deployments.c.error)).all()
    for rid, model, error in rows:
        if not isinstance(model, dict):
            continue
        secrets = [v for v in _values(model) if not is_fingerprint(v)]
        clean = stored_model(model, secrets)
        for s in sorted((v for v in secrets if len(v) >= 6), key=len, reverse=True):
            error = error.replace(s, MASK) if error else error
        if clean != model or error is not None:
            conn.execute(deployments.update().where(deployments.c.id == rid).values(model=clean, error=error))


def downgrade() -> None:
    pass  # the values are gone on purpose
