"""Statements drafted from templates, their versions and the approval decisions on each version.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 18:52:17.680201
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('template_key', sa.String(length=40), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('audience', sa.String(length=20), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=True),
    sa.Column('published_by', sa.String(length=64), nullable=True),
    sa.Column('published_where', sa.String(length=200), nullable=True),
    sa.Column('published_link', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('incident_id', 'number', name='uq_statement_number')
    )
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statements_incident_id'), ['incident_id'], unique=False)

    op.create_table('statement_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('steps', sa.JSON(), nullable=False),
    sa.Column('author_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('statement_id', 'number', name='uq_statement_version')
    )
    with op.batch_alter_table('statement_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statement_versions_statement_id'), ['statement_id'], unique=False)

    op.create_table('statement_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=40), nullable=True),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['statement_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version_id', 'step', 'user_id', 'kind', name='uq_decision_once')
    )
    with op.batch_alter_table('statement_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statement_decisions_version_id'), ['version_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('statement_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_statement_decisions_version_id'))

    op.drop_table('statement_decisions')
    with op.batch_alter_table('statement_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_statement_versions_statement_id'))

    op.drop_table('statement_versions')
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_statements_incident_id'))

    op.drop_table('statements')
