"""The audit trail: append-only, hash-chained, verifiable, exportable (21 CFR 11.10(e); Annex 11 §9).

Every entry holds a sequence number, UTC time with offset, the user and role, the action, the
object (type and id), the old and new value (JSON) and a reason. Each entry's ``hash`` is the
SHA-256 of the previous entry's hash and the entry's canonical serialisation (:func:`canonical`),
so changing one byte of any entry, or removing one, breaks every hash after it. The schema
refuses UPDATE and DELETE and any insert that does not continue the chain.

A truncated tail (the newest entries removed by someone who can rewrite the file) leaves a
chain that verifies on its own; it is seen because the head (sequence and hash) is written
into every ended batch record and every export and report, and :func:`verify` checks that each
recorded head is still in the trail.

Entries are appended inside the caller's transaction (``BEGIN IMMEDIATE`` holds SQLite's write
lock, so entries from several connections cannot interleave), together with the change they
describe: a change and its entry commit together or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from inspector.events import utc_now
from inspector.records.gxp_schema import GENESIS
from inspector.records.store import RecordConstraintError, RecordStore

SYSTEM = "system"  # the station itself (no person acted): batch ends at a finite source, integrity refusals

# Events that record what happened rather than change GMP data: a reason is optional for these,
# mandatory for every other action (a change of a user, setting, recipe, model or release).
REASON_OPTIONAL = frozenset(
    {
        "login",
        "logout",
        "login_failed",
        "lockout",
        "idle_logout",
        "batch.start",
        "batch.end",
        "security.event",
        "alarm.acknowledge",
        "reject.review",
    }
)


@dataclass(frozen=True)
class Actor:
    """Who acts: a logged-in user (or the station itself, :data:`SYSTEM_ACTOR`)."""

    username: str
    role: str
    full_name: str = ""
    user_id: int | None = None


SYSTEM_ACTOR = Actor(SYSTEM, SYSTEM, "Inspector station")


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at_utc: str
    username: str
    role: str
    action: str
    object_type: str
    object_id: str
    old_value: Any
    new_value: Any
    reason: str
    prev_hash: str
    hash: str


_COLUMNS = (
    "seq",
    "at_utc",
    "username",
    "role",
    "action",
    "object_type",
    "object_id",
    "old_value",
    "new_value",
    "reason",
    "prev_hash",
    "hash",
)


def _json_or_none(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RecordConstraintError(f"audit value is not JSON-serialisable: {exc}") from None


def canonical(row: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: every column but the hash, as stored (JSON text kept as text)."""
    fields = [row[c] for c in _COLUMNS if c != "hash"]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def head(store: RecordStore) -> tuple[int, str]:
    """The newest entry's sequence number and hash (``(0, GENESIS)`` for an empty trail)."""
    row = store.execute("SELECT seq, hash FROM audit_trail ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def append(
    store: RecordStore,
    actor: Actor,
    action: str,
    *,
    object_type: str,
    object_id: str,
    old: Any = None,
    new: Any = None,
    reason: str = "",
    at_utc: str | None = None,
) -> AuditEntry:
    """Append one entry (inside the caller's transaction, or its own); returns it with its hash."""
    reason = reason.strip()
    if not reason and action not in REASON_OPTIONAL:
        raise RecordConstraintError(f"{action} of {object_type} {object_id!r}: a reason is required")
    with store.transaction():
        seq, prev = head(store)
        row = {
            "seq": seq + 1,
            "at_utc": at_utc or utc_now(),
            "username": actor.username,
            "role": actor.role,
            "action": action,
            "object_type": object_type,
            "object_id": str(object_id),
            "old_value": _json_or_none(old),
            "new_value": _json_or_none(new),
            "reason": reason,
            "prev_hash": prev,
        }
        row["hash"] = entry_hash(row)
        store.execute(
            f"INSERT INTO audit_trail ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            [row[c] for c in _COLUMNS],
        )
    return _entry(row)


