"""Station side of the PLC link: a decision sink, fault reporting, and the batch's PLC figures.

:class:`PlcSink` is added to a station by :func:`inspector.station.open_station` (never by
hand) and wires events both ways:

- every decision goes to the link thread (``on_decision`` never blocks inspection): a reject
  at once, an accept only once its item record is durable (see below);
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

**Durable before release.** With records, an accept reaches the PLC only after the recorder
reports its item row committed (durable: the WAL fsynced), so no item can pass the gate without
a record even if the station dies the next instant. A reject goes at once: it is safe, the PLC
rejects an item without a decision anyway. An accept still held at its deadline (frame time +
the recipe's budget, the same deadline the decision had to meet), or whose record was refused,
goes to the PLC as a reject (reason ``not_inspected``), never as a late accept; its record's
PLC acknowledgement says ``sent=reject``. The figures give the hold (decision -> release) and
the release latency (frame -> release) per batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from inspector.events import BatchResult, ItemDecision, PlcAcked, PlcFigures, StateChanged, StationEvent, StationState
from inspector.pipeline.decision import plc_code
from inspector.pipeline.station import Station, Subscription
from inspector.plc.base import AckResult, DecisionRequest, ItemAck, LinkEvent, LinkEventKind, PlcLink
from inspector.plc.layout import U32_MAX, StationStateCode
from inspector.records import Recorder
from inspector.taxonomy import PLC_CODE_NOT_INSPECTED, PLC_CODE_OK, PLC_CODE_UNDECIDED, Product

log = logging.getLogger(__name__)

# Withheld accepts are rejected one by one; the alarm says so at most this often (with the count since).
WITHHELD_ALARM_INTERVAL_S = 60.0

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
    hold_ms: list[float] = field(default_factory=list)  # accepts: decision -> record durable -> sent
    release_ms: list[float] = field(default_factory=list)  # every decision: frame -> sent to the link
    withheld: int = 0  # accepts sent as rejects: record not durable by the deadline, or refused


@dataclass(frozen=True)
class _Held:
    """An accept waiting for its record to be durable."""

    request: DecisionRequest
    t_frame: float
    deadline: float


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
        records: Recorder | None = None,
        drain_timeout_s: float = 5.0,
    ) -> None:
        self.link = link
        self.station = station
        self.product = product
        self.records = records
        self.drain_timeout_s = drain_timeout_s
        self._lock = threading.Lock()
        self._held_cond = threading.Condition(self._lock)
        self._tally = _Tally()
        self._held: dict[tuple[str, int], _Held] = {}  # accepts waiting for a durable record
        self._withheld: dict[tuple[str, int], str] = {}  # accepts sent as rejects, and why
        self._closing = False
        self._withheld_since_alarm = 0
        self._next_withheld_alarm = 0.0
        self._wall_minus_mono = time.time() - time.monotonic()
        link.subscribe(self._on_link_event)
        self._subscription: Subscription = station.subscribe(self._on_station_event)
        link.set_station_state(_STATE_CODES[station.state])
        self._deadlines: threading.Thread | None = None
        if records is not None:
            records.add_durable_listener(self._on_durable)
            self._deadlines = threading.Thread(target=self._deadline_loop, name="plc-release-deadlines", daemon=True)
            self._deadlines.start()

    # -- DecisionSink ---------------------------------------------------------------------------
    def on_decision(self, decision: ItemDecision) -> None:
        code = self._reason_code(decision)
        t_exp = decision.times.t_acquired
        exposure_ms = int((t_exp + self._wall_minus_mono) * 1000) & U32_MAX if t_exp is not None else 0
        accept = decision.accept and code == PLC_CODE_OK
        batch_id = self.station.batch_id
        request = DecisionRequest(decision.item_id, accept, code, exposure_ms, batch_id)
        now = time.monotonic()
        t_frame = t_exp if t_exp is not None else now
        with self._lock:
            self._tally.decisions += 1
            self._tally.station_accepts += int(accept)
            if accept and self.records is not None and batch_id is not None:
                # Released by _on_durable once its record is committed, or sent as a reject at the deadline.
                self._held[(batch_id, decision.item_id)] = _Held(request, t_frame, t_frame + self.station.budget_s)
                self._held_cond.notify_all()
                return
            self._tally.release_ms.append((now - t_frame) * 1e3)
        self.link.submit(request)

    def finish_batch(self, result: BatchResult) -> BatchResult:
        """Wait (bounded) for held accepts and the acknowledgements still owed, then add this batch's figures."""
        with self._lock:
            deadline = max((h.deadline for h in self._held.values()), default=0.0)
            while self._held and time.monotonic() < deadline + 1.0:
                self._held_cond.wait(0.05)
        self.link.set_station_state(StationStateCode.IDLE)
        if not self.link.drain(self.drain_timeout_s):
            log.warning("PLC: acknowledgements still outstanding after %.1f s", self.drain_timeout_s)
        return result.with_plc(self.figures())

    # -- durable before release -------------------------------------------------------------------
    def _on_durable(self, durable: Sequence[tuple[str, int]], not_stored: Sequence[tuple[str, int]]) -> None:
        """The recorder's writer committed (or refused) these rows: release or withhold their accepts."""
        now = time.monotonic()
        release: list[_Held] = []
        late: list[_Held] = []
        refused: list[_Held] = []
        with self._lock:
            for key in durable:
                held = self._held.pop(key, None)
                if held is not None:
                    (release if now <= held.deadline else late).append(held)
            for key in not_stored:
                held = self._held.pop(key, None)
                if held is not None:
                    refused.append(held)
            for held in release:
                self._tally.hold_ms.append((now - held.request.t_submitted) * 1e3)
                self._tally.release_ms.append((now - held.t_frame) * 1e3)
            if release or late or refused:
                self._held_cond.notify_all()
        for held in release:
            self.link.submit(held.request)
        for held in late:
            self._withhold(held, "record not durable before the deadline")
        for held in refused:
            self._withhold(held, "record not stored")

    def _withhold(self, held: _Held, why: str) -> None:
        """Send a held accept as a reject: never a late accept, never an accept without a record."""
        request = replace(held.request, accept=False, reason_code=PLC_CODE_NOT_INSPECTED)
        log.warning("PLC: item %d sent as a reject: %s", request.item_id, why)
        now = time.monotonic()
        with self._lock:
            self._tally.withheld += 1
            if request.batch_id is not None:
                self._withheld[(request.batch_id, request.item_id)] = why
            self._withheld_since_alarm += 1
            count = 0
            if now >= self._next_withheld_alarm:
                count, self._withheld_since_alarm = self._withheld_since_alarm, 0
                self._next_withheld_alarm = now + WITHHELD_ALARM_INTERVAL_S
        self.link.submit(request)
        if count:
            self.station.raise_alarm(
                "ACCEPT_WITHHELD",
                f"item {request.item_id}: accept sent to the PLC as a reject ({why}); {count} accept(s) withheld"
                " since the last alarm",
                "records",
                withheld=count,
            )

    def _deadline_loop(self) -> None:
        """Held accepts past their deadline become rejects (a writer that stalls never holds the line)."""
        while True:
            with self._lock:
                if self._closing:
                    return
                now = time.monotonic()
                expired = [k for k, h in self._held.items() if h.deadline < now]
                due = [self._held.pop(k) for k in expired]
                if due:
                    self._held_cond.notify_all()
                else:
                    nxt = min((h.deadline for h in self._held.values()), default=now + 1.0)
                    self._held_cond.wait(max(0.0005, nxt - now + 0.0005))
                    continue
            for held in due:
                self._withhold(held, "record not durable before the deadline")

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
                    self._withheld_since_alarm, self._next_withheld_alarm = 0, 0.0
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
            with self._lock:
                withheld = self._withheld.pop((req.batch_id, req.item_id), None)
            text = ack.record_text() if withheld is None else f"{ack.record_text()} sent=reject: {withheld}"
            self.station.publish(
                PlcAcked(
                    batch_id=req.batch_id,
                    item_id=req.item_id,
                    result=ack.result.value,
                    record_text=text,
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
            hold, release, withheld = list(t.hold_ms), list(t.release_ms), t.withheld
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
            durable_before_release=self.records is not None,
            hold_ms_p50=_pct(hold, 0.50),
            hold_ms_p99=_pct(hold, 0.99),
            hold_ms_max=round(max(hold), 3) if hold else None,
            release_ms_p50=_pct(release, 0.50),
            release_ms_p99=_pct(release, 0.99),
            withheld_accepts=withheld,
        )

    @property
    def connected(self) -> bool:
        return self.link.connected

    def describe(self) -> str:
        return self.link.endpoint

    def close(self, timeout_s: float = 3.0) -> None:
        """Write state idle, stop the link thread and disconnect (after the last batch)."""
        self._subscription.cancel()
        with self._lock:
            self._closing = True
            self._held_cond.notify_all()
            left = list(self._held.values())
            self._held.clear()
        if self._deadlines is not None:
            self._deadlines.join(timeout_s)
        for held in left:  # only if the last batch never ended: the link resolves them as it closes
            self._withhold(held, "station closing")
        self.link.set_station_state(StationStateCode.IDLE)
        self.link.close(timeout_s)
