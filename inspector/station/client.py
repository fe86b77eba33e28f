"""What a user interface may ask of a station: the :class:`StationClient` protocol.

The HMI depends on this protocol only, never on the station, its camera or its records.
:class:`InProcessClient` serves it from a :class:`StationSession` in the same process; an
implementation across a process boundary can serve the same calls and forward the same
events (they are serialisable, see :mod:`inspector.events`), without touching the widgets.

Calls that wait (start, stop, acknowledge, review, heat map) are meant for a worker thread;
:meth:`StationClient.status` and :meth:`StationClient.latest` are cheap and may be polled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inspector.camera.base import CameraState
from inspector.config.monitor import InputLimits
from inspector.config.registration import RegistrationSpec
from inspector.config.roi import Roi
from inspector.config.station import StationConfig
from inspector.events import Alarm, ItemDecision, StationEvent, StationState
from inspector.records import AlarmAck, RecordStore, audit, lifecycle, users
from inspector.records.audit import Actor, AuditEntry, AuditVerification
from inspector.records.review import Review, ReviewRequest
from inspector.records.signatures import signatures, status
from inspector.records.store import BATCH_ID_PATTERN
from inspector.reports import batch as batch_report
from inspector.station.reconcile import Reconciliation
from inspector.station.session import ChallengeResult, StationSession, open_station
from inspector.taxonomy import Product, Reason

Listener = Callable[[StationEvent], None]

#: The alarm a client raises to its listeners when its station's process is gone or hangs.
STATION_LOST = "STATION_LOST"

#: The demo operator account (demo databases only; README): user name and password.
DEMO_OPERATOR: tuple[str, str] = next((u, pw) for u, _name, role, pw in users.DEMO_ACCOUNTS if role == "operator")

__all__ = [
    "STATION_LOST",
    "Actor",
    "AlarmAck",
    "AuditEntry",
    "AuditVerification",
    "InProcessClient",
    "InputStatus",
    "LatestFrame",
    "ReleaseCandidate",
    "Review",
    "ReviewRequest",
    "StationClient",
    "StationInfo",
    "StationStatus",
    "open_in_process",
    "valid_batch_id",
]


def valid_batch_id(text: str) -> bool:
    """A batch/lot id the records accept (it names the folder of the batch's reject images)."""
    return bool(BATCH_ID_PATTERN.match(text))


class Unsubscribe(Protocol):
    def cancel(self) -> None: ...


@dataclass(frozen=True)
class StationInfo:
    """What does not change while a station is open: its recipe, model limits and line."""

    station_id: str
    mode: str
    recipe_id: str
    recipe_version: str
    recipe_sha256: str
    recipe_path: Path
    model_id: str
    model_version: str
    model_status: str
    model_sha256: str  # verified at load
    model_path: Path
    product: Product
    frame_shape: tuple[int, ...]
    rois: tuple[Roi, ...] | None  # blister pockets, in pocket order
    latency_budget_ms: float
    anomaly_threshold: float
    has_heatmap: bool
    line_period_s: float  # 0: not paced (a device, or as fast as frames come)
    expected_items: int | None  # a finite source's batch size
    input_limits: InputLimits | None
    plc_endpoint: str | None
    review_folder: Path | None
    has_startup_challenge: bool = False  # the recipe names a start-up challenge set
    startup_alarms: tuple[Alarm, ...] = ()  # raised while the station opened (a crashed batch closed as aborted)
    looser_thresholds: str = ""  # thresholds looser than the model's validated ones (demo only), '' when none
    registration: RegistrationSpec | None = None  # where the nominal item lies; None: units cut at fixed places

    @property
    def pocket_count(self) -> int | None:
        return len(self.rois) if self.rois is not None else None


@dataclass(frozen=True)
class SignatureView:
    """A signature as shown (21 CFR 11.50): who, when, meaning, and whether it still holds."""

    manifestation: str
    meaning: str
    status: str  # "valid" or "INVALID (...)"
    reason: str


@dataclass(frozen=True)
class ReleaseCandidate:
    """A model or recipe of the open station as the release screen shows it: what a signature binds."""

    object_type: str  # "model" | "recipe"
    object_id: str
    sha256: str
    state: str  # draft, reviewed, approved, retired, rejected, or "not registered"
    detail: dict[str, object]
    signatures: tuple[SignatureView, ...]


@dataclass(frozen=True)
class BatchReportView:
    """A batch report as written at batch end: where it is, what a signature binds, who signed."""

    batch_id: str
    pdf: Path
    content_sha256: str
    signatures: tuple[SignatureView, ...]


@dataclass(frozen=True)
class InputStatus:
    """The input drift monitor now: frames seen, rolling means once the window is full."""

    frames: int
    drifting: bool
    means: dict[str, float] | None


@dataclass(frozen=True)
class SiteLag:
    """How far the site database is behind this station's records (store-and-forward)."""

    rows_behind: int
    seconds_behind: float  # age of the oldest record the site does not have yet
    error: str | None  # why the last push failed (site unreachable, ...), None while it works
    halted: str | None  # the site halted forwarding (a broken chain): a person must look


@dataclass(frozen=True)
class StationStatus:
    state: StationState
    camera_serial: str
    camera_state: CameraState
    plc_connected: bool | None  # None: no PLC link
    input: InputStatus | None  # None: the recipe monitors no input drift
    source_finished: bool  # a finite source delivered every item
    challenge: ChallengeResult | None = None  # the start-up challenge the next production batch would use
    site: SiteLag | None = None  # None: the records are not forwarded to a site database


@dataclass(frozen=True)
class LatestFrame:
    """The display tap: the newest frame and, once decided, its decision (the display may skip)."""

    item_id: int
    image: np.ndarray
    decision: ItemDecision | None
    token: object  # identity of the frame: equal tokens, same frame


class StationClient(Protocol):
    @property
    def info(self) -> StationInfo: ...

    def status(self) -> StationStatus: ...

    def subscribe(self, listener: Listener) -> Unsubscribe: ...

    def latest(self) -> LatestFrame | None: ...

    def start_batch(self, batch_id: str | None, operator: str | None, actor: Actor | None = None) -> str: ...

    def wait_finished(self, timeout_s: float) -> bool: ...

    def run_startup_challenge(self, actor: Actor | None = None) -> ChallengeResult: ...

    def stop_batch(self) -> Reconciliation: ...

    def acknowledge_alarms(self, alarm_ids: Sequence[str], who: str, actor: Actor | None = None) -> list[AlarmAck]: ...

    def review(self, request: ReviewRequest, actor: Actor | None = None) -> Review: ...

    def login(self, username: str, password: str) -> Actor: ...

    def logout(self, actor: Actor, *, idle: bool = False) -> None: ...

    def idle_logout_s(self) -> int | None: ...

    def audit_entries(self, **filters: str) -> list[AuditEntry]: ...

    def verify_audit(self) -> AuditVerification: ...

    def releases(self) -> list[ReleaseCandidate]: ...

    def sign_release(
        self, object_type: str, meaning: str, username: str, password: str, reason: str
    ) -> ReleaseCandidate: ...

    def batch_report(self, batch_id: str) -> BatchReportView | None: ...

    def sign_batch_report(
        self, batch_id: str, meaning: str, username: str, password: str, reason: str
    ) -> BatchReportView: ...

    def heatmap(self, image: np.ndarray, unit_reasons: Sequence[Reason] | None) -> np.ndarray | None: ...

    def close(self) -> object:
        """Leave the station. In-process the station closes with it (a running batch ends and
        reconciles); a station in its own process goes on while a batch runs or another client is
        attached (:mod:`inspector.station.remote`)."""
        ...

    def shutdown(self) -> object:
        """End the station: a running batch ends and reconciles, the records close."""
        ...


class InProcessClient:
    """A :class:`StationClient` over a :class:`StationSession` in this process."""

    def __init__(self, session: StationSession) -> None:
        self.session = session
        rec = session.recipe.recipe
        station = session.station
        grid = rec.pocket_grid
        self._info = StationInfo(
            station_id=session.config.station_id,
            mode=session.config.mode,
            recipe_id=rec.recipe_id,
            recipe_version=rec.version,
            recipe_sha256=session.recipe.sha256,
            recipe_path=session.recipe.path,
            model_id=session.package.record.model_id,
            model_version=session.package.record.version,
            model_status=str(session.package.record.status),
            model_sha256=session.package.sha256,
            model_path=session.package.path,
            product=rec.product,
            frame_shape=rec.frame.shape,
            rois=tuple(grid.rois()) if grid is not None else None,
            latency_budget_ms=rec.latency_budget_ms,
            anomaly_threshold=station.anomaly_threshold,
            has_heatmap=session.engine.has_heatmap,
            line_period_s=session.camera.period_s,
            expected_items=session.camera.items,
            input_limits=rec.input_monitor,
            plc_endpoint=session.plc.describe() if session.plc is not None else None,
            review_folder=session.reviews.folder if session.reviews is not None else None,
            has_startup_challenge=rec.startup_challenge is not None,
            startup_alarms=tuple(session.startup_alarms),
            looser_thresholds=station.looser_text(),
            registration=rec.registration,
        )

    @property
    def info(self) -> StationInfo:
        return self._info

    def status(self) -> StationStatus:
        s = self.session
        monitor = s.station.input_monitor
        return StationStatus(
            state=s.station.state,
            camera_serial=s.camera.serial,
            camera_state=s.camera.state,
            plc_connected=s.plc.connected if s.plc is not None else None,
            input=None
            if monitor is None
            else InputStatus(frames=monitor.frames, drifting=monitor.drifting, means=monitor.last_means),
            source_finished=s.camera.finished,
            challenge=s.last_challenge,
            site=_site_lag(s.site_status()) if s.forwarder is not None else None,
        )

    def subscribe(self, listener: Listener) -> Unsubscribe:
        return self.session.station.subscribe(listener)

    def latest(self) -> LatestFrame | None:
        latest = self.session.station.latest()
        if latest is None:
            return None
        frame, decision = latest
        return LatestFrame(item_id=frame.item_id, image=frame.image, decision=decision, token=frame)

    def start_batch(self, batch_id: str | None, operator: str | None, actor: Actor | None = None) -> str:
        return self.session.start_batch(batch_id, operator, actor=actor)

    def wait_finished(self, timeout_s: float) -> bool:
        return self.session.station.wait_finished(timeout_s)

    def run_startup_challenge(self, actor: Actor | None = None) -> ChallengeResult:
        return self.session.run_startup_challenge(actor=actor)

    def stop_batch(self) -> Reconciliation:
        self.session.end_batch()
        report = self.session.last_reconciliation
        assert report is not None  # end_batch always reconciles
        return report

    def acknowledge_alarms(self, alarm_ids: Sequence[str], who: str, actor: Actor | None = None) -> list[AlarmAck]:
        return self.session.acknowledge_alarms(alarm_ids, who, actor=actor)

    def review(self, request: ReviewRequest, actor: Actor | None = None) -> Review:
        return self.session.review(request, actor=actor)

    # -- users, audit trail, releases ----------------------------------------------------------------
    def _store(self) -> RecordStore:
        recorder = self.session.recorder
        if recorder is None:
            raise ValueError("this station keeps no records")
        return RecordStore(recorder.database)

    def login(self, username: str, password: str) -> Actor:
        return self.session.login(username, password)

    def logout(self, actor: Actor, *, idle: bool = False) -> None:
        self.session.logout(actor, idle=idle)

    def idle_logout_s(self) -> int | None:
        if self.session.recorder is None:
            return None
        with self._store() as store:
            return users.setting(store, "idle_logout_s")

    def audit_entries(self, **filters: str) -> list[AuditEntry]:
        with self._store() as store:
            return audit.entries(store, **filters)

    def verify_audit(self) -> AuditVerification:
        with self._store() as store:
            return audit.verify(store)

    def _candidates(self) -> list[tuple[str, str, str, dict[str, object]]]:
        s = self.session
        rec, pkg = s.recipe.recipe, s.package
        model_detail: dict[str, object] = {
            "path": str(pkg.path),
            "onnx_sha256": pkg.sha256,
            "record_sha256": pkg.record_sha256,
            "thresholds": pkg.record.thresholds.model_dump(mode="json"),
            "metrics": {k: v for k, v in pkg.record.metrics.items() if not isinstance(v, dict | list)},
            "intended_use": pkg.record.intended_use,
        }
        recipe_detail: dict[str, object] = {
            "path": str(s.recipe.path),
            "model": f"{pkg.object_id} (onnx sha256 {rec.model.sha256[:12]})",
            "latency_budget_ms": rec.latency_budget_ms,
            "thresholds": rec.thresholds.model_dump(mode="json") if rec.thresholds else "the model's",
        }
        return [
            ("model", pkg.object_id, pkg.digest, model_detail),
            ("recipe", f"{rec.recipe_id}@{rec.version}", s.recipe.sha256, recipe_detail),
        ]

    def releases(self) -> list[ReleaseCandidate]:
        out = []
        with self._store() as store:
            for kind, object_id, sha, detail in self._candidates():
                now = lifecycle.current(store, kind, object_id, sha)
                views = tuple(
                    SignatureView(sig.manifestation(), sig.meaning.value, status(sig, sha), sig.reason)
                    for sig in signatures(store, kind, object_id)
                )
                state = now.state.value if now is not None else "not registered"
                out.append(ReleaseCandidate(kind, object_id, sha, state, detail, views))
        return out

    def sign_release(
        self, object_type: str, meaning: str, username: str, password: str, reason: str
    ) -> ReleaseCandidate:
        """Sign a lifecycle step (authored, reviewed, approved, rejected) of the open model or recipe."""
        target = next(c for c in self._candidates() if c[0] == object_type)
        with self._store() as store:
            lifecycle.signed_step(
                store, meaning, username=username, password=password, object_type=object_type,
                object_id=target[1], sha256=target[2], reason=reason,
            )  # fmt: skip
        return next(r for r in self.releases() if r.object_type == object_type)

    def batch_report(self, batch_id: str) -> BatchReportView | None:
        """The report written when the batch ended (made again from the records if it is missing)."""
        if self.session.recorder is None:
            return None
        folder = self.session.batch_report_folder(batch_id)
        with self._store() as store:
            _, pdf, report = batch_report.write(store, batch_id, folder)
            views = batch_report.signature_views(store, batch_id, report["content_sha256"])
        sigs = tuple(SignatureView(v["manifestation"], v["meaning"], v["status"], v["reason"]) for v in views)
        return BatchReportView(batch_id, pdf, report["content_sha256"], sigs)

    def sign_batch_report(
        self, batch_id: str, meaning: str, username: str, password: str, reason: str
    ) -> BatchReportView:
        """Sign the batch report (the operator authored, QA reviewed) and write it again with the signature."""
        with self._store() as store:
            batch_report.sign(store, username=username, password=password, batch_id=batch_id, meaning=meaning,
                              reason=reason)  # fmt: skip
        view = self.batch_report(batch_id)
        assert view is not None
        return view

    def heatmap(self, image: np.ndarray, unit_reasons: Sequence[Reason] | None) -> np.ndarray | None:
        return self.session.heatmap(image, unit_reasons)

    def close(self) -> None:
        self.session.close()

    def shutdown(self) -> None:
        self.session.close()


def open_in_process(config: StationConfig, root: Path | None = None) -> InProcessClient:
    """Open the station of ``config`` in this process and serve it as a client."""
    return InProcessClient(open_station(config, root=root))


def _site_lag(status: dict[str, Any] | None) -> SiteLag:
    if status is None:
        return SiteLag(0, 0.0, None, None)  # the forwarder has not reported yet
    return SiteLag(
        int(status["rows_behind"]), float(status["seconds_behind"]), status.get("error"), status.get("halted")
    )
