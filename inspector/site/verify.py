"""``inspector site verify``: every station's chains, recomputed from the site's own rows.

Each station's rows are copied into a station database (:mod:`inspector.site.mirror`) and checked
by the station's own verification: the audit trail (every entry's hash and link) and every batch's
item chain (each row's hash and link from the batch's anchor, each PLC acknowledgement, the head
stored at the end, the end's audit entry). A break raises a ``CHAIN_BREAK`` site alarm.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from inspector.records import audit
from inspector.records.chain import verify_batch
from inspector.records.store import RecordStore
from inspector.site.db import raise_site_alarm
from inspector.site.mirror import MirrorError, copy_station, stations


@dataclass
class StationVerification:
    station_id: str
    ok: bool
    audit_entries: int = 0
    batches: int = 0
    items: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_station(engine: Engine, station_id: str) -> StationVerification:
    result = StationVerification(station_id, ok=True)
    with tempfile.TemporaryDirectory(prefix="inspector-site-verify-") as tmp:
        try:
            path = copy_station(engine, station_id, Path(tmp) / "station.sqlite")
        except MirrorError as exc:
            result.ok = False
            result.problems.append(str(exc))
            return result
        with RecordStore(path) as store:
            trail = audit.verify(store)
            result.audit_entries = trail.entries
            if not trail.ok:
                result.problems.append(f"audit trail: {trail.problem}")
            for (batch_id,) in store.execute("SELECT batch_id FROM batches ORDER BY rowid").fetchall():
                chain = verify_batch(store, batch_id)
                result.batches += 1
                result.items += chain.items
                if not chain.ok:
                    result.problems.append(f"batch {batch_id}: {chain.problem}")
    result.ok = not result.problems
    return result


def verify_site(engine: Engine, *, raise_alarms: bool = True) -> list[StationVerification]:
    """Every station's verification; each break also becomes a site alarm (``raise_alarms``)."""
    results = [verify_station(engine, s) for s in stations(engine)]
    if raise_alarms:
        with engine.begin() as site:
            for r in results:
                for problem in r.problems:
                    raise_site_alarm(site, r.station_id, problem, {"found_by": "site verify"})
    return results
