"""Delivery problems: what the bot could not do on a platform and a person must know (invite, topic,
announcement, escalation), kept with the incident until it is fixed; and a claim on posting a
standing message, so two instances reconciling at once post it once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('posted_messages', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(), nullable=True))

    op.create_table('delivery_problems',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=80), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('fixed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('incident_id', 'platform', 'kind', 'subject', name='uq_problem_subject')
    )
    with op.batch_alter_table('delivery_problems', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_problems_incident_id'), ['incident_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('delivery_problems', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_problems_incident_id'))
    op.drop_table('delivery_problems')
    with op.batch_alter_table('posted_messages', schema=None) as batch_op:
        batch_op.drop_column('claimed_until')
