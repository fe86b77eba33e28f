"""Plain-Python values the pipeline emits: decisions, alarms and station events."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from inspector.camera.base import GroundTruth


def utc_now() -> str:
    """UTC time with offset, ISO 8601 (records and audit entries)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class StationState(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAULT = "fault"


ALLOWED_TRANSITIONS: dict[StationState, frozenset[StationState]] = {
    StationState.IDLE: frozenset({StationState.STARTING}),
    StationState.STARTING: frozenset({StationState.RUNNING, StationState.FAULT, StationState.IDLE}),
    StationState.RUNNING: frozenset({StationState.STOPPING, StationState.FAULT}),
    StationState.FAULT: frozenset({StationState.RUNNING, StationState.STOPPING}),
    StationState.STOPPING: frozenset({StationState.IDLE}),
}


class NotInspected(enum.StrEnum):
    """Why an item was not positively inspected (detail of reason ``not_inspected``)."""

    LATE = "late"
    MODEL_ERROR = "model_error"
    FRAME_GAP = "frame_gap"
    CORRUPT_FRAME = "corrupt_frame"
    QUEUE_OVERFLOW = "queue_overflow"
    CAMERA_FAULT = "camera_fault"
    STOPPED = "stopped"


@dataclass(frozen=True)
class StageTimes:
    """Monotonic seconds at each stage; ``None`` where the item never got there."""

    t_acquired: float | None = None
    t_queued: float | None = None
    t_dequeued: float | None = None
    t_inferred: float | None = None
    t_decided: float | None = None

    def ms(self) -> dict[str, float]:
        def d(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1e3, 4)

        out = {
            "queue_ms": d(self.t_queued, self.t_dequeued),
            "infer_ms": d(self.t_dequeued, self.t_inferred),
            "decide_ms": d(self.t_inferred, self.t_decided),
            "total_ms": d(self.t_acquired, self.t_decided),
        }
        return {k: v for k, v in out.items() if v is not None}

    @property
    def total_ms(self) -> float | None:
        if self.t_acquired is None or self.t_decided is None:
            return None
        return (self.t_decided - self.t_acquired) * 1e3


@dataclass(frozen=True)
class ItemDecision:
    """The station's decision for one item, as sent to the PLC, records and display."""

    item_id: int
    frame_id: int | None
    accept: bool
    reason: str  # "ok", a defect code, "undecided", "anomaly" or "not_inspected"
    times: StageTimes
    deadline_met: bool
    camera_serial: str
    label: str | None = None
    pocket_index: int | None = None
    confidence: float | None = None
    anomaly: float | None = None
    scores: dict[str, float] | None = None
    unit_reasons: tuple[str, ...] | None = None
    not_inspected: NotInspected | None = None
    detail: str = ""
    truth: GroundTruth | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Fail safe by construction: no accept without a positive, timely inspection.
        if self.accept and (self.reason != "ok" or not self.deadline_met or self.not_inspected is not None):
            raise ValueError(f"item {self.item_id}: an accept needs reason ok and a met deadline")


class AlarmSeverity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    FAULT = "fault"


@dataclass(frozen=True)
class Alarm:
    code: str
    message: str
    source: str
    severity: AlarmSeverity = AlarmSeverity.WARNING
    t_utc: str = field(default_factory=utc_now)
    t_mono: float = field(default_factory=time.monotonic)
    detail: dict[str, Any] = field(default_factory=dict)


class EventKind(enum.StrEnum):
    STATE = "state"
    DECISION = "decision"
    ALARM = "alarm"
    BATCH_END = "batch_end"


@dataclass(frozen=True)
class StationEvent:
    kind: EventKind
    state: StationState | None = None
    decision: ItemDecision | None = None
    alarm: Alarm | None = None
    summary: dict[str, Any] | None = None
