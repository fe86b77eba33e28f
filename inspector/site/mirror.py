"""One station's records as the site holds them, copied into a station records database.

The site does not re-implement the station's verification or its batch report: it copies one
station's rows, exactly as stored (JSON as its text, hashes as they came), into a fresh SQLite
database of the station's own schema (:class:`inspector.records.loader.RawLoader`), and runs the
station's code on it (:func:`inspector.records.audit.verify`,
:func:`inspector.records.chain.verify_batch`, :func:`inspector.reports.batch.build`). The copy goes
through the station schema's triggers (an audit entry must continue the chain, items join a
running batch, ...), so a site row changed behind the site's own triggers fails here or in the
verification that follows.

Users are copied without a password (the site holds none): the copy is for reading, nobody logs in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select

from inspector.records.loader import LoadRefused, RawLoader
from inspector.site import schema as S

NO_PASSWORD = "$argon2id$site-copy-has-no-password"


class MirrorError(Exception):
    """The site's rows of a station do not go into a station database (a rule of its schema refuses them)."""


def stations(engine: Engine) -> list[str]:
    with engine.connect() as site:
        return [r[0] for r in site.execute(select(S.stations.c.station_id).order_by(S.stations.c.station_id))]


def _rows(site: Connection, table: str, station_id: str, order: str, **where: Any) -> list[dict[str, Any]]:
    t = S.metadata.tables[table]
    conds = [
        t.c.station_id == station_id,
        *((t.c[k].is_(None) if v is None else t.c[k] == v) for k, v in where.items()),
    ]
    rows = [dict(r._mapping) for r in site.execute(select(t).where(*conds).order_by(t.c[order]))]
    for r in rows:
        del r["station_id"]
        if "local_id" in r:
            r["id"] = r.pop("local_id")
    return rows


def copy_station(engine: Engine, station_id: str, path: Path) -> Path:
    """Write ``station_id``'s site rows into a new station database at ``path``."""
    with engine.connect() as site:
        if not site.execute(select(S.stations.c.station_id).where(S.stations.c.station_id == station_id)).first():
            raise LookupError(f"the site has no station {station_id!r}")
        with RawLoader(path) as load:
            try:
                for u in _rows(site, "users", station_id, "local_id"):
                    load.insert("users", {**u, "password_hash": NO_PASSWORD})
                for table, order in (("audit_trail", "seq"), ("signatures", "local_id"), ("lifecycle", "local_id")):
                    for r in _rows(site, table, station_id, order):
                        load.insert(table, r)
                for b in _rows(site, "batches", station_id, "started_utc"):
                    del b["anchor"]
                    end = load.insert_batch(b)
                    for i in _rows(site, "items", station_id, "local_id", batch_id=b["batch_id"]):
                        load.insert("items", i)
                    for a in _rows(site, "alarms", station_id, "local_id", batch_id=b["batch_id"]):
                        load.insert_alarm(a)
                    load.end_batch(b["batch_id"], end)
                for a in _rows(site, "alarms", station_id, "local_id", batch_id=None):
                    load.insert_alarm(a)
                for q in _rows(site, "qualification_runs", station_id, "created_utc"):
                    load.insert("qualification_runs", q)
            except LoadRefused as exc:
                raise MirrorError(f"station {station_id}: the site's rows break the station schema: {exc}") from None
            return load.commit()
