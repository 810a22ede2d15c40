"""Alembic environment: runs on the engine passed in ``config.attributes`` (fhir_bridge.db.upgrade)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from fhir_bridge.db import repair_partial_first_upgrade
from fhir_bridge.db.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # plain `alembic` CLI use: sqlalchemy.url from alembic.ini
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("alembic.ini names no sqlalchemy.url (or use `bbdirect db upgrade`)")
        engine = create_engine(url)
    # One transaction around every migration and the version row (see fhir_bridge.db.upgrade for how
    # SQLite gets transactional DDL): a kill at any moment leaves the previous schema or the new one.
    with engine.begin() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            repair_partial_first_upgrade(connection)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            transactional_ddl=True,
        )
        with context.begin_transaction():
            context.run_migrations()


run()
