"""The HMI's handle on the station: opens sessions, runs batches, keeps what the screens show.

Widgets receive this object in their constructor (never a global). Everything slow
(loading and verifying a model, stopping a batch and reconciling its records, acknowledging
alarms in the record store, exporting reviews, heat maps) runs in the controller's
QThreadPool; results come back as signals in the GUI thread.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from inspector.config.recipe import RECIPES_DIR
from inspector.inference.units import to_units
from inspector.pipeline.types import Alarm, ItemDecision, StationState
from inspector.records import utc_now
from inspector.records.store import BATCH_ID_PATTERN
from inspector.runner import DEFAULT_DB, StationSession, new_batch_id, open_station
from inspector.taxonomy import OK
from ui import plc
from ui.bridge import StationBridge
from ui.model import AlarmBook, AlarmEntry, LiveTally, RejectBuffer, RejectEntry, ack_in_store
from ui.render import heatmap_to_frame
from ui.review import ReviewExporter, ReviewRequest, review_folder
from ui.workers import Jobs

log = logging.getLogger(__name__)

MONITOR_MS = 250
HEATMAP_MIN_INTERVAL_S = 0.5  # heat maps are for people: two a second is plenty, and they cost CPU


class Phase:
    """What the HMI is doing, beyond the station's own state (a model load is not a station state)."""

    NO_SESSION = "no_session"
    LOADING = "loading"
    READY = "ready"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    ERROR = "error"


@dataclass
class StationOptions:
    """How to open stations: where the project is and which camera feeds it."""

    root: Path
    camera: str = "sim"
    items: int | None = None
    line_rate: float | None = None  # items per minute; None: the recipe's rate
    seed: int = 0
    defect_rate: float = 0.05
    nuisance: float = 1.0
    images: str | None = None
    db: Path | None = None
    plc_url: str | None = None
    demo: bool = True

    @property
    def db_path(self) -> Path:
        p = self.db or Path(DEFAULT_DB)
        return p if p.is_absolute() else self.root / p


def list_recipes(root: Path) -> list[str]:
    folder = root / RECIPES_DIR
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def valid_batch_id(text: str) -> bool:
    return bool(BATCH_ID_PATTERN.match(text))


@dataclass
class Reconciliation:
    """End-of-batch reconciliation: every count agrees and nothing is unaccounted."""

    batch_id: str
    station: dict[str, Any]
    records: dict[str, Any] | None
    hmi: dict[str, int]
    highest_item_id: int | None
    expected_items: int | None
    checks: list[tuple[str, bool, str]]
    error: str | None = None

    @property
    def reconciled(self) -> bool:
        return self.error is None and all(ok for _, ok, _ in self.checks)


