"""Alembic environment for ihx: runs against the connection handed in by exchange.store.migrate.

Configured programmatically (no alembic.ini to keep in sync); ``render_as_batch`` lets the same
migrations alter tables on SQLite, which cannot ALTER most things in place.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from exchange.store.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("ihx migrations run through `ihx db upgrade`, which passes a connection")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
