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
from typing import Protocol

import numpy as np

from inspector.camera.base import CameraState
from inspector.config.monitor import InputLimits
from inspector.config.roi import Roi
from inspector.config.station import StationConfig
from inspector.events import Alarm, ItemDecision, StationEvent, StationState
from inspector.records import AlarmAck
from inspector.records.review import Review, ReviewRequest
from inspector.records.store import BATCH_ID_PATTERN
from inspector.station.reconcile import Reconciliation
from inspector.station.session import StationSession, open_station
from inspector.taxonomy import Product, Reason

Listener = Callable[[StationEvent], None]

__all__ = [
    "AlarmAck",
    "InProcessClient",
    "InputStatus",
    "LatestFrame",
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
    startup_alarms: tuple[Alarm, ...] = ()  # raised while the station opened (a crashed batch closed as aborted)
    looser_thresholds: str = ""  # thresholds looser than the model's validated ones (demo only), '' when none

    @property
    def pocket_count(self) -> int | None:
        return len(self.rois) if self.rois is not None else None


@dataclass(frozen=True)
class InputStatus:
    """The input drift monitor now: frames seen, rolling means once the window is full."""

    frames: int
    drifting: bool
    means: dict[str, float] | None


@dataclass(frozen=True)
class StationStatus:
    state: StationState
    camera_serial: str
    camera_state: CameraState
    plc_connected: bool | None  # None: no PLC link
    input: InputStatus | None  # None: the recipe monitors no input drift
    source_finished: bool  # a finite source delivered every item


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

    def start_batch(self, batch_id: str | None, operator: str | None) -> str: ...

    def wait_finished(self, timeout_s: float) -> bool: ...

    def stop_batch(self) -> Reconciliation: ...

    def acknowledge_alarms(self, alarm_ids: Sequence[str], who: str) -> list[AlarmAck]: ...

    def review(self, request: ReviewRequest) -> Review: ...

    def heatmap(self, image: np.ndarray, unit_reasons: Sequence[Reason] | None) -> np.ndarray | None: ...

    def close(self) -> None: ...


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
            startup_alarms=tuple(session.startup_alarms),
            looser_thresholds=station.looser_text(),
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
        )

    def subscribe(self, listener: Listener) -> Unsubscribe:
        return self.session.station.subscribe(listener)

    def latest(self) -> LatestFrame | None:
        latest = self.session.station.latest()
        if latest is None:
            return None
        frame, decision = latest
        return LatestFrame(item_id=frame.item_id, image=frame.image, decision=decision, token=frame)

    def start_batch(self, batch_id: str | None, operator: str | None) -> str:
        return self.session.start_batch(batch_id, operator)

    def wait_finished(self, timeout_s: float) -> bool:
        return self.session.station.wait_finished(timeout_s)

    def stop_batch(self) -> Reconciliation:
        self.session.end_batch()
        report = self.session.last_reconciliation
        assert report is not None  # end_batch always reconciles
        return report

    def acknowledge_alarms(self, alarm_ids: Sequence[str], who: str) -> list[AlarmAck]:
        return self.session.acknowledge_alarms(alarm_ids, who)

    def review(self, request: ReviewRequest) -> Review:
        return self.session.review(request)

    def heatmap(self, image: np.ndarray, unit_reasons: Sequence[Reason] | None) -> np.ndarray | None:
        return self.session.heatmap(image, unit_reasons)

    def close(self) -> None:
        self.session.close()


def open_in_process(config: StationConfig, root: Path | None = None) -> InProcessClient:
    """Open the station of ``config`` in this process and serve it as a client."""
    return InProcessClient(open_station(config, root=root))
