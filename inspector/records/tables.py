"""The records' tables, once, in SQLAlchemy Core: a station's schema, and the site's built from it.

A station's record database (SQLite) holds these tables as the records schema's migrations made them
(:mod:`inspector.records.store`, schema 7); the site database (PostgreSQL) holds every station's rows
in tables built from these same definitions by :func:`station_keyed` (the station's id in front of
the station's own key; :mod:`inspector.site.schema`). Tests hold both engines to these definitions
with Alembic's own comparison: a fresh station database and an upgraded old one on SQLite
(``tests/unit/test_record_tables.py``), the migrated site database on PostgreSQL
(``tests/site/test_site_schema.py``). A column is added here, then in a station migration and a site
migration; the comparisons fail until all three agree.

Types: whole numbers that count rows or items (keys, sequence numbers, item and frame ids) are
``BigInteger``, flags and small counts ``Integer``; on SQLite both are its 64-bit INTEGER. JSON is
kept as its text, booleans as 0/1, times as ISO 8601 text with an offset: the stored bytes are what
the hashes cover, on both engines. The integrity rules are each engine's own DDL (SQLite triggers
and CHECKs in the station's migrations, PostgreSQL triggers and CHECKs in the site's) and one test
suite runs the same forbidden changes against both (``tests/site/test_rules_both_engines.py``).

Only Core lives here: no connection, no driver; the per-item path writes through the station's
SQLite driver (:mod:`inspector.records.store`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import sqlite

#: A count of rows or items: BIGINT on PostgreSQL, SQLite's INTEGER (64-bit) on a station.
Count = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
#: A measurement: double precision on PostgreSQL, SQLite's REAL (also 8 bytes) on a station.
Real = Float().with_variant(sqlite.REAL(), "sqlite")

metadata = MetaData()

settings = Table(
    "settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Count, primary_key=True),
    Column("username", Text, nullable=False, unique=True),
    Column("full_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("active", Integer, nullable=False),
    Column("locked", Integer, nullable=False),
    Column("failed_logins", Integer, nullable=False),
    Column("demo", Integer, nullable=False),
    Column("created_utc", Text, nullable=False),
)

audit_trail = Table(
    "audit_trail",
    metadata,
    Column("seq", Count, primary_key=True),
    Column("at_utc", Text, nullable=False),
    Column("username", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("object_type", Text, nullable=False),
    Column("object_id", Text, nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("reason", Text, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False, unique=True),
)

signatures = Table(
    "signatures",
    metadata,
    Column("id", Count, primary_key=True),
    Column("object_type", Text, nullable=False),
    Column("object_id", Text, nullable=False),
    Column("object_sha256", Text, nullable=False),
    Column("meaning", Text, nullable=False),
    Column("user_id", Count, ForeignKey("users.id"), nullable=False),
    Column("username", Text, nullable=False),
    Column("full_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("signed_utc", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("audit_seq", Count, ForeignKey("audit_trail.seq"), nullable=False),
    Index("signatures_object", "object_type", "object_id"),
)

lifecycle = Table(
    "lifecycle",
    metadata,
    Column("id", Count, primary_key=True),
    Column("object_type", Text, nullable=False),
    Column("object_id", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("at_utc", Text, nullable=False),
    Column("username", Text, nullable=False),
    Column("signature_id", Count, ForeignKey("signatures.id")),
    Column("audit_seq", Count, ForeignKey("audit_trail.seq"), nullable=False),
    Index("lifecycle_object", "object_type", "object_id", "sha256"),
)

batches = Table(
    "batches",
    metadata,
    Column("batch_id", Text, primary_key=True),
    Column("product", Text, nullable=False),
    Column("recipe_id", Text, nullable=False),
    Column("recipe_version", Text, nullable=False),
    Column("recipe_sha256", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("model_sha256", Text, nullable=False),
    Column("camera_serial", Text, nullable=False),
    Column("camera_settings", Text, nullable=False),
    Column("started_utc", Text, nullable=False),
    Column("ended_utc", Text),
    Column("state", Text, nullable=False),
    Column("summary", Text),
    Column("operator", Text),
    Column("plc", Text),
    Column("thresholds", Text),
    Column("thresholds_validated", Integer),
    Column("release_status", Text, nullable=False),
    Column("items_head", Text),
    Column("audit_head_seq", Count),
    Column("audit_head_hash", Text),
)

items = Table(
    "items",
    metadata,
    Column("id", Count, primary_key=True),
    Column("batch_id", Text, ForeignKey("batches.batch_id"), nullable=False),
    Column("item_id", Count, nullable=False),
    Column("frame_id", Count),
    Column("t_frame", Real),
    Column("created_utc", Text, nullable=False),
    Column("decision", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("deadline_met", Integer, nullable=False),
    Column("label", Text),
    Column("pocket_index", Integer),
    Column("confidence", Real),
    Column("class_scores", Text, nullable=False),
    Column("anomaly_score", Real),
    Column("latency", Text, nullable=False),
    Column("image_path", Text),
    Column("image_sha256", Text),
    Column("truth_label", Text),
    Column("plc_ack", Text),
    Column("plc_ack_utc", Text),
    Column("alarm", Text),
    Column("prev_hash", Text),
    Column("row_hash", Text),
    Column("ack_hash", Text),
    Column("pose", Text),
    Column("identity", Text),
    UniqueConstraint("batch_id", "item_id"),
    Index("items_batch_decision", "batch_id", "decision", "reason"),
    Index("items_batch_order", "batch_id", "id"),
)

alarms = Table(
    "alarms",
    metadata,
    Column("id", Count, primary_key=True),
    Column("batch_id", Text, ForeignKey("batches.batch_id")),
    Column("created_utc", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("acknowledged_utc", Text),
    Column("acknowledged_by", Text),
    Column("uid", Text),
    Column("severity", Text),
    Column("detail", Text, nullable=False),
    Index("alarms_uid", "uid", unique=True),
)

qualification_runs = Table(
    "qualification_runs",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("suite_id", Text, nullable=False),
    Column("suite_sha256", Text, nullable=False),
    Column("recipe_id", Text, nullable=False),
    Column("recipe_sha256", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("model_digest", Text, nullable=False),
    Column("formal", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_utc", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("ended_utc", Text),
    Column("passed", Integer),
    Column("report_sha256", Text),
    Column("result", Text),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", Count, primary_key=True, autoincrement=True),
    Column("tbl", Text, nullable=False),
    Column("row_key", Text, nullable=False),
    Column("op", Text, nullable=False),
    Column("at", Real, nullable=False),
)


def station_keyed(
    table: Table, metadata: MetaData, *extra: Any, drop: Collection[str] = (), add: Sequence[Column[Any]] = ()
) -> Table:
    """The site's twin of a station table: ``station_id`` in front of the station's own key (``id``
    becomes ``local_id``), every other column as the station defines it (minus ``drop``, plus
    ``add``); ``extra``: the site's keys, constraints and indexes, which name the station too."""
    columns: list[Column[Any]] = [Column("station_id", Text, nullable=False)]
    for c in table.columns:
        if c.name in drop:
            continue
        name = "local_id" if c.name == "id" else c.name
        columns.append(Column(name, c.type, nullable=False if c.primary_key else c.nullable))
    return Table(table.name, metadata, *columns, *add, *extra)
