"""Station side of the PLC link: a decision sink, fault reporting, and the run summary's PLC figures.

``attach_plc(session, "modbus://127.0.0.1:5020")`` connects (or raises :class:`PlcError`),
adds a :class:`PlcSink` to ``session.extra_sinks`` and wires events both ways:

- every decision goes to the link thread (``on_decision`` never blocks inspection);
- the station state (idle / running / fault) goes to the PLC's state register;
- a lost link is ``station.report_fault("plc", ...)``, its recovery ``report_recovered``;
  PLC alarms (refused values, security refusals, a full queue) become station alarms and,
  with a record writer, stored alarms;
- each item's acknowledgement is stored with ``RecordWriter.update_plc_ack`` once the
  item's record has been submitted (the station emits DECISION after all sinks ran);
- at batch end the sink waits (bounded) for the outstanding acknowledgements and adds
  :func:`plc_summary` to the batch summary.

Positive release: the line accepts an item only when the station accepted it AND the PLC
acknowledged that accept on time. ``accepted_acked`` counts those; every other item,
including an accept that was never acknowledged, is rejected by the PLC.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from inspector.pipeline.decision import plc_code
from inspector.pipeline.station import Station
from inspector.pipeline.types import AlarmSeverity, EventKind, ItemDecision, StationEvent, StationState
from inspector.plc.base import AckResult, DecisionRequest, ItemAck, LinkEvent, LinkEventKind, PlcLink
from inspector.plc.config import ModbusConfig, OpcUaConfig, S7Config, load_plc_config
from inspector.plc.factory import create_link
from inspector.plc.layout import U32_MAX, StationStateCode
from inspector.records import RecordWriter
from inspector.runner import StationSession
from inspector.taxonomy import PLC_CODE_OK, PLC_CODE_UNDECIDED, Product

log = logging.getLogger(__name__)

POSITIVE_RELEASE = (
    "positive release: the line accepts an item only when the station accepted it and the PLC acknowledged that "
    "accept on time; an accept that was never acknowledged (late, missing, refused) is rejected by the PLC"
)

_STATE_CODES = {
    StationState.IDLE: StationStateCode.IDLE,
    StationState.STARTING: StationStateCode.IDLE,
    StationState.RUNNING: StationStateCode.RUNNING,
    StationState.STOPPING: StationStateCode.RUNNING,  # still delivering the decisions already queued
    StationState.FAULT: StationStateCode.FAULT,
}


@dataclass
class PlcFigures:
    """Per-batch PLC figures."""

    decisions: int = 0
    results: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in AckResult})
    station_accepts: int = 0
    accepted_acked: int = 0
    rtt_ms: list[float] = field(default_factory=list)
    link_losses: int = 0
    detect_ms: list[float] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


class PlcSink:
    """A DecisionSink that hands each decision to the PLC link thread and reports back to the station."""

    name = "plc"

    def __init__(
        self,
        link: PlcLink,
        station: Station,
        *,
        product: Product,
        writer: RecordWriter | None = None,
        drain_timeout_s: float = 5.0,
    ) -> None:
        self.link = link
        self.station = station
        self.product = product
        self.writer = writer
        self.drain_timeout_s = drain_timeout_s
        self._lock = threading.Lock()
        self.figures = PlcFigures()
        self._batch_id: str | None = None
        self._recorded: set[tuple[str, int]] = set()  # item records submitted, ack not yet known
        self._acks_waiting: dict[tuple[str, int], ItemAck] = {}  # ack known, record not yet submitted
        self._wall_minus_mono = time.time() - time.monotonic()
        link.subscribe(self._on_link_event)
        station.subscribe(self._on_station_event)
        link.set_station_state(_STATE_CODES[station.state])

    # -- DecisionSink ---------------------------------------------------------------------------
    def on_decision(self, decision: ItemDecision) -> None:
        code = self._reason_code(decision)
        t_exp = decision.times.t_acquired
        exposure_ms = int((t_exp + self._wall_minus_mono) * 1000) & U32_MAX if t_exp is not None else 0
        accept = decision.accept and code == PLC_CODE_OK
        with self._lock:
            self.figures.decisions += 1
            self.figures.station_accepts += int(accept)
        self.link.submit(DecisionRequest(decision.item_id, accept, code, exposure_ms, self.station.batch_id))

    def _reason_code(self, d: ItemDecision) -> int:
        try:
            code = plc_code(self.product, d.reason)
        except KeyError:
            code = PLC_CODE_UNDECIDED
        if not d.accept and code == PLC_CODE_OK:
            code = PLC_CODE_UNDECIDED  # a reject never carries the ok code
        return code

    # -- events ---------------------------------------------------------------------------------
    def _on_station_event(self, event: StationEvent) -> None:
        if event.kind is EventKind.STATE and event.state is not None:
            if event.state is StationState.STARTING:
                with self._lock:
                    self.figures = PlcFigures()
                    self._recorded.clear()
                    self._acks_waiting.clear()
            self.link.set_station_state(_STATE_CODES[event.state])
        elif event.kind is EventKind.DECISION and event.decision is not None:
            bid = self.station.batch_id
            if self.writer is None or bid is None:
                return
            key = (bid, event.decision.item_id)
            with self._lock:
                ack = self._acks_waiting.pop(key, None)
                if ack is None:
                    self._recorded.add(key)
            if ack is not None:
                self._store_ack(ack)
        elif event.kind is EventKind.BATCH_END:
            self.link.set_station_state(StationStateCode.IDLE)
            if not self.link.drain(self.drain_timeout_s):
                log.warning("PLC: acknowledgements still outstanding after %.1f s", self.drain_timeout_s)
            if event.summary is not None:
                # The station returns this same dict from stop(): the run summary carries the PLC figures.
                event.summary.update(plc_summary(self))

    def _on_link_event(self, event: LinkEvent) -> None:
        if event.kind is LinkEventKind.ACK and event.ack is not None:
            self._on_ack(event.ack)
        elif event.kind is LinkEventKind.LOST:
            with self._lock:
                self.figures.link_losses += 1
                if event.detect_ms is not None:
                    self.figures.detect_ms.append(event.detect_ms)
            self._store_alarm("PLC_LINK_LOST", event.message)
            self.station.report_fault("plc", event.message)
        elif event.kind is LinkEventKind.RECOVERED:
            self._store_alarm("PLC_LINK_RECOVERED", event.message)
            self.station.report_recovered("plc", event.message)
        elif event.kind is LinkEventKind.ALARM:
            self._store_alarm(event.code, event.message)
            self.station.raise_alarm(event.code, event.message, "plc", AlarmSeverity.WARNING)

    def _on_ack(self, ack: ItemAck) -> None:
        req = ack.request
        store = False
        with self._lock:
            if req.batch_id == self.station.batch_id:
                f = self.figures
                f.results[ack.result.value] += 1
                if ack.accepted_by_line:
                    f.accepted_acked += 1
                if ack.round_trip_ms is not None:
                    f.rtt_ms.append(ack.round_trip_ms)
            if self.writer is not None and req.batch_id is not None:
                key = (req.batch_id, req.item_id)
                if key in self._recorded:
                    self._recorded.discard(key)
                    store = True
                else:
                    self._acks_waiting[key] = ack
        if store:
            self._store_ack(ack)

    def _store_ack(self, ack: ItemAck) -> None:
        if self.writer is None or ack.request.batch_id is None:
            return
        try:
            self.writer.update_plc_ack(ack.request.batch_id, ack.request.item_id, ack.record_text())
        except Exception as exc:  # a closed or full writer must not stop the link
            log.error("PLC ack of item %d not stored: %s", ack.request.item_id, exc)

    def _store_alarm(self, code: str, message: str) -> None:
        if self.writer is None:
            return
        try:
            self.writer.submit_alarm("plc", code, message, batch_id=self.station.batch_id)
        except Exception as exc:
            log.error("PLC alarm %s not stored: %s", code, exc)

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.link.connected

    def describe(self) -> str:
        return self.link.endpoint

    def close(self, timeout_s: float = 3.0) -> None:
        """Write state idle, stop the link thread and disconnect (call after the last batch)."""
        self.link.set_station_state(StationStateCode.IDLE)
        self.link.close(timeout_s)


def plc_summary(sink: PlcSink) -> dict[str, Any]:
    """The current batch's PLC figures: ``plc_acked``, ``plc_late``, ``plc_missing``, ``accepted_acked`` ..."""
    with sink._lock:
        f = sink.figures
        r = dict(f.results)
        rtt = list(f.rtt_ms)
        detect = list(f.detect_ms)
        decisions, accepts, acked_accepts, losses = f.decisions, f.station_accepts, f.accepted_acked, f.link_losses
    return {
        "plc": sink.link.endpoint,
        "plc_decisions": decisions,
        "plc_acked": r[AckResult.ACKED],
        "plc_late": r[AckResult.LATE],
        "plc_missing": r[AckResult.MISSING],
        "plc_refused": r[AckResult.REFUSED],
        "plc_unresolved": decisions - sum(r.values()),
        "accepted_acked": acked_accepts,
        "accepted_not_acked": accepts - acked_accepts,
        "line_accepted": acked_accepts,
        "line_rejected": decisions - acked_accepts,
        "plc_release": POSITIVE_RELEASE,
        "plc_rtt_ms_p50": _pct(rtt, 0.50),
        "plc_rtt_ms_p99": _pct(rtt, 0.99),
        "plc_rtt_ms_max": round(max(rtt), 3) if rtt else None,
        "plc_link_losses": losses,
        "plc_loss_detect_ms_max": round(max(detect), 1) if detect else None,
    }


def attach_plc(
    session: StationSession,
    url_or_config: str | os.PathLike[str] | OpcUaConfig | S7Config | ModbusConfig,
    *,
    connect_timeout_s: float | None = None,
) -> PlcSink:
    """Connect the station to its line PLC; raises ConfigError / PlcError when it cannot.

    Call before ``session.start_batch()``; call ``sink.close()`` after the last batch
    (``StationSession.close`` does not know about the PLC link).
    """
    config = load_plc_config(url_or_config, root=session.root)
    link = create_link(config)
    link.start(connect_timeout_s)
    try:
        sink = PlcSink(link, session.station, product=session.recipe.recipe.product, writer=session.writer)
    except Exception:
        link.close()
        raise
    session.extra_sinks.append(sink)
    return sink
