"""Closing an incident: when and by whom, the lessons learned, and the archive job.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 21:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incidents', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('closed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('archived_at', sa.DateTime(), nullable=True))

    op.create_table('lessons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('owner_id', sa.String(length=64), nullable=True),
    sa.Column('author_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lessons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lessons_incident_id'), ['incident_id'], unique=False)

    # An archive job is a reminder row of the incident, not of a deadline.
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.alter_column('deadline_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM reminders WHERE deadline_id IS NULL")
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.alter_column('deadline_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('lessons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lessons_incident_id'))
    op.drop_table('lessons')
    # Never rebuild `incidents` on SQLite: dropping the old table would cascade into every
    # table that points at it (foreign keys are on). SQLite 3.35+ drops a column in place.
    with op.batch_alter_table('incidents', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('archived_at')
        batch_op.drop_column('closed_by')
        batch_op.drop_column('closed_at')
