"""Why a cancelled deadline stopped (resolve or a severity change), recorded rather than guessed.

The retrospective used to compare the deadline's closed_at with the incident's resolved_at,
which differ by milliseconds. Old rows are filled in from what only resolve did: it closed
the deadline in someone's name, while a severity change closed it in nobody's.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deadlines', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('close_reason', sa.String(length=20), nullable=True))
    op.execute("UPDATE deadlines SET close_reason = 'resolved' "
               "WHERE state = 'cancelled' AND closed_by IS NOT NULL")
    op.execute("UPDATE deadlines SET close_reason = 'severity' "
               "WHERE state = 'cancelled' AND closed_by IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('deadlines', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('close_reason')
