"""The records' integrity rules, one suite for both engines: the station's SQLite schema and the
site's PostgreSQL schema refuse the same changes to the same records (each with its own triggers
and constraints), and leave the records as they were.

The records are a real station's (a batch with PLC acknowledgements, demo accounts, a signed batch
report) plus a batch still running, an open and an acknowledged alarm and a deactivated user,
forwarded to the site. Each case names a change in the station's terms (table, key, values); the
PostgreSQL side addresses the same row by station id and the station's key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from inspector.records import RecordStore, audit, qualification
from inspector.records.store import ItemRecord
from inspector.records.users import authenticate, deactivate
from inspector.site.forwarder import Forwarder
from tests.support.site import Site, run_station

STATION = "rules-1"
RUNNING = "B-RUNNING"
_KEY = {"items": "id", "batches": "batch_id", "audit_trail": "seq", "signatures": "id", "alarms": "id", "users": "id",
        "qualification_runs": "run_id"}  # fmt: skip
RUN = "QUAL-RULES-1"


class Refused(Exception):
    """The engine refused the change."""


class Records:
    """One engine's view of the same records, addressed in the station's terms."""

    name: str

    def rows(self, table: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def run(self, sql: str, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def key(self, table: str) -> str:
        return _KEY[table]

    def where(self, table: str) -> str:
        return f"{self.key(table)} = :key"

    def update(self, table: str, key: Any, **values: Any) -> None:
        sets = ", ".join(f"{c} = :{c}" for c in values)
        self.run(f"UPDATE {table} SET {sets} WHERE {self.where(table)}", {**values, "key": key})

    def delete(self, table: str, key: Any) -> None:
        self.run(f"DELETE FROM {table} WHERE {self.where(table)}", {"key": key})

    def insert_like(self, table: str, key: Any, **changes: Any) -> None:
        """A copy of row ``key`` with ``changes`` (a new row id where the station numbers rows)."""
        rows = self.rows(table)
        k = _KEY[table]  # rows come in the station's terms on both engines
        (row,) = [r for r in rows if r[k] == key]
        if k in ("id", "seq"):
            row[k] = max(r[k] for r in rows) + 1
        row.update(changes)
        cols = list(row)
        self.run(
            f"INSERT INTO {self.table(table)} ({', '.join(self.column(c) for c in cols)})"
            f" VALUES ({', '.join(':' + c for c in cols)})",
            row,
        )

    def table(self, table: str) -> str:
        return table

    def column(self, c: str) -> str:
        return c


class SqliteRecords(Records):
    name = "sqlite"

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")

    def rows(self, table: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(f"SELECT * FROM {table} ORDER BY {self.key(table)}")]

    def run(self, sql: str, params: dict[str, Any]) -> None:
        try:
            self.conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise Refused(str(exc)) from None


class PostgresRecords(Records):
    name = "postgresql"

    def __init__(self, site: Site) -> None:
        self.engine = site.engine

    def key(self, table: str) -> str:
        return {"id": "local_id"}.get(_KEY[table], _KEY[table])

    def where(self, table: str) -> str:
        return f"station_id = '{STATION}' AND {self.key(table)} = :key"

    def column(self, c: str) -> str:
        return "local_id" if c == "id" else c

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            q = text(f"SELECT * FROM {table} WHERE station_id = :s ORDER BY {self.key(table)}")
            rows = [dict(r._mapping) for r in c.execute(q, {"s": STATION})]
        for r in rows:  # in the station's terms, so that a copy goes back in through insert_like
            del r["station_id"]
            r.pop("anchor", None)
            if "local_id" in r:
                r["id"] = r.pop("local_id")
        return rows

    def insert_like(self, table: str, key: Any, **changes: Any) -> None:
        extra = {"anchor": self._anchor(key)} if table == "batches" else {}
        super().insert_like(table, key, station_id=STATION, **extra, **changes)

    def _anchor(self, batch_id: str) -> str:
        with self.engine.connect() as c:
            return str(c.execute(text("SELECT anchor FROM batches WHERE batch_id = :b"), {"b": batch_id}).scalar_one())

    def run(self, sql: str, params: dict[str, Any]) -> None:
        try:
            with self.engine.begin() as c:
                c.execute(text(sql), params)
        except IntegrityError as exc:
            raise Refused(str(exc.orig)) from None


def _station(db: Path) -> None:
    batch = run_station(db, items=24, sign=True)
    with RecordStore(db) as store:
        admin = authenticate(store, "admin", "admin-demo")
        deactivate(store, admin, "engineer", reason="left the company")
        store.start_batch(
            RUNNING, product="tablet", recipe_id="tablet-round-white", recipe_version="1.9.0", recipe_sha256="a" * 64,
            model_id="tablet-cls", model_version="1.4.0", model_sha256="b" * 64, camera_serial="SIM-1",
            camera_settings={"exposure_us": 400}, plc="modbus://127.0.0.1:5020",
        )  # fmt: skip
        for i in (1, 2, 3):
            store.insert_items([ItemRecord(
                batch_id=RUNNING, item_id=i, frame_id=i, t_frame=float(i),
                created_utc="2026-12-07T08:00:00.000001+00:00", decision="reject", reason="defect",
                deadline_met=True, label="chip", class_scores={"chip": 0.9}, latency={"total_ms": 3.0},
            )])  # fmt: skip
        store.set_plc_ack(RUNNING, 1, "acked")
        first = store.add_alarm("camera", "CAMERA_FAULT", "frame timeout", batch_id=batch)
        store.add_alarm("plc", "PLC_FAULT", "link lost", batch_id=RUNNING)
        store.ack_alarm(first, "operator")
        audit.append(store, admin, "settings.change", object_type="station", object_id="x", new={"a": 1}, reason="r")
        qa_user = authenticate(store, "qa", "qa-demo-pass")
        qualification.create(store, qa_user, run_id=RUN, suite_id="tablet-oq", suite_sha256="c" * 64,
                             recipe_id="tablet-round-white", recipe_sha256="a" * 64, model_id="tablet-cls",
                             model_digest="b" * 64)  # fmt: skip
        qualification.start(store, qa_user, RUN)
        qualification.complete(store, qa_user, RUN, passed=True, report_sha256="d" * 64, result={"frr": 0.0})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The station's records, made once; each test gets a copy."""
    db = tmp_path_factory.mktemp("rules") / "station.sqlite"
    _station(db)
    return db


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request: pytest.FixtureRequest, template: Path, tmp_path: Path) -> Iterator[Records]:
    db = tmp_path / "station.sqlite"
    with sqlite3.connect(template) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    if request.param == "sqlite":
        r = SqliteRecords(db)
        yield r
        r.conn.close()
        return
    site: Site = request.getfixturevalue("site")
    Forwarder(db, site.url, STATION, engine=site.engine).push_once()
    yield PostgresRecords(site)


