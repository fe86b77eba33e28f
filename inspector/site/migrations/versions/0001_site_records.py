"""Site records: every station's records, keyed by station, with the station's integrity rules.

The tables are :mod:`inspector.site.schema`'s as of this revision (frozen here: a migration is
never edited once shipped). The triggers below are PostgreSQL's form of the rules the station's
SQLite schema enforces: nothing is deleted or truncated; audit entries, signatures and lifecycle
steps are append-only; an audit entry continues its station's chain (next sequence number, the
last entry's hash); an item row is write-once except its PLC acknowledgement, set once, only in a
batch that had a PLC; an item joins only a running batch and continues the batch's hash chain
(its ``prev_hash`` is the last row's hash, or the batch's anchor); a batch starts running and is
ended once, its opening values fixed; an alarm is stored unacknowledged and acknowledged once; a
user keeps their name and is never reactivated; a station's forwarding cursor never goes back.

Revision ID: 0001
Revises:
Create Date: 2026-12-07 01:21:37.331287
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "site_alarms",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("raised_utc", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), server_default="{}", nullable=False),
        sa.Column("acknowledged_utc", sa.Text(), nullable=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.CheckConstraint("(acknowledged_utc IS NULL) = (acknowledged_by IS NULL)", name="site_alarms_ack_complete"),
        sa.CheckConstraint("(detail::jsonb IS NOT NULL)", name="detail_is_json"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "stations",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("registered_utc", sa.Text(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("local_head", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("oldest_pending_at", sa.Float(), nullable=True),
        sa.Column("pushed_at", sa.Float(), nullable=True),
        sa.Column("halted", sa.Text(), nullable=True),
        sa.CheckConstraint("station_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'", name="station_id_safe"),
        sa.CheckConstraint("cursor >= 0 AND local_head >= 0", name="cursor_positive"),
        sa.PrimaryKeyConstraint("station_id"),
    )
    op.create_table(
        "audit_trail",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at_utc", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.CheckConstraint("length(prev_hash) = 64 AND length(hash) = 64", name="audit_hashes"),
        sa.CheckConstraint("new_value IS NULL OR (new_value::jsonb IS NOT NULL)", name="new_value_is_json"),
        sa.CheckConstraint("old_value IS NULL OR (old_value::jsonb IS NOT NULL)", name="old_value_is_json"),
        sa.ForeignKeyConstraint(["station_id"], ["stations.station_id"], name="audit_station"),
        sa.PrimaryKeyConstraint("station_id", "seq"),
    )
    op.create_table(
        "batches",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("product", sa.Text(), nullable=False),
        sa.Column("recipe_id", sa.Text(), nullable=False),
        sa.Column("recipe_version", sa.Text(), nullable=False),
        sa.Column("recipe_sha256", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("model_sha256", sa.Text(), nullable=False),
        sa.Column("camera_serial", sa.Text(), nullable=False),
        sa.Column("camera_settings", sa.Text(), nullable=False),
        sa.Column("started_utc", sa.Text(), nullable=False),
        sa.Column("ended_utc", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("operator", sa.Text(), nullable=True),
        sa.Column("plc", sa.Text(), nullable=True),
        sa.Column("thresholds", sa.Text(), nullable=True),
        sa.Column("thresholds_validated", sa.Integer(), nullable=True),
        sa.Column("release_status", sa.Text(), nullable=False),
        sa.Column("items_head", sa.Text(), nullable=True),
        sa.Column("audit_head_seq", sa.BigInteger(), nullable=True),
        sa.Column("audit_head_hash", sa.Text(), nullable=True),
        sa.Column("anchor", sa.Text(), nullable=False),
        sa.CheckConstraint("(state = 'running') = (ended_utc IS NULL)", name="batches_ended_has_time"),
        sa.CheckConstraint("state IN ('running', 'ended', 'aborted')", name="batches_state_known"),
        sa.CheckConstraint("(camera_settings::jsonb IS NOT NULL)", name="camera_settings_is_json"),
        sa.CheckConstraint("summary IS NULL OR (summary::jsonb IS NOT NULL)", name="summary_is_json"),
        sa.CheckConstraint("thresholds IS NULL OR (thresholds::jsonb IS NOT NULL)", name="thresholds_is_json"),
        sa.ForeignKeyConstraint(["station_id"], ["stations.station_id"], name="batches_station"),
        sa.PrimaryKeyConstraint("station_id", "batch_id"),
    )
    op.create_table(
        "users",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("full_name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("locked", sa.Integer(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("demo", sa.Integer(), nullable=False),
        sa.Column("created_utc", sa.Text(), nullable=False),
        sa.CheckConstraint("role IN ('operator', 'engineer', 'qa', 'admin')", name="users_role_known"),
        sa.ForeignKeyConstraint(["station_id"], ["stations.station_id"], name="users_station"),
        sa.PrimaryKeyConstraint("station_id", "local_id"),
        sa.UniqueConstraint("station_id", "username", name="users_station_username"),
    )
    op.create_table(
        "alarms",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=True),
        sa.Column("created_utc", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("acknowledged_utc", sa.Text(), nullable=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.Column("uid", sa.Text(), nullable=True),
        sa.Column("severity", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.CheckConstraint("(acknowledged_utc IS NULL) = (acknowledged_by IS NULL)", name="alarms_ack_complete"),
        sa.CheckConstraint("(detail::jsonb IS NOT NULL)", name="detail_is_json"),
        sa.ForeignKeyConstraint(
            ["station_id", "batch_id"], ["batches.station_id", "batches.batch_id"], name="alarms_batch"
        ),
        sa.PrimaryKeyConstraint("station_id", "local_id"),
    )
    op.create_table(
        "items",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("frame_id", sa.BigInteger(), nullable=True),
        sa.Column("t_frame", sa.Float(), nullable=True),
        sa.Column("created_utc", sa.Text(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("deadline_met", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("pocket_index", sa.Integer(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("class_scores", sa.Text(), nullable=False),
        sa.Column("anomaly_score", sa.Float(), nullable=True),
        sa.Column("latency", sa.Text(), nullable=False),
        sa.Column("image_path", sa.Text(), nullable=True),
        sa.Column("image_sha256", sa.Text(), nullable=True),
        sa.Column("truth_label", sa.Text(), nullable=True),
        sa.Column("plc_ack", sa.Text(), nullable=True),
        sa.Column("plc_ack_utc", sa.Text(), nullable=True),
        sa.Column("alarm", sa.Text(), nullable=True),
        sa.Column("pose", sa.Text(), nullable=True),
        sa.Column("identity", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.Text(), nullable=True),
        sa.Column("row_hash", sa.Text(), nullable=True),
        sa.Column("ack_hash", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "decision <> 'accept' OR (reason = 'ok' AND deadline_met = 1)", name="accept_requires_ok_in_time"
        ),
        sa.CheckConstraint("decision <> 'reject' OR reason <> 'ok'", name="reject_has_reason"),
        sa.CheckConstraint("decision IN ('accept', 'reject')", name="items_decision_known"),
        sa.CheckConstraint("(class_scores::jsonb IS NOT NULL)", name="class_scores_is_json"),
        sa.CheckConstraint("(image_path IS NULL) = (image_sha256 IS NULL)", name="image_has_hash"),
        sa.CheckConstraint("(latency::jsonb IS NOT NULL)", name="latency_is_json"),
        sa.CheckConstraint("deadline_met IN (0, 1)", name="items_deadline_met_bool"),
        sa.CheckConstraint("identity IS NULL OR (identity::jsonb IS NOT NULL)", name="identity_is_json"),
        sa.CheckConstraint("pose IS NULL OR (pose::jsonb IS NOT NULL)", name="pose_is_json"),
        sa.ForeignKeyConstraint(
            ["station_id", "batch_id"], ["batches.station_id", "batches.batch_id"], name="items_batch"
        ),
        sa.PrimaryKeyConstraint("station_id", "local_id"),
        sa.UniqueConstraint("station_id", "batch_id", "item_id", name="items_station_batch_item"),
    )
    op.create_table(
        "lifecycle",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("at_utc", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("signature_id", sa.BigInteger(), nullable=True),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "state IN ('draft', 'reviewed', 'approved', 'retired', 'rejected')", name="lifecycle_state_known"
        ),
        sa.ForeignKeyConstraint(
            ["station_id", "audit_seq"], ["audit_trail.station_id", "audit_trail.seq"], name="lifecycle_audit"
        ),
        sa.PrimaryKeyConstraint("station_id", "local_id"),
    )
    op.create_table(
        "signatures",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("local_id", sa.BigInteger(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=False),
        sa.Column("object_sha256", sa.Text(), nullable=False),
        sa.Column("meaning", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("full_name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("signed_utc", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "meaning IN ('authored', 'reviewed', 'approved', 'released', 'rejected')", name="signatures_meaning_known"
        ),
        sa.ForeignKeyConstraint(
            ["station_id", "audit_seq"], ["audit_trail.station_id", "audit_trail.seq"], name="signatures_audit"
        ),
        sa.PrimaryKeyConstraint("station_id", "local_id"),
    )
    op.create_index("items_batch_order", "items", ["station_id", "batch_id", "local_id"])
    for statement in _TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("site records are never dropped: restore from a backup instead")


_REFUSE = "USING ERRCODE = 'integrity_constraint_violation'"
_GENESIS = "0" * 64
_ITEM_FIXED = (
    "station_id, local_id, batch_id, item_id, frame_id, t_frame, created_utc, decision, reason, deadline_met,"
    " label, pocket_index, confidence, class_scores, anomaly_score, latency, image_path, image_sha256,"
    " truth_label, alarm, pose, identity, prev_hash, row_hash"
)
_BATCH_FIXED = (
    "station_id, batch_id, product, recipe_id, recipe_version, recipe_sha256, model_id, model_version,"
    " model_sha256, camera_serial, camera_settings, started_utc, operator, plc, thresholds,"
    " thresholds_validated, release_status, anchor"
)
_ALARM_FIXED = "station_id, local_id, batch_id, created_utc, source, code, message, uid, severity, detail"


def _row(prefix: str, columns: str) -> str:
    return "(" + ", ".join(f"{prefix}.{c.strip()}" for c in columns.split(",")) + ")"


def _function(name: str, body: str, declare: str = "") -> str:
    return f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n{declare}BEGIN\n{body}\nEND $$"


_TABLES = ("stations", "users", "audit_trail", "signatures", "lifecycle", "batches", "items", "alarms", "site_alarms")
_TRIGGERS: list[str] = [
    _function("inspector_refuse", f"RAISE EXCEPTION '% rows cannot be changed by %', TG_TABLE_NAME, TG_OP {_REFUSE};"),
    *(
        f"CREATE TRIGGER {t}_no_delete BEFORE DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION inspector_refuse()"
        for t in _TABLES
    ),
    *(
        f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION inspector_refuse()"
        for t in _TABLES
    ),
    *(
        f"CREATE TRIGGER {t}_append_only BEFORE UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION inspector_refuse()"
        for t in ("audit_trail", "signatures", "lifecycle")
    ),
    _function(
        "audit_continues_the_chain",
        "SELECT seq, hash INTO last_seq, last_hash FROM audit_trail WHERE station_id = NEW.station_id"
        " ORDER BY seq DESC LIMIT 1;\n"
        f"IF NOT FOUND THEN last_seq := 0; last_hash := '{_GENESIS}'; END IF;\n"
        "IF NEW.seq IS DISTINCT FROM last_seq + 1 OR NEW.prev_hash IS DISTINCT FROM last_hash THEN\n"
        "  RAISE EXCEPTION 'station %: audit entry % does not continue the audit chain (next is %)',"
        f" NEW.station_id, NEW.seq, last_seq + 1 {_REFUSE};\n"
        "END IF;\nRETURN NEW;",
        "DECLARE last_seq bigint; last_hash text;\n",
    ),
    "CREATE TRIGGER audit_chain BEFORE INSERT ON audit_trail FOR EACH ROW EXECUTE FUNCTION audit_continues_the_chain()",
    _function(
        "batches_start_running",
        "IF NEW.state <> 'running' OR NEW.ended_utc IS NOT NULL OR NEW.summary IS NOT NULL"
        " OR NEW.items_head IS NOT NULL THEN\n"
        f"  RAISE EXCEPTION 'a batch record starts running, without an end' {_REFUSE};\nEND IF;\nRETURN NEW;",
    ),
    "CREATE TRIGGER batches_start BEFORE INSERT ON batches FOR EACH ROW EXECUTE FUNCTION batches_start_running()",
    _function(
        "batches_end_once",
        f"IF OLD.state <> 'running' OR NEW.state = 'running'"
        f" OR {_row('NEW', _BATCH_FIXED)} IS DISTINCT FROM {_row('OLD', _BATCH_FIXED)} THEN\n"
        f"  RAISE EXCEPTION 'a batch record can only be ended, once' {_REFUSE};\nEND IF;\nRETURN NEW;",
    ),
    "CREATE TRIGGER batches_end BEFORE UPDATE ON batches FOR EACH ROW EXECUTE FUNCTION batches_end_once()",
    _function(
        "items_continue_the_chain",
        "SELECT state, anchor, plc INTO b_state, b_anchor, b_plc FROM batches"
        " WHERE station_id = NEW.station_id AND batch_id = NEW.batch_id;\n"
        "IF NOT FOUND THEN RETURN NEW; END IF;  -- the foreign key refuses it, with its own message\n"
        "IF b_state <> 'running' THEN\n"
        f"  RAISE EXCEPTION 'batch is not running; items can only be added to a running batch' {_REFUSE};\n"
        "END IF;\n"
        "IF NEW.plc_ack IS NOT NULL AND b_plc IS NULL THEN\n"
        f"  RAISE EXCEPTION 'the batch ran without a PLC: its items have no PLC acknowledgement' {_REFUSE};\n"
        "END IF;\n"
        "SELECT row_hash INTO last_hash FROM items WHERE station_id = NEW.station_id AND batch_id = NEW.batch_id"
        " ORDER BY local_id DESC LIMIT 1;\n"
        "IF NOT FOUND THEN last_hash := b_anchor; END IF;\n"
        "IF NEW.prev_hash IS DISTINCT FROM last_hash THEN\n"
        "  RAISE EXCEPTION 'station %: item % of batch % does not continue the batch''s hash chain',"
        f" NEW.station_id, NEW.item_id, NEW.batch_id {_REFUSE};\n"
        "END IF;\nRETURN NEW;",
        "DECLARE b_state text; b_anchor text; b_plc text; last_hash text;\n",
    ),
    "CREATE TRIGGER items_chain BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION items_continue_the_chain()",
    _function(
        "items_write_once",
        f"IF OLD.plc_ack IS NOT NULL OR NEW.plc_ack IS NULL"
        f" OR {_row('NEW', _ITEM_FIXED)} IS DISTINCT FROM {_row('OLD', _ITEM_FIXED)} THEN\n"
        "  RAISE EXCEPTION 'item records are write-once; only an unset PLC acknowledgement may be set'"
        f" {_REFUSE};\nEND IF;\n"
        "IF (SELECT plc FROM batches WHERE station_id = NEW.station_id AND batch_id = NEW.batch_id) IS NULL THEN\n"
        f"  RAISE EXCEPTION 'the batch ran without a PLC: its items have no PLC acknowledgement' {_REFUSE};\n"
        "END IF;\nRETURN NEW;",
    ),
    "CREATE TRIGGER items_once BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION items_write_once()",
    _function(
        "alarms_raised_open",
        "IF NEW.acknowledged_utc IS NOT NULL OR NEW.acknowledged_by IS NOT NULL THEN\n"
        f"  RAISE EXCEPTION 'an alarm is stored unacknowledged; acknowledge it afterwards' {_REFUSE};\n"
        "END IF;\nRETURN NEW;",
    ),
    "CREATE TRIGGER alarms_open BEFORE INSERT ON alarms FOR EACH ROW EXECUTE FUNCTION alarms_raised_open()",
    "CREATE TRIGGER site_alarms_open BEFORE INSERT ON site_alarms FOR EACH ROW EXECUTE FUNCTION alarms_raised_open()",
    _function(
        "alarms_ack_once",
        f"IF OLD.acknowledged_utc IS NOT NULL OR NEW.acknowledged_utc IS NULL"
        f" OR {_row('NEW', _ALARM_FIXED)} IS DISTINCT FROM {_row('OLD', _ALARM_FIXED)} THEN\n"
        f"  RAISE EXCEPTION 'an alarm can only be acknowledged, once' {_REFUSE};\nEND IF;\nRETURN NEW;",
    ),
    "CREATE TRIGGER alarms_ack BEFORE UPDATE ON alarms FOR EACH ROW EXECUTE FUNCTION alarms_ack_once()",
    _function(
        "site_alarms_ack_once",
        "IF OLD.acknowledged_utc IS NOT NULL OR NEW.acknowledged_utc IS NULL"
        " OR (NEW.id, NEW.station_id, NEW.raised_utc, NEW.code, NEW.message, NEW.detail)"
        " IS DISTINCT FROM (OLD.id, OLD.station_id, OLD.raised_utc, OLD.code, OLD.message, OLD.detail) THEN\n"
        f"  RAISE EXCEPTION 'an alarm can only be acknowledged, once' {_REFUSE};\nEND IF;\nRETURN NEW;",
    ),
    "CREATE TRIGGER site_alarms_ack BEFORE UPDATE ON site_alarms FOR EACH ROW EXECUTE FUNCTION site_alarms_ack_once()",
    _function(
        "users_identity_fixed",
        "IF (NEW.station_id, NEW.local_id, NEW.username, NEW.created_utc, NEW.demo)"
        " IS DISTINCT FROM (OLD.station_id, OLD.local_id, OLD.username, OLD.created_utc, OLD.demo)"
        " OR (OLD.active = 0 AND NEW.active <> 0) THEN\n"
        "  RAISE EXCEPTION 'a user account keeps its name for ever and is never reactivated'"
        f" {_REFUSE};\nEND IF;\nRETURN NEW;",
    ),
    "CREATE TRIGGER users_fixed BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_identity_fixed()",
    _function(
        "stations_cursor_forward",
        "IF NEW.station_id IS DISTINCT FROM OLD.station_id OR NEW.registered_utc IS DISTINCT FROM OLD.registered_utc"
        " OR NEW.cursor < OLD.cursor THEN\n"
        f"  RAISE EXCEPTION 'a station keeps its id and its forwarding cursor only moves forward' {_REFUSE};\n"
        "END IF;\nRETURN NEW;",
    ),
    "CREATE TRIGGER stations_forward BEFORE UPDATE ON stations FOR EACH ROW EXECUTE FUNCTION stations_cursor_forward()",
]
