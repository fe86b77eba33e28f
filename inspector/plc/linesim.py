"""Line simulator: a conveyor and a reject gate behind a real PLC protocol server.

``inspector line-sim --protocol {opcua,s7,modbus} --port P --line-rate R --gate-delay-ms D``
(also ``python -m inspector.plc.linesim``) serves the station/PLC blocks of docs/plc.md on
127.0.0.1 with the real server library (asyncua.Server, snap7 Server, pymodbus
ModbusTcpServer), prints ``READY <port>`` once serving (port 0 picks a free one), and a JSON
summary when it ends (SIGTERM/SIGINT, ``--items``/``--duration`` reached, or stdin closed when
it is a pipe: :class:`LineSimProcess` holds that pipe, so the parent process's end, even by
SIGKILL, ends the simulator, while a thread of the parent ending does not).

Like a line PLC it:

- echoes every decision at once (sequence, item id, ack status) when the sequence word
  changes, whatever the new value;
- applies POSITIVE RELEASE at the gate: an item passes only if a valid, timely accept
  arrived for it before it reached the gate; everything else is rejected and counted as a
  reject decision, ``late``, ``missing`` or ``refused``;
- runs its own heartbeat (every ``--heartbeat-ms``) and a watchdog on the station's
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

import argparse
import asyncio
import contextlib
import enum
import json
import logging
import math
import os
import selectors
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.plc.layout import (
    PLC_BLOCK_BYTES,
    PLC_BLOCK_REGISTERS,
    STATION_BLOCK_BYTES,
    STATION_BLOCK_REGISTERS,
    U16_MAX,
    U32_MAX,
    AckStatus,
    DecisionCode,
    PlcWords,
    StationStateCode,
    StationWords,
    bytes_to_registers,
    pack_plc,
    registers_to_bytes,
    unpack_station,
)
from inspector.realtime import prepare_for_latency, raise_thread_priority

log = logging.getLogger("inspector.plc.linesim")

PROTOCOLS = ("opcua", "s7", "modbus")
TICK_S = 0.002
INJECTIONS = ("bad_status", "wrong_item", "bad_sequence", "bad_type", "call_refused")
# Injections of the OPC UA server only (call_refused: SubmitDecision answers BadUserAccessDenied).
OPCUA_INJECTIONS = ("bad_type", "call_refused")


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
    json_out: Path | None = None
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
            status = self._decide(w, time.time())
            self.ack_status_counts[status.name.lower()] += 1
            injection = self.s.inject.get(w.item_id)
            if injection == "call_refused":
                injection = None  # a refused call never reaches here (see SubmitDecision); a Write does
            ack = PlcWords(w.sequence, w.item_id, int(status), self.plc_heartbeat)
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
            if now_m >= self._next_hb:
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
                "station_watchdog_trips": self.watchdog_trips,
                "stopped_by": self.stop_reason or "signal",
                "run_s": round(time.monotonic() - self.t_mono_start, 3),
            }


# -- protocol servers -----------------------------------------------------------------------

StopFlag = threading.Event
ReadyCallback = Callable[[int], None]


async def _tick_until_stopped(core: LineCore, stop: StopFlag, on_heartbeat: Callable[[], Any] | None) -> None:
    while not stop.is_set():
        if core.tick() and on_heartbeat is not None:
            result = on_heartbeat()
            if asyncio.iscoroutine(result):
                await result
        if core.done():
            stop.set()
            break
        await asyncio.sleep(TICK_S)


async def _serve_modbus(core: LineCore, s: LineSimSettings, stop: StopFlag, ready: ReadyCallback) -> None:
    from pymodbus.constants import ExcCodes
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    size = max(s.modbus_station_base + STATION_BLOCK_REGISTERS, s.modbus_plc_base + PLC_BLOCK_REGISTERS)
    plc_lo, plc_hi = s.modbus_plc_base, s.modbus_plc_base + PLC_BLOCK_REGISTERS

    def put_plc(registers: list[int], start: int, words: PlcWords) -> None:
        off = plc_lo - start
        registers[off : off + PLC_BLOCK_REGISTERS] = bytes_to_registers(pack_plc(words))

    async def action(
        _fc: int, start: int, address: int, count: int, registers: list[int], values: list[int] | list[bool] | None
    ) -> ExcCodes | None:
        put_plc(registers, start, core.current_plc())  # reads see the newest heartbeat and echo
        if values is None:
            return None
        if address < plc_hi and plc_lo < address + count:
            core.foreign_writes += 1
            log.warning("refused a station write to PLC registers %d..%d", address, address + count - 1)
            return ExcCodes.ILLEGAL_ADDRESS
        merged = list(registers)
        merged[address - start : address - start + count] = [int(v) for v in values]
        off = s.modbus_station_base - start
        station = unpack_station(registers_to_bytes(merged[off : off + STATION_BLOCK_REGISTERS]))
        result = core.on_station_block(station)
        if result is not None:
            put_plc(registers, start, result[0])
        return None

    device = SimDevice(
        id=0, simdata=[SimData(address=0, count=size, values=0, datatype=DataType.REGISTERS)], action=action
    )
    server = ModbusTcpServer(device, address=(s.host, s.port))
    await server.serve_forever(background=True)
    try:
        transport: Any = server.transport
        ready(int(transport.sockets[0].getsockname()[1]))
        await _tick_until_stopped(core, stop, None)
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


async def _serve_opcua(core: LineCore, s: LineSimSettings, stop: StopFlag, ready: ReadyCallback) -> None:
    from asyncua import ua
    from asyncua.common.callback import CallbackType
    from asyncua.crypto.truststore import TrustStore
    from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
    from asyncua.server.server import Server
    from asyncua.ua.status_codes import StatusCodes

    from inspector.plc import opcua_space as space
    from inspector.plc.config import OpcUaTags
    from inspector.plc.opcua_space import METHOD_INPUTS, PLC_TAGS, STATION_TAGS, TAG_TYPES

    logging.getLogger("asyncua.server.address_space").setLevel(logging.WARNING)  # it logs every method call at INFO

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://{s.host}:{s.port}/inspector")
    server.set_server_name("Inspector line simulator")
    await server.set_application_uri("urn:inspector:linesim")
    if s.security == "basic256sha256":
        if s.certificate is None or s.private_key is None or s.trust_dir is None:
            raise ValueError("--security basic256sha256 needs --cert, --key and --trust-dir")
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        await server.load_certificate(str(s.certificate))
        await server.load_private_key(str(s.private_key))
        store = TrustStore([s.trust_dir], [])
        await store.load()
        server.set_certificate_validator(
            CertificateValidator(
                CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store
            )
        )
    else:
        log.warning("OPC UA line simulator without security (policy None): demo only")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(s.opcua_namespace)
    tags = OpcUaTags(namespace_uri=s.opcua_namespace)
    parent = await server.nodes.objects.add_object(space.station_object_id(tags, ns), space.STATION_OBJECT_NAME)
    nodes: dict[str, ua.NodeId] = {}
    for name, node_id in space.tag_node_ids(tags, ns).items():
        node = await parent.add_variable(node_id, name, ua.Variant(0, TAG_TYPES[name]))
        if name in STATION_TAGS:
            await node.set_writable()  # PLC tags stay read-only for clients: the server refuses writes
        nodes[name] = node.nodeid
    station_ids = {nodes[n] for n in STATION_TAGS}

    def read(name: str) -> int:
        value = server.read_attribute_value(nodes[name]).Value
        return int(value.Value) if value is not None and isinstance(value.Value, int) else 0

    def read_station() -> StationWords:
        return StationWords(*(read(n) for n in STATION_TAGS))  # same field order

    def plc_values(words: PlcWords) -> dict[str, int]:
        return {  # the echoed sequence last, like a PLC should
            "ack_item_id": words.ack_item_id,
            "ack_status": words.ack_status,
            "plc_heartbeat": words.heartbeat,
            "ack_sequence": words.ack_sequence,
        }

    async def write_plc(words: PlcWords, injection: str | None = None) -> None:
        for name, v in plc_values(words).items():
            await server.write_attribute_value(nodes[name], ua.DataValue(ua.Variant(v, TAG_TYPES[name])))
        if injection == "bad_type":
            # The address space refuses a mistyped write; a read callback serves the wrong type until the next write.
            def wrong_type(_nodeid: Any, _attr: Any) -> Any:
                return ua.DataValue(ua.Variant("accepted", ua.VariantType.String))

            server.set_attribute_value_callback(nodes["ack_status"], wrong_type)

    async def post_write(event: Any, _dispatcher: Any) -> None:
        written = [wv.NodeId for wv in event.request_params.NodesToWrite]
        if not any(n in station_ids for n in written):
            return
        result = core.on_station_block(read_station())
        if result is not None:
            await write_plc(*result)

    async def submit_decision(_parent: Any, *args: Any) -> Any:
        """SubmitDecision(ItemId, Decision, ReasonCode, ExposureMs, Sequence) -> the PLC block.

        The method form of the handshake (one request per item): the tags are updated as a
        Write would, the PLC logic runs, and the acknowledgement is the method's result."""
        types = [TAG_TYPES[n] for n in METHOD_INPUTS]
        if len(args) != len(types) or any(
            not isinstance(a, ua.Variant) or a.VariantType != t for a, t in zip(args, types, strict=False)
        ):
            log.warning("SubmitDecision refused: arguments %r", args)
            return ua.StatusCode(ua.UInt32(StatusCodes.BadInvalidArgument))
        values = {n: int(a.Value) for n, a in zip(METHOD_INPUTS, args, strict=True)}
        refused = s.inject.get(values["item_id"]) == "call_refused"
        core.note_method_call(refused=refused)
        if refused:  # the PLC takes nothing: the item reaches the gate undecided
            return ua.StatusCode(ua.UInt32(StatusCodes.BadUserAccessDenied))
        for name, v in values.items():
            await server.write_attribute_value(nodes[name], ua.DataValue(ua.Variant(v, TAG_TYPES[name])))
        result = core.on_station_block(read_station())
        words, injection = (core.current_plc(), None) if result is None else result
        if result is not None:
            await write_plc(words, injection)
        ack = plc_values(words)
        out = [ua.Variant(ack[n], TAG_TYPES[n]) for n in PLC_TAGS]
        if injection == "bad_type":
            out[PLC_TAGS.index("ack_status")] = ua.Variant("accepted", ua.VariantType.String)
        return out

    inputs, outputs = space.submit_decision_arguments()
    method_id = space.submit_decision_id(tags, ns)
    await parent.add_method(method_id, space.SUBMIT_DECISION_NAME, submit_decision, inputs, outputs)
    server.subscribe_server_callback(CallbackType.PostWrite, post_write)
    await server.start()
    try:
        ready(int(server.bserver.port) if server.bserver is not None else s.port)

        async def heartbeat() -> None:
            await server.write_attribute_value(
                nodes["plc_heartbeat"], ua.DataValue(ua.Variant(core.plc_heartbeat, ua.VariantType.UInt16))
            )

        await _tick_until_stopped(core, stop, heartbeat)
    finally:
        await server.stop()


