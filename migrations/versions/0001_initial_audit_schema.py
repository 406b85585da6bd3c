"""initial audit schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 03:48:59.148817
"""
from alembic import op
import sqlalchemy as sa

from infra.db.guards import Loss, refuse_to_lose


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_chain',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('env_locks',
    sa.Column('env', sa.String(length=64), nullable=False),
    sa.Column('locked_by', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('env')
    )
    op.create_table('exec_locks',
    sa.Column('target', sa.String(length=128), nullable=False),
    sa.Column('request_id', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('target')
    )
    op.create_table('requests',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=True),
    sa.Column('thread', sa.String(length=128), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('command', sa.String(length=32), nullable=True),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('env', sa.String(length=64), nullable=True),
    sa.Column('target', sa.String(length=128), nullable=True),
    sa.Column('changes', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('plan_hash', sa.String(length=64), nullable=True),
    sa.Column('approver', sa.String(length=128), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('correlation_id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.create_index('ix_requests_actor_created', ['actor', 'created_at'], unique=False)
        batch_op.create_index('ix_requests_command_created', ['command', 'created_at'], unique=False)
        batch_op.create_index('ix_requests_created', ['created_at'], unique=False)
        batch_op.create_index('ix_requests_env_created', ['env', 'created_at'], unique=False)
        batch_op.create_index('ix_requests_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_requests_actor_command_created', ['actor', 'command', 'created_at'], unique=False)
        batch_op.create_index('ix_requests_env_command_created', ['env', 'command', 'created_at'], unique=False)
        batch_op.create_index('ix_requests_env_status_created', ['env', 'status', 'created_at'], unique=False)

    op.create_table('workers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('host', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('request_id', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_request', ['request_id', 'seq'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # Who does what is correlated (one person restarts, another deploys): tell the planner, so a
        # rare user+command filter uses the indexes instead of walking the whole time index.
        op.execute("CREATE STATISTICS requests_filter_stats (dependencies, mcv) "
                   "ON actor, command, env, status FROM requests")

    # The chain starts from a fixed genesis hash; every event moves the head.
    op.bulk_insert(sa.table('audit_chain', sa.column('id', sa.Integer), sa.column('seq', sa.BigInteger),
                            sa.column('hash', sa.String)), [{'id': 1, 'seq': 0, 'hash': '0' * 64}])



# What the downgrade destroys: it refuses while any of it exists, unless forced (infra/db/guards.py).
LOSSES = (
    Loss('requests', "every request asked of the bot: who asked what, where, and how it ended"),
    Loss('audit_events', "the hash-chained audit events that prove the requests' history"),
    Loss('env_locks', "environments frozen now: dropping them lifts the freezes"),
)


def downgrade() -> None:
    refuse_to_lose(revision, LOSSES)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS requests_filter_stats")
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_request')

    op.drop_table('audit_events')
    op.drop_table('workers')
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index('ix_requests_env_status_created')
        batch_op.drop_index('ix_requests_env_command_created')
        batch_op.drop_index('ix_requests_actor_command_created')
        batch_op.drop_index('ix_requests_status_created')
        batch_op.drop_index('ix_requests_env_created')
        batch_op.drop_index('ix_requests_created')
        batch_op.drop_index('ix_requests_command_created')
        batch_op.drop_index('ix_requests_actor_created')

    op.drop_table('requests')
    op.drop_table('exec_locks')
    op.drop_table('env_locks')
    op.drop_table('audit_chain')
