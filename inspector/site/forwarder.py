"""Store-and-forward: push a station's committed records to the site database, exactly once, in order.

The station never waits for the site: its writer commits to its own SQLite file, and the same
transaction queues each changed row's key in the outbox (records schema 7). The forwarder reads
the outbox (a second, read-only connection: WAL readers never block the writer) and applies the
rows to the site in outbox order. One push is one PostgreSQL transaction that takes the station's
row in ``stations`` ``FOR UPDATE``, applies every row after its cursor and moves the cursor: a push
cut off half-way (server killed, network gone) leaves nothing, and the next push starts where the
last committed one ended. A second forwarder for the same station waits on that row lock and then
finds nothing left to push, so no row is applied twice and none out of order.

What a row carries when it is pushed: an ``insert`` entry pushes the row as it was inserted (an
item without its PLC acknowledgement, a batch running, an alarm open); an ``update`` entry pushes
the late fields (the acknowledgement, the batch's end, a user's state). So the site sees every rule
of the station's schema hold in the same order as the station did.

Before pushing, every item row's hash is recomputed from its values and every audit entry's from
its content; the site's triggers check that each continues its chain. A row that fails either is a
broken chain: the push is rolled back, the site records a ``CHAIN_BREAK`` alarm and the station's
forwarding halts there (lag grows and shows it) until someone who can has looked.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from inspector.records import audit
from inspector.records.hashing import BATCH_FIELDS, ITEM_FIELDS, ack_hash, batch_anchor, row_hash
from inspector.records.loader import BATCH_END
from inspector.records.outbox import OutboxEntry, OutboxReader
from inspector.records.store import RecordError, utc_now
from inspector.site import schema as S
from inspector.site.db import SiteError, connect, raise_site_alarm, require_current

log = logging.getLogger(__name__)

_USER_COLUMNS = ("username", "full_name", "role", "active", "locked", "failed_logins", "demo", "created_utc")
_ITEM_ACK = ("plc_ack", "plc_ack_utc", "ack_hash")


class ChainBreak(Exception):
    """A row does not verify against its hash or its chain; forwarding of the station halts."""


class Halted(Exception):
    """The site halted this station's forwarding (a broken chain); it needs a person, not a retry."""


