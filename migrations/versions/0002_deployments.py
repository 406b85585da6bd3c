"""deployments: recorded stack revisions

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

from infra.db.guards import Loss, refuse_to_lose


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deployments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('env', sa.String(length=64), nullable=False),
    sa.Column('stack', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('request_id', sa.String(length=16), nullable=True),
    sa.Column('ref', sa.String(length=128), nullable=True),
    sa.Column('git_commit', sa.String(length=64), nullable=True),
    sa.Column('compose_hash', sa.String(length=64), nullable=False),
    sa.Column('compose', sa.Text(), nullable=False),
    sa.Column('model', sa.JSON(), nullable=False),
    sa.Column('images', sa.JSON(), nullable=False),
    sa.Column('rollback_of', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index('ix_deployments_env_stack', ['env', 'stack', 'id'], unique=False)


# What the downgrade destroys: it refuses while any of it exists, unless forced (infra/db/guards.py).
LOSSES = (Loss('deployments', "the recorded stack revisions: what was deployed where, and what rollback "
               "redeploys"),)


def downgrade() -> None:
    refuse_to_lose(revision, LOSSES)
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index('ix_deployments_env_stack')
    op.drop_table('deployments')
