"""Connecting to the site database and bringing its schema up to date (Alembic)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, insert, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

MIGRATIONS = Path(__file__).parent / "migrations"


class SiteError(Exception):
    """The site database cannot be used as asked (bad URL, wrong schema version, unreachable)."""


def site_url(url: str) -> URL:
    """A PostgreSQL URL with the psycopg 3 driver (``postgresql://...`` is taken as that)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SiteError(f"not a database URL: {url!r} (expected postgresql://user@host:port/database)") from None
    if parsed.get_backend_name() != "postgresql":
        raise SiteError(f"the site database is PostgreSQL, got {parsed.get_backend_name()!r} in {url!r}")
    return parsed.set(drivername="postgresql+psycopg")


def connect(url: str, *, timeout_s: float = 5.0) -> Engine:
    """An engine for the site database; connection attempts give up after ``timeout_s``."""
    return create_engine(
        site_url(url),
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=2,
        connect_args={"connect_timeout": max(1, round(timeout_s)), "application_name": "inspector"},
    )


def _config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        rev: str | None = MigrationContext.configure(conn).get_current_revision()
        return rev


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the site schema to the newest revision; (revision before, revision now)."""
    from alembic import command

    before = current_revision(engine)
    cfg = _config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return before, head_revision()


def raise_site_alarm(conn: Connection, station_id: str, message: str, detail: dict[str, object]) -> None:
    """A ``CHAIN_BREAK`` site alarm about ``station_id`` (inside the caller's transaction)."""
    import json

    from inspector.records.store import utc_now
    from inspector.site.schema import site_alarms

    conn.execute(
        insert(site_alarms).values(
            station_id=station_id, raised_utc=utc_now(), code="CHAIN_BREAK",
            message=f"station {station_id}: {message}", detail=json.dumps(detail),
        )
    )  # fmt: skip


def require_current(engine: Engine) -> None:
    """Refuse a site database whose schema is older or newer than this code's."""
    have, want = current_revision(engine), head_revision()
    if have != want:
        hint = (
            "run `inspector site init --url URL` first" if have is None else "run `inspector site init` to upgrade it"
        )
        raise SiteError(f"the site database is at schema revision {have}, this station needs {want}: {hint}")