def _serve_s7(core: LineCore, s: LineSimSettings, stop: StopFlag, ready: ReadyCallback) -> None:
    import snap7
    from snap7.server import EVC_DATA_WRITE
    from snap7.type import SrvArea

    size = max(s.s7_station_offset + STATION_BLOCK_BYTES, s.s7_plc_offset + PLC_BLOCK_BYTES, 64)
    db = bytearray(size)
    plc_lo, plc_hi = s.s7_plc_offset, s.s7_plc_offset + PLC_BLOCK_BYTES
    server = snap7.Server(log=False)
    server.register_area(SrvArea.DB, s.s7_db, db)

    def put_plc(words: PlcWords) -> None:
        # Under the server's area lock, so a client never reads a half-written echo.
        server.lock_area(SrvArea.DB, s.s7_db)
        try:
            db[plc_lo:plc_hi] = pack_plc(words)
        finally:
            server.unlock_area(SrvArea.DB, s.s7_db)

    def on_event(event: Any) -> None:
        if event.EvtCode != EVC_DATA_WRITE or event.EvtParam1 != SrvArea.DB or event.EvtParam2 != s.s7_db:
            return
        start, length = int(event.EvtParam3), int(event.EvtParam4)
        if start < plc_hi and plc_lo < start + length:
            # snap7 has no write protection: restore the PLC's words and count the intrusion.
            core.foreign_writes += 1
            log.warning("station wrote into the PLC block (DBB%d, %d bytes): restored", start, length)
            put_plc(core.current_plc())
        server.lock_area(SrvArea.DB, s.s7_db)
        try:
            block = bytes(db[s.s7_station_offset : s.s7_station_offset + STATION_BLOCK_BYTES])
        finally:
            server.unlock_area(SrvArea.DB, s.s7_db)
        result = core.on_station_block(unpack_station(block))
        if result is not None:
            put_plc(result[0])

    server.set_events_callback(on_event)
    server.start_to(s.host, s.port)
    try:
        sock = server.server_socket
        ready(int(sock.getsockname()[1]) if sock is not None else s.port)
        while not stop.is_set():
            if core.tick():
                put_plc(core.current_plc())
            if core.done():
                break
            stop.wait(TICK_S)
    finally:
        server.stop()


