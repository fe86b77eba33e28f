"""A real PostgreSQL server for the site tests, started by the tests themselves, and real station data.

One throwaway server per test session (``initdb`` + ``pg_ctl`` on a free port of 127.0.0.1, in a
temporary folder); each test gets a database of its own on it, migrated by the site's Alembic
migrations. Tests that kill or stop the server start their own. The tests are never skipped for a
missing server: they fail naming the package (``.ci/run`` installs it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from inspector.records import RecordStore
from inspector.records.users import seed_demo_accounts
from inspector.reports import batch as batch_report
from inspector.site.db import connect, upgrade
from inspector.site.local_server import LocalPostgres, LocalPostgresError
from inspector.station import open_station
from tests.support.stations import station_config


def start_server() -> LocalPostgres:
    try:
        return LocalPostgres()
    except LocalPostgresError as exc:
        pytest.fail(f"the site tests need a PostgreSQL server they can start: {exc}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    pg = start_server()
    yield pg
    pg.close()


@dataclass(frozen=True)
class Site:
    url: str
    engine: Engine


def new_site(pg: LocalPostgres) -> tuple[Site, str]:
    name = f"site_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = pg.url.rsplit("/", 1)[0] + "/" + name
    engine = connect(url)
    upgrade(engine)
    return Site(url, engine), name


def drop_site(pg: LocalPostgres, site: Site, name: str) -> None:
    site.engine.dispose()
    admin = create_engine(pg.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def site(postgres: LocalPostgres) -> Iterator[Site]:
    s, name = new_site(postgres)
    yield s
    drop_site(postgres, s, name)


def run_station(db: Path, *, items: int = 60, seed: int = 0, sign: bool = False) -> str:
    """A real batch on the demo station (shipped tablet recipe and model, simulated camera, the line
    simulator as its Modbus PLC): the item rows, their PLC acknowledgements, the audit trail and the
    batch's end, as a station writes them. ``sign``: demo accounts, and the operator signs the report."""
    config = station_config("tablet", items=items, line_rate=3000, seed=seed, db=db, plc="line-sim")
    session = open_station(config)
    try:
        result = session.run()
    finally:
        session.close()
    assert result.batch_id is not None
    if sign:
        with RecordStore(db) as store:
            seed_demo_accounts(store)
            batch_report.sign(store, username="operator", password="operator-demo", batch_id=result.batch_id,
                              meaning="authored", reason="batch record complete")  # fmt: skip
    return result.batch_id


class Producer:
    """A simulated station (:func:`inspector.site.bench.simulate`) writing a batch at ``rate`` items/s
    on a thread, the way the station's writer does, until :meth:`finish`."""

    def __init__(self, db: Path, *, rate: float, batch_id: str = "B-SITE-1") -> None:
        import threading

        self.items = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None

        def run() -> None:
            from inspector.site.bench import simulate

            try:
                simulate(db, rate, None, batch_id, stop=self._stop, progress=self._count)
            except BaseException as exc:  # reported by finish()
                self._error = exc

        self._thread = threading.Thread(target=run, name="test-producer")
        self._thread.start()

    def _count(self, n: int) -> None:
        self.items = n

    def finish(self) -> int:
        self._stop.set()
        self._thread.join(timeout=30.0)
        if self._error is not None:
            raise self._error
        return self.items
