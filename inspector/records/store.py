"""The station's record database: batches, inspected items and alarms in one SQLite file.

Design choices (GxP: 21 CFR 11.10, EU GMP Annex 11 §7, ALCOA+):

- **WAL + ``synchronous=FULL`` by default.** WAL lets the HMI read while the writer thread
  writes. With ``NORMAL`` a committed transaction survives a process crash but may be lost
  on power loss; ``FULL`` syncs the WAL on every commit and survives both. Commits are
  grouped (see :mod:`inspector.records.writer`), so the cost of FULL is one fsync per group.
- **The schema enforces the rules too.** STRICT tables, CHECK constraints (an accept needs
  reason ``ok`` and a met deadline) and triggers that make item rows write-once (only the
  PLC acknowledgement may be filled in, once, and only in a batch that had a PLC), refuse
  items in an ended or aborted batch, and store alarms unacknowledged. A bug in Python code
  therefore cannot store a record that breaks them.
- **Schema version in ``PRAGMA user_version``** with ordered migrations applied on open; a
  database newer than this code is refused rather than guessed at.

A :class:`RecordStore` wraps one connection and must be used from the thread that opened it
(sqlite3 connections are per-thread); open one store per thread.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from inspector.records.gxp_schema import GXP_MIGRATION
from inspector.records.hashing import BATCH_FIELDS, ITEM_FIELDS, ack_hash, batch_anchor, row_hash

SCHEMA_VERSION = 7
Synchronous = Literal["FULL", "NORMAL"]
# Batch ids become folder names for reject images, so keep them path-safe.
BATCH_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_BUSY_TIMEOUT_MS = 5000


class RecordError(Exception):
    """Base class of every error raised by the records layer."""


class StoreClosedError(RecordError):
    """The store (or writer) was closed and cannot be used any more."""


class UnknownBatchError(RecordError, LookupError):
    """No batch with this id exists."""


class UnknownItemError(RecordError, LookupError):
    """No item with this batch and item id exists."""


class UnknownAlarmError(RecordError, LookupError):
    """No alarm with this id exists."""


class DuplicateItemError(RecordError):
    """An item id was recorded twice in the same batch (records are never overwritten)."""


class DuplicateAlarmError(RecordError):
    """An alarm (by its uid) was recorded twice: each alarm is stored exactly once."""


class DuplicateBatchError(RecordError):
    """A batch id is already used."""


class RecordConstraintError(RecordError, ValueError):
    """A record breaks a rule of the schema (CHECK constraint or write-once trigger)."""


class SchemaVersionError(RecordError):
    """The database was written by a newer schema than this code knows."""


def utc_now() -> str:
    """Current UTC time as ISO 8601 with an explicit ``+00:00`` offset (ALCOA+ contemporaneous)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ItemRecord:
    """One inspected item (or blister card) as recorded: the decision and everything behind it."""

    batch_id: str
    item_id: int
    frame_id: int | None  # None when no frame reached the station for this item (gap, camera fault)
    t_frame: float | None  # monotonic seconds of the frame's exposure, for latency analysis
    created_utc: str  # ISO 8601 with offset, see utc_now()
    decision: str  # 'accept' | 'reject'
    reason: str  # 'ok' or a RejectReason value
    deadline_met: bool
    label: str | None = None  # predicted class, None when there is no valid prediction
    pocket_index: int | None = None  # blister pocket that decided, None otherwise
    confidence: float | None = None
    class_scores: dict[str, float] = field(default_factory=dict)
    anomaly_score: float | None = None
    latency: dict[str, float] = field(default_factory=dict)  # per-stage ms: queue_ms, infer_ms, ...
    image_path: str | None = None
    image_sha256: str | None = None
    truth_label: str | None = None  # simulator ground truth, for scoring only
    plc_ack: str | None = None  # filled later by the PLC link: 'acked' | 'late' | 'missing' | 'refused'
    plc_ack_utc: str | None = None
    alarm: str | None = None
    pose: dict[str, float] | None = None  # where registration found the item (schema 5); None: not located
    # The identity check's measurement of each unit's tablet, and what it broke (schema 6); None: no check.
    identity: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class AlarmRecord:
    id: int
    batch_id: str | None
    created_utc: str
    source: str
    code: str
    message: str
    acknowledged_utc: str | None
    acknowledged_by: str | None
    uid: str | None = None  # the alarm's own id (schema 2); acknowledgements name it, never the text
    severity: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


_ITEM_COLUMNS = tuple(ItemRecord.__dataclass_fields__)
_JSON_ITEM_COLUMNS = frozenset({"class_scores", "latency"})
_NULLABLE_JSON_ITEM_COLUMNS = frozenset({"pose", "identity"})
_INSERT_ITEM_SQL = (
    f"INSERT INTO items ({', '.join(_ITEM_COLUMNS)}, prev_hash, row_hash)"
    f" VALUES ({', '.join('?' * (len(_ITEM_COLUMNS) + 2))})"
)
_HASHED = tuple(_ITEM_COLUMNS.index(f) for f in ITEM_FIELDS)
_SELECT_ITEM_SQL = f"SELECT {', '.join(_ITEM_COLUMNS)} FROM items"
_BATCH_JSON_COLUMNS = frozenset({"camera_settings", "summary", "thresholds"})

#: The newest Alembic revision of the station's tables (``inspector/records/migrations``): a test
#: holds it to the scripts' head. Opening a database at it costs one query and no Alembic import.
ALEMBIC_HEAD = "s0008"

