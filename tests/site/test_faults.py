"""The site's fault cases: the server killed in the middle of a push and started again, a station
cut off from the site for a while of production. After each: the same rows on both sides, none
twice, in order, every chain verified. (Two forwarders for one station: test_forwarding.)"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import func, select, text

from inspector.site import schema as S
from inspector.site.forwarder import Forwarder
from inspector.site.verify import verify_site
from tests.support.site import Producer, Site, drop_site, new_site, start_server


def _same_rows(site: Site, db: Path, station: str) -> None:
    with sqlite3.connect(db) as conn:
        local_items = [r[0] for r in conn.execute("SELECT item_id FROM items ORDER BY id")]
        local_audit = conn.execute("SELECT count(*) FROM audit_trail").fetchone()[0]
        head = conn.execute("SELECT max(seq) FROM outbox").fetchone()[0]
    with site.engine.connect() as c:
        items = [r[0] for r in c.execute(select(S.items.c.item_id).where(S.items.c.station_id == station)
                                         .order_by(S.items.c.local_id))]  # fmt: skip
        acked = c.execute(select(func.count()).select_from(S.items).where(S.items.c.plc_ack.is_not(None))).scalar()
        audit = c.execute(select(func.count()).select_from(S.audit_trail)).scalar()
        cursor = c.execute(select(S.stations.c.cursor).where(S.stations.c.station_id == station)).scalar_one()
    assert items == local_items == list(range(1, len(local_items) + 1)), "every row, once, in order"
    assert acked == len(items) and audit == local_audit and cursor == head
    (result,) = verify_site(site.engine)
    assert result.ok, result.problems


def _wait(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_the_server_killed_in_the_middle_of_a_push_and_restarted_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    pg = start_server()
    site, _ = new_site(pg)
    db = tmp_path / "station.sqlite"
    producer = Producer(db, rate=2000.0)
    fwd: Forwarder | None = None
    try:
        time.sleep(1.5)  # a backlog, so that the first push is a long one
        fwd = Forwarder(db, site.url, "line-k", interval_s=0.05, max_rows=100_000)
        fwd.start()

        def pushing() -> bool:  # the forwarder's transaction is open and has written rows
            with site.engine.connect() as c:
                return bool(c.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'inspector'"
                    " AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
                )).scalar())  # fmt: skip

        assert _wait(pushing, 10.0), "the first push never started"
        with site.engine.connect() as c:
            committed = c.execute(select(func.count()).select_from(S.items)).scalar()
        pg.kill()  # SIGKILL of the postmaster and every backend: the open push dies with them
        time.sleep(1.0)
        pg.start()
        site.engine.dispose()  # the test's own pool: its connections died with the server
        items = producer.finish()
        final = fwd.stop(drain_s=60.0)
        fwd = None
        assert committed == 0, "the kill came before the first push committed"
        assert final.rows_behind == 0 and final.error is None, final
        assert items > 1000
        _same_rows(site, db, "line-k")
    finally:
        if fwd is not None:
            fwd.stop()
        producer.finish()
        drop_site(pg, site, _)
        pg.close()


def test_a_station_cut_off_from_the_site_catches_up_and_its_lag_shows_meanwhile(tmp_path: Path) -> None:
    pg = start_server()
    site, _ = new_site(pg)
    db = tmp_path / "station.sqlite"
    producer = Producer(db, rate=100.0)
    fwd = Forwarder(db, site.url, "line-c", interval_s=0.05)
    try:
        fwd.start()
        assert _wait(lambda: fwd.status().cursor > 0, 10.0)
        pg.stop()  # the site gone: the station goes on recording
        time.sleep(4.0)
        during = fwd.status()
        pg.start()
        assert _wait(lambda: fwd.status().error is None and fwd.status().rows_behind < 10, 30.0)
        items = producer.finish()
        final = fwd.stop(drain_s=30.0)
        assert during.error is not None and "unreachable" in during.error
        assert during.rows_behind >= 300 and during.seconds_behind >= 3.0, during  # 100 items/s x 2 rows
        assert final.rows_behind == 0 and final.error is None
        _same_rows(site, db, "line-c")
        assert items >= 400
    finally:
        fwd.stop()
        producer.finish()
        drop_site(pg, site, _)
        pg.close()
