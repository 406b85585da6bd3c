"""operations: audit checkpoints written by retention pruning

Revision ID: 0010
Revises: 0001
Create Date: 2026-11-27 10:00:00
"""
from alembic import op
import sqlalchemy as sa

from infra.db.guards import Loss, refuse_to_lose


revision = '0010'
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_id', sa.String(length=16), nullable=False),
    sa.Column('archive', sa.Text(), nullable=False),
    sa.Column('archive_sha256', sa.String(length=64), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )


# What the downgrade destroys: it refuses while any of it exists, unless forced (infra/db/guards.py).
LOSSES = (Loss('audit_checkpoints', "where the audit chain starts after `audit prune`; without them "
               "`audit verify` reports the pruned events as missing, for good, even after re-upgrading"),)


def downgrade() -> None:
    refuse_to_lose(revision, LOSSES)
    op.drop_table('audit_checkpoints')
