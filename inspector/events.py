"""What the station says: typed, frozen, serialisable events and the values they carry.

The pipeline emits these, the recorder stores them, the PLC sink reacts to them and the
HMI shows them; nothing reads a station's internals instead. Every event converts to a
plain JSON-ready dict (:func:`event_to_dict`) and back (:func:`event_from_dict`), so the
same events can cross a process boundary. Images travel in-process only: a decision's
image is dropped by the conversion.

This module sits at the bottom of the core (above the taxonomy only): the devices, the
records layer and the pipeline all import it, and it imports none of them.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, TypeAlias

import numpy as np

from inspector.taxonomy import OK, DefectCode, Reason, RejectReason, as_reason

NOT_RELEASED = "NOT RELEASED - DEMO"
RELEASED = "released"
QUALIFICATION_RUN = "qualification run"  # a challenge set presented to qualify the station: no product released
STARTUP_CHALLENGE = "start-up challenge"  # the challenge set a production batch starts with


def utc_now() -> str:
    """UTC time with offset, ISO 8601 (records and audit entries)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class StationState(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAULT = "fault"

    @property
    def in_batch(self) -> bool:
        """A batch is under way (starting, running, or running with a part in fault)."""
        return self in (StationState.STARTING, StationState.RUNNING, StationState.FAULT)


class NotInspected(enum.StrEnum):
    """Why an item was not positively inspected (detail of reason ``not_inspected``)."""

    LATE = "late"
    MODEL_ERROR = "model_error"
    FRAME_GAP = "frame_gap"
    CORRUPT_FRAME = "corrupt_frame"
    QUEUE_OVERFLOW = "queue_overflow"
    CAMERA_FAULT = "camera_fault"
    IMAGE_REFUSED = "image_refused"  # the source's image for the item is unusable (a replayed file)
    PLC_FAULT = "plc_fault"  # judged ok while the PLC link was down: no accept could reach the line
    POSE = "pose"  # not located, or its pose outside the range the model is validated for
    STOPPED = "stopped"


class AlarmSeverity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    FAULT = "fault"


@dataclass(frozen=True)
class GroundTruth:
    """What the renderer or a manifest says about the item. For scoring only:
    the inference path never sees it."""

    label: str
    pockets: tuple[str, ...] | None = None
    source: str = ""


@dataclass(frozen=True)
class StageTimes:
    """Monotonic seconds at each stage; ``None`` where the item never got there."""

    t_acquired: float | None = None
    t_queued: float | None = None
    t_dequeued: float | None = None
    t_inferred: float | None = None
    t_decided: float | None = None
    t_registered: float | None = None  # registration done (between dequeue and inference); None: no registration
    t_identity: float | None = None  # identity check done (after registration, before inference); None: no check

    def ms(self) -> dict[str, float]:
        def d(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1e3, 4)

        before_identity = self.t_registered if self.t_registered is not None else self.t_dequeued
        before_inference = self.t_identity if self.t_identity is not None else before_identity
        out = {
            "queue_ms": d(self.t_queued, self.t_dequeued),
            "register_ms": d(self.t_dequeued, self.t_registered),
            "identity_ms": d(before_identity, self.t_identity),
            "infer_ms": d(before_inference, self.t_inferred),
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
    reason: Reason
    times: StageTimes
    deadline_met: bool
    camera_serial: str
    label: str | None = None
    pocket_index: int | None = None
    confidence: float | None = None
    anomaly: float | None = None
    scores: dict[str, float] | None = None
    unit_reasons: tuple[Reason, ...] | None = None
    not_inspected: NotInspected | None = None
    detail: str = ""
    truth: GroundTruth | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    pose: dict[str, float] | None = None  # registration: dx, dy, angle_deg, score (None: not located)
    # The identity check per unit (measured tablet, the tolerances it broke); None: no check ran.
    identity: tuple[dict[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        # Typed by construction: a stray string is refused here, not found in the records later.
        if not isinstance(self.reason, DefectCode | RejectReason) and self.reason != OK:
            raise ValueError(f"item {self.item_id}: {self.reason!r} is not a decision reason")
        if self.reason == RejectReason.DEFECT:
            raise ValueError(f"item {self.item_id}: give the defect class, not the category 'defect'")
        # Fail safe by construction: no accept without a positive, timely inspection.
        if self.accept and (self.reason != OK or not self.deadline_met or self.not_inspected is not None):
            raise ValueError(f"item {self.item_id}: an accept needs reason ok and a met deadline")
        if self.not_inspected is not None and self.reason != RejectReason.NOT_INSPECTED:
            raise ValueError(f"item {self.item_id}: a not-inspected cause needs reason not_inspected")

    @property
    def category(self) -> RejectReason | None:
        """``None`` for an accept, ``DEFECT`` for a named defect class, else the station-level reason."""
        if self.reason == OK:
            return None
        return RejectReason.DEFECT if isinstance(self.reason, DefectCode) else RejectReason(self.reason)


@dataclass(frozen=True)
class Alarm:
    """One alarm as raised. ``alarm_id`` is unique for ever: acknowledgements name it, never the text."""

    code: str
    message: str
    source: str
    severity: AlarmSeverity = AlarmSeverity.WARNING
    t_utc: str = field(default_factory=utc_now)
    t_mono: float = field(default_factory=time.monotonic)
    detail: dict[str, Any] = field(default_factory=dict)
    batch_id: str | None = None  # the batch the station was running when it was raised
    alarm_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def needs_ack(self) -> bool:
        return self.severity is not AlarmSeverity.INFO


@dataclass(frozen=True)
class BatchContext:
    """What is fixed for every item of a batch (ALCOA+): recipe, model and camera, and who started it."""

    batch_id: str
    product: str
    recipe_id: str
    recipe_version: str
    recipe_sha256: str
    model_id: str
    model_version: str
    model_sha256: str
    camera_serial: str
    camera_settings: dict[str, Any]
    operator: str | None = None
    started_utc: str = field(default_factory=utc_now)
    release_status: str = NOT_RELEASED  # "released" only for an approved recipe and model in production
    plc: str | None = None  # the PLC the decisions go to; None: none (no item gets a PLC acknowledgement)
    thresholds: dict[str, Any] | None = None  # those the model is judged with, and the package's validated ones
    thresholds_validated: bool | None = None  # False: looser than validated (a demo station only; marked)


@dataclass(frozen=True)
class PlcFigures:
    """One batch's PLC handshake figures (positive release: see the station's PLC sink)."""

    endpoint: str
    decisions: int
    acked: int
    late: int
    missing: int
    refused: int
    accepted_acked: int
    station_accepts: int
    rtt_ms_p50: float | None
    rtt_ms_p99: float | None
    rtt_ms_max: float | None
    link_losses: int
    loss_detect_ms_max: float | None
    release: str
    durable_before_release: bool = False  # accepts were sent only once their record was durable
    hold_ms_p50: float | None = None  # accepts: decision -> record durable -> sent to the link
    hold_ms_p99: float | None = None
    hold_ms_max: float | None = None
    release_ms_p50: float | None = None  # every decision: frame -> sent to the link
    release_ms_p99: float | None = None
    withheld_accepts: int = 0  # accepts sent as rejects: record not durable by the deadline, or refused

    @property
    def unresolved(self) -> int:
        return self.decisions - (self.acked + self.late + self.missing + self.refused)

    def as_dict(self) -> dict[str, Any]:
        """The summary keys of the run report (``plc_acked``, ``accepted_acked``, ...)."""
        return {
            "plc": self.endpoint,
            "plc_decisions": self.decisions,
            "plc_acked": self.acked,
            "plc_late": self.late,
            "plc_missing": self.missing,
            "plc_refused": self.refused,
            "plc_unresolved": self.unresolved,
            "accepted_acked": self.accepted_acked,
            "accepted_not_acked": self.station_accepts - self.accepted_acked,
            "line_accepted": self.accepted_acked,
            "line_rejected": self.decisions - self.accepted_acked,
            "plc_release": self.release,
            "plc_rtt_ms_p50": self.rtt_ms_p50,
            "plc_rtt_ms_p99": self.rtt_ms_p99,
            "plc_rtt_ms_max": self.rtt_ms_max,
            "plc_link_losses": self.link_losses,
            "plc_loss_detect_ms_max": self.loss_detect_ms_max,
            "plc_durable_before_release": self.durable_before_release,
            "plc_hold_ms_p50": self.hold_ms_p50,
            "plc_hold_ms_p99": self.hold_ms_p99,
            "plc_hold_ms_max": self.hold_ms_max,
            "plc_release_ms_p50": self.release_ms_p50,
            "plc_release_ms_p99": self.release_ms_p99,
            "plc_withheld_accepts": self.withheld_accepts,
        }


@dataclass(frozen=True)
class BatchResult:
    """What :meth:`Station.stop` returns: the batch's counts, scores, latency and device figures.

    ``items == accepted + rejected`` is ``reconciled``. Scoring fields (``escapes`` ...) are
    ``None`` when no item carried ground truth. ``plc`` is filled in by the PLC sink.
    """

    batch_id: str | None
    items: int
    accepted: int
    rejected: int
    rejected_by_reason: dict[str, int]
    not_inspected: int
    not_inspected_by_cause: dict[str, int]
    scored: int
    escapes: int | None
    escapes_by_class: dict[str, int] | None
    critical_escapes: int | None
    false_rejects: int | None
    false_rejects_not_inspected: int | None
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    latency_ms_max: float | None
    inspected_in_time: int
    camera_stats: dict[str, int] = field(default_factory=dict)
    input_monitor: dict[str, Any] | None = None
    threads_not_stopped: tuple[str, ...] = ()
    plc: PlcFigures | None = None
    trending: dict[str, Any] | None = None  # reject rates per class against the recipe's limits

    @property
    def reconciled(self) -> bool:
        return self.items == self.accepted + self.rejected

    def with_plc(self, figures: PlcFigures) -> BatchResult:
        return replace(self, plc=figures)

    def as_dict(self) -> dict[str, Any]:
        """The flat JSON summary that ``inspector run`` prints and the batch record stores."""
        out: dict[str, Any] = {
            "items": self.items,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "not_inspected": self.not_inspected,
            "not_inspected_by_cause": dict(self.not_inspected_by_cause),
            "reconciled": self.reconciled,
            "scored": self.scored,
            "escapes": self.escapes,
            "escapes_by_class": None if self.escapes_by_class is None else dict(self.escapes_by_class),
            "critical_escapes": self.critical_escapes,
            "false_rejects": self.false_rejects,
            "false_rejects_not_inspected": self.false_rejects_not_inspected,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p99": self.latency_ms_p99,
            "latency_ms_max": self.latency_ms_max,
            "inspected_in_time": self.inspected_in_time,
            "batch_id": self.batch_id,
            "camera_stats": dict(self.camera_stats),
        }
        if self.input_monitor is not None:
            out["input_monitor"] = dict(self.input_monitor)
        if self.trending is not None:
            out["trending"] = dict(self.trending)
        if self.threads_not_stopped:
            out["threads_not_stopped"] = list(self.threads_not_stopped)
        if self.plc is not None:
            out.update(self.plc.as_dict())
        return out


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateChanged:
    state: StationState
    previous: StationState
    t_utc: str = field(default_factory=utc_now)


@dataclass(frozen=True)
class BatchStarted:
    batch: BatchContext


@dataclass(frozen=True)
class ItemDecided:
    decision: ItemDecision
    batch_id: str | None


@dataclass(frozen=True)
class AlarmRaised:
    alarm: Alarm


@dataclass(frozen=True)
class AlarmAcknowledged:
    alarm_id: str
    by: str
    at_utc: str


@dataclass(frozen=True)
class PlcAcked:
    """The line PLC's answer to one decision (``result``: acked, late, missing or refused)."""

    batch_id: str
    item_id: int
    result: str
    record_text: str  # what the item record's ``plc_ack`` column gets
    accepted_by_line: bool
    round_trip_ms: float | None = None
    at_utc: str = field(default_factory=utc_now)


@dataclass(frozen=True)
class BatchEnded:
    result: BatchResult


@dataclass(frozen=True)
class BatchInProgress:
    """Where the running batch stands, for a user interface that attaches while it runs.

    Counts since the batch started and the latest decisions (oldest first; rejects keep their
    image), so a reopened HMI shows the batch it left instead of starting its counters at zero.
    """

    batch_id: str
    inspected: int
    accepted: int
    by_reason: dict[str, int]
    recent: tuple[ItemDecision, ...] = ()


StationEvent: TypeAlias = (
    StateChanged
    | BatchStarted
    | ItemDecided
    | AlarmRaised
    | AlarmAcknowledged
    | PlcAcked
    | BatchEnded
    | BatchInProgress
)
EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        StateChanged,
        BatchStarted,
        ItemDecided,
        AlarmRaised,
        AlarmAcknowledged,
        PlcAcked,
        BatchEnded,
        BatchInProgress,
    )
}


# -- serialisation -----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def event_to_dict(event: StationEvent) -> dict[str, Any]:
    """A JSON-ready dict with the event's type under ``"type"``; decision images are dropped."""
    if isinstance(event, ItemDecided):
        event = replace(event, decision=replace(event.decision, image=None))
    if isinstance(event, BatchInProgress):
        event = replace(event, recent=tuple(replace(d, image=None) for d in event.recent))
    body = asdict(event)
    if isinstance(event, ItemDecided):
        body["decision"].pop("image", None)
    if isinstance(event, BatchInProgress):
        for d in body["recent"]:
            d.pop("image", None)
    return {"type": type(event).__name__, **_plain(body)}


def _tuple(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


def _decision(d: Mapping[str, Any]) -> ItemDecision:
    truth = d.get("truth")
    return ItemDecision(
        item_id=d["item_id"],
        frame_id=d["frame_id"],
        accept=d["accept"],
        reason=as_reason(d["reason"]),
        times=StageTimes(**d["times"]),
        deadline_met=d["deadline_met"],
        camera_serial=d["camera_serial"],
        label=d.get("label"),
        pocket_index=d.get("pocket_index"),
        confidence=d.get("confidence"),
        anomaly=d.get("anomaly"),
        scores=d.get("scores"),
        unit_reasons=None if d.get("unit_reasons") is None else tuple(as_reason(r) for r in d["unit_reasons"]),
        not_inspected=None if d.get("not_inspected") is None else NotInspected(d["not_inspected"]),
        detail=d.get("detail", ""),
        truth=None if truth is None else GroundTruth(truth["label"], _tuple(truth.get("pockets")), truth["source"]),
        pose=d.get("pose"),
        identity=None if d.get("identity") is None else tuple(d["identity"]),
    )


def _result(r: Mapping[str, Any]) -> BatchResult:
    kw = {f.name: r[f.name] for f in fields(BatchResult) if f.name in r}
    kw["threads_not_stopped"] = tuple(kw.get("threads_not_stopped", ()))
    if r.get("plc") is not None:
        kw["plc"] = PlcFigures(**r["plc"])
    return BatchResult(**kw)


def event_from_dict(data: Mapping[str, Any]) -> StationEvent:
    """The inverse of :func:`event_to_dict`; ``ValueError`` for an unknown type."""
    body = {k: v for k, v in data.items() if k != "type"}
    kind = data.get("type")
    if kind == "StateChanged":
        return StateChanged(StationState(body["state"]), StationState(body["previous"]), body["t_utc"])
    if kind == "BatchStarted":
        return BatchStarted(BatchContext(**body["batch"]))
    if kind == "ItemDecided":
        return ItemDecided(_decision(body["decision"]), body["batch_id"])
    if kind == "AlarmRaised":
        a = dict(body["alarm"])
        a["severity"] = AlarmSeverity(a["severity"])
        return AlarmRaised(Alarm(**a))
    if kind == "AlarmAcknowledged":
        return AlarmAcknowledged(**body)
    if kind == "PlcAcked":
        return PlcAcked(**body)
    if kind == "BatchEnded":
        return BatchEnded(_result(body["result"]))
    if kind == "BatchInProgress":
        recent = tuple(_decision(d) for d in body["recent"])
        return BatchInProgress(body["batch_id"], body["inspected"], body["accepted"], dict(body["by_reason"]), recent)
    raise ValueError(f"unknown station event type {kind!r}")
