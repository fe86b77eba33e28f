"""The site database's tables (SQLAlchemy Core): every station's records, keyed by station.

Each station table (:mod:`inspector.records.tables`, the one definition of the records' columns)
has its site twin built from it (:func:`~inspector.records.tables.station_keyed`): the station's id
in front of the station's own key (``local_id``: the station's row id; the audit trail keeps its
``seq``), so the same row forwarded twice is the same row. Values are stored exactly as the station
stored them (JSON as its text, booleans as 0/1), so the site recomputes the stations' hashes from
its own rows. Users come without their password hashes: the site reports, it does not log anyone
in. ``stations`` holds each station's forwarding cursor (the last outbox entry applied, committed
in the same transaction as the rows) and lag; ``site_alarms`` what the site itself raised, such as a
broken hash chain; ``site_audit`` what people did at the site (resumed a halted station's
forwarding, acknowledged a site alarm): who, when, why, hash-chained like a station's trail.

The integrity rules (write-once rows, accept only with a timely ``ok``, no deletes, an audit trail
that continues its chain) are the schema's own, as on the station: CHECK constraints here, triggers
in the migrations (:mod:`inspector.site.migrations`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)

from inspector.records import tables as R
from inspector.records.tables import station_keyed

metadata = MetaData()

GENESIS = "0" * 64


def _json(col: str, nullable: bool = True) -> CheckConstraint:
    test = f"({col}::jsonb IS NOT NULL)"
    return CheckConstraint(f"{col} IS NULL OR {test}" if nullable else test, name=f"{col}_is_json")


stations = Table(
    "stations",
    metadata,
    Column("station_id", Text, primary_key=True),
    Column("registered_utc", Text, nullable=False),
    Column("cursor", BigInteger, nullable=False, server_default="0"),  # last outbox seq applied
    Column(
        "local_head", BigInteger, nullable=False, server_default="0"
    ),  # the station's last outbox seq, as of the push
    Column("oldest_pending_at", Float),  # Unix s of the oldest entry not yet applied (NULL: none)
    Column("pushed_at", Float),  # Unix s (site clock) of the last push
    Column("halted", Text),  # why forwarding stopped (a broken chain), NULL while it runs
    CheckConstraint("station_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'", name="station_id_safe"),
    CheckConstraint("cursor >= 0 AND local_head >= 0", name="cursor_positive"),
)

users = station_keyed(
    R.users,
    metadata,
    PrimaryKeyConstraint("station_id", "local_id"),
    UniqueConstraint("station_id", "username", name="users_station_username"),
    ForeignKeyConstraint(["station_id"], ["stations.station_id"], name="users_station"),
    CheckConstraint("role IN ('operator', 'engineer', 'qa', 'admin')", name="users_role_known"),
    drop=("password_hash",),  # the site reports, it does not log anyone in
)

audit_trail = station_keyed(
    R.audit_trail,
    metadata,
    PrimaryKeyConstraint("station_id", "seq"),
    ForeignKeyConstraint(["station_id"], ["stations.station_id"], name="audit_station"),
    _json("old_value"),
    _json("new_value"),
    CheckConstraint("length(prev_hash) = 64 AND length(hash) = 64", name="audit_hashes"),
)

signatures = station_keyed(
    R.signatures,
    metadata,
    PrimaryKeyConstraint("station_id", "local_id"),
    ForeignKeyConstraint(
        ["station_id", "audit_seq"], ["audit_trail.station_id", "audit_trail.seq"], name="signatures_audit"
    ),
    CheckConstraint(
        "meaning IN ('authored', 'reviewed', 'approved', 'released', 'rejected')", name="signatures_meaning_known"
    ),
)

lifecycle = station_keyed(
    R.lifecycle,
    metadata,
    PrimaryKeyConstraint("station_id", "local_id"),
    ForeignKeyConstraint(
        ["station_id", "audit_seq"], ["audit_trail.station_id", "audit_trail.seq"], name="lifecycle_audit"
    ),
    CheckConstraint("state IN ('draft', 'reviewed', 'approved', 'retired', 'rejected')", name="lifecycle_state_known"),
)

batches = station_keyed(
    R.batches,
    metadata,
    PrimaryKeyConstraint("station_id", "batch_id"),
    ForeignKeyConstraint(["station_id"], ["stations.station_id"], name="batches_station"),
    CheckConstraint("state IN ('running', 'ended', 'aborted')", name="batches_state_known"),
    CheckConstraint("(state = 'running') = (ended_utc IS NULL)", name="batches_ended_has_time"),
    _json("camera_settings", nullable=False),
    _json("summary"),
    _json("thresholds"),
    add=[Column("anchor", Text, nullable=False)],  # the hash of the opening values the first item links to
)

items = station_keyed(
    R.items,
    metadata,
    PrimaryKeyConstraint("station_id", "local_id"),
    UniqueConstraint("station_id", "batch_id", "item_id", name="items_station_batch_item"),
    ForeignKeyConstraint(["station_id", "batch_id"], ["batches.station_id", "batches.batch_id"], name="items_batch"),
    Index("items_batch_order", "station_id", "batch_id", "local_id"),  # the newest row of a batch
    CheckConstraint("decision IN ('accept', 'reject')", name="items_decision_known"),
    # Fail-safe: an accept is only ever a positive, timely 'ok' (positive release), as on the station.
    CheckConstraint("decision <> 'accept' OR (reason = 'ok' AND deadline_met = 1)", name="accept_requires_ok_in_time"),
    CheckConstraint("decision <> 'reject' OR reason <> 'ok'", name="reject_has_reason"),
    CheckConstraint("deadline_met IN (0, 1)", name="items_deadline_met_bool"),
    CheckConstraint("(image_path IS NULL) = (image_sha256 IS NULL)", name="image_has_hash"),
    _json("class_scores", nullable=False),
    _json("latency", nullable=False),
    _json("pose"),
    _json("identity"),
)

alarms = station_keyed(
    R.alarms,
    metadata,
    PrimaryKeyConstraint("station_id", "local_id"),
    ForeignKeyConstraint(["station_id", "batch_id"], ["batches.station_id", "batches.batch_id"], name="alarms_batch"),
    CheckConstraint("(acknowledged_utc IS NULL) = (acknowledged_by IS NULL)", name="alarms_ack_complete"),
    _json("detail", nullable=False),
)

qualification_runs = station_keyed(
    R.qualification_runs,
    metadata,
    PrimaryKeyConstraint("station_id", "run_id"),
    ForeignKeyConstraint(["station_id"], ["stations.station_id"], name="qualification_station"),
    CheckConstraint(
        "state IN ('created', 'running', 'completed', 'aborted', 'reviewed', 'approved')", name="qualification_state"
    ),
    CheckConstraint("formal IN (0, 1) AND (passed IS NULL OR passed IN (0, 1))", name="qualification_flags"),
    _json("result"),
)

site_alarms = Table(
    "site_alarms",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("station_id", Text, nullable=False),
    Column("raised_utc", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default="{}"),
    Column("acknowledged_utc", Text),
    Column("acknowledged_by", Text),
    CheckConstraint("(acknowledged_utc IS NULL) = (acknowledged_by IS NULL)", name="site_alarms_ack_complete"),
    _json("detail", nullable=False),
)

site_audit = Table(
    "site_audit",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at_utc", Text, nullable=False),
    Column("username", Text, nullable=False),
    Column("full_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("account_station", Text, nullable=False),  # the station whose accounts authenticated the user
    Column("action", Text, nullable=False),
    Column("station_id", Text, nullable=False),  # the station acted on
    Column("object_id", Text, nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("reason", Text, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    CheckConstraint("length(btrim(reason)) > 0", name="site_audit_reason_given"),
    CheckConstraint("length(prev_hash) = 64 AND length(hash) = 64", name="site_audit_hashes"),
    _json("old_value"),
    _json("new_value"),
)

#: Station tables forwarded, in the order a fresh site receives an older station's rows.
FORWARDED = ("users", "audit_trail", "signatures", "lifecycle", "batches", "items", "alarms", "qualification_runs")
