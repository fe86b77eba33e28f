"""Station records schema 7, as the frozen steps of inspector.records.store made it.

A station database's first seven schema steps are SQL scripts kept in ``_MIGRATIONS`` (counted by
``PRAGMA user_version``; never edited once shipped). They run first on any database below 7; this
revision then marks the database as Alembic's from here on, and every later change of the station's
tables is an Alembic revision after this one (batch mode: SQLite rebuilds a table to change it),
held to :mod:`inspector.records.tables` by ``tests/unit/test_record_tables.py``.

Revision ID: s0007
Revises:
Create Date: 2026-12-07 04:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "s0007"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    version = op.get_bind().exec_driver_sql("PRAGMA user_version").scalar()
    if version != 7:
        raise RuntimeError(f"the station's schema steps 1-7 come first (this database is at {version})")


def downgrade() -> None:
    raise RuntimeError("station records are never dropped: restore from a backup instead")
