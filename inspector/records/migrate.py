"""A station database's schema after step 7: Alembic revisions (``inspector/records/migrations``).

:class:`~inspector.records.store.RecordStore` runs the frozen SQL steps 1-7 first, then hands the
database to Alembic here (only when its revision is not the newest: opening a current database
costs one query, and Alembic is imported only when there is something to do). A database of a
revision this code does not know was made by newer software and is refused, never changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


class NewerRevision(Exception):
    """The database was made by newer software; it is left as it is."""


class UpgradeFailed(Exception):
    """A revision failed; its transaction rolled back, the database is as it was."""


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return str(head)


def _engine(path: Path, busy_timeout_s: float) -> Engine:
    """An engine whose transactions are SQLite's own, DDL included: a revision and its version stamp
    commit together or not at all (the driver's default would run DDL outside the transaction)."""
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade(path: Path, *, busy_timeout_s: float, target: str = "head") -> tuple[str | None, str]:
    """Bring the database at ``path`` to ``target`` (the newest revision), in one transaction;
    (revision before, revision now)."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.util.exc import CommandError

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    engine = _engine(path, busy_timeout_s)
    before: str | None = None
    try:
        with engine.begin() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
            try:
                if before is not None:
                    _scripts().get_revision(before)
            except CommandError:
                raise NewerRevision(
                    f"{path}: schema revision {before!r} is newer than this software knows; refusing to open"
                ) from None
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise UpgradeFailed(f"{path}: the schema upgrade from {before} failed and changed nothing: {first}") from None
    finally:
        engine.dispose()
    return before, head_revision() if target == "head" else target