# Index i migrates user_version i to i + 1. Frozen at 7: every change after it is an Alembic
# revision (inspector/records/migrations). Never edit a step.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE batches (
        batch_id TEXT PRIMARY KEY,
        product TEXT NOT NULL,
        recipe_id TEXT NOT NULL,
        recipe_version TEXT NOT NULL,
        recipe_sha256 TEXT NOT NULL,
        model_id TEXT NOT NULL,
        model_version TEXT NOT NULL,
        model_sha256 TEXT NOT NULL,
        camera_serial TEXT NOT NULL,
        camera_settings TEXT NOT NULL CHECK (json_valid(camera_settings)),
        started_utc TEXT NOT NULL,
        ended_utc TEXT,
        state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'ended')),
        summary TEXT CHECK (summary IS NULL OR json_valid(summary)),
        operator TEXT,
        CONSTRAINT ended_has_time CHECK ((state = 'ended') = (ended_utc IS NOT NULL))
    ) STRICT;

    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        batch_id TEXT NOT NULL REFERENCES batches(batch_id),
        item_id INTEGER NOT NULL,
        frame_id INTEGER,  -- NULL: no frame reached the station (gap, camera fault)
        t_frame REAL,
        created_utc TEXT NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (reason <> ''),
        deadline_met INTEGER NOT NULL CHECK (deadline_met IN (0, 1)),
        label TEXT,
        pocket_index INTEGER,
        confidence REAL,
        class_scores TEXT NOT NULL CHECK (json_valid(class_scores)),
        anomaly_score REAL,
        latency TEXT NOT NULL CHECK (json_valid(latency)),
        image_path TEXT,
        image_sha256 TEXT,
        truth_label TEXT,
        plc_ack TEXT,
        plc_ack_utc TEXT,
        alarm TEXT,
        UNIQUE (batch_id, item_id),
        CONSTRAINT decision_known CHECK (decision IN ('accept', 'reject')),
        -- Fail-safe: an accept is only ever a positive, timely 'ok' (positive release).
        CONSTRAINT accept_requires_ok_in_time CHECK (decision <> 'accept' OR (reason = 'ok' AND deadline_met = 1)),
        CONSTRAINT reject_has_reason CHECK (decision <> 'reject' OR reason <> 'ok'),
        CONSTRAINT created_utc_has_offset CHECK (created_utc GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*+00:00'),
        CONSTRAINT image_has_hash CHECK ((image_path IS NULL) = (image_sha256 IS NULL))
    ) STRICT;
    CREATE INDEX items_batch_decision ON items (batch_id, decision, reason);

    -- One row per item with everything needed to trace it (ALCOA+): recipe, model, camera.
    CREATE VIEW item_trace AS
    SELECT i.*, b.product, b.recipe_id, b.recipe_version, b.recipe_sha256, b.model_id, b.model_version,
           b.model_sha256, b.camera_serial
    FROM items AS i JOIN batches AS b USING (batch_id);

    CREATE TABLE alarms (
        id INTEGER PRIMARY KEY,
        batch_id TEXT REFERENCES batches(batch_id),
        created_utc TEXT NOT NULL,
        source TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        acknowledged_utc TEXT,
        acknowledged_by TEXT,
        CONSTRAINT ack_complete CHECK ((acknowledged_utc IS NULL) = (acknowledged_by IS NULL))
    ) STRICT;

    -- Records are original data: no deletes, and only the late-arriving fields may be filled in, once.
    CREATE TRIGGER items_no_delete BEFORE DELETE ON items
    BEGIN SELECT RAISE(ABORT, 'item records cannot be deleted'); END;

    CREATE TRIGGER items_write_once BEFORE UPDATE ON items
    WHEN OLD.plc_ack IS NOT NULL
      OR NEW.id IS NOT OLD.id OR NEW.batch_id IS NOT OLD.batch_id OR NEW.item_id IS NOT OLD.item_id
      OR NEW.frame_id IS NOT OLD.frame_id OR NEW.t_frame IS NOT OLD.t_frame
      OR NEW.created_utc IS NOT OLD.created_utc OR NEW.decision IS NOT OLD.decision
      OR NEW.reason IS NOT OLD.reason OR NEW.deadline_met IS NOT OLD.deadline_met
      OR NEW.label IS NOT OLD.label OR NEW.pocket_index IS NOT OLD.pocket_index
      OR NEW.confidence IS NOT OLD.confidence OR NEW.class_scores IS NOT OLD.class_scores
      OR NEW.anomaly_score IS NOT OLD.anomaly_score OR NEW.latency IS NOT OLD.latency
      OR NEW.image_path IS NOT OLD.image_path OR NEW.image_sha256 IS NOT OLD.image_sha256
      OR NEW.truth_label IS NOT OLD.truth_label OR NEW.alarm IS NOT OLD.alarm
    BEGIN SELECT RAISE(ABORT, 'item records are write-once; only an unset PLC acknowledgement may be set'); END;

    CREATE TRIGGER items_only_in_running_batch BEFORE INSERT ON items
    -- A missing batch gives NULL here and is left to the foreign key, for a clearer error.
    WHEN (SELECT state FROM batches WHERE batch_id = NEW.batch_id) <> 'running'
    BEGIN SELECT RAISE(ABORT, 'batch is not running; items can only be added to a running batch'); END;

    CREATE TRIGGER batches_no_delete BEFORE DELETE ON batches
    BEGIN SELECT RAISE(ABORT, 'batches cannot be deleted'); END;

    CREATE TRIGGER batches_end_once BEFORE UPDATE ON batches
    WHEN OLD.state <> 'running'
      OR NEW.batch_id IS NOT OLD.batch_id OR NEW.product IS NOT OLD.product
      OR NEW.recipe_id IS NOT OLD.recipe_id OR NEW.recipe_version IS NOT OLD.recipe_version
      OR NEW.recipe_sha256 IS NOT OLD.recipe_sha256 OR NEW.model_id IS NOT OLD.model_id
      OR NEW.model_version IS NOT OLD.model_version OR NEW.model_sha256 IS NOT OLD.model_sha256
      OR NEW.camera_serial IS NOT OLD.camera_serial OR NEW.camera_settings IS NOT OLD.camera_settings
      OR NEW.started_utc IS NOT OLD.started_utc OR NEW.operator IS NOT OLD.operator
    BEGIN SELECT RAISE(ABORT, 'a batch record can only be ended, once'); END;

    CREATE TRIGGER alarms_no_delete BEFORE DELETE ON alarms
    BEGIN SELECT RAISE(ABORT, 'alarms cannot be deleted'); END;

    CREATE TRIGGER alarms_ack_once BEFORE UPDATE ON alarms
    WHEN OLD.acknowledged_utc IS NOT NULL
      OR NEW.id IS NOT OLD.id OR NEW.batch_id IS NOT OLD.batch_id OR NEW.created_utc IS NOT OLD.created_utc
      OR NEW.source IS NOT OLD.source OR NEW.code IS NOT OLD.code OR NEW.message IS NOT OLD.message
    BEGIN SELECT RAISE(ABORT, 'an alarm can only be acknowledged, once'); END;
    """,
    # 2: every alarm keeps the id it was raised with (unique: acknowledged by it, stored once),
    # its severity and its details (e.g. the PLC link's detection time).
    """
    ALTER TABLE alarms ADD COLUMN uid TEXT;
    ALTER TABLE alarms ADD COLUMN severity TEXT CHECK (severity IS NULL OR severity IN ('info', 'warning', 'fault'));
    ALTER TABLE alarms ADD COLUMN detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail));
    CREATE UNIQUE INDEX alarms_uid ON alarms (uid);

    DROP TRIGGER alarms_ack_once;
    CREATE TRIGGER alarms_ack_once BEFORE UPDATE ON alarms
    WHEN OLD.acknowledged_utc IS NOT NULL
      OR NEW.id IS NOT OLD.id OR NEW.batch_id IS NOT OLD.batch_id OR NEW.created_utc IS NOT OLD.created_utc
      OR NEW.source IS NOT OLD.source OR NEW.code IS NOT OLD.code OR NEW.message IS NOT OLD.message
      OR NEW.uid IS NOT OLD.uid OR NEW.severity IS NOT OLD.severity OR NEW.detail IS NOT OLD.detail
    BEGIN SELECT RAISE(ABORT, 'an alarm can only be acknowledged, once'); END;
    """,
    # 3: GxP records: users, settings, audit trail, signatures, release lifecycle, item hash links.
    GXP_MIGRATION,
    # 4: fault paths. A batch a crashed station left running is closed at the next start as
    # 'aborted'; a batch records the PLC its decisions went to (``plc``, NULL: none, so no item
    # of it can carry a PLC acknowledgement) and the thresholds it judged with (``thresholds``,
    # ``thresholds_validated`` 0 when looser than the model package's validated ones).
    # SQLite cannot change a CHECK constraint, so ``batches`` is rebuilt (the 12-step procedure:
    # foreign keys are off while a migration runs) and what refers to it is made again, the GxP
    # columns of step 3 (release status, chain heads) and their guards included.
    """
    CREATE TABLE batches_v4 (
        batch_id TEXT PRIMARY KEY,
        product TEXT NOT NULL,
        recipe_id TEXT NOT NULL,
        recipe_version TEXT NOT NULL,
        recipe_sha256 TEXT NOT NULL,
        model_id TEXT NOT NULL,
        model_version TEXT NOT NULL,
        model_sha256 TEXT NOT NULL,
        camera_serial TEXT NOT NULL,
        camera_settings TEXT NOT NULL CHECK (json_valid(camera_settings)),
        started_utc TEXT NOT NULL,
        ended_utc TEXT,
        state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'ended', 'aborted')),
        summary TEXT CHECK (summary IS NULL OR json_valid(summary)),
        operator TEXT,
        plc TEXT,
        thresholds TEXT CHECK (thresholds IS NULL OR json_valid(thresholds)),
        thresholds_validated INTEGER CHECK (thresholds_validated IS NULL OR thresholds_validated IN (0, 1)),
        release_status TEXT NOT NULL DEFAULT 'NOT RELEASED - DEMO'
            CHECK (release_status IN ('released', 'NOT RELEASED - DEMO', 'qualification run', 'start-up challenge')),
        items_head TEXT,
        audit_head_seq INTEGER,
        audit_head_hash TEXT,
        CONSTRAINT ended_has_time CHECK ((state = 'running') = (ended_utc IS NULL))
    ) STRICT;
    -- Batches of schema 2 did not say whether a PLC answered; one whose items hold an acknowledgement had one.
    INSERT INTO batches_v4 (batch_id, product, recipe_id, recipe_version, recipe_sha256, model_id, model_version,
                            model_sha256, camera_serial, camera_settings, started_utc, ended_utc, state, summary,
                            operator, release_status, items_head, audit_head_seq, audit_head_hash, plc)
    SELECT b.batch_id, b.product, b.recipe_id, b.recipe_version, b.recipe_sha256, b.model_id, b.model_version,
           b.model_sha256, b.camera_serial, b.camera_settings, b.started_utc, b.ended_utc, b.state, b.summary,
           b.operator, b.release_status, b.items_head, b.audit_head_seq, b.audit_head_hash,
           CASE WHEN EXISTS (SELECT 1 FROM items AS i WHERE i.batch_id = b.batch_id AND i.plc_ack IS NOT NULL)
                THEN 'unrecorded (schema 2)' END
    FROM batches AS b;
    DROP VIEW item_trace;
    DROP TRIGGER items_only_in_running_batch;
    DROP TABLE batches;  -- its triggers go with it
    ALTER TABLE batches_v4 RENAME TO batches;

    CREATE TRIGGER batches_no_delete BEFORE DELETE ON batches
    BEGIN SELECT RAISE(ABORT, 'batches cannot be deleted'); END;

    CREATE TRIGGER batches_start_running BEFORE INSERT ON batches
    WHEN NEW.state <> 'running' OR NEW.ended_utc IS NOT NULL OR NEW.summary IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'a batch record starts running, without an end'); END;

    CREATE TRIGGER batches_end_once BEFORE UPDATE ON batches
    WHEN OLD.state <> 'running'
      OR NEW.batch_id IS NOT OLD.batch_id OR NEW.product IS NOT OLD.product
      OR NEW.recipe_id IS NOT OLD.recipe_id OR NEW.recipe_version IS NOT OLD.recipe_version
      OR NEW.recipe_sha256 IS NOT OLD.recipe_sha256 OR NEW.model_id IS NOT OLD.model_id
      OR NEW.model_version IS NOT OLD.model_version OR NEW.model_sha256 IS NOT OLD.model_sha256
      OR NEW.camera_serial IS NOT OLD.camera_serial OR NEW.camera_settings IS NOT OLD.camera_settings
      OR NEW.started_utc IS NOT OLD.started_utc OR NEW.operator IS NOT OLD.operator
      OR NEW.plc IS NOT OLD.plc OR NEW.thresholds IS NOT OLD.thresholds
      OR NEW.thresholds_validated IS NOT OLD.thresholds_validated
      OR NEW.release_status IS NOT OLD.release_status
    BEGIN SELECT RAISE(ABORT, 'a batch record can only be ended, once'); END;

    CREATE TRIGGER items_only_in_running_batch BEFORE INSERT ON items
    -- A missing batch gives NULL here and is left to the foreign key, for a clearer error.
    WHEN (SELECT state FROM batches WHERE batch_id = NEW.batch_id) <> 'running'
    BEGIN SELECT RAISE(ABORT, 'batch is not running; items can only be added to a running batch'); END;

    -- Only a PLC acknowledges: no acknowledgement on an item of a batch run without one.
    CREATE TRIGGER items_plc_ack_needs_plc_on_insert BEFORE INSERT ON items
    WHEN NEW.plc_ack IS NOT NULL AND (SELECT plc FROM batches WHERE batch_id = NEW.batch_id) IS NULL
    BEGIN SELECT RAISE(ABORT, 'the batch ran without a PLC: its items have no PLC acknowledgement'); END;

    CREATE TRIGGER items_plc_ack_needs_plc BEFORE UPDATE OF plc_ack ON items
    WHEN NEW.plc_ack IS NOT NULL AND (SELECT plc FROM batches WHERE batch_id = NEW.batch_id) IS NULL
    BEGIN SELECT RAISE(ABORT, 'the batch ran without a PLC: its items have no PLC acknowledgement'); END;

    -- An alarm is raised unacknowledged; only an acknowledgement (an update, once) closes it.
    CREATE TRIGGER alarms_raised_open BEFORE INSERT ON alarms
    WHEN NEW.acknowledged_utc IS NOT NULL OR NEW.acknowledged_by IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'an alarm is stored unacknowledged; acknowledge it afterwards'); END;

    -- One row per item with everything needed to trace it (ALCOA+): recipe, model, camera, PLC, thresholds.
    CREATE VIEW item_trace AS
    SELECT i.*, b.product, b.recipe_id, b.recipe_version, b.recipe_sha256, b.model_id, b.model_version,
           b.model_sha256, b.camera_serial, b.plc AS batch_plc, b.thresholds, b.thresholds_validated
    FROM items AS i JOIN batches AS b USING (batch_id);
    """,
    # 5: registration. Every item keeps where it was found (``pose``: dx, dy, angle, match score;
    # NULL when it was not located), write-once and hashed like the rest of its row.
    """
    ALTER TABLE items ADD COLUMN pose TEXT CHECK (pose IS NULL OR json_valid(pose));

    DROP TRIGGER items_write_once;
    CREATE TRIGGER items_write_once BEFORE UPDATE ON items
    WHEN OLD.plc_ack IS NOT NULL
      OR NEW.id IS NOT OLD.id OR NEW.batch_id IS NOT OLD.batch_id OR NEW.item_id IS NOT OLD.item_id
      OR NEW.frame_id IS NOT OLD.frame_id OR NEW.t_frame IS NOT OLD.t_frame
      OR NEW.created_utc IS NOT OLD.created_utc OR NEW.decision IS NOT OLD.decision
      OR NEW.reason IS NOT OLD.reason OR NEW.deadline_met IS NOT OLD.deadline_met
      OR NEW.label IS NOT OLD.label OR NEW.pocket_index IS NOT OLD.pocket_index
      OR NEW.confidence IS NOT OLD.confidence OR NEW.class_scores IS NOT OLD.class_scores
      OR NEW.anomaly_score IS NOT OLD.anomaly_score OR NEW.latency IS NOT OLD.latency
      OR NEW.image_path IS NOT OLD.image_path OR NEW.image_sha256 IS NOT OLD.image_sha256
      OR NEW.truth_label IS NOT OLD.truth_label OR NEW.alarm IS NOT OLD.alarm
      OR NEW.prev_hash IS NOT OLD.prev_hash OR NEW.row_hash IS NOT OLD.row_hash
      OR NEW.pose IS NOT OLD.pose
      OR (NEW.ack_hash IS NOT OLD.ack_hash AND NEW.plc_ack IS NULL)
    BEGIN SELECT RAISE(ABORT, 'item records are write-once; only an unset PLC acknowledgement may be set'); END;

    DROP VIEW item_trace;
    CREATE VIEW item_trace AS
    SELECT i.*, b.product, b.recipe_id, b.recipe_version, b.recipe_sha256, b.model_id, b.model_version,
           b.model_sha256, b.camera_serial, b.plc AS batch_plc, b.thresholds, b.thresholds_validated
    FROM items AS i JOIN batches AS b USING (batch_id);
    """,
    # 6: product identity. Every item of a recipe with an identity check keeps each unit's tablet as
    # measured (colour, area, length, width, roundness) and the tolerances it broke; NULL: no check.
    """
    ALTER TABLE items ADD COLUMN identity TEXT CHECK (identity IS NULL OR json_valid(identity));

    DROP TRIGGER items_write_once;
    CREATE TRIGGER items_write_once BEFORE UPDATE ON items
    WHEN OLD.plc_ack IS NOT NULL
      OR NEW.id IS NOT OLD.id OR NEW.batch_id IS NOT OLD.batch_id OR NEW.item_id IS NOT OLD.item_id
      OR NEW.frame_id IS NOT OLD.frame_id OR NEW.t_frame IS NOT OLD.t_frame
      OR NEW.created_utc IS NOT OLD.created_utc OR NEW.decision IS NOT OLD.decision
      OR NEW.reason IS NOT OLD.reason OR NEW.deadline_met IS NOT OLD.deadline_met
      OR NEW.label IS NOT OLD.label OR NEW.pocket_index IS NOT OLD.pocket_index
      OR NEW.confidence IS NOT OLD.confidence OR NEW.class_scores IS NOT OLD.class_scores
      OR NEW.anomaly_score IS NOT OLD.anomaly_score OR NEW.latency IS NOT OLD.latency
      OR NEW.image_path IS NOT OLD.image_path OR NEW.image_sha256 IS NOT OLD.image_sha256
      OR NEW.truth_label IS NOT OLD.truth_label OR NEW.alarm IS NOT OLD.alarm
      OR NEW.prev_hash IS NOT OLD.prev_hash OR NEW.row_hash IS NOT OLD.row_hash
      OR NEW.pose IS NOT OLD.pose OR NEW.identity IS NOT OLD.identity
      OR (NEW.ack_hash IS NOT OLD.ack_hash AND NEW.plc_ack IS NULL)
    BEGIN SELECT RAISE(ABORT, 'item records are write-once; only an unset PLC acknowledgement may be set'); END;

    DROP VIEW item_trace;
    CREATE VIEW item_trace AS
    SELECT i.*, b.product, b.recipe_id, b.recipe_version, b.recipe_sha256, b.model_id, b.model_version,
           b.model_sha256, b.camera_serial, b.plc AS batch_plc, b.thresholds, b.thresholds_validated
    FROM items AS i JOIN batches AS b USING (batch_id);
    """,
    # 7: store-and-forward to a site database (inspector.site). Every insert and every late update
    # (an acknowledgement, a batch's end, a user's state) of a record table appends its key to the
    # outbox, in the same transaction; the forwarder pushes the rows in outbox order, so the site
    # receives them in the order they were committed. Rows of an older database are queued first,
    # inserts in each table's order, then their late updates. The outbox is a queue of keys, not a
    # record: the records stay in their tables.
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tbl TEXT NOT NULL
            CHECK (tbl IN ('users', 'audit_trail', 'signatures', 'lifecycle', 'batches', 'items', 'alarms')),
        row_key TEXT NOT NULL,
        op TEXT NOT NULL CHECK (op IN ('insert', 'update')),
        at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)  -- Unix seconds, UTC
    ) STRICT;
    INSERT INTO outbox (tbl, row_key, op) SELECT 'users', id, 'insert' FROM users ORDER BY id;
    INSERT INTO outbox (tbl, row_key, op) SELECT 'audit_trail', seq, 'insert' FROM audit_trail ORDER BY seq;
    INSERT INTO outbox (tbl, row_key, op) SELECT 'signatures', id, 'insert' FROM signatures ORDER BY id;
    INSERT INTO outbox (tbl, row_key, op) SELECT 'lifecycle', id, 'insert' FROM lifecycle ORDER BY id;
    INSERT INTO outbox (tbl, row_key, op) SELECT 'batches', batch_id, 'insert' FROM batches ORDER BY rowid;
    INSERT INTO outbox (tbl, row_key, op) SELECT 'items', id, 'insert' FROM items ORDER BY id;
    INSERT INTO outbox (tbl, row_key, op) SELECT 'alarms', id, 'insert' FROM alarms ORDER BY id;
    INSERT INTO outbox (tbl, row_key, op) SELECT 'users', id, 'update' FROM users ORDER BY id;
    INSERT INTO outbox (tbl, row_key, op) SELECT 'items', id, 'update' FROM items WHERE plc_ack IS NOT NULL ORDER BY id;
    INSERT INTO outbox (tbl, row_key, op)
        SELECT 'alarms', id, 'update' FROM alarms WHERE acknowledged_utc IS NOT NULL ORDER BY id;
    INSERT INTO outbox (tbl, row_key, op)
        SELECT 'batches', batch_id, 'update' FROM batches WHERE state <> 'running' ORDER BY rowid;

    CREATE TRIGGER outbox_users_insert AFTER INSERT ON users
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('users', NEW.id, 'insert'); END;

    CREATE TRIGGER outbox_users_update AFTER UPDATE ON users
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('users', NEW.id, 'update'); END;

    CREATE TRIGGER outbox_audit_trail_insert AFTER INSERT ON audit_trail
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('audit_trail', NEW.seq, 'insert'); END;

    CREATE TRIGGER outbox_signatures_insert AFTER INSERT ON signatures
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('signatures', NEW.id, 'insert'); END;

    CREATE TRIGGER outbox_lifecycle_insert AFTER INSERT ON lifecycle
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('lifecycle', NEW.id, 'insert'); END;

    CREATE TRIGGER outbox_batches_insert AFTER INSERT ON batches
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('batches', NEW.batch_id, 'insert'); END;

    CREATE TRIGGER outbox_batches_update AFTER UPDATE ON batches
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('batches', NEW.batch_id, 'update'); END;

    CREATE TRIGGER outbox_items_insert AFTER INSERT ON items
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('items', NEW.id, 'insert'); END;

    CREATE TRIGGER outbox_items_update AFTER UPDATE ON items
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('items', NEW.id, 'update'); END;

    CREATE TRIGGER outbox_alarms_insert AFTER INSERT ON alarms
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('alarms', NEW.id, 'insert'); END;

    CREATE TRIGGER outbox_alarms_update AFTER UPDATE ON alarms
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('alarms', NEW.id, 'update'); END;

    -- An item stored with its acknowledgement already set carries both steps.
    CREATE TRIGGER outbox_items_insert_acked AFTER INSERT ON items WHEN NEW.plc_ack IS NOT NULL
    BEGIN INSERT INTO outbox (tbl, row_key, op) VALUES ('items', NEW.id, 'update'); END;
    """,
)


