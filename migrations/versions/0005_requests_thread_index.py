"""index requests by thread, for the LLM route's follow-ups

The plain-language route reads a thread's last plan from the requests table
(`WHERE channel = ? AND thread = ? ORDER BY created_at DESC LIMIT 1`); without
this index that is a scan of the whole audit log on every follow-up.

Revision ID: 0005
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_requests_thread_created', 'requests', ['channel', 'thread', 'created_at'],
                    postgresql_where=sa.text('thread IS NOT NULL'),
                    sqlite_where=sa.text('thread IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_requests_thread_created', table_name='requests')
