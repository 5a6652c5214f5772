"""Reminder delivery: each row fails or backs off on its own.

A row whose post failed for good is `failed` with its reason; a transient failure sets the
row's own next attempt time, so one undeliverable reminder never holds up another. The
attempt count tells a re-delivery to look for what an earlier attempt already posted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reminders', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.String(length=300), nullable=True))
        batch_op.create_index('ix_reminders_pending_retry', ['state', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    op.execute("UPDATE reminders SET state = 'pending' WHERE state = 'failed'")
    with op.batch_alter_table('reminders', schema=None, recreate='never') as batch_op:
        batch_op.drop_index('ix_reminders_pending_retry')
        batch_op.drop_column('last_error')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('attempts')
