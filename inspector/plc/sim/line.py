"""The line model: a conveyor and a reject gate run by the PLC's logic, protocol-free.

:class:`LineCore` is what the protocol servers (:mod:`.servers`) put behind the station and
PLC blocks of docs/plc.md. Like a line PLC it:

- echoes every decision at once (sequence, item id, ack status) when the sequence word
  changes, whatever the new value;
- applies POSITIVE RELEASE at the gate: an item passes only if a valid, timely accept
  arrived for it before it reached the gate; everything else is rejected and counted as a
  reject decision, ``late``, ``missing`` or ``refused``;
- runs its own heartbeat (every ``heartbeat_ms``) and a watchdog on the station's
  heartbeat; while the station heartbeat is stale, or the station state is not running,
  an accept is refused.

Item identity: the station numbers items 1, 2, 3 ... from the start of its batch, one per
period at its line rate, and sends each item's exposure time (wall-clock ms). The conveyor
aligns on the first decision that carries one: item k passed the camera at its exposure
time E_k, so item i passes the camera at E_k + (i - k) * period and reaches the gate
``gate_delay`` later. A decision whose exposure time is more than half a period off that
schedule is refused (tracking mismatch: it would accept the wrong item). The gate counts
items from the first one that reaches it after the simulator started. When the station
state goes to idle the batch is over: the conveyor carries nothing beyond the last item
decided, and the next batch re-aligns.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.plc.layout import (
    U16_MAX,
    U32_MAX,
    AckStatus,
    DecisionCode,
    PlcWords,
    StationStateCode,
    StationWords,
)

log = logging.getLogger(__name__)

PROTOCOLS = ("opcua", "s7", "modbus")
TICK_S = 0.002
# Test hooks, each at one item (``KIND@ITEM``, or ``KIND@ITEM:MS`` where it takes a time):
# a malformed echo for that item ...
ECHO_INJECTIONS = ("bad_status", "wrong_item", "bad_sequence", "bad_type", "call_refused")
# ... or a fault that starts with its decision, the echo itself being valid: the PLC heartbeat
# stops for MS ms (the server still answers); the echo is published MS ms after the decision
# (taken at once, on time for the gate); the next read of the PLC block gets an exception reply.
FAULT_INJECTIONS = ("freeze_heartbeat", "late_echo", "exception_reply")
INJECTIONS = ECHO_INJECTIONS + FAULT_INJECTIONS
# Injections of one server only (call_refused: SubmitDecision answers BadUserAccessDenied).
OPCUA_INJECTIONS = ("bad_type", "call_refused")
MODBUS_INJECTIONS = ("exception_reply",)


def injection_kind(injection: str) -> tuple[str, float]:
    """``late_echo:55`` -> ``("late_echo", 55.0)``; a kind without a time gives 0."""
    kind, _, ms = injection.partition(":")
    return kind, float(ms) if ms else 0.0


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # a timely, valid reject decision
    LATE = "late"  # the decision came after the item reached the gate
    MISSING = "missing"  # no decision at all
    REFUSED = "refused"  # the decision was refused (invalid, tracking mismatch, station not running)


@dataclass
class LineSimSettings:
    protocol: str
    port: int = 0
    host: str = "127.0.0.1"
    line_rate_per_min: float = 600.0
    gate_delay_ms: float = 500.0
    items: int | None = None
    duration_s: float | None = None
    heartbeat_ms: float = 10.0
    watchdog_ms: float = 100.0
    # OPC UA security: "none" (demo) or "basic256sha256" with certificate, key and a client trust folder.
    security: str = "none"
    certificate: Path | None = None
    private_key: Path | None = None
    trust_dir: Path | None = None
    # Test hook: item id -> a malformed echo to send for it (see INJECTIONS).
    inject: dict[int, str] = field(default_factory=dict)
    # Layout (must match the station's config; defaults = plc_configs/*_sim.yaml).
    s7_db: int = 1
    s7_station_offset: int = 0
    s7_plc_offset: int = 32
    modbus_station_base: int = 0
    modbus_plc_base: int = 16
    opcua_namespace: str = "urn:inspector:line"


@dataclass
class _Pending:
    accept: bool
    t_arrival: float


class LineCore:
    """The PLC's logic, protocol-free and thread-safe: handshake, tracking, gate, heartbeats."""

    def __init__(self, s: LineSimSettings) -> None:
        if s.line_rate_per_min <= 0 or s.gate_delay_ms < 0:
            raise ValueError("line rate must be positive and the gate delay not negative")
        self.s = s
        self.period_s = 60.0 / s.line_rate_per_min
        self.gate_s = s.gate_delay_ms / 1e3
        self.watchdog_s = s.watchdog_ms / 1e3
        self._lock = threading.RLock()
        self.t_start = time.time()
        self.t_mono_start = time.monotonic()
        # conveyor
        self._align: tuple[int, float] | None = None  # (item k, camera time of k, wall s)
        self._next_gate: int | None = None  # next item to reach the gate
        self._last_item: int | None = None  # batch over: nothing beyond this item is on the line
        self._batch_over = False
        self._pending: dict[int, _Pending] = {}
        self._refused_items: set[int] = set()
        self._max_decided = 0
        self.outcomes: dict[int, str] = {}
        self.counts: dict[str, int] = {o.value: 0 for o in Outcome}
        self.margins_ms: list[float] = []
        # handshake
        self._seq = 0
        self._ack = PlcWords(0, 0, 0, 0)
        self.decisions = 0
        self.sequence_gaps = 0
        self.tracking_mismatch = 0
        self.duplicates = 0
        self.foreign_writes = 0
        self.method_calls = 0  # OPC UA SubmitDecision calls (handshake: method)
        self.injected = 0
        self.ack_status_counts: dict[str, int] = {a.name.lower(): 0 for a in AckStatus if a is not AckStatus.NONE}
        # fault injections that start with a decision (FAULT_INJECTIONS)
        self._delayed: tuple[PlcWords, float] | None = None  # an echo published later (late_echo)
        self.echoes_released = 0  # late echoes published by tick() (a server that pushes the block watches it)
        self._frozen_until = 0.0  # the PLC heartbeat stands still until then (freeze_heartbeat)
        self._t_frozen = 0.0
        self.decisions_while_frozen_ms: list[float] = []  # when decisions arrived, ms into a freeze
        self._read_exceptions = 0  # reads of the PLC block to answer with an exception (exception_reply)
        self.late_echoes = 0
        self.exception_replies = 0
        # heartbeats
        self.plc_heartbeat = 0
        self._next_hb = time.monotonic()
        self._station_hb: int | None = None
        self._t_station_hb = 0.0
        self.station_state = StationStateCode.UNKNOWN
        self.station_ok = False
        self.watchdog_trips = 0
        self.batches = 0
        self.stop_reason = ""

    # -- station writes -------------------------------------------------------------------------
    def on_station_block(self, w: StationWords) -> tuple[PlcWords, str | None] | None:
        """Called after every write by the station. Returns (new PLC block, injection) when the sequence changed."""
        with self._lock:
            now_m = time.monotonic()
            self._note_status(w.heartbeat, w.state, now_m)
            if w.sequence == self._seq:
                return None
            if self._seq and w.sequence != (self._seq % U32_MAX) + 1:
                self.sequence_gaps += 1
            self._seq = w.sequence
            self.decisions += 1
            if now_m < self._frozen_until:
                self.decisions_while_frozen_ms.append(round((now_m - self._t_frozen) * 1e3, 1))
            status = self._decide(w, time.time())
            self.ack_status_counts[status.name.lower()] += 1
            injection = self.s.inject.get(w.item_id)
            if injection == "call_refused":
                injection = None  # a refused call never reaches here (see SubmitDecision); a Write does
            ack = PlcWords(w.sequence, w.item_id, int(status), self.plc_heartbeat)
            if injection is not None and injection_kind(injection)[0] in FAULT_INJECTIONS:
                self._start_fault(injection, ack, now_m)
                self.injected += 1
                if injection_kind(injection)[0] == "late_echo":
                    return self._ack, None  # the PLC took it; the echo words change later (tick)
                injection = None
            if injection is not None:
                self.injected += 1
                self._refused_items.add(w.item_id)  # the station will refuse it: never an accept here either
                self._pending.pop(w.item_id, None)
                if injection == "bad_status":
                    ack = PlcWords(w.sequence, w.item_id, 77, self.plc_heartbeat)
                elif injection == "wrong_item":
                    ack = PlcWords(w.sequence, (w.item_id + 1000) & U32_MAX, int(status), self.plc_heartbeat)
                elif injection == "bad_sequence":
                    ack = PlcWords((w.sequence + 7) & U32_MAX, w.item_id, int(status), self.plc_heartbeat)
            self._ack = ack
            return ack, injection

    def _start_fault(self, injection: str, ack: PlcWords, now_m: float) -> None:
        kind, ms = injection_kind(injection)
        log.warning("item %d: injected fault %s", ack.ack_item_id, injection)
        if kind == "late_echo":
            self._delayed = (ack, now_m + ms / 1e3)
            self.late_echoes += 1
        elif kind == "freeze_heartbeat":
            self._t_frozen, self._frozen_until = now_m, now_m + ms / 1e3
        elif kind == "exception_reply":
            self._read_exceptions += 1

    def take_read_exception(self) -> bool:
        """A read of the PLC block now gets an exception reply (exception_reply): once per injection."""
        with self._lock:
            if self._read_exceptions <= 0:
                return False
            self._read_exceptions -= 1
            self.exception_replies += 1
            return True

    def note_method_call(self, *, refused: bool) -> None:
        """One SubmitDecision call; ``refused``: the test hook ``call_refused`` made the PLC take nothing."""
        with self._lock:
            self.method_calls += 1
            if refused:
                self.injected += 1

    def _note_status(self, heartbeat: int, state: int, now_m: float) -> None:
        if heartbeat != self._station_hb:
            self._station_hb = heartbeat
            self._t_station_hb = now_m
            if not self.station_ok:
                self.station_ok = True
                log.info("station heartbeat present")
        try:
            new_state = StationStateCode(state)
        except ValueError:
            new_state = StationStateCode.UNKNOWN
        if new_state is not self.station_state:
            old, self.station_state = self.station_state, new_state
            log.info("station state %s -> %s", old.name, new_state.name)
            if new_state is StationStateCode.IDLE and old in (StationStateCode.RUNNING, StationStateCode.FAULT):
                self._end_batch()

    def _end_batch(self) -> None:
        if self._align is not None and not self._batch_over:
            self._batch_over = True
            self._last_item = self._max_decided
            log.info("batch over: the conveyor carries nothing beyond item %d", self._last_item)

    def _decide(self, w: StationWords, now: float) -> AckStatus:
        try:
            decision = DecisionCode(w.decision)
        except ValueError:
            decision = DecisionCode.NONE
        k = w.item_id
        if decision is DecisionCode.NONE or k < 1:
            return self._refuse(k, "invalid decision word")
        accept = decision is DecisionCode.ACCEPT
        exposure = self._exposure_s(w.exposure_ms, now) if w.exposure_ms else None
        if self._align is None or self._batch_over:
            if exposure is None:
                return self._refuse(k, "cannot align the conveyor: no exposure time")
            self._realign(k, exposure)
        assert self._align is not None
        k0, t0 = self._align
        t_cam = t0 + (k - k0) * self.period_s
        if exposure is not None and abs(exposure - t_cam) > self.period_s / 2:
            self.tracking_mismatch += 1
            return self._refuse(k, f"tracking mismatch: exposure {(exposure - t_cam) * 1e3:+.1f} ms off item {k}")
        if accept and w.reason_code != 0:
            return self._refuse(k, "accept with a reject reason code")
        if accept and exposure is None:
            return self._refuse(k, "accept without an exposure time")
        if accept and not self._station_running(time.monotonic()):
            return self._refuse(k, f"accept while station is {self.station_state.name.lower()} / heartbeat stale")
        self._max_decided = max(self._max_decided, k)
        t_gate = t_cam + self.gate_s
        if self._next_gate is not None and k < self._next_gate:
            # Already through the gate (rejected there as missing): the decision came too late.
            if self.outcomes.get(k) == Outcome.MISSING:
                self.counts[Outcome.MISSING] -= 1
                self.counts[Outcome.LATE] += 1
                self.outcomes[k] = Outcome.LATE
            return AckStatus.LATE
        if now > t_gate:
            self._pending[k] = _Pending(False, now)
            self._refused_items.add(k)
            return AckStatus.LATE
        if k in self._pending or k in self._refused_items:
            self.duplicates += 1
            return self._refuse(k, "second decision for the same item")
        self._pending[k] = _Pending(accept, now)
        self.margins_ms.append((t_gate - now) * 1e3)
        return AckStatus.ON_TIME

    def _refuse(self, k: int, why: str) -> AckStatus:
        log.warning("item %d: decision refused: %s", k, why)
        if k >= 1:
            self._refused_items.add(k)
            self._pending.pop(k, None)
        return AckStatus.REFUSED

    def _exposure_s(self, exposure_ms: int, now: float) -> float:
        """Full wall-clock seconds from the 32-bit ms word (modulo arithmetic around now)."""
        now_ms = int(now * 1000)
        diff = (now_ms - exposure_ms) & U32_MAX
        if diff >= 1 << 31:
            diff -= 1 << 32
        return (now_ms - diff) / 1000.0

    def _realign(self, k: int, exposure: float) -> None:
        if self._align is not None:
            self._flush_batch()
        self.batches += 1
        self._align = (k, exposure)
        self._last_item = None
        self._batch_over = False
        self._max_decided = 0
        # The gate counts items that reach it after this PLC came up: gate(i) >= t_start.
        first = max(1, math.ceil(k - (exposure + self.gate_s - self.t_start) / self.period_s))
        self._next_gate = first
        log.info("conveyor aligned on item %d (gate counts from item %d)", k, first)

    def _flush_batch(self) -> None:
        """A new batch starts: the conveyor is emptied, every item still on it is judged now."""
        if self._next_gate is None:
            return
        end = self._last_item if self._last_item is not None else max(self._pending, default=self._next_gate - 1)
        for i in range(self._next_gate, end + 1):
            self._resolve(i)
        self._pending.clear()
        self._refused_items.clear()
        self._next_gate = None

    def _station_running(self, now_m: float) -> bool:
        fresh = self.station_ok and now_m - self._t_station_hb <= self.watchdog_s
        return fresh and self.station_state is StationStateCode.RUNNING

    # -- conveyor, gate, heartbeats -----------------------------------------------------------
    def tick(self) -> bool:
        """Advance heartbeats, watchdog and gate; returns True when the PLC heartbeat changed."""
        with self._lock:
            now_m = time.monotonic()
            changed = False
            if self._delayed is not None and now_m >= self._delayed[1]:
                late = self._delayed[0]
                self._delayed = None
                self._ack = PlcWords(late.ack_sequence, late.ack_item_id, late.ack_status, self.plc_heartbeat)
                self.echoes_released += 1
                changed = True
            if now_m >= self._next_hb and now_m >= self._frozen_until:
                self.plc_heartbeat = (self.plc_heartbeat + 1) & U16_MAX
                self._ack = PlcWords(
                    self._ack.ack_sequence, self._ack.ack_item_id, self._ack.ack_status, self.plc_heartbeat
                )
                self._next_hb = now_m + self.s.heartbeat_ms / 1e3
                changed = True
            if self.station_ok and now_m - self._t_station_hb > self.watchdog_s:
                self.station_ok = False
                self.watchdog_trips += 1
                log.warning("station heartbeat unchanged for %.0f ms: station lost", (now_m - self._t_station_hb) * 1e3)
            self._advance_gate(time.time())
            return changed

    def _advance_gate(self, now: float) -> None:
        if self._align is None or self._next_gate is None:
            return
        k0, t0 = self._align
        while True:
            i = self._next_gate
            if self._last_item is not None and i > self._last_item:
                return
            if t0 + (i - k0) * self.period_s + self.gate_s > now:
                return
            self._resolve(i)
            self._next_gate = i + 1
            if self.s.items is not None and self.items_total >= self.s.items:
                return

    def _resolve(self, i: int) -> None:
        p = self._pending.pop(i, None)
        if i in self._refused_items:
            self._refused_items.discard(i)
            outcome = Outcome.LATE if p is not None and not p.accept else Outcome.REFUSED
        elif p is None:
            outcome = Outcome.MISSING
        else:
            outcome = Outcome.ACCEPTED if p.accept else Outcome.REJECTED
        self.outcomes[i] = outcome
        self.counts[outcome] += 1

    @property
    def items_total(self) -> int:
        return sum(self.counts.values())

    def current_plc(self) -> PlcWords:
        with self._lock:
            return self._ack

    def settle_gate(self) -> None:
        """Serving has ended: judge every item that has reached the gate by now."""
        with self._lock:
            self._advance_gate(time.time())

    def done(self) -> bool:
        with self._lock:
            if self.s.items is not None and self.items_total >= self.s.items:
                self.stop_reason = self.stop_reason or "items"
                return True
            if self.s.duration_s is not None and time.monotonic() - self.t_mono_start >= self.s.duration_s:
                self.stop_reason = self.stop_reason or "duration"
                return True
            return False

    def summary(self, port: int) -> dict[str, Any]:
        with self._lock:
            c = self.counts
            margins = sorted(self.margins_ms)
            accepted = c[Outcome.ACCEPTED]
            items = self.items_total
            return {
                "protocol": self.s.protocol,
                "port": port,
                "line_rate_per_min": self.s.line_rate_per_min,
                "gate_delay_ms": self.s.gate_delay_ms,
                "release": "positive: an item passes only with a valid accept that arrived before it reached the gate",
                "items": items,
                "accepted": accepted,
                "rejected": items - accepted,
                "rejected_by_decision": c[Outcome.REJECTED],
                "decision_late": c[Outcome.LATE],
                "decision_missing": c[Outcome.MISSING],
                "decision_refused": c[Outcome.REFUSED],
                "all_decided_before_gate": items > 0 and c[Outcome.LATE] + c[Outcome.MISSING] == 0,
                "decisions_received": self.decisions,
                "ack_status": dict(self.ack_status_counts),
                "decision_margin_ms_min": round(margins[0], 3) if margins else None,
                "decision_margin_ms_p50": round(margins[len(margins) // 2], 3) if margins else None,
                "first_item": min(self.outcomes, default=None),
                "last_item": max(self.outcomes, default=None),
                "batches": self.batches,
                "sequence_gaps": self.sequence_gaps,
                "tracking_mismatch": self.tracking_mismatch,
                "duplicate_decisions": self.duplicates,
                "foreign_writes": self.foreign_writes,
                "method_calls": self.method_calls,
                "injected_faults": self.injected,
                "decisions_while_frozen_ms": list(self.decisions_while_frozen_ms),
                "late_echoes": self.late_echoes,
                "exception_replies": self.exception_replies,
                "station_watchdog_trips": self.watchdog_trips,
                "stopped_by": self.stop_reason or "signal",
                "run_s": round(time.monotonic() - self.t_mono_start, 3),
            }
