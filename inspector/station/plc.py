"""Station side of the PLC link: a decision sink, fault reporting, and the batch's PLC figures.

:class:`PlcSink` is added to a station by :func:`inspector.station.open_station` (never by
hand) and wires events both ways:

- every decision goes to the link thread (``on_decision`` never blocks inspection);
- the station state (idle / running / fault) goes to the PLC's state register;
- a lost link is ``station.report_fault("plc", ...)`` (alarm ``PLC_FAULT``), its recovery
  ``report_recovered`` (``PLC_RECOVERED``); the link's own alarms (refused values, security
  refusals, a full queue) become station alarms. The station raises each alarm once and the
  recorder stores it once: this sink writes no record;
- each item's acknowledgement becomes a :class:`PlcAcked` station event (the recorder stores
  it with the item);
- at batch end the sink waits (bounded) for the outstanding acknowledgements and adds its
  :class:`PlcFigures` to the batch result.

Positive release: the line accepts an item only when the station accepted it AND the PLC
acknowledged that accept on time. ``accepted_acked`` counts those; every other item,
including an accept that was never acknowledged, is rejected by the PLC.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from inspector.events import BatchResult, ItemDecision, PlcAcked, PlcFigures, StateChanged, StationEvent, StationState
from inspector.pipeline.decision import plc_code
from inspector.pipeline.station import Station, Subscription
from inspector.plc.base import AckResult, DecisionRequest, ItemAck, LinkEvent, LinkEventKind, PlcLink
from inspector.plc.layout import U32_MAX, StationStateCode
from inspector.taxonomy import PLC_CODE_OK, PLC_CODE_UNDECIDED, Product

log = logging.getLogger(__name__)

POSITIVE_RELEASE = (
    "positive release: the line accepts an item only when the station accepted it and the PLC took that accept on "
    "time (its echo says so, even one that came after the station's window); an accept the PLC did not take on time "
    "(late at the gate, missing, refused) is rejected by the PLC"
)

_STATE_CODES = {
    StationState.IDLE: StationStateCode.IDLE,
    StationState.STARTING: StationStateCode.IDLE,
    StationState.RUNNING: StationStateCode.RUNNING,
    StationState.STOPPING: StationStateCode.RUNNING,  # still delivering the decisions already queued
    StationState.FAULT: StationStateCode.FAULT,
}


@dataclass
class _Tally:
    """Per-batch PLC counts, kept under the sink's lock."""

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

    def __init__(self, link: PlcLink, station: Station, *, product: Product, drain_timeout_s: float = 5.0) -> None:
        self.link = link
        self.station = station
        self.product = product
        self.drain_timeout_s = drain_timeout_s
        self._lock = threading.Lock()
        self._tally = _Tally()
        self._wall_minus_mono = time.time() - time.monotonic()
        link.subscribe(self._on_link_event)
        self._subscription: Subscription = station.subscribe(self._on_station_event)
        link.set_station_state(_STATE_CODES[station.state])

    # -- DecisionSink ---------------------------------------------------------------------------
    def on_decision(self, decision: ItemDecision) -> None:
        code = self._reason_code(decision)
        t_exp = decision.times.t_acquired
        exposure_ms = int((t_exp + self._wall_minus_mono) * 1000) & U32_MAX if t_exp is not None else 0
        accept = decision.accept and code == PLC_CODE_OK
        with self._lock:
            self._tally.decisions += 1
            self._tally.station_accepts += int(accept)
        self.link.submit(DecisionRequest(decision.item_id, accept, code, exposure_ms, self.station.batch_id))

    def finish_batch(self, result: BatchResult) -> BatchResult:
        """Wait (bounded) for the acknowledgements still owed, then add this batch's figures."""
        self.link.set_station_state(StationStateCode.IDLE)
        if not self.link.drain(self.drain_timeout_s):
            log.warning("PLC: acknowledgements still outstanding after %.1f s", self.drain_timeout_s)
        return result.with_plc(self.figures())

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
        if isinstance(event, StateChanged):
            if event.state is StationState.STARTING:
                with self._lock:
                    self._tally = _Tally()
            self.link.set_station_state(_STATE_CODES[event.state])

    def _on_link_event(self, event: LinkEvent) -> None:
        if event.kind is LinkEventKind.ACK and event.ack is not None:
            self._on_ack(event.ack)
        elif event.kind is LinkEventKind.LOST:
            with self._lock:
                self._tally.link_losses += 1
                if event.detect_ms is not None:
                    self._tally.detect_ms.append(event.detect_ms)
            detail = {} if event.detect_ms is None else {"detect_ms": round(event.detect_ms, 1)}
            self.station.report_fault("plc", event.message, **detail)
        elif event.kind is LinkEventKind.RECOVERED:
            detail = {} if event.outage_ms is None else {"outage_ms": round(event.outage_ms, 1)}
            self.station.report_recovered("plc", event.message, **detail)
        elif event.kind is LinkEventKind.ALARM:
            self.station.raise_alarm(event.code, event.message, "plc")

    def _on_ack(self, ack: ItemAck) -> None:
        req = ack.request
        with self._lock:
            if req.batch_id == self.station.batch_id:
                t = self._tally
                t.results[ack.result.value] += 1
                if ack.accepted_by_line:
                    t.accepted_acked += 1
                if ack.round_trip_ms is not None:
                    t.rtt_ms.append(ack.round_trip_ms)
        if req.batch_id is not None:
            self.station.publish(
                PlcAcked(
                    batch_id=req.batch_id,
                    item_id=req.item_id,
                    result=ack.result.value,
                    record_text=ack.record_text(),
                    accepted_by_line=ack.accepted_by_line,
                    round_trip_ms=ack.round_trip_ms,
                )
            )

    # -- figures and lifecycle --------------------------------------------------------------------
    def figures(self) -> PlcFigures:
        """The current batch's PLC figures."""
        with self._lock:
            t = self._tally
            r = dict(t.results)
            rtt, detect = list(t.rtt_ms), list(t.detect_ms)
            decisions, accepts, acked_accepts, losses = t.decisions, t.station_accepts, t.accepted_acked, t.link_losses
        return PlcFigures(
            endpoint=self.link.endpoint,
            decisions=decisions,
            acked=r[AckResult.ACKED],
            late=r[AckResult.LATE],
            missing=r[AckResult.MISSING],
            refused=r[AckResult.REFUSED],
            accepted_acked=acked_accepts,
            station_accepts=accepts,
            rtt_ms_p50=_pct(rtt, 0.50),
            rtt_ms_p99=_pct(rtt, 0.99),
            rtt_ms_max=round(max(rtt), 3) if rtt else None,
            link_losses=losses,
            loss_detect_ms_max=round(max(detect), 1) if detect else None,
            release=POSITIVE_RELEASE,
        )

    @property
    def connected(self) -> bool:
        return self.link.connected

    def describe(self) -> str:
        return self.link.endpoint

    def close(self, timeout_s: float = 3.0) -> None:
        """Write state idle, stop the link thread and disconnect (after the last batch)."""
        self._subscription.cancel()
        self.link.set_station_state(StationStateCode.IDLE)
        self.link.close(timeout_s)
