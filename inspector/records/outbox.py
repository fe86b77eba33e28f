"""Reading a station's outbox and the rows it names, for store-and-forward (records schema 7).

Every insert and late update of a record table queues the row's key in ``outbox`` in the same
transaction (see the schema's step 7). :class:`OutboxReader` is a second, read-only connection to
the station's file (WAL: a reader never blocks the station's writer) for the site forwarder
(:mod:`inspector.site.forwarder`): the entries after a cursor, the rows they name, and the lag.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.records.store import RecordError

#: Key column of each forwarded table.
KEYS = {
    "users": "id",
    "audit_trail": "seq",
    "signatures": "id",
    "lifecycle": "id",
    "batches": "batch_id",
    "items": "id",
    "alarms": "id",
    "qualification_runs": "run_id",  # forwarded since station revision s0008
}


@dataclass(frozen=True)
class OutboxEntry:
    seq: int
    table: str
    key: str
    op: str  # 'insert' | 'update'


class OutboxError(RecordError):
    """The station database could not be read (busy past the timeout, unreadable, not schema 7)."""


class OutboxReader:
    """A read-only view of one station database's outbox; one thread at a time, :meth:`close` when done."""

    def __init__(self, path: Path) -> None:
        if not Path(path).exists():
            raise FileNotFoundError(f"station database {path} does not exist")
        try:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise OutboxError(f"station database {path}: {exc}") from None

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, list(params)).fetchall()
        except sqlite3.Error as exc:
            raise OutboxError(f"station database: {exc}") from None

    @contextmanager
    def snapshot(self) -> Iterator[OutboxReader]:
        """One consistent view of the station for everything read inside (a read transaction)."""
        self._q("BEGIN")
        try:
            yield self
        finally:
            self._q("COMMIT")

    def pending(self, cursor: int, limit: int) -> list[OutboxEntry]:
        rows = self._q("SELECT seq, tbl, row_key, op FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, limit))
        return [OutboxEntry(int(r[0]), r[1], str(r[2]), r[3]) for r in rows]

    def rows(self, table: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The current rows of ``table`` with these keys, in key order (a missing one is left out)."""
        key = KEYS[table]
        marks = ", ".join("?" * len(keys))
        sql = f"SELECT * FROM {table} WHERE {key} IN ({marks}) ORDER BY {key}"
        return [dict(r) for r in self._q(sql, keys)]

    def times(self) -> list[tuple[int, float]]:
        """Every entry's number and the time it was queued (Unix seconds), in order."""
        return [(int(r[0]), float(r[1])) for r in self._q("SELECT seq, at FROM outbox ORDER BY seq")]

    def head(self) -> int:
        return int(self._q("SELECT coalesce(max(seq), 0) FROM outbox")[0][0])

    def oldest_after(self, cursor: int) -> float | None:
        """Unix time of the first entry after ``cursor`` (``None``: there is none)."""
        rows = self._q("SELECT at FROM outbox WHERE seq > ? ORDER BY seq LIMIT 1", (cursor,))
        return float(rows[0][0]) if rows else None

    def lag(self, cursor: int, now: float | None = None) -> tuple[int, int, float]:
        """(newest entry, entries after ``cursor``, seconds since the oldest of them was queued)."""
        head = self.head()
        oldest = self.oldest_after(cursor)
        age = 0.0 if oldest is None else max(0.0, (time.time() if now is None else now) - oldest)
        return head, max(0, head - cursor), age

    def close(self) -> None:
        self._db.close()