def _entry(row: Mapping[str, Any]) -> AuditEntry:
    kw = {c: row[c] for c in _COLUMNS}
    for c in ("old_value", "new_value"):
        kw[c] = None if kw[c] is None else json.loads(kw[c])
    return AuditEntry(**kw)


def _rows(store: RecordStore, where: str = "", params: tuple[Any, ...] = ()) -> Iterator[Mapping[str, Any]]:
    cur = store.execute(f"SELECT {', '.join(_COLUMNS)} FROM audit_trail {where} ORDER BY seq", params)
    names = [d[0] for d in cur.description]
    for r in cur:
        yield dict(zip(names, r, strict=True))


def entries(
    store: RecordStore,
    *,
    username: str | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since_utc: str | None = None,
    until_utc: str | None = None,
) -> list[AuditEntry]:
    """Entries in sequence order, filtered (for the HMI's audit view and exports)."""
    clauses, params = [], []
    for column, value in (("username", username), ("action", action), ("object_type", object_type)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if object_id:
        clauses.append("object_id = ?")
        params.append(object_id)
    if since_utc:
        clauses.append("at_utc >= ?")
        params.append(since_utc)
    if until_utc:
        clauses.append("at_utc <= ?")
        params.append(until_utc)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return [_entry(r) for r in _rows(store, where, tuple(params))]


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(store: RecordStore) -> AuditVerification:
    """Recompute the chain; the first entry that does not verify is named, with why.

    Also checks the heads written into ended batch records: each must still be in the trail
    (a truncated tail is seen there).
    """
    prev, expected_seq, n = GENESIS, 1, 0
    last_hash = GENESIS
    for row in _rows(store):
        seq = int(row["seq"])
        problem = ""
        if seq != expected_seq:
            problem = f"sequence {seq} where {expected_seq} was expected (an entry is missing)"
        elif row["prev_hash"] != prev:
            problem = "its previous-hash does not match the entry before it"
        elif entry_hash(row) != row["hash"]:
            problem = "its content does not match its hash (changed after it was written)"
        if problem:
            return AuditVerification(False, n, expected_seq - 1, prev, seq, f"entry {seq}: {problem}")
        prev, last_hash, expected_seq, n = row["hash"], row["hash"], seq + 1, n + 1
    hashes = {int(r["seq"]): r["hash"] for r in _heads_in_trail(store)}
    for batch_id, seq, h in store.execute(
        "SELECT batch_id, audit_head_seq, audit_head_hash FROM batches WHERE audit_head_seq IS NOT NULL ORDER BY rowid"
    ):
        if hashes.get(int(seq)) != h:
            where = "is missing" if int(seq) not in hashes else "has another hash"
            return AuditVerification(
                False,
                n,
                expected_seq - 1,
                last_hash,
                int(seq),
                f"batch {batch_id} recorded audit head {seq}, which {where} in the trail (truncated or rewritten)",
            )
    return AuditVerification(True, n, expected_seq - 1, last_hash)


def _heads_in_trail(store: RecordStore) -> Iterator[Mapping[str, Any]]:
    cur = store.execute(
        "SELECT a.seq, a.hash FROM audit_trail a JOIN batches b ON b.audit_head_seq = a.seq ORDER BY a.seq"
    )
    for seq, h in cur:
        yield {"seq": seq, "hash": h}


def export(store: RecordStore, fmt: str) -> str:
    """The whole trail as CSV or JSON text, with the verification result and head in it."""
    rows = list(_rows(store))
    result = verify(store)
    if fmt == "json":
        doc = {
            "kind": "audit_trail",
            "exported_utc": utc_now(),
            "verification": result.as_dict(),
            "entries": [asdict(_entry(r)) for r in rows],
        }
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["# audit trail", f"exported {utc_now()}", f"head {result.head_seq} {result.head_hash}",
                    f"verified {'ok' if result.ok else 'FAILED: ' + result.problem}"])  # fmt: skip
        w.writerow(_COLUMNS)
        for r in rows:
            w.writerow(["" if r[c] is None else r[c] for c in _COLUMNS])
        return out.getvalue()
    raise ValueError(f"export format {fmt!r}: choose csv or json")
