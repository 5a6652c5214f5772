"""Every request has one effect: request claims under a unique key, and the opening lease of a start.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incidents', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('opening_platform', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('opening_by', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('opening_until', sa.DateTime(), nullable=True))
    # Starts interrupted before this migration left incidents without a channel for good; their lease
    # has run out, so the Slack bot's sweep finishes or rolls them back. (The console makes its
    # channel in the same breath as the incident, in its own workspace "console".)
    op.execute("UPDATE incidents SET opening_platform = 'slack', opening_until = created_at "
               "WHERE channel_id IS NULL AND workspace_id <> 'console'")

    op.create_table('request_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('claimed_by', sa.String(length=80), nullable=True),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workspace_id', 'key', name='uq_request_claim')
    )
    with op.batch_alter_table('request_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_claims_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('request_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_claims_created_at'))
    op.drop_table('request_claims')
    # Never rebuild `incidents` on SQLite (see 0004): drop the columns in place.
    with op.batch_alter_table('incidents', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('opening_until')
        batch_op.drop_column('opening_by')
        batch_op.drop_column('opening_platform')
