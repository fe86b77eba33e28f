"""Every station's qualification runs as the site holds them, with the signatures on their reports.

QA asks the site, not each station, which line is qualified with which model and recipe: a run
qualifies its exact model package (digest) and recipe file (hash) when it is formal, passed and
approved, the rule the station's release gate applies (:func:`inspector.records.lifecycle.qualified`).
A signature holds while the hash it signed is the run's report hash.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from inspector.records.qualification import OBJECT_TYPE
from inspector.site import schema as S
from inspector.site.db import require_current

SIGNATURE_FIELDS = ("meaning", "username", "full_name", "role", "signed_utc", "reason")


def runs(
    engine: Engine, *, station_id: str | None = None, model_digest: str | None = None, qualifying: bool = False
) -> list[dict[str, Any]]:
    """The site's runs (a station's, those of one model package, only those that qualify), oldest first
    per station."""
    require_current(engine)
    q = S.qualification_runs
    query = select(q).order_by(q.c.station_id, q.c.created_utc, q.c.run_id)
    if station_id is not None:
        query = query.where(q.c.station_id == station_id)
    if model_digest is not None:
        query = query.where(q.c.model_digest == model_digest)
    sig = S.signatures
    with engine.connect() as c:
        rows = [dict(r) for r in c.execute(query).mappings()]
        signed: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for s in c.execute(
            select(sig).where(sig.c.object_type == OBJECT_TYPE).order_by(sig.c.station_id, sig.c.local_id)
        ).mappings():
            signed.setdefault((s["station_id"], s["object_id"]), []).append(dict(s))
    out = []
    for r in rows:
        signatures = [
            {**{k: s[k] for k in SIGNATURE_FIELDS}, "holds": s["object_sha256"] == r["report_sha256"]}
            for s in signed.get((r["station_id"], r["run_id"]), [])
        ]
        out.append(
            {
                "station_id": r["station_id"],
                "run_id": r["run_id"],
                "suite": {"id": r["suite_id"], "sha256": r["suite_sha256"]},
                "recipe": {"id": r["recipe_id"], "sha256": r["recipe_sha256"]},
                "model": {"id": r["model_id"], "digest": r["model_digest"]},
                "formal": bool(r["formal"]),
                "state": r["state"],
                "passed": None if r["passed"] is None else bool(r["passed"]),
                "created_utc": r["created_utc"],
                "created_by": r["created_by"],
                "ended_utc": r["ended_utc"],
                "report_sha256": r["report_sha256"],
                "qualifies": bool(r["formal"]) and bool(r["passed"]) and r["state"] == "approved",
                "signatures": signatures,
            }
        )
    return [r for r in out if r["qualifies"]] if qualifying else out
