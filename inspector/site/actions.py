"""What a person does at the site: resume a halted station's forwarding, acknowledge a site alarm.

A chain break halts a station's forwarding and raises a ``CHAIN_BREAK`` site alarm; nothing moves
again until someone with the right (:attr:`~inspector.roles.Action.SITE_INTERVENE`, QA) has looked,
named the reason and resumed it. The person is authenticated by a station's own accounts (the site
keeps no passwords) before anything is asked of the site, and that account must be the one the
station forwarded (same creation time, active at the site, same role). This binds the account, not
its password: the site's rows can be read, so it stops a wrong or stale database, not a forger
with read access to the site (that needs the site's own accounts). Each change is one transaction with its
entry in the site's audit trail (``site_audit``): who, from which station's accounts, when, the
value before and after, and why; the entries are hash-chained and append-only (the schema's
triggers), and :func:`verify_trail` recomputes them.

Resuming does not forgive the break: the next push checks the station's rows again, and the same
break halts it again with a new alarm. It is for the cause that was fixed outside the records: the
station pointed at the wrong database file, a restored copy replaced by the real one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text, update

from inspector.records.audit import Actor
from inspector.records.store import utc_now
from inspector.site import schema as S
from inspector.site.db import SiteError
from inspector.site.schema import GENESIS

_COLUMNS = tuple(c.name for c in S.site_audit.columns)


@dataclass(frozen=True)
class SiteUser:
    """A person authenticated by a station's accounts, acting at the site."""

    username: str
    full_name: str
    role: str
    account_station: str
    created_utc: str  # the account's creation at its station: the site's row must be the same account


@dataclass(frozen=True)
class TrailVerification:
    ok: bool
    entries: int
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def site_user(actor: Actor, full_name: str, account_station: str, created_utc: str) -> SiteUser:
    return SiteUser(actor.username, full_name, actor.role, account_station, created_utc)


def _known_account(conn: Connection, who: SiteUser) -> None:
    """The account that authenticated the person is the one its station forwarded, active there, in the
    same role: a database that is not the station's (a copy, another station's, one made for the
    purpose) holds other accounts, and a deactivation the site already holds counts."""
    u = S.users
    row = conn.execute(
        select(u.c.role, u.c.active, u.c.created_utc).where(
            u.c.station_id == who.account_station, u.c.username == who.username
        )
    ).one_or_none()
    station = f"station {who.account_station}"
    if row is None:
        raise SiteError(
            f"{who.username} is no account of {station} at the site: act with an account its station has"
            " forwarded, from that station's database (--account-station names the station whose database it is)"
        )
    if row.created_utc != who.created_utc:
        raise SiteError(
            f"the database named holds another account {who.username} than {station}'s at the site (created"
            f" {who.created_utc}, the site's {row.created_utc}): is that database the station's?"
        )
    if not row.active:
        raise SiteError(f"account {who.username} of {station} is deactivated (as the site holds it)")
    if row.role != who.role:
        raise SiteError(f"account {who.username} of {station} is {row.role} at the site, {who.role} in the database")


def entry_hash(row: Mapping[str, Any]) -> str:
    """What an entry's hash covers: every column but the hash, as stored, in the table's order."""
    fields = [row[c] for c in _COLUMNS if c != "hash"]
    return hashlib.sha256(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")).hexdigest()


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _append(
    conn: Connection, who: SiteUser, action: str, station_id: str, object_id: str, old: Any, new: Any, reason: str
) -> dict[str, Any]:
    _known_account(conn, who)  # in the transaction of the change: refused, nothing changes
    conn.execute(text("LOCK TABLE site_audit IN EXCLUSIVE MODE"))  # one writer of the chain at a time
    last = conn.execute(select(S.site_audit.c.seq, S.site_audit.c.hash).order_by(S.site_audit.c.seq.desc()).limit(1))
    seq, prev = last.one_or_none() or (0, GENESIS)
    row: dict[str, Any] = {
        "seq": int(seq) + 1,
        "at_utc": utc_now(),
        "username": who.username,
        "full_name": who.full_name,
        "role": who.role,
        "account_station": who.account_station,
        "action": action,
        "station_id": station_id,
        "object_id": object_id,
        "old_value": _json(old),
        "new_value": _json(new),
        "reason": reason,
        "prev_hash": prev,
    }
    row["hash"] = entry_hash(row)
    conn.execute(insert(S.site_audit).values(**row))
    return row


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise SiteError("a reason is required: say what was found and fixed")
    return reason


def resume(engine: Engine, who: SiteUser, station_id: str, *, reason: str) -> dict[str, Any]:
    """Clear the station's halt so its forwarder pushes again; the site audit entry written."""
    reason = _reason(reason)
    with engine.begin() as conn:
        row = conn.execute(
            select(S.stations.c.halted).where(S.stations.c.station_id == station_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise SiteError(f"no station {station_id!r} at the site")
        if row.halted is None:
            raise SiteError(f"station {station_id}: forwarding is not halted; nothing to resume")
        conn.execute(update(S.stations).where(S.stations.c.station_id == station_id).values(halted=None))
        return _append(conn, who, "forwarding.resume", station_id, station_id, {"halted": row.halted},
                       {"halted": None}, reason)  # fmt: skip


def acknowledge(engine: Engine, who: SiteUser, alarm_id: int, *, reason: str) -> dict[str, Any]:
    """Acknowledge one site alarm (once); the site audit entry written."""
    reason = _reason(reason)
    with engine.begin() as conn:
        alarm = conn.execute(
            select(S.site_alarms).where(S.site_alarms.c.id == alarm_id).with_for_update()
        ).one_or_none()
        if alarm is None:
            raise SiteError(f"no site alarm {alarm_id}")
        if alarm.acknowledged_utc is not None:
            raise SiteError(
                f"site alarm {alarm_id} was acknowledged by {alarm.acknowledged_by} at {alarm.acknowledged_utc}"
            )
        at = utc_now()
        conn.execute(
            update(S.site_alarms)
            .where(S.site_alarms.c.id == alarm_id)
            .values(acknowledged_utc=at, acknowledged_by=who.username)
        )
        return _append(conn, who, "site_alarm.acknowledge", alarm.station_id, str(alarm_id),
                       {"code": alarm.code, "acknowledged_utc": None},
                       {"code": alarm.code, "acknowledged_utc": at}, reason)  # fmt: skip


def verify_trail(engine: Engine) -> TrailVerification:
    """Recompute every site audit entry's hash and link, in order."""
    prev, n = GENESIS, 0
    with engine.connect() as conn:
        for row in conn.execute(select(S.site_audit).order_by(S.site_audit.c.seq)).mappings():
            n += 1
            if row["seq"] != n:
                return TrailVerification(False, n, f"site audit entry {row['seq']} found where {n} belongs")
            if row["prev_hash"] != prev:
                return TrailVerification(False, n, f"site audit entry {n} does not link to the one before")
            if entry_hash(dict(row)) != row["hash"]:
                return TrailVerification(False, n, f"site audit entry {n} does not match its hash")
            prev = row["hash"]
    return TrailVerification(True, n)


def trail(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    """The newest site audit entries, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(S.site_audit).order_by(S.site_audit.c.seq.desc()).limit(limit)).mappings()
        return [dict(r) for r in rows]