def _json(value: Any, what: str) -> str:
    try:
        # allow_nan=False: NaN is not JSON and would not round-trip through other tools.
        return json.dumps(value, allow_nan=False, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise RecordConstraintError(f"{what} is not JSON-serialisable: {exc}") from None


def _finite(value: float | None, what: str) -> float | None:
    # SQLite stores NaN as NULL, which would silently change the record.
    if value is not None and not math.isfinite(value):
        raise RecordConstraintError(f"{what} must be finite, got {value!r}")
    return value


def _item_row(rec: ItemRecord) -> tuple[Any, ...]:
    where = f"item {rec.item_id} of batch {rec.batch_id!r}"
    values: list[Any] = []
    for name in _ITEM_COLUMNS:
        v = getattr(rec, name)
        if name in _JSON_ITEM_COLUMNS or (name in _NULLABLE_JSON_ITEM_COLUMNS and v is not None):
            v = _json(v, f"{where}: {name}")
        elif name == "deadline_met":
            v = int(bool(v))
        elif isinstance(v, float):
            v = _finite(v, f"{where}: {name}")
        values.append(v)
    return tuple(values)


def _item_from_row(row: sqlite3.Row) -> ItemRecord:
    kw: dict[str, Any] = {k: row[k] for k in _ITEM_COLUMNS}
    for k in _JSON_ITEM_COLUMNS:
        kw[k] = json.loads(kw[k])
    for k in _NULLABLE_JSON_ITEM_COLUMNS:
        kw[k] = None if kw[k] is None else json.loads(kw[k])
    kw["deadline_met"] = bool(kw["deadline_met"])
    return ItemRecord(**kw)


def _constraint_error(exc: sqlite3.IntegrityError, context: str) -> RecordError:
    msg = str(exc)
    if msg.startswith("UNIQUE constraint failed: items."):
        return DuplicateItemError(f"{context}: already recorded (records are never overwritten)")
    if msg.startswith("UNIQUE constraint failed: batches."):
        return DuplicateBatchError(f"{context}: batch id already used")
    if msg.startswith("FOREIGN KEY constraint failed"):
        return UnknownBatchError(f"{context}: batch does not exist")
    return RecordConstraintError(f"{context}: {msg}")


class RecordStore:
    """One station's record database (SQLite, WAL). Use from one thread; see the module notes."""

    def __init__(self, path: str | Path, *, synchronous: Synchronous = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so grouping is explicit.
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
        try:
            conn.row_factory = sqlite3.Row
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RecordError(f"{self.path}: could not enable WAL journal mode (got {mode!r})")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        self._tx_depth = 0

    # -- lifecycle -------------------------------------------------------------------------

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path}: schema version {version} is newer than supported ({SCHEMA_VERSION}); refusing to open"
            )
        if version < SCHEMA_VERSION:
            self._run_steps(conn, version)
        self._alembic(conn)

    def _alembic(self, conn: sqlite3.Connection) -> None:
        """After step 7 the schema is Alembic's (:mod:`inspector.records.migrate`)."""
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:  # no such table yet: a database not yet handed to Alembic
            row = None
        if row is not None and row[0] == ALEMBIC_HEAD:
            return
        from inspector.records.migrate import NewerRevision, UpgradeFailed, upgrade

        try:
            upgrade(self.path, busy_timeout_s=_BUSY_TIMEOUT_MS / 1000)
        except NewerRevision as exc:
            raise SchemaVersionError(str(exc)) from None
        except UpgradeFailed as exc:
            raise RecordError(str(exc)) from None

    def _run_steps(self, conn: sqlite3.Connection, version: int) -> None:
        # A step may rebuild a table (SQLite cannot alter a constraint): foreign keys are off while the
        # steps run (the pragma cannot change inside a transaction) and checked before each step commits.
        conn.execute("PRAGMA foreign_keys=OFF")
        try:
            for step in range(version, SCHEMA_VERSION):
                # One transaction per step: a failed migration leaves the previous version intact.
                try:
                    conn.executescript(f"BEGIN IMMEDIATE;\n{_MIGRATIONS[step]}\nPRAGMA user_version = {step + 1};")
                    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RecordError(
                            f"{self.path}: migration to schema {step + 1} broke {len(broken)} reference(s)"
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        finally:
            conn.execute("PRAGMA foreign_keys=ON")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosedError(f"record store {self.path} is closed")
        return self._conn

    def close(self) -> None:
        """Close the connection; idempotent."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic transaction; nests (inner blocks join the outer one)."""
        db = self._db
        if self._tx_depth:
            self._tx_depth += 1
            try:
                yield
            finally:
                self._tx_depth -= 1
            return
        # IMMEDIATE takes the write lock up front, so a busy reader cannot make us fail mid-way.
        db.execute("BEGIN IMMEDIATE")
        self._tx_depth = 1
        try:
            yield
        except BaseException:
            self._tx_depth = 0
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._tx_depth = 0
        try:
            db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (e.g. disk full) can leave the transaction open; never leave it dangling.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @property
    def in_transaction(self) -> bool:
        return self._tx_depth > 0

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        """One statement on this store's connection (for the records layer's own modules)."""
        return self._db.execute(sql, params)

    def pragma(self, name: str) -> Any:
        """Read one PRAGMA value (e.g. ``journal_mode``); for diagnostics and tests."""
        if not re.fullmatch(r"[a-z_]+", name):
            raise ValueError(f"not a pragma name: {name!r}")
        return self._db.execute(f"PRAGMA {name}").fetchone()[0]

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``'ok'`` or the problems found, one per line."""
        return "\n".join(str(r[0]) for r in self._db.execute("PRAGMA integrity_check").fetchall())

    # -- batches ---------------------------------------------------------------------------

    def start_batch(
        self,
        batch_id: str,
        *,
        product: str,
        recipe_id: str,
        recipe_version: str,
        recipe_sha256: str,
        model_id: str,
        model_version: str,
        model_sha256: str,
        camera_serial: str,
        camera_settings: Mapping[str, Any],
        operator: str | None = None,
        started_utc: str | None = None,
        release_status: str = "NOT RELEASED - DEMO",
        plc: str | None = None,
        thresholds: Mapping[str, Any] | None = None,
        thresholds_validated: bool | None = None,
    ) -> None:
        """Open a batch; everything needed to trace its items back (recipe, model, camera) is fixed here.

        ``plc``: the PLC its decisions go to (``None``: none, so its items never carry a PLC
        acknowledgement). ``thresholds``: those it judges with; ``thresholds_validated`` False
        marks thresholds looser than the model package's validated ones.
        """
        if not BATCH_ID_PATTERN.match(batch_id):
            raise RecordConstraintError(f"batch id {batch_id!r} must match {BATCH_ID_PATTERN.pattern}")
        settings = _json(dict(camera_settings), f"batch {batch_id!r}: camera_settings")
        judged = None if thresholds is None else _json(dict(thresholds), f"batch {batch_id!r}: thresholds")
        validated = None if thresholds_validated is None else int(thresholds_validated)
        try:
            with self.transaction():
                self._db.execute(
                    "INSERT INTO batches (batch_id, product, recipe_id, recipe_version, recipe_sha256, model_id,"
                    " model_version, model_sha256, camera_serial, camera_settings, started_utc, operator,"
                    " release_status, plc, thresholds, thresholds_validated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        batch_id,
                        str(product),
                        recipe_id,
                        recipe_version,
                        recipe_sha256,
                        model_id,
                        model_version,
                        model_sha256,
                        camera_serial,
                        settings,
                        started_utc or utc_now(),
                        operator,
                        release_status,
                        plc,
                        judged,
                        validated,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise _constraint_error(exc, f"batch {batch_id!r}") from None

    def end_batch(
        self,
        batch_id: str,
        summary: Mapping[str, Any],
        *,
        ended_utc: str | None = None,
        audit_head: tuple[int, str] | None = None,
    ) -> None:
        """Close a running batch with its summary; no items can be added afterwards.

        The record keeps the head of the batch's item chain and, when given, of the audit trail
        (so a truncated tail of either is detected later).
        """
        text = _json(dict(summary), f"batch {batch_id!r}: summary")
        seq, head = audit_head if audit_head is not None else (None, None)
        try:
            with self.transaction():
                self._require_batch(batch_id)
                self._db.execute(
                    "UPDATE batches SET state = 'ended', ended_utc = ?, summary = ?, items_head = ?,"
                    " audit_head_seq = ?, audit_head_hash = ? WHERE batch_id = ?",
                    (ended_utc or utc_now(), text, self.items_head(batch_id), seq, head, batch_id),
                )
        except sqlite3.IntegrityError as exc:
            raise _constraint_error(exc, f"ending batch {batch_id!r}") from None

    def batch_anchor(self, batch_id: str) -> str:
        """The hash the batch's first item row links to (the batch record as opened)."""
        cols = ", ".join(BATCH_FIELDS)
        row = self._db.execute(f"SELECT {cols} FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        if row is None:
            raise UnknownBatchError(f"batch {batch_id!r} does not exist")
        return batch_anchor(tuple(row))

    def items_head(self, batch_id: str) -> str:
        """The newest item row's hash in the batch (its anchor when it has none yet)."""
        row = self._db.execute(
            "SELECT row_hash FROM items WHERE batch_id = ? ORDER BY batch_id DESC, id DESC LIMIT 1",
            (batch_id,),
        ).fetchone()
        return str(row[0]) if row is not None and row[0] is not None else self.batch_anchor(batch_id)

    def abort_batch(
        self,
        batch_id: str,
        summary: Mapping[str, Any],
        *,
        ended_utc: str | None = None,
        audit_head: tuple[int, str] | None = None,
    ) -> None:
        """Close a batch left running by a station that stopped without ending it (crash, kill).

        Like :meth:`end_batch`, the record keeps the head of its item chain and of the audit trail.
        """
        text = _json(dict(summary), f"batch {batch_id!r}: summary")
        seq, head = audit_head if audit_head is not None else (None, None)
        try:
            with self.transaction():
                self._require_batch(batch_id)
                self._db.execute(
                    "UPDATE batches SET state = 'aborted', ended_utc = ?, summary = ?, items_head = ?,"
                    " audit_head_seq = ?, audit_head_hash = ? WHERE batch_id = ?",
                    (ended_utc or utc_now(), text, self.items_head(batch_id), seq, head, batch_id),
                )
        except sqlite3.IntegrityError as exc:
            raise _constraint_error(exc, f"aborting batch {batch_id!r}") from None

    def running_batch_ids(self) -> list[str]:
        """Batches not ended yet, oldest first."""
        rows = self._db.execute("SELECT batch_id FROM batches WHERE state = 'running' ORDER BY started_utc, batch_id")
        return [r[0] for r in rows]

    def missing_plc_acks(self, batch_id: str) -> int:
        """Items of the batch without a stored PLC acknowledgement."""
        self._require_batch(batch_id)
        (n,) = self._db.execute(
            "SELECT count(*) FROM items WHERE batch_id = ? AND plc_ack IS NULL", (batch_id,)
        ).fetchone()
        return int(n)

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch row as a dict, JSON columns decoded."""
        row = self._db.execute("SELECT * FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        if row is None:
            raise UnknownBatchError(f"batch {batch_id!r} does not exist")
        out = dict(row)
        for k in _BATCH_JSON_COLUMNS:
            if out[k] is not None:
                out[k] = json.loads(out[k])
        return out

    def batch_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT batch_id FROM batches ORDER BY started_utc, batch_id")]

    def _require_batch(self, batch_id: str) -> None:
        if self._db.execute("SELECT 1 FROM batches WHERE batch_id = ?", (batch_id,)).fetchone() is None:
            raise UnknownBatchError(f"batch {batch_id!r} does not exist")

    # -- items -----------------------------------------------------------------------------

    def insert_items(self, records: Sequence[ItemRecord]) -> None:
        """Insert records in one transaction: all of them are stored, or none (the error names the item)."""
        if not records:
            return
        rows = [_item_row(r) for r in records]  # validate everything before touching the database
        with self.transaction():
            heads = {}
            for batch_id in {r.batch_id for r in records}:
                self._require_batch(batch_id)
                heads[batch_id] = self.items_head(batch_id)
            for rec, row in zip(records, rows, strict=True):
                prev = heads[rec.batch_id]
                link = row_hash(prev, [row[i] for i in _HASHED])
                try:
                    self._db.execute(_INSERT_ITEM_SQL, (*row, prev, link))
                except sqlite3.IntegrityError as exc:
                    raise _constraint_error(exc, f"item {rec.item_id} of batch {rec.batch_id!r}") from None
                heads[rec.batch_id] = link

    def items(self, batch_id: str) -> list[ItemRecord]:
        """All items of a batch in item-id order."""
        self._require_batch(batch_id)
        rows = self._db.execute(f"{_SELECT_ITEM_SQL} WHERE batch_id = ? ORDER BY item_id", (batch_id,))
        return [_item_from_row(r) for r in rows]

    def item(self, batch_id: str, item_id: int) -> ItemRecord:
        row = self._db.execute(f"{_SELECT_ITEM_SQL} WHERE batch_id = ? AND item_id = ?", (batch_id, item_id)).fetchone()
        if row is None:
            self._require_batch(batch_id)
            raise UnknownItemError(f"item {item_id} of batch {batch_id!r} does not exist")
        return _item_from_row(row)

    def set_plc_ack(self, batch_id: str, item_id: int, ack: str, *, at_utc: str | None = None) -> None:
        """Record the PLC's acknowledgement of an item's decision (acked, late, missing, refused); write-once.

        Refused by the schema for an item of a batch run without a PLC.
        """
        if not ack:
            raise RecordConstraintError("a PLC acknowledgement must not be empty")
        at = at_utc or utc_now()
        try:
            with self.transaction():
                found = self._db.execute(
                    "SELECT row_hash FROM items WHERE batch_id = ? AND item_id = ?", (batch_id, item_id)
                ).fetchone()
                if found is None:
                    self._require_batch(batch_id)
                    raise UnknownItemError(f"item {item_id} of batch {batch_id!r} does not exist")
                link = ack_hash(found[0], ack, at) if found[0] is not None else None
                self._db.execute(
                    "UPDATE items SET plc_ack = ?, plc_ack_utc = ?, ack_hash = ? WHERE batch_id = ? AND item_id = ?",
                    (ack, at, link, batch_id, item_id),
                )
        except sqlite3.IntegrityError as exc:
            raise _constraint_error(exc, f"PLC ack of item {item_id} of batch {batch_id!r}") from None

    def counts(self, batch_id: str) -> dict[str, Any]:
        """Reconciliation counts: inspected, accepted, rejected, rejects per reason and per predicted label."""
        self._require_batch(batch_id)
        out: dict[str, Any] = {"inspected": 0, "accepted": 0, "rejected": 0, "by_reason": {}, "by_label": {}}
        rows = self._db.execute(
            "SELECT decision, reason, label, COUNT(*) FROM items WHERE batch_id = ? GROUP BY decision, reason, label",
            (batch_id,),
        )
        for decision, reason, label, n in rows:
            out["inspected"] += n
            if decision == "accept":
                out["accepted"] += n
            else:
                out["rejected"] += n
                out["by_reason"][reason] = out["by_reason"].get(reason, 0) + n
                if label is not None:
                    out["by_label"][label] = out["by_label"].get(label, 0) + n
        return out

    # -- alarms ----------------------------------------------------------------------------

    def add_alarm(
        self,
        source: str,
        code: str,
        message: str,
        *,
        batch_id: str | None = None,
        created_utc: str | None = None,
        uid: str | None = None,
        severity: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Record an alarm; returns its row id. An alarm with a ``uid`` is stored once only."""
        text = _json(dict(detail or {}), f"alarm {code!r}: detail")
        try:
            with self.transaction():
                cur = self._db.execute(
                    "INSERT INTO alarms (batch_id, created_utc, source, code, message, uid, severity, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (batch_id, created_utc or utc_now(), source, code, message, uid, severity, text),
                )
        except sqlite3.IntegrityError as exc:
            if str(exc).startswith("UNIQUE constraint failed: alarms.uid"):
                raise DuplicateAlarmError(f"alarm {uid} is already recorded (stored once)") from None
            raise _constraint_error(exc, f"alarm {code!r} from {source!r}") from None
        assert cur.lastrowid is not None
        return cur.lastrowid

    def alarm_by_uid(self, uid: str) -> AlarmRecord:
        row = self._db.execute("SELECT * FROM alarms WHERE uid = ?", (uid,)).fetchone()
        if row is None:
            raise UnknownAlarmError(f"alarm {uid} does not exist")
        return _alarm_from_row(row)

    def ack_alarm(self, alarm_id: int, who: str, *, at_utc: str | None = None) -> None:
        """Acknowledge an alarm, once, naming who did it."""
        if not who:
            raise RecordConstraintError("an alarm acknowledgement must name who acknowledged it")
        try:
            with self.transaction():
                cur = self._db.execute(
                    "UPDATE alarms SET acknowledged_utc = ?, acknowledged_by = ? WHERE id = ?",
                    (at_utc or utc_now(), who, alarm_id),
                )
                if cur.rowcount == 0:
                    raise UnknownAlarmError(f"alarm {alarm_id} does not exist")
        except sqlite3.IntegrityError as exc:
            raise _constraint_error(exc, f"acknowledging alarm {alarm_id}") from None

    def alarms(self, batch_id: str | None = None, *, unacknowledged_only: bool = False) -> list[AlarmRecord]:
        """Alarms in creation order, optionally of one batch and/or only the unacknowledged ones."""
        sql = "SELECT * FROM alarms WHERE 1"
        args: list[Any] = []
        if batch_id is not None:
            sql += " AND batch_id = ?"
            args.append(batch_id)
        if unacknowledged_only:
            sql += " AND acknowledged_utc IS NULL"
        return [_alarm_from_row(r) for r in self._db.execute(sql + " ORDER BY id", args)]

    def highest_item_id(self, batch_id: str) -> int | None:
        """The largest item id recorded in a batch (reconciliation: ids 1..N with N rows means none missing)."""
        self._require_batch(batch_id)
        (highest,) = self._db.execute("SELECT max(item_id) FROM items WHERE batch_id = ?", (batch_id,)).fetchone()
        return None if highest is None else int(highest)


def _alarm_from_row(row: sqlite3.Row) -> AlarmRecord:
    kw = dict(row)
    kw["detail"] = json.loads(kw["detail"])
    return AlarmRecord(**kw)
