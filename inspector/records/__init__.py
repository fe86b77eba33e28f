"""Station records: the SQLite record store (batches, items, alarms) and its background writer."""

from __future__ import annotations

from inspector.records.store import (
    SCHEMA_VERSION,
    AlarmRecord,
    DuplicateBatchError,
    DuplicateItemError,
    ItemRecord,
    RecordConstraintError,
    RecordError,
    RecordStore,
    SchemaVersionError,
    StoreClosedError,
    UnknownAlarmError,
    UnknownBatchError,
    UnknownItemError,
    utc_now,
)
from inspector.records.writer import IMAGE_NOT_SAVED, RecordQueueFull, RecordWriter, RecordWriterError

__all__ = [
    "IMAGE_NOT_SAVED",
    "SCHEMA_VERSION",
    "AlarmRecord",
    "DuplicateBatchError",
    "DuplicateItemError",
    "ItemRecord",
    "RecordConstraintError",
    "RecordError",
    "RecordQueueFull",
    "RecordStore",
    "RecordWriter",
    "RecordWriterError",
    "SchemaVersionError",
    "StoreClosedError",
    "UnknownAlarmError",
    "UnknownBatchError",
    "UnknownItemError",
    "utc_now",
]
