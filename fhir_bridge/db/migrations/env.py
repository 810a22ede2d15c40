"""Alembic environment: runs on the engine passed in ``config.attributes`` (fhir_bridge.db.upgrade)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from fhir_bridge.db.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # plain `alembic` CLI use: sqlalchemy.url from alembic.ini
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run()
