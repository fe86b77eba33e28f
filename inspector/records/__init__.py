"""Station records: the SQLite record store (batches, items, alarms), its background writer, the
:class:`Recorder` (the only writer: it stores the station's events) and the labelled review set."""

from __future__ import annotations

from inspector.records.recorder import AlarmAck, DatabaseInUseError, Recorder
from inspector.records.store import (
    SCHEMA_VERSION,
    AlarmRecord,
    DuplicateAlarmError,
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
    "AlarmAck",
    "AlarmRecord",
    "DatabaseInUseError",
    "DuplicateAlarmError",
    "DuplicateBatchError",
    "DuplicateItemError",
    "ItemRecord",
    "RecordConstraintError",
    "RecordError",
    "RecordQueueFull",
    "RecordStore",
    "RecordWriter",
    "RecordWriterError",
    "Recorder",
    "SchemaVersionError",
    "StoreClosedError",
    "UnknownAlarmError",
    "UnknownBatchError",
    "UnknownItemError",
    "utc_now",
]
