"""Site audit trail: what people did at the site, who, when and why, hash-chained.

Resuming a station's halted forwarding and acknowledging a site alarm change site records; each
such change writes one entry here in the same transaction. The entries are append-only (no update,
delete or truncate) and each continues the chain: the next sequence number and the last entry's
hash as its ``prev_hash``, as a station's audit trail does.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 04:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSE = "USING ERRCODE = 'integrity_constraint_violation'"
_GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "site_audit",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at_utc", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("full_name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("account_station", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.CheckConstraint("length(btrim(reason)) > 0", name="site_audit_reason_given"),
        sa.CheckConstraint("length(prev_hash) = 64 AND length(hash) = 64", name="site_audit_hashes"),
        sa.CheckConstraint("old_value IS NULL OR (old_value::jsonb IS NOT NULL)", name="old_value_is_json"),
        sa.CheckConstraint("new_value IS NULL OR (new_value::jsonb IS NOT NULL)", name="new_value_is_json"),
        sa.PrimaryKeyConstraint("seq"),
    )
    for sql in (
        "CREATE TRIGGER site_audit_no_delete BEFORE DELETE ON site_audit FOR EACH ROW"
        " EXECUTE FUNCTION inspector_refuse()",
        "CREATE TRIGGER site_audit_no_truncate BEFORE TRUNCATE ON site_audit FOR EACH STATEMENT"
        " EXECUTE FUNCTION inspector_refuse()",
        "CREATE TRIGGER site_audit_append_only BEFORE UPDATE ON site_audit FOR EACH ROW"
        " EXECUTE FUNCTION inspector_refuse()",
        "CREATE FUNCTION site_audit_continues_the_chain() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "DECLARE last_seq bigint; last_hash text;\nBEGIN\n"
        "SELECT seq, hash INTO last_seq, last_hash FROM site_audit ORDER BY seq DESC LIMIT 1;\n"
        f"IF NOT FOUND THEN last_seq := 0; last_hash := '{_GENESIS}'; END IF;\n"
        "IF NEW.seq IS DISTINCT FROM last_seq + 1 OR NEW.prev_hash IS DISTINCT FROM last_hash THEN\n"
        "  RAISE EXCEPTION 'site audit entry % does not continue the site audit chain (next is %)',"
        f" NEW.seq, last_seq + 1 {_REFUSE};\n"
        "END IF;\nRETURN NEW;\nEND $$",
        "CREATE TRIGGER site_audit_chain BEFORE INSERT ON site_audit FOR EACH ROW"
        " EXECUTE FUNCTION site_audit_continues_the_chain()",
    ):
        op.execute(sql)


def downgrade() -> None:
    raise RuntimeError("site records are never dropped: restore from a backup instead")
