"""events: schedules, alert posts, suggested plans; requests.schedule_id

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa

from infra.db.guards import Loss, refuse_to_lose


revision = '0014'
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('schedules',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=True),
    sa.Column('thread', sa.String(length=128), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('command', sa.String(length=32), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('env', sa.String(length=64), nullable=True),
    sa.Column('plan_hash', sa.String(length=64), nullable=False),
    sa.Column('said', sa.String(length=128), nullable=False),
    sa.Column('recurrence', sa.String(length=64), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('next_run', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('approval', sa.String(length=16), nullable=False),
    sa.Column('approved_by', sa.String(length=128), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('request_id', sa.String(length=16), nullable=True),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_request_id', sa.String(length=16), nullable=True),
    sa.Column('last_status', sa.String(length=24), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=128), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_schedules_state_next', 'schedules', ['state', 'next_run'])
    op.create_table('alert_posts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('group_key', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=False),
    sa.Column('message', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('group_key', 'platform', 'channel', name='uq_alert_posts_target')
    )
    op.create_table('suggestions',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('command', sa.String(length=32), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('plan_hash', sa.String(length=64), nullable=False),
    sa.Column('origin', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.add_column('requests', sa.Column('schedule_id', sa.String(length=16), nullable=True))
    op.create_index('ix_requests_schedule', 'requests', ['schedule_id', 'created_at'],
                    postgresql_where=sa.text('schedule_id IS NOT NULL'),
                    sqlite_where=sa.text('schedule_id IS NOT NULL'))


LOSSES = (
    Loss('schedules', "the team's scheduled requests, who asked for them and who approved them"),
    Loss('requests', "which schedule each scheduled run belongs to", column='schedule_id'),
    Loss('alert_posts', "where each Alertmanager group's message was posted"),
    Loss('suggestions', "the plans offered on alert buttons, bound to their hashes"),
)


def downgrade() -> None:
    refuse_to_lose(revision, LOSSES)
    op.drop_index('ix_requests_schedule', table_name='requests')
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+ has it): a batch copy of `requests` would
    # trip the audit_events foreign key on a populated SQLite database.
    op.execute('ALTER TABLE requests DROP COLUMN schedule_id')
    op.drop_table('suggestions')
    op.drop_table('alert_posts')
    op.drop_index('ix_schedules_state_next', table_name='schedules')
    op.drop_table('schedules')
