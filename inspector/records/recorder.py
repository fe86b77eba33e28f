"""The Recorder: the only writer of a station's records.

It subscribes to the station's events and stores, through one :class:`RecordWriter`:

- every decision (:class:`ItemDecided`), with the image of a reject;
- every alarm (:class:`AlarmRaised`), exactly once, under the id it was raised with;
- every PLC acknowledgement (:class:`PlcAcked`), once the item's row is queued before it
  (the PLC can answer before the decision event reaches the recorder).

The batch record is opened and closed by the station's assembly through
:meth:`open_batch` and :meth:`close_batch`, synchronously: a refused batch id must stop the
start, and a batch is ended only after every record of it is committed. A batch that a
crashed station left running is closed as aborted at the next start
(:meth:`abort_batch`). Alarm acknowledgements name the alarm's id, never its text
(:meth:`acknowledge_alarms`).

One station writes one database: a Recorder holds an exclusive lock on ``<database>.lock``
while it is open, so a second station on the same file is refused (and a batch that is
still running elsewhere is never taken for a crashed one).

The audit trail gets, in the same transaction as the record it describes: batch start and end
(the end entry names the head of the batch's item chain and the hash of its summary, and the
batch record keeps the trail's head), each alarm acknowledgement, each reject review, each
integrity failure, and security events (PLC write refused, untrusted certificate) with their
alarm.

Nothing here blocks the inspection thread: event handlers only queue. A record that cannot
be queued is reported through ``on_failure`` (the station raises ``SINK_ERROR``).

**Durable before release.** Listeners added with :meth:`add_durable_listener` learn which item
rows each commit made durable (the writer's transaction with ``synchronous=FULL``: the WAL is
fsynced) and which could not be stored (refused, or not even queued). The PLC sink releases an
accept to the line only then. The writer commits whatever is queued at once (no grouping window):
an accept waits for one commit, and under load groups form by themselves during each fsync.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspector.events import (
    AlarmRaised,
    BatchContext,
    BatchResult,
    ItemDecided,
    ItemDecision,
    PlcAcked,
    StationEvent,
    utc_now,
)
from inspector.records import audit, lifecycle, users
from inspector.records.audit import SYSTEM_ACTOR, Actor
from inspector.records.chain import summary_sha256
from inspector.records.store import (
    AlarmRecord,
    ItemRecord,
    RecordConstraintError,
    RecordError,
    RecordStore,
    Synchronous,
    UnknownAlarmError,
)
from inspector.records.writer import ItemKey, RecordWriter

log = logging.getLogger(__name__)

FailureCallback = Callable[[str], None]
#: ``(durable, not_stored)``: item rows (batch id, item id) a commit made durable, and rows that never will be.
DurableListener = Callable[[Sequence[ItemKey], Sequence[ItemKey]], None]


class DatabaseInUseError(RecordError):
    """Another station (process) holds this record database open."""


def _lock_database(database: Path) -> int | None:
    """An exclusive lock on ``<database>.lock`` held while the file descriptor stays open.

    Released by the kernel when the process dies, so a crashed station never blocks the next one.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (one station per database is then the site's rule)
        return None
    fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise DatabaseInUseError(f"{database} is open in another station; one station writes one database") from None
    return fd


#: Alarms that are security events (IEC 62443 SR 2.8): each also writes an audit entry.
SECURITY_ALARMS = frozenset({"PLC_SECURITY", "PLC_WRITE_REFUSED"})


@dataclass(frozen=True)
class AlarmAck:
    """One stored acknowledgement: the alarm's id, its row, who and when."""

    alarm_id: str
    row_id: int
    by: str
    at_utc: str


def item_record(batch_id: str, d: ItemDecision) -> ItemRecord:
    """The record of one decision: what was decided, why, how fast, and with what scores."""
    return ItemRecord(
        batch_id=batch_id,
        item_id=d.item_id,
        frame_id=d.frame_id,
        t_frame=d.times.t_acquired,
        created_utc=datetime.now(UTC).isoformat(timespec="microseconds"),
        decision="accept" if d.accept else "reject",
        reason=str(d.reason),
        deadline_met=d.deadline_met,
        label=d.label,
        pocket_index=d.pocket_index,
        confidence=d.confidence,
        class_scores=dict(d.scores or {}),
        anomaly_score=d.anomaly,
        latency=d.times.ms(),
        truth_label=d.truth.label if d.truth is not None else None,
        alarm=d.not_inspected.value if d.not_inspected is not None else None,
        pose=d.pose,
        identity=None if d.identity is None else [dict(u) for u in d.identity],
    )


class Recorder:
    """Stores a station's events; see the module notes. ``close()`` flushes and stops the writer."""

    def __init__(
        self,
        database: str | Path,
        images: str | Path | None = None,
        *,
        synchronous: Synchronous = "FULL",
        on_failure: FailureCallback | None = None,
        **writer_options: Any,
    ) -> None:
        self.database = Path(database)
        self.database.parent.mkdir(parents=True, exist_ok=True)
        images_dir = Path(images) if images is not None else self.database.parent / "images"
        self._lock_fd = _lock_database(self.database)
        self._durable_listeners: list[DurableListener] = []
        writer_options.setdefault("group_window_s", 0.0)  # an accept waits for its commit: commit at once
        writer_options.setdefault("realtime", True)  # ... so the writer is on the inspection path's priority
        try:
            self.writer = RecordWriter(
                self.database, images_dir, synchronous=synchronous, on_items=self._on_items, **writer_options
            )
        except BaseException:
            self._unlock()
            raise
        self.on_failure = on_failure
        #: Set by the station's assembly when a PLC link answers each decision.
        self.expect_plc_acks = False
        self._lock = threading.Lock()
        self._queued: set[tuple[str, int]] = set()  # item rows queued, PLC acknowledgement not yet
        self._acks_waiting: dict[tuple[str, int], PlcAcked] = {}  # acknowledgement known, row not yet queued

    # -- durability -------------------------------------------------------------------------------
    def add_durable_listener(self, listener: DurableListener) -> None:
        """Call ``listener(durable, not_stored)`` after each commit (writer thread; it must return quickly)."""
        self._durable_listeners = [*self._durable_listeners, listener]

    def _on_items(self, stored: Sequence[ItemKey], refused: Sequence[ItemKey]) -> None:
        for listener in self._durable_listeners:
            try:
                listener(stored, refused)
            except Exception:
                log.exception("recorder: durable listener failed")

    # -- events (pipeline and link threads: only queue) ---------------------------------------
    def __call__(self, event: StationEvent) -> None:
        if isinstance(event, ItemDecided):
            if event.batch_id is not None:
                self._item(event.batch_id, event.decision)
        elif isinstance(event, AlarmRaised):
            self._alarm(event)
        elif isinstance(event, PlcAcked):
            self._plc_ack(event)

    def _item(self, batch_id: str, d: ItemDecision) -> None:
        image = d.image if (not d.accept and d.image is not None and d.image.size) else None
        try:
            self.writer.submit(item_record(batch_id, d), image)
        except Exception as exc:
            self._failed(f"records: item {d.item_id} not queued: {exc}")
            self._on_items([], [(batch_id, d.item_id)])  # never durable: an accept waiting for it is not released
            return
        if not self.expect_plc_acks:
            return
        key = (batch_id, d.item_id)
        with self._lock:
            ack = self._acks_waiting.pop(key, None)
            if ack is None:
                self._queued.add(key)
        if ack is not None:
            self._store_ack(ack)

    def _plc_ack(self, ack: PlcAcked) -> None:
        key = (ack.batch_id, ack.item_id)
        with self._lock:
            queued = key in self._queued
            if queued:
                self._queued.discard(key)
            else:
                self._acks_waiting[key] = ack
        if queued:
            self._store_ack(ack)

    def _store_ack(self, ack: PlcAcked) -> None:
        try:
            self.writer.update_plc_ack(ack.batch_id, ack.item_id, ack.record_text, at_utc=ack.at_utc)
        except Exception as exc:  # a closed or full writer must not stop the link
            log.error("PLC acknowledgement of item %d not stored: %s", ack.item_id, exc)

    def _alarm(self, event: AlarmRaised) -> None:
        a = event.alarm
        try:
            self.writer.submit_alarm(
                a.source,
                a.code,
                a.message,
                batch_id=a.batch_id,
                created_utc=a.t_utc,
                uid=a.alarm_id,
                severity=a.severity.value,
                detail=a.detail,
                audited=a.code in SECURITY_ALARMS,
            )
        except Exception as exc:  # no alarm about an alarm: that could loop; the log keeps it
            log.error("alarm %s (%s) not stored: %s", a.code, a.alarm_id, exc)

    def _failed(self, message: str) -> None:
        log.error("%s", message)
        if self.on_failure is not None:
            try:
                self.on_failure(message)
            except Exception:
                log.exception("recorder: on_failure callback failed")

    # -- batches (the caller's thread; synchronous) ----------------------------------------------
    def open_batch(self, batch: BatchContext, actor: Actor = SYSTEM_ACTOR) -> None:
        """Write the batch record before its first item; raises DuplicateBatchError / RecordConstraintError."""
        with RecordStore(self.database) as store, store.transaction():
            store.start_batch(
                batch.batch_id,
                product=batch.product,
                recipe_id=batch.recipe_id,
                recipe_version=batch.recipe_version,
                recipe_sha256=batch.recipe_sha256,
                model_id=batch.model_id,
                model_version=batch.model_version,
                model_sha256=batch.model_sha256,
                camera_serial=batch.camera_serial,
                camera_settings=batch.camera_settings,
                operator=batch.operator,
                started_utc=batch.started_utc,
                release_status=batch.release_status,
                plc=batch.plc,
                thresholds=batch.thresholds,
                thresholds_validated=batch.thresholds_validated,
            )
            audit.append(
                store,
                actor,
                "batch.start",
                object_type="batch",
                object_id=batch.batch_id,
                new={
                    "recipe": f"{batch.recipe_id}@{batch.recipe_version}",
                    "recipe_sha256": batch.recipe_sha256,
                    "model": f"{batch.model_id}@{batch.model_version}",
                    "model_sha256": batch.model_sha256,
                    "camera_serial": batch.camera_serial,
                    "release_status": batch.release_status,
                    "anchor": store.batch_anchor(batch.batch_id),
                },
                at_utc=batch.started_utc,
            )

    def running_batch_ids(self) -> list[str]:
        """Batches still running in the records: at a station's start, those a crash left open."""
        with RecordStore(self.database) as store:
            return store.running_batch_ids()

    def abort_batch(self, batch_id: str, summary: dict[str, Any]) -> None:
        """Close a batch its station never ended (crash, kill), with what its rows say; audited."""
        with RecordStore(self.database) as store, store.transaction():
            entry = audit.append(
                store, SYSTEM_ACTOR, "batch.abort", object_type="batch", object_id=batch_id,
                new={"items_head": store.items_head(batch_id), "summary_sha256": summary_sha256(
                    json.dumps(summary, allow_nan=False, ensure_ascii=False, sort_keys=True))},
                reason="its station stopped without ending it (crash or kill); closed at the next start",
            )  # fmt: skip
            store.abort_batch(batch_id, summary, audit_head=(entry.seq, entry.hash))

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued so far is committed; raise what could not be stored."""
        self.writer.flush(timeout=timeout_s)

    def close_batch(
        self,
        result: BatchResult,
        *,
        reconciliation: dict[str, Any] | None = None,
        actor: Actor = SYSTEM_ACTOR,
        extra: dict[str, Any] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """Commit every queued record of the batch, then end it with its result (and reconciliation).

        The end entry in the audit trail names the head of the batch's item chain and the hash of
        the stored summary; the batch record keeps the trail's head (that entry).
        """
        if result.batch_id is None:
            raise RecordConstraintError("a batch result without a batch id cannot end a batch")
        self.flush(timeout_s)
        summary = result.as_dict()
        if reconciliation is not None:
            summary["reconciliation"] = reconciliation
        summary.update(extra or {})
        text = json.dumps(summary, allow_nan=False, ensure_ascii=False, sort_keys=True)
        with RecordStore(self.database) as store, store.transaction():
            entry = audit.append(
                store,
                actor,
                "batch.end",
                object_type="batch",
                object_id=result.batch_id,
                new={
                    "items_head": store.items_head(result.batch_id),
                    "summary_sha256": summary_sha256(text),
                    "items": result.items,
                    "accepted": result.accepted,
                    "rejected": result.rejected,
                    "reconciled": None if reconciliation is None else reconciliation.get("reconciled"),
                },
            )
            store.end_batch(result.batch_id, summary, audit_head=(entry.seq, entry.hash))
        with self._lock:  # acknowledgements that never came for this batch are not waited for any more
            self._queued = {k for k in self._queued if k[0] != result.batch_id}
            self._acks_waiting = {k: v for k, v in self._acks_waiting.items() if k[0] != result.batch_id}

    # -- reads for reconciliation and the HMI ----------------------------------------------------
    def counts(self, batch_id: str) -> dict[str, Any]:
        with RecordStore(self.database) as store:
            return store.counts(batch_id)

    def highest_item_id(self, batch_id: str) -> int | None:
        with RecordStore(self.database) as store:
            return store.highest_item_id(batch_id)

    def batch(self, batch_id: str) -> dict[str, Any]:
        with RecordStore(self.database) as store:
            return store.batch(batch_id)

    def missing_plc_acks(self, batch_id: str) -> int:
        with RecordStore(self.database) as store:
            return store.missing_plc_acks(batch_id)

    def alarms(self, batch_id: str | None = None, *, unacknowledged_only: bool = False) -> list[AlarmRecord]:
        with RecordStore(self.database) as store:
            return store.alarms(batch_id, unacknowledged_only=unacknowledged_only)

    # -- alarm acknowledgements ------------------------------------------------------------------
    def acknowledge_alarms(
        self, alarm_ids: Sequence[str], who: str, *, actor: Actor | None = None, timeout_s: float = 5.0
    ) -> list[AlarmAck]:
        """Acknowledge the stored alarms with these ids as ``who``; returns what was stored.

        Alarms still queued are committed first, so an alarm raised a moment ago can be acknowledged.
        An alarm already acknowledged keeps its first acknowledgement (it is skipped); an id with no
        row (an alarm that could not be stored, already logged then) is skipped with a warning.
        """
        who = who.strip()
        if not who:
            raise RecordConstraintError("an alarm acknowledgement must name who acknowledged it")
        self.writer.flush(timeout=timeout_s)
        done: list[AlarmAck] = []
        with RecordStore(self.database) as store:
            for alarm_id in alarm_ids:
                try:
                    row = store.alarm_by_uid(alarm_id)
                except UnknownAlarmError:
                    log.warning("alarm %s is not in the records: acknowledgement by %s not stored", alarm_id, who)
                    continue
                if row.acknowledged_utc is not None:
                    continue
                at = utc_now()
                with store.transaction():
                    store.ack_alarm(row.id, who, at_utc=at)
                    audit.append(
                        store,
                        actor or Actor(who, "unauthenticated"),
                        "alarm.acknowledge",
                        object_type="alarm",
                        object_id=alarm_id,
                        old={"code": row.code, "acknowledged": False},
                        new={"code": row.code, "acknowledged": True},
                        at_utc=at,
                    )
                done.append(AlarmAck(alarm_id=alarm_id, row_id=row.id, by=who, at_utc=at))
        return done

    # -- other audited events -------------------------------------------------------------------
    def audit(self, actor: Actor, action: str, **fields: Any) -> audit.AuditEntry:
        """One audit entry (object_type=, object_id=, old=, new=, reason=), committed now."""
        with RecordStore(self.database) as store:
            return audit.append(store, actor, action, **fields)

    # -- users and releases ------------------------------------------------------------------------
    def login(self, username: str, password: str) -> Actor:
        """Authenticate; a demo database gets its documented demo accounts at its first login."""
        with RecordStore(self.database) as store:
            if users.store_mode(store) == "demo":
                users.seed_demo_accounts(store)
            return users.authenticate(store, username, password)

    def logout(self, actor: Actor, *, idle: bool = False) -> None:
        with RecordStore(self.database) as store:
            users.logout(store, actor, idle=idle)

    def release_state(self, object_type: str, object_id: str, sha256: str) -> str | None:
        """``draft`` / ``reviewed`` / ``approved`` / ``retired`` / ``rejected``, or ``None`` if never registered."""
        with RecordStore(self.database) as store:
            found = lifecycle.current(store, object_type, object_id, sha256)
        return None if found is None else found.state.value

    def approved_hashes(self, object_type: str, object_id: str) -> list[str]:
        """Content hashes of this object that are approved now (to tell a changed file from a new one)."""
        with RecordStore(self.database) as store:
            return [
                r.sha256
                for r in lifecycle.releases(store, object_type)
                if r.object_id == object_id and r.state is lifecycle.ReleaseState.APPROVED
            ]

    def close(self, timeout_s: float = 30.0) -> None:
        try:
            self.writer.close(timeout=timeout_s)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor releases the lock


def record_integrity_failure(database: str | Path, what: str, message: str, detail: dict[str, Any]) -> None:
    """A changed or unverifiable model, recipe or config file: an alarm and an audit entry, together.

    Written before any station exists (the station refused to open), so not through a Recorder.
    """
    with RecordStore(database) as store, store.transaction():
        store.add_alarm(source="integrity", code="INTEGRITY_FAILURE", message=message, severity="fault", detail=detail)
        audit.append(
            store, SYSTEM_ACTOR, "integrity.failure", object_type=what, object_id=str(detail.get("path", what)),
            new={"message": message, **detail}, reason="the station refused to open",
        )  # fmt: skip