def _item(r: Records, *, batch: str, acked: bool | None = None) -> int:
    rows = [
        x for x in r.rows("items") if x["batch_id"] == batch and (acked is None or (x["plc_ack"] is not None) == acked)
    ]
    return int(rows[0]["id"])


def _last_hash(r: Records, batch: str) -> str:
    return str([x for x in r.rows("items") if x["batch_id"] == batch][-1]["row_hash"])


def _ended(r: Records) -> str:
    return str(next(b["batch_id"] for b in r.rows("batches") if b["state"] == "ended"))


def _user(r: Records, name: str) -> int:
    return int(next(u["id"] for u in r.rows("users") if u["username"] == name))


def _alarm(r: Records, *, acked: bool) -> int:
    return int(next(a["id"] for a in r.rows("alarms") if (a["acknowledged_utc"] is not None) == acked))


def _new_item(r: Records, **changes: Any) -> None:
    """A fourth item of the running batch, continuing its chain, with ``changes``."""
    rows = r.rows("items")
    r.insert_like("items", _item(r, batch=RUNNING, acked=False), item_id=4, prev_hash=_last_hash(r, RUNNING),
                  row_hash="f" * 64, plc_ack=None, plc_ack_utc=None, ack_hash=None, **changes)  # fmt: skip
    assert len(r.rows("items")) == len(rows) + 1


