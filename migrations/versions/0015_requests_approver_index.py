"""requests: indexes for `audit approver=…` (who approved or denied)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 06:00:00

A decision by button has no row of its own: the request it decided keeps who made it in
`approver`.  "What did bob approve" reads those rows newest first, with any other filters:
as migration 0011 did for the others, every combination has an index ending in created_at,
so none walks one person's decisions looking for rows that are not there (a heavy approver's
`user=… env=… command=…` took 360 ms at 5M rows with only the pairs; docs/PERFORMANCE.md).
The indexes are partial: most requests are never decided by anyone, and cost nothing more.
"""
import itertools

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


# approver with every subset of the other equality filters, as 0011 has them without it
INDEXES = [(f"ix_requests_approver_{''.join(c + '_' for c in cols)}created", ['approver', *cols, 'created_at'])
           for n in range(5) for cols in itertools.combinations(('actor', 'env', 'command', 'status'), n)]
DECIDED = 'approver IS NOT NULL'


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, 'requests', columns, postgresql_where=sa.text(DECIDED), sqlite_where=sa.text(DECIDED))


def downgrade() -> None:
    for name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name='requests')