# -- process plumbing -----------------------------------------------------------------------


def _watch_stdin(stop: StopFlag) -> None:
    """When stdin is a pipe, its closing (parent gone or done) stops the simulator."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if not stat.S_ISFIFO(mode):
        return

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        stop.set()

    threading.Thread(target=watch, name="linesim-stdin", daemon=True).start()


def run_line_sim(settings: LineSimSettings, *, stop: StopFlag | None = None) -> dict[str, Any]:
    """Serve until stopped; prints ``READY <port>`` once serving and returns the summary."""
    if settings.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {settings.protocol!r}; choose {', '.join(PROTOCOLS)}")
    bad = {k: v for k, v in settings.inject.items() if v not in INJECTIONS}
    if bad:
        raise ValueError(f"unknown fault injection {bad}; choose {', '.join(INJECTIONS)}")
    only_ua = {k: v for k, v in settings.inject.items() if v in OPCUA_INJECTIONS}
    if only_ua and settings.protocol != "opcua":
        raise ValueError(f"fault injection {only_ua} exists only for --protocol opcua")
    core = LineCore(settings)
    flag = stop or threading.Event()
    # A PLC answers from its own hardware in bounded time: on a shared test PC the simulator
    # gets the station's priority (threads started below inherit it), where permitted.
    raise_thread_priority()
    bound = {"port": settings.port}

    def ready(port: int) -> None:
        bound["port"] = port
        prepare_for_latency()  # a PLC answers in bounded time: no collector pauses over the server
        print(f"READY {port}", flush=True)

    if settings.protocol == "s7":
        _serve_s7(core, settings, flag, ready)
    elif settings.protocol == "modbus":
        asyncio.run(_serve_modbus(core, settings, flag, ready))
    else:
        asyncio.run(_serve_opcua(core, settings, flag, ready))
    with core._lock:
        core._advance_gate(time.time())
    summary = core.summary(bound["port"])
    summary["outcomes"] = {str(k): v for k, v in sorted(core.outcomes.items())}
    return summary


class LineSimProcess:
    """A line simulator child process (tests, benchmark): own process group, bounded start and stop.

    ``LineSimProcess.start("modbus", "--line-rate", "600")`` waits (bounded) for
    ``READY <port>``; ``stop()`` sends SIGTERM to its process group and returns the JSON
    summary; ``kill()`` is a SIGKILL of the group (a crashed PLC). stdin is a pipe, so the
    child also ends when this process goes away.
    """

    def __init__(self, proc: subprocess.Popen[str], port: int, log_file: Any) -> None:
        self.proc = proc
        self.port = port
        self._log = log_file

    @classmethod
    def start(
        cls, protocol: str, *args: str, port: int = 0, timeout_s: float = 30.0, cwd: str | None = None
    ) -> LineSimProcess:
        cmd = [sys.executable, "-m", "inspector.plc.linesim", "--protocol", protocol, "--port", str(port), *args]
        log_file = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - closed in stop()/kill()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            start_new_session=True,
            cwd=cwd,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        buf = ""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while "\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or proc.poll() is not None:
                    break
                if sel.select(min(left, 0.1)):
                    chunk = os.read(proc.stdout.fileno(), 4096).decode()
                    if not chunk:
                        break
                    buf += chunk
        line = buf.split("\n", 1)[0]
        if not line.startswith("READY "):
            sim = cls(proc, 0, log_file)
            err = sim.kill()
            raise RuntimeError(f"line simulator did not start ({protocol}): {line!r} {err[-2000:]}")
        return cls(proc, int(line.split()[1]), log_file)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout_s: float = 15.0) -> dict[str, Any]:
        """SIGTERM, then the summary it prints (SIGKILL if it does not end in time)."""
        self._signal(signal.SIGTERM)
        self._close_stdin()
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            out, _ = self.proc.communicate(timeout=5)
        finally:
            self._close_log()
        lines = [ln for ln in (out or "").splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"line simulator ended without a summary (exit {self.proc.returncode})")
        summary: dict[str, Any] = json.loads(lines[-1])
        return summary

    def kill(self) -> str:
        """SIGKILL the process group (a crashed PLC); returns its log."""
        self._signal(signal.SIGKILL)
        self._close_stdin()
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
            self.proc.communicate(timeout=5)
        return self._close_log()

    def _close_stdin(self) -> None:
        # Closed here (not by communicate()) because a caller may have closed it already.
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
            self.proc.stdin = None

    def _close_log(self) -> str:
        text = ""
        if self._log is not None:
            with contextlib.suppress(OSError, ValueError):
                self._log.seek(0)
                text = str(self._log.read())
                self._log.close()
            self._log = None
        return text

    def log_text(self) -> str:
        if self._log is None:
            return ""
        pos = self._log.tell()
        self._log.seek(0)
        text = str(self._log.read())
        self._log.seek(pos)
        return text


def _parse_inject(text: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, item = part.partition("@")
        if not item.isdigit():
            raise ValueError(f"--inject {part!r}: expected KIND@ITEM, e.g. bad_status@5")
        out[int(item)] = kind
    return out


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", required=True, choices=PROTOCOLS)
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 = any free port (see READY)")
    p.add_argument("--line-rate", type=float, default=600.0, help="items per minute (must match the station)")
    p.add_argument("--gate-delay-ms", type=float, default=500.0, help="camera -> reject gate travel time")
    p.add_argument("--items", type=int, default=None, help="stop after this many items reached the gate")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--json", type=Path, default=None, help="write the summary (with per-item outcomes) here")
    p.add_argument("--heartbeat-ms", type=float, default=10.0, help="PLC heartbeat period")
    p.add_argument("--watchdog-ms", type=float, default=100.0, help="station heartbeat watchdog")
    p.add_argument("--security", choices=["none", "basic256sha256"], default="none", help="OPC UA only")
    p.add_argument("--cert", type=Path, default=None, help="OPC UA server certificate (DER/PEM)")
    p.add_argument("--key", type=Path, default=None, help="OPC UA server private key (PEM)")
    p.add_argument("--trust-dir", type=Path, default=None, help="OPC UA: folder of trusted client certificates")
    kinds = ", ".join(INJECTIONS)
    p.add_argument("--inject", default="", help=f"test hook: malformed echoes, e.g. bad_status@5 ({kinds})")


def settings_from_args(args: argparse.Namespace) -> LineSimSettings:
    if args.port < 0 or args.port > 65535:
        raise ValueError("--port must be 0..65535")
    if args.line_rate <= 0 or args.gate_delay_ms < 0:
        raise ValueError("--line-rate must be positive and --gate-delay-ms not negative")
    if args.protocol != "opcua" and args.security != "none":
        raise ValueError("--security applies to OPC UA only")
    return LineSimSettings(
        protocol=args.protocol,
        port=args.port,
        line_rate_per_min=args.line_rate,
        gate_delay_ms=args.gate_delay_ms,
        items=args.items,
        duration_s=args.duration,
        heartbeat_ms=args.heartbeat_ms,
        watchdog_ms=args.watchdog_ms,
        json_out=args.json,
        security=args.security,
        certificate=args.cert,
        private_key=args.key,
        trust_dir=args.trust_dir,
        inject=_parse_inject(args.inject),
    )


def stop_on_signal(stop: StopFlag) -> Callable[[int, object], None]:
    """A signal handler that sets ``stop`` from another thread.

    Python runs a handler in the main thread between two bytecodes, which can fall inside
    ``stop.wait()`` while it holds the event's (non-reentrant) lock: a ``stop.set()`` there
    would wait for that lock forever, and the simulator would hang on SIGTERM. A short thread
    takes the lock once the main thread has let go of it.
    """

    def handler(_signum: int, _frame: object) -> None:
        threading.Thread(target=stop.set, name="line-sim-stop", daemon=True).start()

    return handler


def cmd_line_sim(args: argparse.Namespace) -> int:
    """Run the simulator in this process until a signal, stdin EOF (the parent gone) or the limits."""
    settings = settings_from_args(args)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="line-sim %(levelname)s %(message)s")
    stop = threading.Event()
    handler = stop_on_signal(stop)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    _watch_stdin(stop)
    summary = run_line_sim(settings, stop=stop)
    outcomes = summary.pop("outcomes")
    print(json.dumps(summary), flush=True)
    if settings.json_out is not None:
        settings.json_out.write_text(json.dumps({**summary, "outcomes": outcomes}, indent=2) + "\n", encoding="utf-8")
    return 0


def add_line_sim_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``inspector line-sim`` on the CLI's sub-parsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "line-sim", help="line PLC simulator: conveyor + reject gate (positive release) on a real protocol server"
    )
    configure_parser(p)
    p.set_defaults(func=cmd_line_sim, value_errors_are_user_errors=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="inspector line-sim", description=__doc__.splitlines()[0] if __doc__ else None)
    configure_parser(p)
    args = p.parse_args(argv)
    try:
        return cmd_line_sim(args)
    except ValueError as exc:
        print(f"inspector line-sim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
