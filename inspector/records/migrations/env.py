"""Alembic's environment for a station's record database (SQLite): migrations run on the connection
:func:`inspector.records.store.RecordStore` gives, in batch mode (SQLite rebuilds a table to change it)."""

from __future__ import annotations

from alembic import context

from inspector.records.tables import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  transaction_per_migration=True)  # fmt: skip
with context.begin_transaction():
    context.run_migrations()