CASES: dict[str, tuple[str, Callable[[Records], None]]] = {
    "an item deleted": ("items", lambda r: r.delete("items", _item(r, batch=RUNNING))),
    "a batch deleted": ("batches", lambda r: r.delete("batches", RUNNING)),
    "an audit entry deleted": ("audit_trail", lambda r: r.delete("audit_trail", 1)),
    "a signature deleted": ("signatures", lambda r: r.delete("signatures", r.rows("signatures")[0]["id"])),
    "an item's decision changed": (
        "items",
        lambda r: r.update("items", _item(r, batch=_ended(r)), decision="accept", reason="ok"),
    ),
    "an item's result changed": ("items", lambda r: r.update("items", _item(r, batch=_ended(r)), confidence=0.5)),
    "a PLC acknowledgement changed": (
        "items",
        lambda r: r.update("items", _item(r, batch=RUNNING, acked=True), plc_ack="late"),
    ),
    "an audit entry changed": ("audit_trail", lambda r: r.update("audit_trail", 2, reason="edited")),
    "a signature changed": ("signatures", lambda r: r.update("signatures", r.rows("signatures")[0]["id"], reason="x")),
    "an ended batch ended again": ("batches", lambda r: r.update("batches", _ended(r), summary='{"items": 1}')),
    "a running batch's recipe changed": ("batches", lambda r: r.update("batches", RUNNING, recipe_sha256="c" * 64)),
    "an item added to an ended batch": (
        "items",
        lambda r: r.insert_like(
            "items", _item(r, batch=_ended(r)), item_id=999, plc_ack=None, plc_ack_utc=None, ack_hash=None
        ),
    ),
    "an accept without ok": ("items", lambda r: _new_item(r, decision="accept", reason="defect")),
    "a late accept": ("items", lambda r: _new_item(r, decision="accept", reason="ok", deadline_met=0)),
    "a reject without a reason": ("items", lambda r: _new_item(r, decision="reject", reason="ok")),
    "an audit entry skipping a number": (
        "audit_trail",
        lambda r: r.insert_like(
            "audit_trail",
            len(r.rows("audit_trail")),
            seq=len(r.rows("audit_trail")) + 2,
            prev_hash=r.rows("audit_trail")[-1]["hash"],
            hash="e" * 64,
        ),
    ),
    "an audit entry not linked to the last": (
        "audit_trail",
        lambda r: r.insert_like("audit_trail", 1, prev_hash="0" * 64, hash="e" * 64),
    ),
    "an alarm stored acknowledged": ("alarms", lambda r: r.insert_like("alarms", _alarm(r, acked=True), uid="new-uid")),
    "an alarm acknowledged twice": (
        "alarms",
        lambda r: r.update("alarms", _alarm(r, acked=True), acknowledged_by="someone else"),
    ),
    "a deactivated user reactivated": ("users", lambda r: r.update("users", _user(r, "engineer"), active=1)),
    "a user renamed": ("users", lambda r: r.update("users", _user(r, "qa"), username="qa2")),
    "a qualification run deleted": ("qualification_runs", lambda r: r.delete("qualification_runs", RUN)),
    "a qualification run moved back": (
        "qualification_runs",
        lambda r: r.update("qualification_runs", RUN, state="running"),
    ),
    "a qualification run's result changed": (
        "qualification_runs",
        lambda r: r.update("qualification_runs", RUN, result='{"frr": 0.5}'),
    ),
    "a qualification run's model changed": (
        "qualification_runs",
        lambda r: r.update("qualification_runs", RUN, model_digest="e" * 64),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_both_engines_refuse_the_change_and_keep_the_records(records: Records, case: str) -> None:
    table, change = CASES[case]
    before = records.rows(table)
    with pytest.raises(Refused):
        change(records)
    assert records.rows(table) == before


def test_both_engines_take_what_a_station_does(records: Records) -> None:
    """The control: the same statements, within the rules, go in on both engines."""
    _new_item(records, decision="reject", reason="defect")
    records.update("items", _item(records, batch=RUNNING, acked=False), plc_ack="acked",
                   plc_ack_utc="2026-12-07T08:00:01.000001+00:00", ack_hash="d" * 64)  # fmt: skip
    records.update("alarms", _alarm(records, acked=False), acknowledged_utc="2026-12-07T08:00:02.000001+00:00",
                   acknowledged_by="operator")  # fmt: skip
    records.update("users", _user(records, "qa"), failed_logins=2)
    records.update("batches", RUNNING, state="ended", ended_utc="2026-12-07T09:00:00.000001+00:00", summary="{}")
    assert {b["batch_id"]: b["state"] for b in records.rows("batches")}[RUNNING] == "ended"
    records.update("qualification_runs", RUN, state="reviewed")
    assert [q["state"] for q in records.rows("qualification_runs")] == ["reviewed"]
