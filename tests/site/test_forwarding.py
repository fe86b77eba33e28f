"""Store-and-forward against a real PostgreSQL server: what a station records reaches the site
exactly once and in order, verifies there, and gives the same batch report."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from inspector.cli import main
from inspector.records import RecordStore
from inspector.records.chain import verify_batch
from inspector.reports import batch as batch_report
from inspector.site import schema as S
from inspector.site.forwarder import ChainBreak, Forwarder, Halted
from inspector.site.mirror import copy_station
from inspector.site.verify import verify_site
from tests.support.site import Producer, Site, run_station


def _count(site: Site, table: str, station: str, *where: Any) -> int:
    t = S.metadata.tables[table]
    with site.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(t).where(t.c.station_id == station, *where)).scalar_one())


def _local(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_a_station_batch_reaches_the_site_once_verifies_and_reports_the_same(tmp_path: Path, site: Site) -> None:
    db = tmp_path / "station.sqlite"
    batch = run_station(db, items=60, sign=True)
    fwd = Forwarder(db, site.url, "line-1", engine=site.engine)
    pushed = fwd.push_once()
    assert pushed == _local(db, "SELECT count(*) FROM outbox") > 2 * 60
    assert fwd.push_once() == 0  # nothing twice
    for table, sql in (("items", "items"), ("audit_trail", "audit_trail"), ("users", "users"),
                       ("signatures", "signatures"), ("batches", "batches")):  # fmt: skip
        assert _count(site, table, "line-1") == _local(db, f"SELECT count(*) FROM {sql}") > 0, table
    assert _count(site, "items", "line-1", S.items.c.plc_ack.is_not(None)) == 60  # every acknowledgement
    with site.engine.connect() as c:
        assert c.execute(select(S.batches.c.state).where(S.batches.c.batch_id == batch)).scalar_one() == "ended"
        assert c.execute(select(func.count()).select_from(S.users).where(S.users.c.station_id == "line-1")).scalar()
        # The site holds no passwords.
        assert "password_hash" not in S.users.c
    status = fwd.status()
    assert (status.rows_behind, status.cursor, status.halted) == (0, pushed, None)
    (result,) = verify_site(site.engine)
    assert result.ok and result.items == 60, result.problems
    # The batch report from the site's rows is the station's, byte for byte in what a signature binds.
    with RecordStore(db) as store:
        here = batch_report.build(store, batch)
        assert verify_batch(store, batch).ok
    copy = copy_station(site.engine, "line-1", tmp_path / "copy.sqlite")
    with RecordStore(copy) as store:
        there = batch_report.build(store, batch)
        views = batch_report.signature_views(store, batch, batch_report.content_sha256(there))
    assert batch_report.content_sha256(there) == batch_report.content_sha256(here)
    assert [v["meaning"] for v in views] == ["authored"] and views[0]["status"] == "valid"


def test_the_site_commands(tmp_path: Path, site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "station.sqlite"
    batch = run_station(db, items=30)
    assert main(["site", "init", "--url", site.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["revision"] == "0003"
    assert main(["site", "push", "--url", site.url, "--db", str(db), "--station-id", "line-2", "--json"]) == 0
    pushed = json.loads(capsys.readouterr().out)
    assert pushed["pushed"] > 60 and pushed["rows_behind"] == 0
    assert main(["site", "status", "--url", site.url, "--json"]) == 0
    (st,) = json.loads(capsys.readouterr().out)["stations"]
    assert (st["station_id"], st["items"], st["batches"], st["rows_behind"], st["halted"]) == ("line-2", 30, 1, 0, None)
    assert main(["site", "verify", "--url", site.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    out = tmp_path / "site-report"
    assert main(["site", "report", "--url", site.url, "--station-id", "line-2", "--batch", batch,
                 "--out", str(out), "--json"]) == 0  # fmt: skip
    from_site = json.loads(capsys.readouterr().out)
    assert main(["records", "report", "--db", str(db), "--batch", batch, "--out", str(tmp_path / "st"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["content_sha256"] == from_site["content_sha256"]
    assert (out / "batch-report.pdf").stat().st_size > 1000
    # Bad input: one line, exit 2.
    assert main(["site", "status", "--url", "mysql://x@h/db"]) == 2
    assert "PostgreSQL" in capsys.readouterr().err
    assert main(["site", "report", "--url", site.url, "--station-id", "nope", "--batch", batch]) == 2
    assert "no station" in capsys.readouterr().err


def test_a_station_row_changed_after_it_was_written_halts_forwarding_with_a_site_alarm(
    tmp_path: Path, site: Site
) -> None:
    db = tmp_path / "station.sqlite"
    run_station(db, items=20)
    with sqlite3.connect(db) as conn:  # a hand with the file, past the schema's guard
        conn.execute("DROP TRIGGER items_write_once")
        conn.execute("UPDATE items SET confidence = 0.123 WHERE item_id = 8")
    fwd = Forwarder(db, site.url, "line-3", engine=site.engine)
    with pytest.raises(ChainBreak, match=r"item 8 .*does not match its hash"):
        fwd.push_once()
    assert _count(site, "items", "line-3") == 0, "the push was rolled back as a whole"
    with site.engine.connect() as c:
        (alarm,) = c.execute(select(S.site_alarms.c.code, S.site_alarms.c.message)).all()
        halted = c.execute(select(S.stations.c.halted).where(S.stations.c.station_id == "line-3")).scalar_one()
    assert alarm.code == "CHAIN_BREAK" and "item 8" in alarm.message and "item 8" in halted
    with pytest.raises(Halted):
        fwd.push_once()
    assert fwd.status().halted is not None and fwd.status().rows_behind > 0


def test_site_verify_finds_a_byte_changed_at_the_site(tmp_path: Path, site: Site) -> None:
    db = tmp_path / "station.sqlite"
    run_station(db, items=20)
    Forwarder(db, site.url, "line-4", engine=site.engine).push_once()
    with site.engine.begin() as c:  # a superuser switching the site's triggers off
        c.execute(text("SET LOCAL session_replication_role = replica"))
        c.execute(text("UPDATE items SET latency = '{\"total_ms\": 1.0}' WHERE item_id = 11"))
    (result,) = verify_site(site.engine)
    assert not result.ok and "item 11" in result.problems[0]
    assert main(["site", "verify", "--url", site.url, "--no-alarms"]) == 1
    with site.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(S.site_alarms)).scalar_one() == 1  # the first verify's


def test_two_forwarders_for_one_station_apply_every_row_once_in_order(tmp_path: Path, site: Site) -> None:
    db = tmp_path / "station.sqlite"
    producer = Producer(db, rate=400.0)
    a = Forwarder(db, site.url, "line-5", engine=site.engine, interval_s=0.01, max_rows=37)
    b = Forwarder(db, site.url, "line-5", interval_s=0.01, max_rows=53)
    a.start()
    b.start()
    threading.Event().wait(2.0)
    items = producer.finish()
    for f in (a, b):
        f.stop(drain_s=20.0)
    assert items > 300
    assert _count(site, "items", "line-5") == items == _local(db, "SELECT count(*) FROM items")
    assert _count(site, "items", "line-5", S.items.c.plc_ack.is_not(None)) == items
    assert _count(site, "audit_trail", "line-5") == _local(db, "SELECT count(*) FROM audit_trail")
    with site.engine.connect() as c:
        ids = [r[0] for r in c.execute(select(S.items.c.item_id).order_by(S.items.c.local_id))]
        cursor = c.execute(select(S.stations.c.cursor)).scalar_one()
    assert ids == list(range(1, items + 1)), "in order, no gap, no duplicate"
    assert cursor == _local(db, "SELECT max(seq) FROM outbox")
    (result,) = verify_site(site.engine)
    assert result.ok, result.problems


def test_an_older_station_database_sends_everything_it_recorded_before(tmp_path: Path, site: Site) -> None:
    """A station upgraded to records schema 7 queues the rows it had; the site gets them all."""
    db = tmp_path / "station.sqlite"
    batch = run_station(db, items=25, sign=True)
    with sqlite3.connect(db) as conn:  # back to schema 6: no outbox yet
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'outbox_%'"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE outbox")
        conn.execute("PRAGMA user_version = 6")
    with RecordStore(db) as store:  # migrates to 7, queueing every row
        assert store.schema_version == 7
    Forwarder(db, site.url, "line-6", engine=site.engine).push_once()
    for table in ("items", "audit_trail", "users", "signatures", "batches"):
        assert _count(site, table, "line-6") == _local(db, f"SELECT count(*) FROM {table}"), table
    assert _count(site, "items", "line-6", S.items.c.plc_ack.is_not(None)) == 25
    (result,) = verify_site(site.engine)
    assert result.ok and result.items == 25, result.problems
    assert batch


def test_the_benchmark_prints_its_figures_as_json(tmp_path: Path, site: Site) -> None:
    """A small run of ``python -m inspector.site.bench`` (the README's figures come from a full one)."""
    from inspector.site.bench import main as bench

    out = tmp_path / "bench.json"
    argv = [
        "--stations",
        "2",
        "--rate",
        "20",
        "--seconds",
        "3",
        "--repeats",
        "1",
        "--url",
        site.url,
        "--json",
        str(out),
    ]
    assert bench(argv) == 0
    figures = json.loads(out.read_text())
    assert (figures["rows_lost"], figures["rows_duplicated"], figures["stations_unverified"]) == (0, 0, 0)
    on = next(p for p in figures["phases"] if p["forwarding"])
    assert on["lag_s"]["rows"] > 100 and on["forwarders_drained"] is True
    assert figures["p99_ratio_with_vs_without"] > 0 and figures["lag_p99_s"] is not None


def test_qualification_runs_reach_the_site_and_follow_their_steps(tmp_path: Path, site: Site) -> None:
    from inspector.records import qualification
    from inspector.records.users import authenticate

    db = tmp_path / "station.sqlite"
    run_station(db, items=10, sign=True)
    with RecordStore(db) as store:
        qa = authenticate(store, "qa", "qa-demo-pass")
        qualification.create(store, qa, run_id="QUAL-1", suite_id="tablet-oq", suite_sha256="c" * 64,
                             recipe_id="tablet-round-white", recipe_sha256="a" * 64, model_id="tablet-cls",
                             model_digest="b" * 64)  # fmt: skip
        qualification.start(store, qa, "QUAL-1")
    fwd = Forwarder(db, site.url, "line-8", engine=site.engine)
    fwd.push_once()

    def at_site() -> dict[str, Any]:
        with site.engine.connect() as c:
            (row,) = c.execute(select(S.qualification_runs).where(S.qualification_runs.c.station_id == "line-8"))
            return dict(row._mapping)

    assert at_site()["state"] == "running" and at_site()["result"] is None
    with RecordStore(db) as store:
        qualification.complete(store, qa, "QUAL-1", passed=True, report_sha256="d" * 64, result={"frr": 0.001})
        station_row = dict(store.execute("SELECT * FROM qualification_runs").fetchone())
    fwd.push_once()
    assert at_site() == {"station_id": "line-8", **station_row}
    assert fwd.status().rows_behind == 0 and verify_site(site.engine)[0].ok
