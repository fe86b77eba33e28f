"""Reading a record database from outside the station while it writes (tests that kill processes)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path


def item_count(db: Path) -> int:
    """Item rows committed so far; 0 while the database does not exist yet or is busy."""
    if not db.exists():
        return 0
    with contextlib.suppress(sqlite3.Error), sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
        (n,) = conn.execute("SELECT count(*) FROM items").fetchone()
        return int(n)
    return 0
