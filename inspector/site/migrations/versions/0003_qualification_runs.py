"""Qualification runs of every station, as their stations hold them, only ever moving forward.

A run arrives as the station holds it when the forwarder reads it (it may have moved on since it
was queued), so the site accepts a run in any state and then only forward steps, possibly several
at once (created -> running -> completed -> reviewed -> approved, or aborted from created or
running): its identity never changes, and its end time, verdict, report hash and result, once
set, stay. A re-sent unchanged run changes nothing. No run is deleted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 04:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSE = "USING ERRCODE = 'integrity_constraint_violation'"
_IDENTITY = ("station_id", "run_id", "suite_id", "suite_sha256", "recipe_id", "recipe_sha256", "model_id",
             "model_digest", "formal", "created_utc", "created_by")  # fmt: skip
_SET_ONCE = ("ended_utc", "passed", "report_sha256", "result")
# Where each state may go, in one or more of the station's steps.
_ONWARD = {
    "created": ("running", "completed", "aborted", "reviewed", "approved"),
    "running": ("completed", "aborted", "reviewed", "approved"),
    "completed": ("reviewed", "approved"),
    "reviewed": ("approved",),
}


def _row(alias: str, cols: Sequence[str]) -> str:
    return "(" + ", ".join(f"{alias}.{c}" for c in cols) + ")"


def upgrade() -> None:
    op.create_table(
        "qualification_runs",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("suite_id", sa.Text(), nullable=False),
        sa.Column("suite_sha256", sa.Text(), nullable=False),
        sa.Column("recipe_id", sa.Text(), nullable=False),
        sa.Column("recipe_sha256", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("model_digest", sa.Text(), nullable=False),
        sa.Column("formal", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("created_utc", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("ended_utc", sa.Text(), nullable=True),
        sa.Column("passed", sa.Integer(), nullable=True),
        sa.Column("report_sha256", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('created', 'running', 'completed', 'aborted', 'reviewed', 'approved')",
            name="qualification_state",
        ),
        sa.CheckConstraint("formal IN (0, 1) AND (passed IS NULL OR passed IN (0, 1))", name="qualification_flags"),
        sa.CheckConstraint("result IS NULL OR (result::jsonb IS NOT NULL)", name="result_is_json"),
        sa.ForeignKeyConstraint(["station_id"], ["stations.station_id"], name="qualification_station"),
        sa.PrimaryKeyConstraint("station_id", "run_id"),
    )
    onward = " OR ".join(
        f"(OLD.state = '{a}' AND NEW.state IN ({', '.join(repr(b) for b in bs)}))" for a, bs in _ONWARD.items()
    )
    set_once = " OR ".join(f"(OLD.{c} IS NOT NULL AND NEW.{c} IS DISTINCT FROM OLD.{c})" for c in _SET_ONCE)
    for sql in (
        "CREATE TRIGGER qualification_runs_no_delete BEFORE DELETE ON qualification_runs FOR EACH ROW"
        " EXECUTE FUNCTION inspector_refuse()",
        "CREATE TRIGGER qualification_runs_no_truncate BEFORE TRUNCATE ON qualification_runs FOR EACH STATEMENT"
        " EXECUTE FUNCTION inspector_refuse()",
        "CREATE FUNCTION qualification_runs_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        f"IF {_row('NEW', _IDENTITY)} IS DISTINCT FROM {_row('OLD', _IDENTITY)} OR {set_once}"
        f" OR NOT (NEW.state = OLD.state OR {onward}) THEN\n"
        "  RAISE EXCEPTION 'station %: qualification run % only moves forward, and its identity and result never"
        f" change', NEW.station_id, NEW.run_id {_REFUSE};\n"
        "END IF;\nRETURN NEW;\nEND $$",
        "CREATE TRIGGER qualification_runs_forward BEFORE UPDATE ON qualification_runs FOR EACH ROW"
        " EXECUTE FUNCTION qualification_runs_forward_only()",
    ):
        op.execute(sql)


def downgrade() -> None:
    raise RuntimeError("site records are never dropped: restore from a backup instead")
