"""The HMI's handle on the station: opens station clients, runs batches, keeps what the screens show.

Widgets receive this object in their constructor (never a global). The controller talks to the
station only through a :class:`~inspector.station.client.StationClient`: it never sees the
station, its camera or its records, and it writes nothing itself (the station's recorder stores
decisions, alarms and acknowledgements). Everything slow (opening a station and verifying its
model, stopping a batch and reconciling its records, acknowledging alarms, exporting reviews,
heat maps) runs in the controller's QThreadPool; results come back as signals in the GUI thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from inspector.config.recipe import RECIPES_DIR
from inspector.config.station import StationConfig, override
from inspector.events import Alarm, AlarmAcknowledged, BatchInProgress, ItemDecision, StationState
from inspector.roles import Action, allowed
from inspector.station import new_batch_id
from inspector.station.client import (
    STATION_LOST,
    Actor,
    AlarmAck,
    ReviewRequest,
    StationClient,
    open_in_process,
    valid_batch_id,
)
from inspector.station.reconcile import Check, Reconciliation
from ui.bridge import StationBridge
from ui.model import AlarmBook, AlarmEntry, LiveTally, RejectBuffer, RejectEntry
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
    CHALLENGE = "challenge"  # the start-up challenge set is running
    RUNNING = "running"
    STOPPING = "stopping"
    QUALIFYING = "qualifying"  # the station is closed: a qualification run has its record database
    ERROR = "error"


ClientFactory = Callable[[StationConfig, Path], StationClient]


@dataclass
class StationOptions:
    """Which station the HMI opens (a station file, flags applied) and where the project is."""

    root: Path
    station: StationConfig
    demo: bool = True
    open_client: ClientFactory = open_in_process
    #: Demo only: log this (user name, password) in as soon as the station is open.
    auto_login: tuple[str, str] | None = None


def list_recipes(root: Path) -> list[str]:
    folder = root / RECIPES_DIR
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


class StationController(QObject):
    """One station client at a time, with its batch, counters, rejects and alarms."""

    phase_changed = pyqtSignal(str)
    session_changed = pyqtSignal()
    message = pyqtSignal(str)  # operator-facing status line
    error = pyqtSignal(str)  # something the operator must read (load refused, stop failed)
    batch_started = pyqtSignal(str)
    batch_finished = pyqtSignal(object)  # Reconciliation
    challenge_finished = pyqtSignal(object)  # ChallengeResult
    counters_changed = pyqtSignal()
    reject_added = pyqtSignal(object)  # RejectEntry
    reject_updated = pyqtSignal(object)  # RejectEntry (heat map or review added)
    alarms_changed = pyqtSignal()
    review_failed = pyqtSignal(object, str)  # RejectEntry, why
    user_changed = pyqtSignal()  # someone logged in or out
    login_failed = pyqtSignal(str)  # why (wrong password, locked, ...)

    def __init__(self, options: StationOptions, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.options = options
        self.jobs = Jobs(self)
        self.bridge = StationBridge(self)
        self.client: StationClient | None = None
        self.recipe_name: str | None = None
        self.phase = Phase.NO_SESSION
        self.state: StationState | None = None
        self.batch_id: str | None = None
        self.tally = LiveTally()
        self.rejects: RejectBuffer | None = None
        self.alarms = AlarmBook()
        self.last_report: Reconciliation | None = None
        self.last_challenge: Any = None  # the newest start-up challenge (ChallengeResult)
        self.last_error: str | None = None
        self._closed = False
        self._stop_requested = False
        self._orphans: list[StationClient] = []  # clients a job opened that nobody adopted yet
        self._orphans_lock = threading.Lock()
        self._heat_busy = False
        self._heat_next: RejectEntry | None = None
        self._heat_last = 0.0
        self._heat_timer = QTimer(self)
        self._heat_timer.setSingleShot(True)
        self._heat_timer.timeout.connect(self._next_heatmap)
        self._auto_start = False
        self._auto_operator: str | None = None
        self.actor: Actor | None = None  # the logged-in user; the station acts for nobody else
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.timeout.connect(lambda: self.logout(idle=True))
        self.idle_logout_s: float | None = None

        self.bridge.decisions.connect(self._on_decisions)
        self.bridge.state_changed.connect(self._on_state)
        self.bridge.alarm.connect(self._on_alarm)
        self.bridge.alarm_acknowledged.connect(self._on_alarm_acknowledged)
        self.bridge.batch_in_progress.connect(self._on_batch_in_progress)
        self._monitor = QTimer(self)
        self._monitor.setInterval(MONITOR_MS)
        self._monitor.timeout.connect(self._watch_batch_end)
        self._monitor.start()

    # -- users ----------------------------------------------------------------------------
    @property
    def operator(self) -> str:
        """The logged-in user's full name, as records show it ("" when nobody is logged in)."""
        return (self.actor.full_name or self.actor.username) if self.actor is not None else ""

    def can(self, action: Action) -> bool:
        """May the logged-in user do this now (role x action table)? Nobody logged in: no."""
        return self.actor is not None and allowed(self.actor.role, action)

    def login(self, username: str, password: str) -> None:
        """Authenticate in the pool (Argon2 takes a moment); ``user_changed`` or ``login_failed`` follows."""
        client = self.client
        if client is None:
            self.login_failed.emit("the station is not open yet")
            return

        def done(actor: Actor) -> None:
            if self.actor is not None and self.actor != actor:
                self._logout_job(self.actor, idle=False)
            self.actor = actor
            self.touch()
            self.message.emit(f"Logged in: {actor.full_name} ({actor.role})")
            self.user_changed.emit()
            self._start_if_asked()

        def failed(exc: BaseException) -> None:
            self.login_failed.emit(str(exc))
            self._start_if_asked()  # a demo still starts (as the demo station), a production one refuses

        self.jobs.submit(lambda: client.login(username, password), done, failed)

    def logout(self, *, idle: bool = False) -> None:
        actor, self.actor = self.actor, None
        self._idle.stop()
        if actor is None:
            return
        self._logout_job(actor, idle=idle)
        self.message.emit("Logged out after inactivity" if idle else "Logged out")
        self.user_changed.emit()

    def _logout_job(self, actor: Actor, *, idle: bool) -> None:
        client = self.client
        if client is not None:
            self.jobs.submit(lambda: client.logout(actor, idle=idle), None, lambda exc: log.warning("logout: %s", exc))

    def touch(self) -> None:
        """Operator activity: restart the idle logout clock."""
        if self.actor is not None and self.idle_logout_s:
            self._idle.start(max(1, int(self.idle_logout_s * 1000)))

    # -- session ------------------------------------------------------------------------
    @property
    def recipes(self) -> list[str]:
        return list_recipes(self.options.root)

    def open(self, recipe: str, *, start_batch: bool = False, operator: str | None = None) -> None:
        """Open the station with ``recipe`` (model verified) in the pool; the old one is closed first."""
        busy = (Phase.LOADING, Phase.STARTING, Phase.CHALLENGE, Phase.STOPPING, Phase.RUNNING, Phase.QUALIFYING)
        if self.phase in busy:
            self.error.emit(f"cannot change the recipe while {self.phase}")
            return
        old, self.client = self.client, None
        self.bridge.detach()
        self.recipe_name = recipe
        self._auto_start, self._auto_operator = start_batch, operator
        self._set_phase(Phase.LOADING)
        self.message.emit(f"Loading recipe {recipe!r} and verifying its model…")
        self.session_changed.emit()
        opts = self.options

        def job() -> StationClient:
            if old is not None:
                old.close()
            client = opts.open_client(override(opts.station, recipe=recipe), opts.root)
            with self._orphans_lock:
                self._orphans.append(client)
            return client

        self.jobs.submit(job, self._adopt, self._load_failed)

    def _adopt(self, client: StationClient) -> None:
        with self._orphans_lock:
            if client in self._orphans:
                self._orphans.remove(client)
        if self._closed:
            client.close()
            return
        self.client = client
        self.bridge.attach(client)
        info = client.info
        self.rejects = RejectBuffer(info.frame_shape)
        for alarm in info.startup_alarms:  # raised before the bridge listened (a crashed batch closed)
            self.alarms.add(AlarmEntry(alarm=alarm))
        if info.startup_alarms:
            self.alarms_changed.emit()
        self.state = client.status().state
        self.last_error = None
        self.last_challenge = None
        try:
            self.idle_logout_s = client.idle_logout_s()
        except Exception:
            self.idle_logout_s = None
        if self.state.in_batch:
            # Attached to a station whose batch runs (this HMI was closed or crashed and reopened):
            # follow that batch; its counters come with the first event (BatchInProgress).
            self._auto_start = False
            self._set_phase(Phase.RUNNING)
            self.message.emit(f"Attached to the running station: recipe {info.recipe_id} {info.recipe_version}")
        else:
            self._set_phase(Phase.READY)
            self.message.emit(f"Recipe {info.recipe_id} {info.recipe_version} ready")
        self.session_changed.emit()
        if self.options.auto_login is not None and self.actor is None:
            self.login(*self.options.auto_login)  # the demo batch starts once the demo operator is in
            return
        self._start_if_asked()

    def _start_if_asked(self) -> None:
        if self._auto_start and self.phase == Phase.READY:
            self._auto_start = False
            self.start_batch(None, self.operator or self._auto_operator)

    def _load_failed(self, exc: BaseException) -> None:
        if self._closed:
            return
        self.last_error = f"The station refuses to open recipe {self.recipe_name!r}: {exc}"
        self._set_phase(Phase.ERROR)
        self.session_changed.emit()
        self.error.emit(self.last_error)

    # -- batch --------------------------------------------------------------------------
    def suggest_batch_id(self) -> str:
        product = self.client.info.product.value if self.client else (self.recipe_name or "batch")
        return new_batch_id(product)

    def start_batch(self, batch_id: str | None, operator: str | None = None) -> None:
        client = self.client
        if client is None or self.phase != Phase.READY:
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
        actor = self.actor
        self.jobs.submit(
            lambda: client.start_batch(bid, operator or None, actor), self._batch_started, self._start_failed
        )

    def run_challenge(self) -> None:
        """Present the recipe's start-up challenge set; production starts only after it passed."""
        client = self.client
        if client is None or self.phase != Phase.READY:
            self.error.emit("the station is not ready to run the start-up challenge")
            return
        if not client.info.has_startup_challenge:
            self.error.emit(f"recipe {client.info.recipe_id} names no start-up challenge")
            return
        self.tally.reset("start-up challenge")
        if self.rejects is not None:
            self.rejects.clear()
        self.counters_changed.emit()
        self._set_phase(Phase.CHALLENGE)
        self.message.emit("Start-up challenge: presenting the challenge items…")
        actor = self.actor
        self.jobs.submit(lambda: client.run_startup_challenge(actor), self._challenge_done, self._challenge_failed)

    def _challenge_done(self, result: Any) -> None:
        if self._closed:
            return
        self._set_phase(Phase.READY)
        self.last_challenge = result
        self.challenge_finished.emit(result)

    def _challenge_failed(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._set_phase(Phase.READY)
        self.error.emit(f"The start-up challenge did not run: {exc}")

    @property
    def challenge_ok(self) -> bool:
        """A passing challenge of the open recipe and model is waiting for the next batch."""
        c = self.client
        if c is None:
            return False
        ch = c.status().challenge
        return ch is not None and ch.passed

    def _batch_started(self, bid: str) -> None:
        if self._closed:
            return
        self._set_phase(Phase.RUNNING)
        self.message.emit(f"Batch started {time.strftime('%H:%M', time.gmtime())} UTC")
        self.batch_started.emit(bid)

    def _start_failed(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._set_phase(Phase.READY)
        self.error.emit(f"The batch did not start: {exc}")

    def stop_batch(self, *, wait_finished: bool = False) -> None:
        """End the batch: the station finishes queued items, records are flushed and reconciled."""
        client = self.client
        if client is None or self.phase != Phase.RUNNING or self._stop_requested:
            return
        self._stop_requested = True
        self._set_phase(Phase.STOPPING)
        self.message.emit("Stopping: finishing queued items, flushing records…")

        def job() -> Reconciliation:
            if wait_finished:
                client.wait_finished(10.0)
            return client.stop_batch()

        self.jobs.submit(job, self._finished, self._stop_failed)

    def _finished(self, report: Reconciliation) -> None:
        if self._closed:
            return
        # Every decision event was queued before this result, so the live tally is complete now.
        hmi = {"inspected": self.tally.inspected, "accepted": self.tally.accepted, "rejected": self.tally.rejected}
        r = report.result
        same = hmi["inspected"] == r.items and hmi["accepted"] == r.accepted
        detail = f"HMI {hmi['inspected']} inspected / {hmi['accepted']} accepted"
        report = report.with_check(Check("HMI counters = station", same, detail), hmi=hmi)
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
        c = self.client
        if c is None or self.phase != Phase.RUNNING or self._stop_requested:
            return
        if c.status().source_finished:
            self.stop_batch(wait_finished=True)

    # -- qualification: the station steps aside --------------------------------------------
    @property
    def record_database(self) -> Path | None:
        """The station's record database (absolute), or None for a station that keeps no records."""
        records = self.options.station.records
        if records is None:
            return None
        path = Path(records.database)
        return path if path.is_absolute() else self.options.root / path

    def hold_for_qualification(self, then: Callable[[BaseException | None], None]) -> bool:
        """Close the station so that a qualification run can have its record database (one writer).

        Only when idle (no batch, no challenge, no load). The client closes in the pool; then
        ``then(None)`` runs in the GUI thread, or ``then(error)`` if closing failed. The station
        stays closed (phase QUALIFYING) until :meth:`release_qualification`.
        """
        if self.phase not in (Phase.READY, Phase.ERROR, Phase.NO_SESSION):
            self.error.emit(f"cannot run a qualification while {self.phase}")
            return False
        client, self.client = self.client, None
        self.bridge.detach()
        self._set_phase(Phase.QUALIFYING)
        self.message.emit("Qualification: the station is closed while the suite runs")
        self.session_changed.emit()

        def job() -> None:
            if client is not None:
                client.close()

        self.jobs.submit(job, lambda _r: then(None), then)
        return True

    def release_qualification(self) -> None:
        """The qualification run ended: open the station's recipe again (its model verified again)."""
        if self.phase != Phase.QUALIFYING or self._closed:
            return
        self._set_phase(Phase.NO_SESSION)
        if self.recipe_name is not None:
            self.open(self.recipe_name)

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

    def _on_batch_in_progress(self, progress: BatchInProgress) -> None:
        """Attached mid-batch: the counters so far, and the latest rejects for the strip."""
        self.batch_id = progress.batch_id
        self.tally.resume(progress.batch_id, progress.inspected, progress.accepted, progress.by_reason)
        self.batch_started.emit(progress.batch_id)  # views reset for this batch before the rejects come
        if self.rejects is not None:
            for d in progress.recent:
                if not d.accept and d.image is not None:
                    entry = self.rejects.offer(progress.batch_id, d)
                    if entry is not None:
                        self.reject_added.emit(entry)

    def _on_state(self, state: StationState) -> None:
        self.state = state
        self.session_changed.emit()

    def _on_alarm(self, alarm: Alarm) -> None:
        self.alarms.add(AlarmEntry(alarm=alarm))
        self.alarms_changed.emit()
        if alarm.code == STATION_LOST:
            self.last_error = alarm.message
            self._set_phase(Phase.ERROR)
            self.session_changed.emit()
            self.error.emit(alarm.message)

    def _on_alarm_acknowledged(self, ack: AlarmAcknowledged) -> None:
        if self.alarms.acknowledged(ack.alarm_id, ack.by, ack.at_utc):
            self.alarms_changed.emit()

    # -- alarms ---------------------------------------------------------------------------
    def acknowledge_alarms(self) -> bool:
        """Acknowledge every open alarm as the logged-in user, by alarm id (stored and audited)."""
        actor = self.actor
        if actor is None or not self.can(Action.ACK_ALARM):
            self.error.emit("Log in as a user who may acknowledge alarms (operator, engineer or QA).")
            return False
        who = self.operator
        entries = self.alarms.unacknowledged()
        client = self.client
        if not entries or client is None:
            return True
        ids = [e.alarm.alarm_id for e in entries]

        def done(acks: list[AlarmAck]) -> None:
            for ack in acks:
                self.alarms.acknowledged(ack.alarm_id, ack.by, ack.at_utc, row_id=ack.row_id)
            now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
            for alarm_id in ids:  # not in the records (never stored): acknowledged on this screen only
                self.alarms.acknowledged(alarm_id, who, now)
            self.alarms_changed.emit()

        def failed(exc: BaseException) -> None:
            self.error.emit(f"Acknowledging failed: {exc}")

        self.jobs.submit(lambda: client.acknowledge_alarms(ids, who, actor), done, failed)
        return True

    # -- rejects: heat maps and review ------------------------------------------------------
    def request_heatmap(self, entry: RejectEntry, *, urgent: bool = False) -> None:
        """Compute the model's heat map for a reject in the pool: one at a time, at most ~2/s, newest wins.

        ``urgent`` (a reject opened for review) skips the rate limit.
        """
        client = self.client
        if client is None or not client.info.has_heatmap or entry.heatmap is not None or self._closed:
            return
        wait = HEATMAP_MIN_INTERVAL_S - (time.monotonic() - self._heat_last)
        if self._heat_busy or (wait > 0 and not urgent):
            self._heat_next = entry
            if not self._heat_busy and not self._heat_timer.isActive():
                self._heat_timer.start(max(1, int(wait * 1000)))
            return
        self._heat_busy = True
        self._heat_last = time.monotonic()
        image, reasons = entry.image, entry.decision.unit_reasons

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

        self.jobs.submit(lambda: client.heatmap(image, reasons), done, failed)

    def _next_heatmap(self) -> None:
        nxt, self._heat_next = self._heat_next, None
        if nxt is not None and not self._closed:
            self.request_heatmap(nxt)

    def review(self, entry: RejectEntry, label: str, pocket_index: int | None = None) -> None:
        """Export a reviewed reject into the labelled review set (pool); ``label`` ``ok`` = false reject."""
        client = self.client
        if client is None:
            self.review_failed.emit(entry, "no station session")
            return
        actor = self.actor
        if actor is None or not self.can(Action.REVIEW_REJECT):
            self.review_failed.emit(entry, "log in as a user who may review rejects")
            return
        reviewer = self.operator
        req = ReviewRequest(
            batch_id=entry.batch_id, decision=entry.decision, label=label, reviewer=reviewer, pocket_index=pocket_index
        )

        def done(review: Any) -> None:
            entry.review = review
            self.reject_updated.emit(entry)

        self.jobs.submit(lambda: client.review(req, actor), done, lambda exc: self.review_failed.emit(entry, str(exc)))

    # -- lifecycle ------------------------------------------------------------------------
    def _set_phase(self, phase: str) -> None:
        if phase != self.phase:
            self.phase = phase
            self.phase_changed.emit(phase)

    def shutdown(self) -> None:
        """End a running batch, close the station client and the pool; blocks (only called at exit)."""
        if self._closed:
            return
        self._closed = True
        self._monitor.stop()
        self._heat_timer.stop()
        self.bridge.stop()
        self.jobs.shutdown()
        self.bridge.detach()
        with self._orphans_lock:
            clients = [c for c in self._orphans if c is not self.client]
            self._orphans.clear()
        client, self.client = self.client, None
        actor, self.actor = self.actor, None
        self._idle.stop()
        if client is not None:
            if actor is not None:
                try:
                    client.logout(actor)
                except Exception:
                    log.exception("logout at exit failed")
            if self.options.demo:
                # A demo's station and its simulated line end with the demo's window (batch reconciled).
                # A production station's batch goes on without the screen; reopening attaches to it.
                try:
                    client.shutdown()
                except Exception:
                    log.exception("ending the demo station failed")
            else:
                clients.append(client)
        for c in clients:
            try:
                c.close()  # in-process: ends a running batch (reconciled); a station process stays if busy
            except Exception:
                log.exception("closing the station failed")
