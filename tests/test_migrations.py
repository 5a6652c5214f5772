"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.models import Base


def test_migrations_match_the_models(db):
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], "a model change without its migration (alembic revision --autogenerate)"


def test_downgrading_the_close_migration_keeps_every_incident_whole(core, db):
    """0004 adds columns to `incidents`; taking them away again must not touch the rows that point at it."""
    from alembic import command
    from sqlalchemy import text

    from bot.db import alembic_config

    opening = core.start_incident("T1", "U1", "Charger overheats")
    core.opened(opening.incident_id, "C1", "crisis-1")
    core.claim_role(opening.incident_id, "U2", "comms")
    tables = ("incidents", "timeline_events", "checklist_items", "role_assignments", "deadlines", "reminders")

    def counts():
        with db.engine.connect() as connection:
            return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in tables}

    before = counts()
    assert all(before.values())
    command.downgrade(alembic_config(db.engine), "0003")
    assert counts() == before
    command.upgrade(alembic_config(db.engine), "head")
    assert counts() == before
