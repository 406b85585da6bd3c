"""audit: sealed and keyed chain segment, event numbers, indexes for every audit filter

Events written from now on are sealed when written (`mac`, HMAC under CHATOPS_AUDIT_KEY
or plain SHA-256 without one, over every field including the request columns the event
set, `row`) and linked into the chain a moment later (`seq`, `hash`), so an append no
longer waits on one row lock.  The existing chain is kept as it is: `audit_chain.segment_from`
records where it ends, and `audit verify` checks events up to there in their old format.
Each request counts its events (`event_count`) and each event carries its number `n`.

The requests table gets an index for every combination of equality filters the `audit`
command can receive, and joint statistics for every pair and triple of those columns, so
the planner picks the index that fits (docs/PERFORMANCE.md).

Downgrading refuses while events are sealed but not linked (start and stop the bot once);
after a downgrade the events written in the new format no longer verify with the old code.

Revision ID: 0011
Revises: 0010
"""
import itertools

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

INDEXES = [
    ('ix_requests_actor_env_created', ['actor', 'env', 'created_at']),
    ('ix_requests_actor_status_created', ['actor', 'status', 'created_at']),
    ('ix_requests_command_status_created', ['command', 'status', 'created_at']),
    ('ix_requests_actor_env_command_created', ['actor', 'env', 'command', 'created_at']),
    ('ix_requests_actor_env_status_created', ['actor', 'env', 'status', 'created_at']),
    ('ix_requests_actor_command_status_created', ['actor', 'command', 'status', 'created_at']),
    ('ix_requests_env_command_status_created', ['env', 'command', 'status', 'created_at']),
    ('ix_requests_actor_env_command_status_created', ['actor', 'env', 'command', 'status', 'created_at']),
]


FILTERS = ('actor', 'env', 'command', 'status')
# Joint statistics for every pair and triple of filter columns (0001 has all four): with them the
# planner knows that a person and a status (say) rarely or never go together, and reads the
# exact index instead of walking the time index backwards looking for rows that are not there.
STATISTICS = [cols for n in (2, 3) for cols in itertools.combinations(FILTERS, n)]


def _statistics_name(cols: tuple[str, ...]) -> str:
    return 'requests_stats_' + '_'.join(cols)


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('n', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('row', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('mac', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('key_id', sa.String(length=16), nullable=True))
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=True)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.drop_index('ix_audit_events_request')
        batch_op.create_index('ix_audit_events_request_id', ['request_id', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_unlinked', ['id'], unique=False,
                              postgresql_where=sa.text('seq IS NULL'), sqlite_where=sa.text('seq IS NULL'))
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_count', sa.Integer(), nullable=False, server_default='0'))
        for name, columns in INDEXES:
            batch_op.create_index(name, columns, unique=False)
    with op.batch_alter_table('audit_chain', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('segment_from', sa.BigInteger(), nullable=False, server_default='0'))

    # Number the existing events per request and count them; the old chain ends here.
    op.execute("UPDATE audit_events SET n = numbered.rn FROM (SELECT id, row_number() OVER "
               "(PARTITION BY request_id ORDER BY seq) AS rn FROM audit_events) AS numbered "
               "WHERE audit_events.id = numbered.id")
    op.execute("UPDATE requests SET event_count = counted.c FROM (SELECT request_id, count(*) AS c "
               "FROM audit_events GROUP BY request_id) AS counted WHERE requests.id = counted.request_id")
    op.execute("UPDATE audit_chain SET segment_from = seq")
    if op.get_bind().dialect.name == "postgresql":
        for cols in STATISTICS:
            op.execute(f"CREATE STATISTICS {_statistics_name(cols)} (dependencies, mcv) ON {', '.join(cols)} "
                       "FROM requests")
            op.execute(f"ALTER STATISTICS {_statistics_name(cols)} SET STATISTICS 1000")
        op.execute("ANALYZE requests")


def downgrade() -> None:
    bind = op.get_bind()
    unlinked = bind.execute(sa.text("SELECT count(*) FROM audit_events WHERE seq IS NULL")).scalar() or 0
    if unlinked:
        raise RuntimeError(f"{unlinked} audit event(s) are sealed but not linked yet: start and stop the bot "
                           "once (it links them), then downgrade.")
    if bind.dialect.name == "postgresql":
        for cols in STATISTICS:
            op.execute(f"DROP STATISTICS IF EXISTS {_statistics_name(cols)}")
    with op.batch_alter_table('audit_chain', schema=None) as batch_op:
        batch_op.drop_column('segment_from')
        batch_op.drop_column('key_id')
    for name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name='requests')
    # Not a batch (SQLite would copy the table, and its events' foreign keys forbid dropping it).
    op.execute("ALTER TABLE requests DROP COLUMN event_count")
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_unlinked')
        batch_op.drop_index('ix_audit_events_request_id')
        batch_op.create_index('ix_audit_events_request', ['request_id', 'seq'], unique=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_column('key_id')
        batch_op.drop_column('mac')
        batch_op.drop_column('row')
        batch_op.drop_column('n')
