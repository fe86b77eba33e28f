"""A station database's schema after step 7: Alembic revisions (``inspector/records/migrations``).

:class:`~inspector.records.store.RecordStore` runs the frozen SQL steps 1-7 first, then hands the
database to Alembic here (only when its revision is not the newest: opening a current database
costs one query, and Alembic is imported only when there is something to do). A database of a
revision this code does not know was made by newer software and is refused, never changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return str(head)


def upgrade(path: Path, *, busy_timeout_s: float) -> tuple[str | None, str]:
    """Bring the database at ``path`` to the newest revision; (revision before, revision now)."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.util.exc import CommandError

    from inspector.records.store import SchemaVersionError

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool, connect_args={"timeout": busy_timeout_s})
    try:
        with engine.begin() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
            try:
                if before is not None:
                    _scripts().get_revision(before)
            except CommandError:
                raise SchemaVersionError(
                    f"{path}: schema revision {before!r} is newer than this software knows; refusing to open"
                ) from None
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
    return before, head_revision()
