"""Every station's released objects as the site holds them: which model package, recipe file and
suite is in which lifecycle state at which station, since when, by whom, and (models, recipes)
which of that station's runs qualify exactly that content hash.

The station's rule (:func:`inspector.records.lifecycle.releases`): an object's state is the last
lifecycle step of that object with that content hash.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from inspector.site import schema as S
from inspector.site.db import require_current
from inspector.site.qualifications import runs


def releases(engine: Engine, *, station_id: str | None = None, object_type: str | None = None) -> list[dict[str, Any]]:
    """The current state of every object each station registered, by station, oldest first."""
    require_current(engine)
    lc = S.lifecycle
    latest = select(lc.c.station_id, func.max(lc.c.local_id).label("last"), func.count().label("steps")).group_by(
        lc.c.station_id, lc.c.object_type, lc.c.object_id, lc.c.sha256
    )
    if station_id is not None:
        latest = latest.where(lc.c.station_id == station_id)
    if object_type is not None:
        latest = latest.where(lc.c.object_type == object_type)
    last = latest.subquery()
    query = (
        select(lc, last.c.steps)
        .join(last, (lc.c.station_id == last.c.station_id) & (lc.c.local_id == last.c.last))
        .order_by(lc.c.station_id, lc.c.local_id)
    )
    with engine.connect() as c:
        rows = [dict(r) for r in c.execute(query).mappings()]
    qualifying: dict[tuple[str, str, str], list[str]] = {}
    for run in runs(engine, station_id=station_id, qualifying=True):
        for kind, sha in (("model", run["model"]["digest"]), ("recipe", run["recipe"]["sha256"])):
            qualifying.setdefault((run["station_id"], kind, sha), []).append(run["run_id"])
    return [
        {
            "station_id": r["station_id"],
            "object_type": r["object_type"],
            "object_id": r["object_id"],
            "sha256": r["sha256"],
            "state": r["state"],
            "since_utc": r["at_utc"],
            "by": r["username"],
            "steps": int(r["steps"]),
            "qualified_by": qualifying.get((r["station_id"], r["object_type"], r["sha256"]), []),
        }
        for r in rows
    ]
