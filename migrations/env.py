"""Alembic runs migrations on the engine the application hands it (bot.db.upgrade)."""

from alembic import context

from bot.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    # Plain `alembic` on the command line: fall back to the URL from alembic's own config.
    from bot.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
