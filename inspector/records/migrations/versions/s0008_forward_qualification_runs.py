"""Qualification runs travel to the site too: the outbox queues their creation and every step.

SQLite cannot change a CHECK constraint, so the outbox is rebuilt with ``qualification_runs`` among
its tables (the 12-step procedure: the triggers that write into it are dropped first and made
again, since a trigger may not name a table that is missing while another is renamed), keeping
every entry, its sequence number and the AUTOINCREMENT counter. The runs a database already holds
are queued after everything else, in the order they were created, with an update for each that has
moved on since.

Revision ID: s0008
Revises: s0007
Create Date: 2026-12-07 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "s0008"
down_revision: str | None = "s0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("users", "audit_trail", "signatures", "lifecycle", "batches", "items", "alarms", "qualification_runs")
_WRITERS = (  # (trigger, event, table, key, op, when)
    ("outbox_users_insert", "INSERT", "users", "id", "insert", ""),
    ("outbox_users_update", "UPDATE", "users", "id", "update", ""),
    ("outbox_audit_trail_insert", "INSERT", "audit_trail", "seq", "insert", ""),
    ("outbox_signatures_insert", "INSERT", "signatures", "id", "insert", ""),
    ("outbox_lifecycle_insert", "INSERT", "lifecycle", "id", "insert", ""),
    ("outbox_batches_insert", "INSERT", "batches", "batch_id", "insert", ""),
    ("outbox_batches_update", "UPDATE", "batches", "batch_id", "update", ""),
    ("outbox_items_insert", "INSERT", "items", "id", "insert", ""),
    ("outbox_items_update", "UPDATE", "items", "id", "update", ""),
    ("outbox_alarms_insert", "INSERT", "alarms", "id", "insert", ""),
    ("outbox_alarms_update", "UPDATE", "alarms", "id", "update", ""),
    ("outbox_items_insert_acked", "INSERT", "items", "id", "update", " WHEN NEW.plc_ack IS NOT NULL"),
)
_NEW_WRITERS = (
    ("outbox_qualification_runs_insert", "INSERT", "qualification_runs", "run_id", "insert", ""),
    ("outbox_qualification_runs_update", "UPDATE", "qualification_runs", "run_id", "update", ""),
)


def _trigger(name: str, event: str, table: str, key: str, kind: str, when: str) -> str:
    return (
        f"CREATE TRIGGER {name} AFTER {event} ON {table}{when}\n"
        f"BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('{table}', NEW.{key}, '{kind}'); END"
    )


def upgrade() -> None:
    tables = ", ".join(f"'{t}'" for t in _TABLES)
    for name, *_ in _WRITERS:
        op.execute(f"DROP TRIGGER {name}")
    op.execute(
        "CREATE TABLE outbox_v8 (\n"
        "    seq INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        f"    tbl TEXT NOT NULL CHECK (tbl IN ({tables})),\n"
        "    row_key TEXT NOT NULL,\n"
        "    op TEXT NOT NULL CHECK (op IN ('insert', 'update')),\n"
        "    at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)  -- Unix seconds, UTC\n"
        ") STRICT"
    )
    op.execute("INSERT INTO outbox_v8 (seq, tbl, row_key, op, at) SELECT seq, tbl, row_key, op, at FROM outbox")
    op.execute(
        "UPDATE sqlite_sequence"
        " SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0))"
        " WHERE name = 'outbox_v8'"
    )
    op.execute("DROP TABLE outbox")
    op.execute("ALTER TABLE outbox_v8 RENAME TO outbox")
    for writer in (*_WRITERS, *_NEW_WRITERS):
        op.execute(_trigger(*writer))
    op.execute(
        "INSERT INTO outbox (tbl, row_key, op)"
        " SELECT 'qualification_runs', run_id, 'insert' FROM qualification_runs ORDER BY rowid"
    )
    op.execute(
        "INSERT INTO outbox (tbl, row_key, op)"
        " SELECT 'qualification_runs', run_id, 'update' FROM qualification_runs WHERE state <> 'created' ORDER BY rowid"
    )


def downgrade() -> None:
    raise RuntimeError("station records are never dropped: restore from a backup instead")
