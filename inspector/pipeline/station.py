"""The inspection station: an explicit state machine running the fail-safe pipeline.

Threads (owned here, never by the UI):
- *acquisition* grabs frames with a timeout, checks them, and puts them in a bounded
  queue; a full queue, a corrupt frame, a frame the source refused (an unusable replayed
  file) or a frame-id gap become ``not_inspected`` rejects with an alarm; a camera fault
  moves the station to FAULT and paced reconnect attempts follow; an unexpected error is
  an alarm too, never the silent end of acquisition;
- *inference* takes frames, skips those already past their deadline, runs the model,
  decides, and checks the deadline again before anything may be accepted.

Deadline = frame time + the recipe's latency budget. ONNX Runtime cannot abort a running
inference, so the deadline is enforced around the call: a late result is never used. While
the PLC link is in fault no accept can reach the line, so an item the model judges ok is
recorded ``not_inspected`` (``plc_fault``) with the model's outputs; a defect keeps its reason.
Every decision goes to the sinks (PLC link, records, display tap) and to listeners.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from inspector.camera.base import Camera, CameraError, CameraEvent, CameraEventKind, CameraFault, CameraState, Frame
from inspector.config.recipe import Recipe, looser_thresholds
from inspector.events import (
    Alarm,
    AlarmRaised,
    AlarmSeverity,
    BatchContext,
    BatchEnded,
    BatchResult,
    BatchStarted,
    ItemDecided,
    ItemDecision,
    NotInspected,
    StageTimes,
    StateChanged,
    StationEvent,
    StationState,
    utc_now,
)
from inspector.inference.identity import check_units, unit_reasons
from inspector.inference.identity import warm_up as warm_up_identity
from inspector.inference.registration import Registered, register
from inspector.inference.session import InferenceEngine, ModelError
from inspector.inference.units import to_units
from inspector.pipeline.decision import decide
from inspector.pipeline.monitor import InputMonitor
from inspector.pipeline.summary import RunSummary
from inspector.pipeline.trending import RejectTrend
from inspector.realtime import prepare_for_latency, raise_thread_priority
from inspector.taxonomy import Reason, RejectReason

log = logging.getLogger(__name__)

Listener = Callable[[StationEvent], None]

ALLOWED_TRANSITIONS: dict[StationState, frozenset[StationState]] = {
    StationState.IDLE: frozenset({StationState.STARTING}),
    StationState.STARTING: frozenset({StationState.RUNNING, StationState.FAULT, StationState.IDLE}),
    StationState.RUNNING: frozenset({StationState.STOPPING, StationState.FAULT}),
    StationState.FAULT: frozenset({StationState.RUNNING, StationState.STOPPING}),
    StationState.STOPPING: frozenset({StationState.IDLE}),
}
GRAB_TIMEOUT_S = 0.2
RECOVER_INTERVAL_S = 0.5
# Late items are rejected one by one; the alarm says so at most this often (with the count since).
LATE_ALARM_INTERVAL_S = 60.0


class StationError(RuntimeError):
    """A station operation is not allowed now (wrong state, refused configuration)."""


class DecisionSink(Protocol):
    """Receives every decision in item order. ``on_decision`` must return quickly (hand off to a thread).

    ``finish_batch`` runs once the pipeline has stopped: the sink waits (bounded) for what it still
    owes and returns the batch result with its own figures added (or unchanged).
    """

    name: str

    def on_decision(self, decision: ItemDecision) -> None: ...

    def finish_batch(self, result: BatchResult) -> BatchResult: ...


class Subscription:
    """What :meth:`Station.subscribe` returns: ``cancel()`` (or leaving a ``with`` block) unsubscribes."""

    def __init__(self, station: Station, listener: Listener) -> None:
        self._station = station
        self._listener = listener

    def cancel(self) -> None:
        self._station._unsubscribe(self._listener)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Station:
    def __init__(
        self,
        recipe: Recipe,
        camera: Camera,
        engine: InferenceEngine,
        *,
        sinks: Sequence[DecisionSink] = (),
        keep_images: bool = True,
        recipe_sha256: str = "",
    ) -> None:
        rec = engine.package.record
        if rec.product is not recipe.product:
            raise StationError(f"model is for {rec.product.value}, recipe for {recipe.product.value}")
        if recipe.pocket_grid is not None and rec.pocket_grid is not None and recipe.pocket_grid != rec.pocket_grid:
            raise StationError("the recipe's pocket grid differs from the one the model was trained with")
        self.recipe = recipe
        self.recipe_sha256 = recipe_sha256
        self.camera = camera
        self.engine = engine
        self.sinks = list(sinks)
        self.keep_images = keep_images
        th = recipe.thresholds or rec.thresholds
        self.confidence_threshold = th.confidence
        self.anomaly_threshold = th.anomaly
        #: Thresholds looser than the ones the model package was validated with (recorded with every batch).
        self.looser_thresholds = looser_thresholds(
            th.confidence,
            th.anomaly,
            validated_confidence=rec.thresholds.confidence,
            validated_anomaly=rec.thresholds.anomaly,
        )
        self.accept_minor = frozenset(recipe.accept_minor)
        self.budget_s = recipe.latency_budget_ms / 1e3
        self._rois = recipe.pocket_grid.rois() if recipe.pocket_grid is not None else None
        self._registration = recipe.registration
        self._identity = recipe.identity  # the deterministic identity check beside the model (tablet, blister)
        if self._identity is not None:
            warm_up_identity()
        self._pose_refusals = 0  # in a row; POSE_GUARD at the recipe's alarm_after
        self._expected_shape = recipe.frame.shape

        self._state = StationState.IDLE
        self._state_lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._queue: queue.Queue[tuple[Frame, float]] = queue.Queue(maxsize=recipe.queue_depth)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_frame_id: int | None = None
        self._in_flight = 0
        self._flight_lock = threading.Lock()
        self._latest: tuple[Frame, ItemDecision | None] | None = None
        self._latest_lock = threading.Lock()
        self.summary = RunSummary(recipe.product, self.accept_minor)
        self.alarms: list[Alarm] = []
        self.batch: BatchContext | None = None
        self._acq_done = threading.Event()
        self._next_recover = 0.0
        self._late_since_alarm = 0
        self._next_late_alarm = 0.0
        self._fault_sources: set[str] = set()
        self.input_monitor = InputMonitor(recipe.input_monitor) if recipe.input_monitor is not None else None
        self.trend = RejectTrend(recipe.trending) if recipe.trending is not None else None
        self._cameras_followed = {id(camera)}
        camera.subscribe(self._on_camera_event)

    # -- state machine ------------------------------------------------------------------
    @property
    def state(self) -> StationState:
        return self._state

    def _transition(self, new: StationState) -> None:
        with self._state_lock:
            old = self._state
            if old is new:
                return
            if new not in ALLOWED_TRANSITIONS[old]:
                raise StationError(f"transition {old.value} -> {new.value} is not allowed")
            self._state = new
        log.info("station %s -> %s", old.value, new.value)
        self._emit(StateChanged(new, old))

    @property
    def batch_id(self) -> str | None:
        """The running (or last) batch; ``None`` before the first."""
        batch = self.batch
        return batch.batch_id if batch is not None else None

    def subscribe(self, listener: Listener) -> Subscription:
        """Call ``listener`` with every event, from whichever thread emits it; it must return quickly."""
        with self._state_lock:
            self._listeners = [*self._listeners, listener]  # copy on write: emitters iterate without a lock
        return Subscription(self, listener)

    def _unsubscribe(self, listener: Listener) -> None:
        with self._state_lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    def publish(self, event: StationEvent) -> None:
        """Emit an event on behalf of a part wired to this station (PLC acknowledgements, alarm acks)."""
        self._emit(event)

    def _emit(self, event: StationEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a listener must not stop inspection
                log.exception("station listener failed")

    def raise_alarm(
        self,
        code: str,
        message: str,
        source: str,
        severity: AlarmSeverity = AlarmSeverity.WARNING,
        *,
        batch_id: str | None = None,
        **detail: Any,
    ) -> Alarm:
        """Raise an alarm for the current batch (or ``batch_id``: one the alarm is about, e.g. an aborted one)."""
        alarm = Alarm(
            code=code,
            message=message,
            source=source,
            severity=severity,
            detail=detail,
            batch_id=batch_id or self.batch_id,
        )
        self.alarms.append(alarm)
        log.warning("alarm %s: %s", code, message)
        self._emit(AlarmRaised(alarm))
        return alarm

    # -- control ------------------------------------------------------------------------
    def batch_context(self, batch_id: str, operator: str | None = None) -> BatchContext:
        """What is fixed for every item of a batch started now: recipe, model, camera, operator."""
        rec = self.engine.package.record
        return BatchContext(
            batch_id=batch_id,
            product=self.recipe.product.value,
            recipe_id=self.recipe.recipe_id,
            recipe_version=self.recipe.version,
            recipe_sha256=self.recipe_sha256,
            model_id=rec.model_id,
            model_version=rec.version,
            model_sha256=self.engine.package.sha256,
            camera_serial=self.camera.serial,
            camera_settings=self.camera.describe(),
            operator=operator,
            started_utc=utc_now(),
            thresholds=self.thresholds(),
            thresholds_validated=not self.looser_thresholds,
        )

    def looser_text(self) -> str:
        """The thresholds looser than validated, with both values ('' when none is)."""
        validated = self.engine.package.record.thresholds
        parts = []
        if "confidence" in self.looser_thresholds:
            parts.append(f"confidence {self.confidence_threshold:g} < validated {validated.confidence:g}")
        if "anomaly" in self.looser_thresholds:
            parts.append(f"anomaly {self.anomaly_threshold:g} > validated {validated.anomaly:g}")
        return "; ".join(parts)

    def thresholds(self) -> dict[str, Any]:
        """The thresholds items are judged with, where they come from, and the validated ones."""
        validated = self.engine.package.record.thresholds
        return {
            "confidence": self.confidence_threshold,
            "anomaly": self.anomaly_threshold,
            "source": "recipe" if self.recipe.thresholds is not None else "model record",
            "validated": {"confidence": validated.confidence, "anomaly": validated.anomaly},
            "looser": list(self.looser_thresholds),
        }

    def start(self, batch: str | BatchContext) -> None:
        """Open and start the camera and the pipeline threads; the station is RUNNING after.

        Refused while a part the station depends on (the PLC link) reports a fault: a batch
        never starts into a state in which no decision could reach the line.
        """
        self.check_startable()
        context = batch if isinstance(batch, BatchContext) else self.batch_context(batch)
        self._transition(StationState.STARTING)
        # GIL switch interval 0.5 ms (not 5) and no collector pauses over what is already loaded.
        prepare_for_latency()
        self.batch = context
        self._emit(BatchStarted(context))
        if self.looser_thresholds:  # a demo station only (production refuses to open): said with every batch
            self.raise_alarm(
                "THRESHOLDS_NOT_VALIDATED",
                f"recipe thresholds looser than model {self.engine.package.record.model_id}"
                f" {self.engine.package.record.version} was validated with: {self.looser_text()}",
                "recipe",
                looser=list(self.looser_thresholds),
            )
        self.summary = RunSummary(self.recipe.product, self.accept_minor)
        if self.input_monitor is not None:  # each batch's records hold their own drift alarms
            self.input_monitor = InputMonitor(self.input_monitor.limits)
        if self.trend is not None:  # and their own reject rates
            self.trend = RejectTrend(self.trend.limits)
        self._late_since_alarm, self._next_late_alarm = 0, 0.0
        self._stop.clear()
        self._acq_done.clear()
        self._last_frame_id = None
        try:
            if self.camera.state is CameraState.CLOSED:
                self.camera.open()
            self.camera.start()
        except (CameraError, CameraFault) as exc:
            self.raise_alarm("CAMERA_START", f"camera did not start: {exc}", "camera", AlarmSeverity.FAULT)
            self._transition(StationState.IDLE)
            raise StationError(f"camera did not start: {exc}") from exc
        self._threads = [
            threading.Thread(target=self._inference_loop, name="station-inference", daemon=True),
            threading.Thread(target=self._acquisition_loop, name="station-acquisition", daemon=True),
        ]
        for t in self._threads:
            t.start()
        self._transition(StationState.RUNNING)

    def replace_camera(self, camera: Camera) -> Camera:
        """Feed the station from another camera (a start-up challenge); only while idle. Returns the old one."""
        with self._state_lock:
            if self._state is not StationState.IDLE:
                raise StationError(f"the camera can only be replaced while idle, not {self._state.value}")
            old, self.camera = self.camera, camera
        if id(camera) not in self._cameras_followed:
            self._cameras_followed.add(id(camera))
            camera.subscribe(self._on_camera_event)
        return old

    def check_startable(self) -> None:
        """Raise StationError when start() would be refused (wrong state, or an active fault)."""
        with self._state_lock:
            faults = sorted(self._fault_sources)
            state = self._state
        if state is not StationState.IDLE:
            raise StationError(f"cannot start in state {state.value}")
        if faults:
            raise StationError(f"cannot start: active fault in {', '.join(faults)}; clear it first")

    def stop(self, timeout_s: float = 10.0) -> BatchResult:
        """Stop acquisition, finish the items already queued, and return the batch's result.

        Each sink then adds what it owes (the PLC sink waits for the outstanding acknowledgements),
        and :class:`BatchEnded` carries the complete result.
        """
        with self._state_lock:
            if self._state not in (StationState.RUNNING, StationState.FAULT):
                raise StationError(f"stop() in state {self._state.value}")
            self._transition(StationState.STOPPING)
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        try:
            self.camera.stop()
        except Exception:
            log.exception("camera stop failed")
        result = self.summary.result(
            self.batch_id,
            camera_stats=self.camera.stats.as_dict(),
            input_monitor=self.input_monitor.as_dict() if self.input_monitor is not None else None,
            threads_not_stopped=tuple(alive),
            trending=self.trend.as_dict() if self.trend is not None else None,
        )
        self._transition(StationState.IDLE)
        for sink in self.sinks:
            try:
                result = sink.finish_batch(result)
            except Exception:  # a sink's figures are missing from the result, the batch still ends
                log.exception("sink %s could not finish the batch", sink.name)
        self._emit(BatchEnded(result))
        return result

    @property
    def acquisition_ended(self) -> bool:
        """Acquisition ended by itself (a finite source is done, or it failed), not by stop()."""
        return self._acq_done.is_set() and not self._stop.is_set()

    def wait_finished(self, timeout_s: float) -> bool:
        """For finite sources: wait until every item was delivered and decided."""
        if not self._acq_done.wait(timeout_s):
            return False
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self._flight_lock:
                if self._in_flight == 0 and self._queue.empty():
                    return True
            time.sleep(0.005)
        return False

    def ready_for_frame(self) -> bool:
        """True when nothing is queued or in inference (closed-loop benchmarks)."""
        with self._flight_lock:
            return self._in_flight == 0

    def latest(self) -> tuple[Frame, ItemDecision | None] | None:
        """Display tap: the newest frame and its decision, if any. The display may skip."""
        with self._latest_lock:
            return self._latest

    # -- faults from other parts (PLC link, records) --------------------------------------
    def report_fault(self, source: str, message: str, **detail: Any) -> None:
        """A part the station depends on failed (e.g. the PLC link): alarm and FAULT until it recovers."""
        with self._state_lock:
            new = source not in self._fault_sources
            self._fault_sources.add(source)
        if new:
            self.raise_alarm(f"{source.upper()}_FAULT", message, source, AlarmSeverity.FAULT, **detail)
        if self._state is StationState.RUNNING:
            self._transition(StationState.FAULT)

    def report_recovered(self, source: str, message: str, **detail: Any) -> None:
        with self._state_lock:
            if source not in self._fault_sources:
                return
            self._fault_sources.discard(source)
            clear = not self._fault_sources and self.camera.state is CameraState.ACQUIRING
        self.raise_alarm(f"{source.upper()}_RECOVERED", message, source, AlarmSeverity.INFO, **detail)
        if clear and self._state is StationState.FAULT:
            self._transition(StationState.RUNNING)

    # -- acquisition ----------------------------------------------------------------------
    def _on_camera_event(self, event: CameraEvent) -> None:
        if event.camera_serial != self.camera.serial:
            return  # a camera the station is not fed from now
        if event.kind is CameraEventKind.FAULT:
            self.raise_alarm("CAMERA_FAULT", event.message, "camera", AlarmSeverity.FAULT)
            if self._state is StationState.RUNNING:
                self._transition(StationState.FAULT)
        elif event.kind is CameraEventKind.RECOVERED:
            self.raise_alarm("CAMERA_RECOVERED", event.message, "camera", AlarmSeverity.INFO)
            if self._state is StationState.FAULT and not self._fault_sources:
                self._transition(StationState.RUNNING)

    def _acquisition_loop(self) -> None:
        raise_thread_priority()
        try:
            while not self._stop.is_set():
                if self.camera.state is CameraState.FAULT:
                    self._try_recover()
                    continue
                try:
                    frame = self.camera.grab(GRAB_TIMEOUT_S)
                except CameraFault:
                    self._next_recover = time.monotonic() + RECOVER_INTERVAL_S
                    continue
                except Exception as exc:  # CameraError, or a driver bug: never the silent end of acquisition
                    if self._stop.is_set():
                        break
                    text = str(exc) if isinstance(exc, CameraError) else f"{type(exc).__name__}: {exc}"
                    self.raise_alarm("CAMERA_ERROR", text, "camera", AlarmSeverity.FAULT)
                    time.sleep(GRAB_TIMEOUT_S)
                    continue
                if frame is None:
                    if self.camera.finished:
                        self._account_tail()
                        break
                    continue
                self._accept_frame(frame)
        except Exception as exc:  # a bug: alarm, and a finite source's items not delivered are not inspected
            log.exception("acquisition failed")
            self.raise_alarm(
                "CAMERA_ERROR", f"acquisition stopped: {type(exc).__name__}: {exc}", "pipeline", AlarmSeverity.FAULT
            )
            try:
                self._account_tail()
            except Exception:
                log.exception("items after the failure could not be accounted for")
        finally:
            self._acq_done.set()

    def _try_recover(self) -> None:
        now = time.monotonic()
        if now < self._next_recover:
            self._stop.wait(min(0.05, self._next_recover - now))
            return
        self._next_recover = now + RECOVER_INTERVAL_S
        self.camera.recover()

    def _account_tail(self) -> None:
        """A finite batch ended: items lost after the last delivered frame are not inspected."""
        total = self.camera.items
        last = self._last_frame_id or 0
        if total is not None and last < total:
            self._gap(last, total + 1)

    def _gap(self, last: int, next_id: int) -> None:
        missed = list(range(last + 1, next_id))
        if not missed:
            return
        self.raise_alarm(
            "FRAME_GAP",
            f"{len(missed)} item(s) without a frame ({missed[0]}..{missed[-1]})",
            "camera",
            missed=len(missed),
        )
        for item_id in missed:
            self._not_inspected(item_id, None, NotInspected.FRAME_GAP, "no frame for this item", StageTimes())

    def _accept_frame(self, frame: Frame) -> None:
        if self._last_frame_id is not None and frame.frame_id > self._last_frame_id + 1:
            self._gap(self._last_frame_id, frame.frame_id)
        elif self._last_frame_id is None and self.camera.item_ids_from_one and frame.frame_id > 1:
            self._gap(0, frame.frame_id)
        self._last_frame_id = max(frame.frame_id, self._last_frame_id or 0)
        t_acq = frame.t_acquired
        if frame.refused is not None:
            self.raise_alarm("IMAGE_REFUSED", f"item {frame.item_id}: {frame.refused}", "camera")
            self._not_inspected(
                frame.item_id, frame, NotInspected.IMAGE_REFUSED, frame.refused, StageTimes(t_acquired=t_acq)
            )
            return
        img = frame.image
        if img.dtype != np.uint8 or img.shape != self._expected_shape:
            self.raise_alarm(
                "CORRUPT_FRAME",
                f"item {frame.item_id}: frame {img.dtype}{list(img.shape)} is not uint8{list(self._expected_shape)}",
                "camera",
            )
            self._not_inspected(
                frame.item_id, frame, NotInspected.CORRUPT_FRAME, "wrong size or type", StageTimes(t_acquired=t_acq)
            )
            return
        with self._flight_lock:
            self._in_flight += 1
        try:
            self._queue.put_nowait((frame, time.monotonic()))
        except queue.Full:
            with self._flight_lock:
                self._in_flight -= 1
            self.raise_alarm("QUEUE_OVERFLOW", f"item {frame.item_id}: inspection queue full", "pipeline")
            self._not_inspected(
                frame.item_id, frame, NotInspected.QUEUE_OVERFLOW, "inspection queue full", StageTimes(t_acquired=t_acq)
            )
        with self._latest_lock:
            self._latest = (frame, None)

    # -- inference ------------------------------------------------------------------------
    def _units(self, image: np.ndarray) -> np.ndarray:
        return to_units(image, self._rois)

    def _inference_loop(self) -> None:
        raise_thread_priority()
        rec = self.engine.package.record
        while True:
            try:
                frame, t_queued = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._stop.is_set() and self._acq_done.is_set():
                    return
                continue
            try:
                self._inspect(frame, t_queued, rec.classes)
            finally:
                with self._flight_lock:
                    self._in_flight -= 1

    def _inspect(self, frame: Frame, t_queued: float, classes: list[str]) -> None:
        t_deq = time.monotonic()
        deadline = frame.t_acquired + self.budget_s
        times = StageTimes(t_acquired=frame.t_acquired, t_queued=t_queued, t_dequeued=t_deq)
        if t_deq >= deadline:
            self._late(frame, "deadline passed before inference", times)
            return
        pose: dict[str, float] | None = None
        t_reg: float | None = None
        if self._registration is not None:
            reg = register(self.recipe.product, frame.image, self._registration, self._rois)
            t_reg = time.monotonic()
            times = StageTimes(frame.t_acquired, t_queued, t_deq, t_registered=t_reg)
            if reg.units is None:
                self._pose_refused(frame, reg, times)
                return
            self._pose_refusals = 0
            units = reg.units
            pose = reg.pose.as_dict() if reg.pose is not None else None
        else:
            units = self._units(frame.image)
        identity_reasons: tuple[Reason | None, ...] | None = None
        identity_record: tuple[dict[str, Any], ...] | None = None
        t_id: float | None = None
        if self._identity is not None:
            checks = check_units(units, self._identity)
            identity_reasons = unit_reasons(self.recipe.product, checks)
            identity_record = tuple(c.as_record() for c in checks)
            t_id = time.monotonic()
            times = StageTimes(frame.t_acquired, t_queued, t_deq, t_registered=t_reg, t_identity=t_id)
        try:
            scores, anomaly = self.engine.run(units)
        except ModelError as exc:
            self.raise_alarm("MODEL_ERROR", f"item {frame.item_id}: {exc}", "model", AlarmSeverity.FAULT)
            self._not_inspected(frame.item_id, frame, NotInspected.MODEL_ERROR, str(exc), times, pose=pose)
            return
        t_inf = time.monotonic()
        verdict = decide(
            self.recipe.product,
            classes,
            scores,
            anomaly,
            confidence_threshold=self.confidence_threshold,
            anomaly_threshold=self.anomaly_threshold,
            accept_minor=self.accept_minor,
            identity=identity_reasons,
        )
        t_dec = time.monotonic()
        times = StageTimes(frame.t_acquired, t_queued, t_deq, t_inf, t_dec, t_reg, t_id)
        if t_dec > deadline:
            self._late(frame, f"decided {(t_dec - deadline) * 1e3:.1f} ms after the deadline", times, pose)
            return
        if verdict.accept and "plc" in self._fault_sources:
            self._not_inspected(
                frame.item_id,
                frame,
                NotInspected.PLC_FAULT,
                "judged ok while the PLC link was down: no accept can reach the line",
                times,
                outputs=dict(
                    label=verdict.label,
                    confidence=verdict.confidence,
                    anomaly=verdict.anomaly,
                    scores=dict(zip(classes, verdict.scores, strict=True)),
                    unit_reasons=verdict.unit_reasons,
                ),
                deadline_met=True,
                pose=pose,
            )
            self._watch_input(frame.image)
            return
        decision = ItemDecision(
            item_id=frame.item_id,
            frame_id=frame.frame_id,
            accept=verdict.accept,
            reason=verdict.reason,
            times=times,
            deadline_met=True,
            camera_serial=frame.camera_serial,
            label=verdict.label,
            pocket_index=verdict.pocket_index,
            confidence=verdict.confidence,
            anomaly=verdict.anomaly,
            scores=dict(zip(classes, verdict.scores, strict=True)),
            unit_reasons=verdict.unit_reasons,
            truth=frame.truth,
            image=frame.image if self.keep_images else None,
            pose=pose,
            identity=identity_record,
        )
        self._deliver(decision, frame)
        self._watch_input(frame.image)

    def _pose_refused(self, frame: Frame, reg: Registered, times: StageTimes) -> None:
        """Not located, or outside the validated pose range: rejected not_inspected (pose), never accepted.
        ``alarm_after`` of them in a row raise POSE_GUARD once (the feeder or the camera mount moved)."""
        pose = reg.pose.as_dict() if reg.pose is not None else None
        self._not_inspected(frame.item_id, frame, NotInspected.POSE, reg.refused or "pose", times, pose=pose)
        self._pose_refusals += 1
        spec = self._registration
        if spec is not None and self._pose_refusals == spec.alarm_after:
            self.raise_alarm(
                "POSE_GUARD",
                f"item {frame.item_id}: {self._pose_refusals} items in a row not located or outside the validated"
                f" pose range (last: {reg.refused}); check the feeder and the camera mount",
                "registration",
                AlarmSeverity.FAULT,
                refused=self._pose_refusals,
                last_pose=pose,
            )

    def _late(self, frame: Frame, detail: str, times: StageTimes, pose: dict[str, float] | None = None) -> None:
        """A late item is rejected (not_inspected); the first of a batch raises LATE_DECISIONS, then at most
        one alarm per LATE_ALARM_INTERVAL_S, counting the late items since the last one."""
        self._not_inspected(frame.item_id, frame, NotInspected.LATE, detail, times, pose=pose)
        self._late_since_alarm += 1
        now = time.monotonic()
        if now < self._next_late_alarm:
            return
        count, self._late_since_alarm = self._late_since_alarm, 0
        self._next_late_alarm = now + LATE_ALARM_INTERVAL_S
        budget = self.recipe.latency_budget_ms
        self.raise_alarm(
            "LATE_DECISIONS",
            f"item {frame.item_id}: {detail}; {count} item(s) over the {budget:g} ms budget since the last alarm,"
            " rejected as not inspected",
            "pipeline",
            late=count,
        )

    def _watch_input(self, image: np.ndarray) -> None:
        """Input drift, after the decision is out (it never delays one). Inspected frames only."""
        if self.input_monitor is None:
            return
        change = self.input_monitor.add(image)
        if change is None:
            return
        code, severity = (
            ("INPUT_DRIFT", AlarmSeverity.WARNING) if change.drifting else ("INPUT_DRIFT_CLEARED", AlarmSeverity.INFO)
        )
        means: dict[str, Any] = dict(change.means)
        self.raise_alarm(code, change.describe(self.input_monitor.limits), "input", severity, **means)

    def _watch_trend(self, reason: str) -> None:
        """Reject-rate trending, after the decision is out: an alarm when a class's rolling rate changes level."""
        if self.trend is None:
            return
        for change in self.trend.add(reason):
            code, severity = {
                "alert": ("REJECT_RATE_ALERT", AlarmSeverity.WARNING),
                "action": ("REJECT_RATE_ACTION", AlarmSeverity.FAULT),
                "normal": ("REJECT_RATE_NORMAL", AlarmSeverity.INFO),
            }[change.level]
            self.raise_alarm(code, change.describe(), "trending", severity, reason=change.reason,
                             rate=round(change.rate, 6), window=change.window, limit=change.limit)  # fmt: skip

    def _not_inspected(
        self,
        item_id: int,
        frame: Frame | None,
        cause: NotInspected,
        detail: str,
        times: StageTimes,
        outputs: dict[str, Any] | None = None,
        deadline_met: bool = False,
        pose: dict[str, float] | None = None,
    ) -> None:
        """Reject ``item_id`` as not inspected; ``outputs``: the model's, where it ran (label, scores ...)."""
        decision = ItemDecision(
            **(outputs or {}),
            item_id=item_id,
            frame_id=frame.frame_id if frame is not None else None,
            accept=False,
            reason=RejectReason.NOT_INSPECTED,
            times=times,
            deadline_met=deadline_met,
            camera_serial=frame.camera_serial if frame is not None else self.camera.serial,
            not_inspected=cause,
            detail=detail,
            truth=frame.truth if frame is not None else None,
            image=frame.image if frame is not None and self.keep_images else None,
            pose=pose,
        )
        self._deliver(decision, frame)

    def _deliver(self, decision: ItemDecision, frame: Frame | None) -> None:
        self.summary.add(decision)
        for sink in self.sinks:
            try:
                sink.on_decision(decision)
            except Exception as exc:
                self.raise_alarm("SINK_ERROR", f"{sink.name}: {exc}", sink.name, AlarmSeverity.FAULT)
        if frame is not None:
            with self._latest_lock:
                self._latest = (frame, decision)
        self._emit(ItemDecided(decision, self.batch_id))
        self._watch_trend(str(decision.reason))