class StationController(QObject):
    """One station session at a time, with its batch, counters, rejects and alarms."""

    phase_changed = pyqtSignal(str)
    session_changed = pyqtSignal()
    message = pyqtSignal(str)  # operator-facing status line
    error = pyqtSignal(str)  # something the operator must read (load refused, stop failed)
    batch_started = pyqtSignal(str)
    batch_finished = pyqtSignal(object)  # Reconciliation
    counters_changed = pyqtSignal()
    reject_added = pyqtSignal(object)  # RejectEntry
    reject_updated = pyqtSignal(object)  # RejectEntry (heat map or review added)
    alarms_changed = pyqtSignal()
    review_failed = pyqtSignal(object, str)  # RejectEntry, why

    def __init__(self, options: StationOptions, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.options = options
        self.jobs = Jobs(self)
        self.bridge = StationBridge(self)
        self.session: StationSession | None = None
        self.plc_link: Any | None = None
        self.recipe_name: str | None = None
        self.phase = Phase.NO_SESSION
        self.state: StationState | None = None
        self.batch_id: str | None = None
        self.tally = LiveTally()
        self.rejects: RejectBuffer | None = None
        self.alarms = AlarmBook()
        self.exporter: ReviewExporter | None = None
        self.last_report: Reconciliation | None = None
        self.last_error: str | None = None
        self._closed = False
        self._stop_requested = False
        self._orphans: list[StationSession] = []  # sessions a job opened that nobody adopted yet
        self._orphans_lock = threading.Lock()
        self._heat_busy = False
        self._heat_next: RejectEntry | None = None
        self._heat_last = 0.0
        self._heat_timer = QTimer(self)
        self._heat_timer.setSingleShot(True)
        self._heat_timer.timeout.connect(self._next_heatmap)
        self._auto_start = False
        self._auto_operator: str | None = None
        self.operator = ""  # typed-in station operator name: unauthenticated, no user accounts yet

        self.bridge.decisions.connect(self._on_decisions)
        self.bridge.state_changed.connect(self._on_state)
        self.bridge.alarm.connect(self._on_alarm)
        self._monitor = QTimer(self)
        self._monitor.setInterval(MONITOR_MS)
        self._monitor.timeout.connect(self._watch_batch_end)
        self._monitor.start()

    def set_operator(self, name: str) -> None:
        self.operator = name.strip()

    # -- session ------------------------------------------------------------------------
    @property
    def recipes(self) -> list[str]:
        return list_recipes(self.options.root)

    def open(self, recipe: str, *, start_batch: bool = False, operator: str | None = None) -> None:
        """Load and verify ``recipe`` and its model in the pool; the old session is closed first."""
        if self.phase in (Phase.LOADING, Phase.STARTING, Phase.STOPPING, Phase.RUNNING):
            self.error.emit(f"cannot change the recipe while {self.phase}")
            return
        old, self.session = self.session, None
        old_link, self.plc_link = self.plc_link, None
        self.bridge.detach()
        self.recipe_name = recipe
        self._auto_start, self._auto_operator = start_batch, operator
        self._set_phase(Phase.LOADING)
        self.message.emit(f"Loading recipe {recipe!r} and verifying its model…")
        self.session_changed.emit()
        opts = self.options

        def job() -> tuple[StationSession, Any]:
            if old is not None:
                plc.close(old_link)
                old.close()
            session = open_station(
                recipe,
                camera=opts.camera,
                items=opts.items,
                line_rate=opts.line_rate,
                seed=opts.seed,
                defect_rate=opts.defect_rate,
                nuisance=opts.nuisance,
                images=opts.images,
                db=opts.db_path,
                root=opts.root,
            )
            with self._orphans_lock:
                self._orphans.append(session)
            try:
                if opts.plc_url:
                    link = plc.attach_plc(session, opts.plc_url)
                elif opts.demo:
                    link = plc.start_line_simulator(session)
                else:
                    link = None
            except BaseException:
                with self._orphans_lock:
                    self._orphans.remove(session)
                session.close()
                raise
            return session, link

        self.jobs.submit(job, self._adopt, self._load_failed)

    def _adopt(self, result: tuple[StationSession, Any]) -> None:
        session, link = result
        with self._orphans_lock:
            if session in self._orphans:
                self._orphans.remove(session)
        if self._closed:
            plc.close(link)
            session.close()
            return
        self.session, self.plc_link = session, link
        self.bridge.attach(session.station)
        rec = session.recipe.recipe
        self.rejects = RejectBuffer(rec.frame.shape)
        grid = rec.pocket_grid
        self.exporter = ReviewExporter(
            review_folder(self.options.root, rec.product), rec.product, grid.count if grid else None
        )
        self.state = session.station.state
        self.last_error = None
        self._set_phase(Phase.READY)
        self.message.emit(f"Recipe {rec.recipe_id} {rec.version} ready")
        self.session_changed.emit()
        if self._auto_start:
            self._auto_start = False
            self.start_batch(None, self._auto_operator)

    def _load_failed(self, exc: BaseException) -> None:
        if self._closed:
            return
        self.last_error = f"The station refuses to open recipe {self.recipe_name!r}: {exc}"
        self._set_phase(Phase.ERROR)
        self.session_changed.emit()
        self.error.emit(self.last_error)

    # -- batch --------------------------------------------------------------------------
    def suggest_batch_id(self) -> str:
        product = self.session.recipe.recipe.product.value if self.session else (self.recipe_name or "batch")
        return new_batch_id(product)

    def start_batch(self, batch_id: str | None, operator: str | None = None) -> None:
        session = self.session
        if session is None or self.phase != Phase.READY:
            self.error.emit("the station is not ready to start a batch")
            return
        bid = batch_id or self.suggest_batch_id()
        if not valid_batch_id(bid):
            self.error.emit(
                f"batch/lot id {bid!r} is not allowed: use letters, digits, '.', '_' or '-' (max 128 characters)"
            )
            return
        self.tally.reset(bid)
        if self.rejects is not None:
            self.rejects.clear()
        self.batch_id = bid
        self._stop_requested = False
        self._set_phase(Phase.STARTING)
        self.counters_changed.emit()
        self.message.emit("Starting the batch…")
        self.jobs.submit(
            lambda: session.start_batch(bid, operator=operator or None), self._batch_started, self._start_failed
        )

    def _batch_started(self, bid: str) -> None:
        if self._closed:
            return
        self._set_phase(Phase.RUNNING)
        self.message.emit(f"Batch started {utc_now()[11:16]} UTC")
        self.batch_started.emit(bid)

    def _start_failed(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._set_phase(Phase.READY)
        self.error.emit(f"The batch did not start: {exc}")

    def stop_batch(self, *, wait_finished: bool = False) -> None:
        """End the batch: the station finishes queued items, records are flushed and reconciled."""
        session = self.session
        if session is None or self.phase != Phase.RUNNING or self._stop_requested:
            return
        self._stop_requested = True
        self._set_phase(Phase.STOPPING)
        self.message.emit("Stopping: finishing queued items, flushing records…")

        def job() -> Reconciliation:
            if wait_finished:
                session.station.wait_finished(10.0)
            complete = bool(getattr(session.camera, "finished", False))
            summary = session.end_batch()
            return reconcile(session, summary, source_complete=complete)

        self.jobs.submit(job, self._finished, self._stop_failed)

    def _finished(self, report: Reconciliation) -> None:
        if self._closed:
            return
        # Every decision event was queued before this result, so the live tally is complete now.
        report.hmi = {
            "inspected": self.tally.inspected,
            "accepted": self.tally.accepted,
            "rejected": self.tally.rejected,
        }
        report.checks.append(
            (
                "HMI counters = station",
                report.hmi["inspected"] == report.station.get("items")
                and report.hmi["accepted"] == report.station.get("accepted"),
                f"HMI {report.hmi['inspected']} inspected / {report.hmi['accepted']} accepted",
            )
        )
        self.last_report = report
        self._set_phase(Phase.READY)
        self.message.emit(f"Last batch {'reconciled' if report.reconciled else 'NOT reconciled'}")
        self.batch_finished.emit(report)

    def _stop_failed(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._stop_requested = False
        self._set_phase(Phase.RUNNING if self.state in (StationState.RUNNING, StationState.FAULT) else Phase.READY)
        self.error.emit(f"Stopping the batch failed: {exc}")

    def _watch_batch_end(self) -> None:
        """A finite (demo) batch ends by itself once every item was delivered."""
        s = self.session
        if s is None or self.phase != Phase.RUNNING or self._stop_requested:
            return
        if getattr(s.camera, "finished", False):
            self.stop_batch(wait_finished=True)

    # -- events from the station (GUI thread, via the bridge) -----------------------------
    def _on_decisions(self, batch: list[ItemDecision]) -> None:
        newest: RejectEntry | None = None
        for d in batch:
            self.tally.add(d)
            if not d.accept and self.rejects is not None and self.batch_id is not None:
                entry = self.rejects.offer(self.batch_id, d)
                if entry is not None:
                    newest = entry
                    self.reject_added.emit(entry)
        if newest is not None:
            # Only the newest reject of a burst gets a heat map: it is the one on screen.
            self.request_heatmap(newest)

    def _on_state(self, state: StationState) -> None:
        self.state = state
        self.session_changed.emit()

    def _on_alarm(self, alarm: Alarm) -> None:
        session = self.session
        # The station's batch id is set only after the batch row exists, so the stored alarm's
        # reference to its batch is always valid (a refused start leaves it at the old batch).
        entry = AlarmEntry(alarm=alarm, batch_id=session.station.batch_id if session is not None else None)
        writer = session.writer if session is not None else None
        if writer is not None:
            try:
                writer.submit_alarm(alarm.source, alarm.code, alarm.message, batch_id=entry.batch_id)
                entry.persisted = True
            except Exception as exc:  # queue full or writer closed: the alarm still shows
                log.warning("alarm %s not stored: %s", alarm.code, exc)
        self.alarms.add(entry)
        self.alarms_changed.emit()

    # -- alarms ---------------------------------------------------------------------------
    def acknowledge_alarms(self, who: str) -> bool:
        """Acknowledge every open alarm as ``who`` (the unauthenticated station operator)."""
        who = who.strip()
        if not who:
            self.error.emit("Enter the station operator's name to acknowledge alarms.")
            return False
        entries = self.alarms.unacknowledged()
        if not entries:
            return True
        session = self.session
        writer = session.writer if session is not None else None
        store_path = writer.store_path if writer is not None else self.options.db_path

        def job() -> dict[int, tuple[int, str]]:
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.flush(timeout=5)
            return ack_in_store(store_path, [e for e in entries if e.persisted], who)

        def done(acked: dict[int, tuple[int, str]]) -> None:
            for e in entries:
                db_id, at = acked.get(id(e), (None, utc_now()))
                e.db_id, e.acknowledged_utc, e.acknowledged_by = db_id, at, who
            self.alarms_changed.emit()

        self.jobs.submit(job, done, lambda exc: self.error.emit(f"Acknowledging failed: {exc}"))
        return True

    # -- rejects: heat maps and review ------------------------------------------------------
    def request_heatmap(self, entry: RejectEntry, *, urgent: bool = False) -> None:
        """Compute the model's heat map for a reject in the pool: one at a time, at most ~2/s, newest wins.

        ``urgent`` (a reject opened for review) skips the rate limit.
        """
        s = self.session
        if s is None or not s.engine.has_heatmap or entry.heatmap is not None or self._closed:
            return
        wait = HEATMAP_MIN_INTERVAL_S - (time.monotonic() - self._heat_last)
        if self._heat_busy or (wait > 0 and not urgent):
            self._heat_next = entry
            if not self._heat_busy and not self._heat_timer.isActive():
                self._heat_timer.start(max(1, int(wait * 1000)))
            return
        self._heat_busy = True
        self._heat_last = time.monotonic()
        engine = s.engine
        grid = s.recipe.recipe.pocket_grid
        rois = grid.rois() if grid is not None else None
        image = entry.image
        reasons = entry.decision.unit_reasons
        # Blister: the maps of the rejected pockets only (see heatmap_to_frame).
        only = [i for i, r in enumerate(reasons) if r != OK] if rois and reasons else None

        def job() -> Any:
            maps = engine.heatmap(to_units(image, rois))
            return None if maps is None else heatmap_to_frame(maps, image.shape, rois, only=only)

        def done(heat: Any) -> None:
            self._heat_busy = False
            if heat is not None and not self._closed:
                entry.heatmap = heat
                self.reject_updated.emit(entry)
            self._next_heatmap()

        def failed(exc: BaseException) -> None:
            self._heat_busy = False
            log.warning("heat map failed: %s", exc)
            self._next_heatmap()

        self.jobs.submit(job, done, failed)

    def _next_heatmap(self) -> None:
        nxt, self._heat_next = self._heat_next, None
        if nxt is not None and not self._closed:
            self.request_heatmap(nxt)

    def review(self, entry: RejectEntry, label: str, reviewer: str, pocket_index: int | None = None) -> None:
        """Export a reviewed reject into the labelled review set (pool); ``label`` ``ok`` = false reject."""
        exporter = self.exporter
        if exporter is None:
            self.review_failed.emit(entry, "no station session")
            return
        req = ReviewRequest(entry=entry, label=label, reviewer=reviewer, pocket_index=pocket_index)

        def done(review: Any) -> None:
            entry.review = review
            self.reject_updated.emit(entry)

        self.jobs.submit(lambda: exporter.export(req), done, lambda exc: self.review_failed.emit(entry, str(exc)))

    # -- lifecycle ------------------------------------------------------------------------
    def _set_phase(self, phase: str) -> None:
        if phase != self.phase:
            self.phase = phase
            self.phase_changed.emit(phase)

    def shutdown(self) -> None:
        """End a running batch, close the session and the pool; blocks (only called at exit)."""
        if self._closed:
            return
        self._closed = True
        self._monitor.stop()
        self._heat_timer.stop()
        self.bridge.stop()
        self.jobs.shutdown()
        self.bridge.detach()
        with self._orphans_lock:
            sessions = [s for s in self._orphans if s is not self.session]
            self._orphans.clear()
        session, link = self.session, self.plc_link
        self.session = self.plc_link = None
        if session is not None:
            if session.station.state in (StationState.RUNNING, StationState.FAULT):
                try:
                    session.end_batch()
                except Exception:
                    log.exception("ending the batch at exit failed")
            sessions.append(session)
        plc.close(link)
        for s in sessions:
            try:
                s.close()
            except Exception:
                log.exception("closing the station failed")


def reconcile(session: StationSession, summary: dict[str, Any], *, source_complete: bool = False) -> Reconciliation:
    """Check the station's summary against the record store (runs in a pool thread).

    ``source_complete``: a finite source delivered all its items, so all of them must be decided.
    """
    bid = str(summary.get("batch_id"))
    checks: list[tuple[str, bool, str]] = []
    items, acc, rej = int(summary["items"]), int(summary["accepted"]), int(summary["rejected"])
    checks.append(("inspected = accepted + rejected", items == acc + rej, f"{items} = {acc} + {rej}"))
    records: dict[str, Any] | None = None
    highest: int | None = None
    error = None
    if session.writer is not None:
        try:
            from inspector.records import RecordStore

            with RecordStore(session.writer.store_path) as store:
                records = store.counts(bid)
            uri = f"file:{session.writer.store_path}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
                (highest,) = conn.execute("SELECT max(item_id) FROM items WHERE batch_id = ?", (bid,)).fetchone()
        except Exception as exc:
            error = f"records could not be read: {exc}"
    if records is not None:
        same = (records["inspected"], records["accepted"], records["rejected"]) == (items, acc, rej)
        checks.append(
            (
                "records = station",
                same,
                f"records {records['inspected']} / {records['accepted']} / {records['rejected']}",
            )
        )
        n = records["inspected"]
        checks.append(
            (
                "nothing unaccounted",
                (highest or 0) == n,
                f"item ids 1..{highest or 0}, {n} recorded",
            )
        )
    expected = getattr(session.camera, "items", None)
    if expected is not None and source_complete:
        checks.append(("every item of the batch decided", items == expected, f"{items} of {expected}"))
    elif expected is not None:
        checks.append(("stopped by the operator", True, f"after {items} of {expected} items"))
    return Reconciliation(
        batch_id=bid,
        station=summary,
        records=records,
        hmi={},  # filled in the GUI thread, once every queued decision was counted
        highest_item_id=highest,
        expected_items=expected,
        checks=checks,
        error=error,
    )
