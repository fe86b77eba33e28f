"""Loading rows exactly as another database stored them into a new station database.

The site database copies a station's records back into a station database of the current schema
(:mod:`inspector.site.mirror`) to verify them and build their batch report with the station's own
code. The values go in as given (JSON text, hashes, row ids), through the station schema's rules:
a batch goes in running and is ended afterwards, an alarm goes in open and is acknowledged
afterwards, so every trigger that guards a live station guards the copy too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any

from inspector.records.store import RecordError, RecordStore

#: A batch's fields set when it ends (its other fields are fixed when it opens).
BATCH_END = ("state", "ended_utc", "summary", "items_head", "audit_head_seq", "audit_head_hash")


class LoadRefused(RecordError):
    """A row breaks a rule of the station's schema."""


class RawLoader:
    """One transaction into a new station database at ``path``; :meth:`commit` or it is removed."""

    def __init__(self, path: Path) -> None:
        if path.exists():
            raise FileExistsError(path)
        self.path = path
        RecordStore(path).close()  # the station's schema, current version
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("BEGIN")
        self._done = False

    def _run(self, sql: str, params: list[Any]) -> None:
        try:
            self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise LoadRefused(str(exc)) from None

    def insert(self, table: str, row: dict[str, Any]) -> None:
        cols = list(row)
        self._run(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", list(row.values()))

    def insert_batch(self, row: dict[str, Any]) -> dict[str, Any]:
        """A batch as stored goes in running; returns its end fields for :meth:`end_batch` (after its items)."""
        end = {c: row[c] for c in BATCH_END if c in row}
        self.insert("batches", {**{k: v for k, v in row.items() if k not in BATCH_END}, "state": "running"})
        return end

    def end_batch(self, batch_id: str, end: dict[str, Any]) -> None:
        """End the batch as it had ended (nothing when it was still running)."""
        if end.get("state", "running") == "running":
            return
        sets = ", ".join(f"{c} = ?" for c in end)
        self._run(f"UPDATE batches SET {sets} WHERE batch_id = ?", [*end.values(), batch_id])

    def insert_alarm(self, row: dict[str, Any]) -> None:
        """An alarm as stored: in open, then acknowledged when it had been."""
        ack = (row.get("acknowledged_utc"), row.get("acknowledged_by"))
        self.insert("alarms", {k: v for k, v in row.items() if k not in ("acknowledged_utc", "acknowledged_by")})
        if ack[0] is not None:
            self._run("UPDATE alarms SET acknowledged_utc = ?, acknowledged_by = ? WHERE id = ?", [*ack, row["id"]])

    def commit(self) -> Path:
        self._db.execute("COMMIT")
        self._db.close()
        self._done = True
        return self.path

    def abandon(self) -> None:
        if not self._done:
            self._db.close()
            self.path.unlink(missing_ok=True)
            self._done = True

    def __enter__(self) -> RawLoader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abandon()