@dataclass(frozen=True)
class ForwardStatus:
    """Where one station's forwarding stands (``rows_behind`` / ``seconds_behind``: its lag)."""

    station_id: str
    cursor: int  # the last outbox entry the site has, as of the last push
    local_head: int  # the newest outbox entry at the station
    rows_behind: int
    seconds_behind: float  # age of the oldest entry the site does not have yet (0: none)
    pushed_rows: int  # rows pushed by this forwarder since it started
    last_push_utc: str | None
    error: str | None  # the last failure (site unreachable, ...), None after a good push
    halted: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Forwarder:
    """Forwards one station's records database to the site (see the module).

    :meth:`push_once` is one push (tests and ``inspector site push`` call it); :meth:`start` runs
    pushes on a thread every ``interval_s`` (at once again while a push was full) until :meth:`stop`.
    """

    def __init__(
        self,
        station_db: Path,
        url: str,
        station_id: str,
        *,
        interval_s: float = 0.2,
        max_rows: int = 2000,
        on_status: Callable[[ForwardStatus], None] | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.station_db = Path(station_db)
        self.station_id = station_id
        self.interval_s = interval_s
        self.max_rows = max_rows
        self._engine = engine if engine is not None else connect(url)
        self._own_engine = engine is None
        self._on_status = on_status
        self._cursor = 0
        self._pushed = 0
        self._last_push: str | None = None
        self._error: str | None = None
        self._halted: str | None = None
        self._checked = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one push at a time from this object

    # ------------------------------------------------------------------ one push

    def push_once(self) -> int:
        """Apply every outbox entry after the site's cursor (at most ``max_rows``); the rows applied."""
        with self._lock:
            if not self._checked:
                require_current(self._engine)
                self._checked = True
            local = OutboxReader(self.station_db)
            try:
                try:
                    n = self._push(local)
                except ChainBreak as exc:
                    self._halt(str(exc))
                    raise
                self._pushed += n
                self._last_push = utc_now()
                self._error = None
                return n
            finally:
                local.close()

    def _push(self, local: OutboxReader) -> int:
        with self._engine.begin() as site:
            self._register(site)
            cursor, halted = site.execute(
                select(S.stations.c.cursor, S.stations.c.halted)
                .where(S.stations.c.station_id == self.station_id)
                .with_for_update()
            ).one()
            self._cursor = int(cursor)
            self._halted = halted
            if halted:
                raise Halted(f"station {self.station_id}: forwarding halted by the site: {halted}")
            with local.snapshot():  # one view of the station for the whole push
                if local.head() < self._cursor:
                    raise ChainBreak(
                        f"the station database holds {local.head()} outbox entries, the site has applied"
                        f" {self._cursor}: another station's database, or one restored from an older copy"
                    )
                events = local.pending(self._cursor, self.max_rows)
                for group in _runs(events):
                    self._apply(site, local, group)
                new_cursor = events[-1].seq if events else self._cursor
                head = local.head()
                next_at = local.oldest_after(new_cursor)
            site.execute(
                update(S.stations)
                .where(S.stations.c.station_id == self.station_id)
                .values(
                    cursor=new_cursor,
                    local_head=head,
                    oldest_pending_at=next_at,
                    pushed_at=time.time(),
                )
            )
        self._cursor = new_cursor
        return len(events)

    def _register(self, site: Connection) -> None:
        """The station's row at the site (its cursor), made on its first push."""
        site.execute(
            insert(S.stations)
            .values(station_id=self.station_id, registered_utc=utc_now())
            .on_conflict_do_nothing(index_elements=["station_id"])
        )

    def _apply(self, site: Connection, local: OutboxReader, events: Sequence[OutboxEntry]) -> None:
        table, op = events[0].table, events[0].op
        keys = [e.key for e in events]
        try:
            if table == "items" and op == "insert":
                self._items(site, local, keys)
            elif table == "items":
                for k in keys:
                    self._item_ack(site, local, k)
            elif table == "audit_trail":
                self._audit(site, local, keys)
            elif table == "batches":
                for k in keys:
                    self._batch(site, local, k, op)
            elif table == "alarms":
                for k in keys:
                    self._alarm(site, local, k, op)
            elif table == "users":
                for k in keys:
                    self._user(site, local, k)
            elif table in ("signatures", "lifecycle"):
                self._append(site, local, table, keys)
            elif table == "qualification_runs":
                for k in keys:
                    self._qualification(site, local, k)
            else:  # pragma: no cover - the outbox's CHECK lists the tables
                raise ChainBreak(f"unknown outbox table {table!r}")
        except IntegrityError as exc:
            raise ChainBreak(f"the site refused a {table} row: {_first_line(exc)}") from exc

    # ------------------------------------------------------------------ per table

    def _rows(self, local: OutboxReader, table: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        rows = local.rows(table, keys)
        if len(rows) != len(set(keys)):
            raise ChainBreak(f"{table}: {len(set(keys)) - len(rows)} queued rows are missing from the station")
        return rows

    def _items(self, site: Connection, local: OutboxReader, keys: Sequence[str]) -> None:
        values = []
        for r in self._rows(local, "items", keys):
            if r["row_hash"] is not None and row_hash(r["prev_hash"], [r[f] for f in ITEM_FIELDS]) != r["row_hash"]:
                raise ChainBreak(
                    f"item {r['item_id']} of batch {r['batch_id']}: its content does not match its hash"
                    " (changed after it was written)"
                )
            row = {c: r[c] for c in r if c not in ("id", *_ITEM_ACK)}
            values.append({"station_id": self.station_id, "local_id": int(r["id"]), **row})
        site.execute(insert(S.items), values)  # one round trip for the run; the triggers check each row

    def _item_ack(self, site: Connection, local: OutboxReader, key: str) -> None:
        (r,) = self._rows(local, "items", [key])
        if r["plc_ack"] is None:
            return
        if r["ack_hash"] != ack_hash(r["row_hash"], r["plc_ack"], r["plc_ack_utc"]):
            raise ChainBreak(f"item {r['item_id']} of batch {r['batch_id']}: its PLC acknowledgement does not match")
        site.execute(
            update(S.items)
            .where(S.items.c.station_id == self.station_id, S.items.c.local_id == int(r["id"]))
            .where(S.items.c.plc_ack.is_(None))
            .values(plc_ack=r["plc_ack"], plc_ack_utc=r["plc_ack_utc"], ack_hash=r["ack_hash"])
        )

    def _audit(self, site: Connection, local: OutboxReader, keys: Sequence[str]) -> None:
        values = []
        for r in self._rows(local, "audit_trail", keys):
            row = dict(r)
            if audit.entry_hash(row) != row["hash"]:
                raise ChainBreak(f"audit entry {row['seq']}: its content does not match its hash")
            values.append({"station_id": self.station_id, **row})
        site.execute(insert(S.audit_trail), values)

    def _append(self, site: Connection, local: OutboxReader, table: str, keys: Sequence[str]) -> None:
        rows = [{"station_id": self.station_id, "local_id": int(r["id"]), **{k: r[k] for k in r if k != "id"}}
                for r in self._rows(local, table, keys)]  # fmt: skip
        site.execute(insert(S.metadata.tables[table]), rows)

    def _batch(self, site: Connection, local: OutboxReader, key: str, op: str) -> None:
        (r,) = self._rows(local, "batches", [key])
        where = (S.batches.c.station_id == self.station_id, S.batches.c.batch_id == key)
        if op == "insert":
            opening = {c: r[c] for c in r if c not in BATCH_END}
            anchor = batch_anchor(tuple(r[f] for f in BATCH_FIELDS))
            site.execute(
                insert(S.batches).values(station_id=self.station_id, state="running", anchor=anchor, **opening)
            )
        elif r["state"] != "running":
            site.execute(
                update(S.batches).where(*where, S.batches.c.state == "running").values(**{c: r[c] for c in BATCH_END})
            )

    def _alarm(self, site: Connection, local: OutboxReader, key: str, op: str) -> None:
        (r,) = self._rows(local, "alarms", [key])
        if op == "insert":
            row = {c: r[c] for c in r if c not in ("id", "acknowledged_utc", "acknowledged_by")}
            site.execute(insert(S.alarms).values(station_id=self.station_id, local_id=int(r["id"]), **row))
        elif r["acknowledged_utc"] is not None:
            site.execute(
                update(S.alarms)
                .where(S.alarms.c.station_id == self.station_id, S.alarms.c.local_id == int(r["id"]))
                .where(S.alarms.c.acknowledged_utc.is_(None))
                .values(acknowledged_utc=r["acknowledged_utc"], acknowledged_by=r["acknowledged_by"])
            )

    def _qualification(self, site: Connection, local: OutboxReader, key: str) -> None:
        """A run as the station holds it now: new, or moved on (the site's trigger refuses a step back)."""
        (r,) = self._rows(local, "qualification_runs", [key])
        stmt = insert(S.qualification_runs).values(station_id=self.station_id, **r)
        onward = {c: stmt.excluded[c] for c in ("state", "ended_utc", "passed", "report_sha256", "result")}
        site.execute(stmt.on_conflict_do_update(index_elements=["station_id", "run_id"], set_=onward))

    def _user(self, site: Connection, local: OutboxReader, key: str) -> None:
        (r,) = self._rows(local, "users", [key])
        row = {c: r[c] for c in _USER_COLUMNS}
        stmt = insert(S.users).values(station_id=self.station_id, local_id=int(r["id"]), **row)
        mutable = {c: stmt.excluded[c] for c in ("full_name", "role", "active", "locked", "failed_logins")}
        site.execute(stmt.on_conflict_do_update(index_elements=["station_id", "local_id"], set_=mutable))

    # ------------------------------------------------------------------ a broken chain

    def _halt(self, problem: str) -> None:
        """Record the break at the site (its own transaction: the push was rolled back) and stop."""
        self._halted = problem
        log.error("station %s: forwarding halted: %s", self.station_id, problem)
        with self._engine.begin() as site:
            self._register(site)
            site.execute(update(S.stations).where(S.stations.c.station_id == self.station_id).values(halted=problem))
            raise_site_alarm(site, self.station_id, problem, {"cursor": self._cursor, "found_by": "forwarder"})

    # ------------------------------------------------------------------ status and thread

    def status(self) -> ForwardStatus:
        """The lag as this station sees it: its outbox against the cursor of the last good push."""
        err: str | None = self._error
        head, behind, age = self._cursor, 0, 0.0
        try:
            local = OutboxReader(self.station_db)
            try:
                head, behind, age = local.lag(self._cursor)
            finally:
                local.close()
        except (OSError, RecordError) as exc:
            err = f"station database: {exc}"
        return ForwardStatus(
            self.station_id, self._cursor, head, behind, round(age, 3), self._pushed, self._last_push, err,
            self._halted,
        )  # fmt: skip

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the forwarder is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="site-forwarder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = self.interval_s
        while not self._stop.is_set():
            full = False
            try:
                full = self.push_once() >= self.max_rows
                backoff = self.interval_s
            except (Halted, ChainBreak, SiteError) as exc:
                self._error = str(exc)
                backoff = 5.0  # a person must look; keep reporting, do not hammer the site
            except (OperationalError, DBAPIError, OSError, RecordError) as exc:
                self._error = f"site unreachable: {_first_line(exc)}"
                backoff = min(5.0, max(self.interval_s, backoff * 2))
            if self._on_status is not None:
                with contextlib.suppress(Exception):
                    self._on_status(self.status())
            if not full:
                self._stop.wait(backoff)

    def stop(self, *, drain_s: float = 0.0) -> ForwardStatus:
        """Stop the thread, after up to ``drain_s`` seconds of pushing what is left."""
        deadline = time.monotonic() + drain_s
        while self._thread is not None and time.monotonic() < deadline and self.status().rows_behind > 0:
            time.sleep(min(0.1, self.interval_s))
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None
        final = self.status()
        if self._own_engine:
            self._engine.dispose()
        return final

    def close(self) -> None:
        self.stop()


def _runs(events: Sequence[OutboxEntry]) -> list[list[OutboxEntry]]:
    """Consecutive entries of the same table and kind, in order (a run is pushed in one round trip)."""
    out: list[list[OutboxEntry]] = []
    for e in events:
        if out and out[-1][0].table == e.table and out[-1][0].op == e.op:
            out[-1].append(e)
        else:
            out.append([e])
    return out


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
