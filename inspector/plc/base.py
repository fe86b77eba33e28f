"""The PLC link: the station's decisions, heartbeat and state to the line PLC, and its answers back.

The base class owns the threading (python-microscope style); protocol drivers only fill the
``_do_*`` hooks, which are called from the link thread alone. One link thread per station:

- takes decisions from a bounded queue (``submit`` never blocks the inspection thread;
  a full queue is an alarm and a ``missing`` acknowledgement);
- writes each decision (item id, decision, reason code, exposure time), then changes the
  sequence word (the strobe; in the same request where the protocol allows, the decision
  words first) and polls the PLC block until the PLC echoes that sequence
  and item id. Completion is judged by the echoed number, not by an edge;
- writes the station heartbeat and state every ``heartbeat_ms`` and reads the PLC's
  heartbeat; a PLC heartbeat unchanged for ``watchdog_ms``, or any failed request, is a
  lost link, announced at once (before the connection is torn down) with the time since the
  fault began: since the heartbeat last advanced, or since the last good exchange. Every
  request is bounded by ``io_timeout_ms``;
- reconnects every ``reconnect_interval_ms`` while lost, and counts the link as recovered only
  once the PLC heartbeat advances again on the new connection (a reconnect to a PLC whose
  heartbeat is frozen is not a recovery). Decisions made while the link is down are never
  written, not after the reconnect either: they are ``missing`` (the PLC rejects those items
  under positive release);
- an echo that comes after ``ack_timeout_ms`` (but before a later decision's echo, within
  ``watchdog_ms`` more) is recorded ``late`` with the PLC's status: on time means the PLC took
  it for the gate. An error answer to the echo read (a Modbus exception reply) is ``refused``.

Whatever the PLC sends back is validated: a malformed, out-of-range or out-of-sequence
echo is ``refused`` with an alarm and never becomes an accept.
"""

from __future__ import annotations

import abc
import collections
import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from inspector.plc.config import ModbusConfig, OpcUaConfig, S7Config
from inspector.plc.layout import (
    U16_MAX,
    U32_MAX,
    AckStatus,
    DecisionCode,
    DecisionWords,
    PlcWords,
    StationStateCode,
)
from inspector.realtime import raise_thread_priority
from inspector.taxonomy import PLC_CODE_OK

log = logging.getLogger(__name__)

AnyPlcConfig = OpcUaConfig | S7Config | ModbusConfig

# Earlier sequences that may still sit in the echo word while a new decision is pending.
_RECENT_SEQUENCES = 16
_POLL_FIRST_S = 0.0001
_POLL_MAX_S = 0.002
_HALF_SEQUENCE = 1 << 31


class PlcError(RuntimeError):
    """A PLC link operation failed."""


class PlcIoError(PlcError):
    """The transport failed or timed out: the link is lost."""


class PlcHeartbeatStale(PlcIoError):
    """The PLC heartbeat stood still for the watchdog time; ``since``: when it last advanced."""

    def __init__(self, message: str, since: float) -> None:
        super().__init__(message)
        self.since = since


class PlcValueError(PlcError):
    """A value read from the PLC is malformed (wrong type or size): refused.

    ``heartbeat`` carries the PLC heartbeat when that word itself was valid, so one bad
    word does not also starve the watchdog.
    """

    def __init__(self, message: str, heartbeat: int | None = None) -> None:
        super().__init__(message)
        self.heartbeat = heartbeat


class PlcProtocolError(PlcError):
    """The PLC answered a request with an error (refused address, access denied)."""


class PlcSecurityError(PlcError):
    """Refused by security policy: a write outside the allow-list/area, or an untrusted certificate."""


class LinkState(enum.StrEnum):
    NEW = "new"
    CONNECTED = "connected"
    LOST = "lost"
    CLOSED = "closed"


class AckResult(enum.StrEnum):
    """Per-item outcome of the handshake, stored with the item record."""

    ACKED = "acked"  # echoed in time and on time for the gate
    LATE = "late"  # the PLC says the item had passed the gate, or its echo came after the station's window
    MISSING = "missing"  # never written or never echoed (link down, queue full, timeout)
    REFUSED = "refused"  # the echo was malformed / mismatched / out of sequence, or the PLC refused the values


class LinkEventKind(enum.StrEnum):
    CONNECTED = "connected"
    LOST = "lost"
    RECOVERED = "recovered"
    ACK = "ack"
    ALARM = "alarm"


@dataclass(frozen=True)
class DecisionRequest:
    """One decision for the PLC. ``accept`` needs reason code 0 (ok): fail safe by construction."""

    item_id: int
    accept: bool
    reason_code: int
    exposure_ms: int = 0  # wall-clock ms (mod 2**32) of the item's exposure; 0 = unknown
    batch_id: str | None = None
    t_submitted: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not 1 <= self.item_id <= U32_MAX:
            raise ValueError(f"item id {self.item_id} does not fit 1..2**32-1")
        if not 0 <= self.reason_code <= U16_MAX:
            raise ValueError(f"reason code {self.reason_code} does not fit 16 bits")
        if not 0 <= self.exposure_ms <= U32_MAX:
            raise ValueError("exposure_ms must fit 32 bits")
        if self.accept and self.reason_code != PLC_CODE_OK:
            raise ValueError(f"item {self.item_id}: an accept must carry reason code {PLC_CODE_OK}")

    @property
    def decision(self) -> DecisionCode:
        return DecisionCode.ACCEPT if self.accept else DecisionCode.REJECT


@dataclass(frozen=True)
class ItemAck:
    """The handshake result of one decision."""

    request: DecisionRequest
    result: AckResult
    sequence: int | None = None
    round_trip_ms: float | None = None  # write start -> echo seen
    detail: str = ""
    t_mono: float = field(default_factory=time.monotonic)
    plc_status: AckStatus | None = None  # of a ``late`` result: what the PLC echoed (on time: it took it)

    @property
    def accepted_by_line(self) -> bool:
        """The PLC lets the item pass only for an accept it took on time: echoed on time, or echoed
        after the station's window with the PLC's status "on time" (the PLC took it for the gate)."""
        if not self.request.accept:
            return False
        return self.result is AckResult.ACKED or (
            self.result is AckResult.LATE and self.plc_status is AckStatus.ON_TIME
        )

    def record_text(self) -> str:
        """What goes into the item record's ``plc_ack`` column."""
        if self.result is AckResult.ACKED and self.round_trip_ms is not None:
            return f"acked rtt_ms={self.round_trip_ms:.3f}"
        if self.result is AckResult.LATE and self.plc_status is not None:
            rtt = "" if self.round_trip_ms is None else f" rtt_ms={self.round_trip_ms:.3f}"
            return f"late{rtt} plc_status={self.plc_status.name.lower()}"
        return self.result.value


@dataclass(frozen=True)
class _Overdue:
    """A decision whose echo did not come within ``ack_timeout``: still looked for until ``expires``."""

    request: DecisionRequest
    t0: float  # perf_counter at the write
    expires: float  # monotonic


@dataclass(frozen=True)
class LinkEvent:
    kind: LinkEventKind
    message: str = ""
    code: str = ""
    ack: ItemAck | None = None
    detect_ms: float | None = None  # LOST: time since the last good exchange
    outage_ms: float | None = None  # RECOVERED: time the link was down
    t_mono: float = field(default_factory=time.monotonic)


LinkListener = Callable[[LinkEvent], None]


@dataclass
class LinkStats:
    """Lifetime counters of one link (the sink keeps per-batch figures)."""

    submitted: int = 0
    results: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in AckResult})
    losses: int = 0
    reconnects: int = 0
    refused_values: int = 0
    detect_ms: list[float] = field(default_factory=list)
    rtt_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=200_000))


def _seq_next(seq: int) -> int:
    # 0 means "nothing yet" in the echo word, so the sequence skips it when it wraps.
    return 1 if seq >= U32_MAX else seq + 1


class PlcLink(abc.ABC):
    """A typed link to the line PLC; see the module docstring for the threading and the handshake."""

    protocol: ClassVar[str] = ""

    def __init__(self, config: AnyPlcConfig) -> None:
        self.config = config
        t = config.timing
        self.heartbeat_s = t.heartbeat_ms / 1e3
        self.watchdog_s = t.watchdog_ms / 1e3
        self.io_timeout_s = t.io_timeout_ms / 1e3
        self.ack_timeout_s = t.ack_timeout_ms / 1e3
        self.connect_timeout_s = t.connect_timeout_ms / 1e3
        self.reconnect_interval_s = t.reconnect_interval_ms / 1e3
        self.stats = LinkStats()
        self._queue: queue.Queue[DecisionRequest] = queue.Queue(maxsize=t.queue_depth)
        self._listeners: list[LinkListener] = []
        self._state = LinkState.NEW
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._pending = 0  # submitted, not yet resolved
        self._pending_cond = threading.Condition()
        self._station_state = StationStateCode.IDLE
        self._written_state: StationStateCode | None = None
        self._sequence = 0
        self._recent: collections.deque[int] = collections.deque(maxlen=_RECENT_SEQUENCES)
        self._echo_baseline = 0
        self._heartbeat = 0
        self._next_heartbeat = 0.0
        self._plc_heartbeat: int | None = None
        self._t_plc_change = 0.0
        self._t_last_ok = 0.0
        self._t_lost = 0.0
        self._next_connect = 0.0
        self._last_connect_error = ""
        self._last_value_alarm = ""
        self._t_up = 0.0  # when the link last came up: a decision made before is never written
        self._reconnected = False  # connected again, waiting for the PLC heartbeat to advance
        self._hb_at_reconnect: int | None = None
        self._overdue: dict[int, _Overdue] = {}  # sequence -> a decision whose echo is late so far

    # -- public API (any thread) --------------------------------------------------------------
    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is LinkState.CONNECTED

    @property
    def endpoint(self) -> str:
        return f"{self.protocol}://{self.config.host}:{self.config.port}"

    def subscribe(self, listener: LinkListener) -> None:
        self._listeners.append(listener)

    def start(self, timeout_s: float | None = None) -> None:
        """Start the link thread and wait for the first connection; raises PlcError if there is none."""
        if self._thread is not None:
            raise PlcError("link already started")
        self._thread = threading.Thread(target=self._run, name=f"plc-link-{self.protocol}", daemon=True)
        self._thread.start()
        wait = timeout_s if timeout_s is not None else self.connect_timeout_s + 1.0
        if not self._started.wait(wait):
            self.close()
            raise PlcIoError(f"{self.endpoint}: no connection within {wait:.1f} s")
        if self._start_error is not None:
            err = self._start_error
            self.close()
            if isinstance(err, PlcError):
                raise err
            raise PlcIoError(f"{self.endpoint}: {err}") from err

    def submit(self, request: DecisionRequest) -> None:
        """Hand a decision to the link thread. Never blocks; a full queue makes it ``missing``."""
        with self._pending_cond:
            self._pending += 1
            self.stats.submitted += 1
        if self._state is LinkState.CLOSED:
            self._resolve(ItemAck(request, AckResult.MISSING, detail="link closed"))
            return
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            self._alarm("PLC_QUEUE_FULL", f"item {request.item_id}: PLC queue full, decision not sent")
            self._resolve(ItemAck(request, AckResult.MISSING, detail="PLC queue full"))
            return
        if self._closed():
            # The link thread closed while we queued: nobody else will take it.
            self._fail_queued("link closed")

    def _closed(self) -> bool:
        return self._state is LinkState.CLOSED

    def set_station_state(self, code: StationStateCode) -> None:
        """The station state the PLC reads; written by the link thread before the next decision."""
        self._station_state = code

    def drain(self, timeout_s: float) -> bool:
        """Wait until every submitted decision has an acknowledgement result."""
        end = time.monotonic() + timeout_s
        with self._pending_cond:
            while self._pending > 0:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._pending_cond.wait(left)
        return True

    def close(self, timeout_s: float = 3.0) -> None:
        """Stop the link thread: queued decisions become ``missing``, state idle is written, disconnect."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout_s)
            if t.is_alive():
                log.error("PLC link thread did not stop within %.1f s", timeout_s)
        if t is None:
            self._state = LinkState.CLOSED

    def __enter__(self) -> PlcLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- driver hooks (link thread only) -------------------------------------------------------
    @abc.abstractmethod
    def _do_connect(self, timeout_s: float) -> None:
        """Open the connection; raise PlcIoError / PlcSecurityError."""

    @abc.abstractmethod
    def _do_disconnect(self) -> None:
        """Close whatever is open; must not raise and must return within about io_timeout."""

    @abc.abstractmethod
    def _do_write_decision(self, words: DecisionWords) -> None:
        """Write item id, decision, reason code and exposure time (not the sequence)."""

    @abc.abstractmethod
    def _do_write_sequence(self, sequence: int) -> None:
        """Write the sequence word: the strobe that tells the PLC a new decision is valid."""

    def _do_write_decision_sequence(self, words: DecisionWords, sequence: int) -> None:
        """Decision words, then the sequence strobe. Drivers whose block is contiguous override this
        with one request (the words before the strobe in the same write): one round trip less."""
        self._do_write_decision(words)
        self._do_write_sequence(sequence)

    @abc.abstractmethod
    def _do_write_status(self, heartbeat: int, state: StationStateCode) -> None:
        """Write the station heartbeat counter and state word."""

    @abc.abstractmethod
    def _do_read_plc(self) -> PlcWords:
        """Read the PLC block in one request; raise PlcValueError for a malformed value."""

    def _do_release(self) -> None:  # noqa: B027 - optional hook
        """Free what the link thread owns (an event loop) when it ends; default: nothing."""

    # -- link thread --------------------------------------------------------------------------
    def _run(self) -> None:
        raise_thread_priority()  # decisions must reach the PLC before the gate, whatever else runs
        try:
            if not self._initial_connect():
                return
            while not self._stop.is_set():
                if self._state is LinkState.CONNECTED:
                    try:
                        self._service()
                    except PlcHeartbeatStale as exc:
                        self._lost(str(exc), since=exc.since)
                    except PlcIoError as exc:
                        self._lost(str(exc))
                    except PlcProtocolError as exc:  # the heartbeat exchange refused: the PLC's watchdog trips
                        self._lost(f"heartbeat exchange refused: {exc}")
                    except Exception as exc:  # a driver bug must not end the thread silently
                        log.exception("PLC link: unexpected error")
                        self._lost(f"unexpected error: {exc}")
                else:
                    self._service_lost()
        finally:
            self._shutdown()

    def _initial_connect(self) -> bool:
        try:
            self._do_connect(self.connect_timeout_s)
            self._after_connect()
        except Exception as exc:
            self._safe_disconnect()
            self._start_error = exc
            self._started.set()
            return False
        self._state = LinkState.CONNECTED
        self._t_up = time.monotonic()
        self._started.set()
        self._emit(LinkEvent(LinkEventKind.CONNECTED, f"connected to {self.endpoint}"))
        return True

    def _after_connect(self) -> None:
        """A fresh exchange: state + heartbeat written, PLC block read, watchdog armed."""
        self._heartbeat = (self._heartbeat + 1) & U16_MAX
        self._do_write_status(self._heartbeat, self._station_state)
        self._written_state = self._station_state
        words = self._do_read_plc()
        now = time.monotonic()
        self._plc_heartbeat = words.heartbeat
        self._t_plc_change = now
        self._t_last_ok = now
        self._echo_baseline = words.ack_sequence
        self._next_heartbeat = now + self.heartbeat_s

    def _service(self) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat or self._written_state is not self._station_state:
            self._exchange_heartbeat()
        self._check_watchdog()
        self._expire_overdue()
        wait = max(0.0, min(self._next_heartbeat - time.monotonic(), self.heartbeat_s))
        try:
            request = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            return
        if self._written_state is not self._station_state:
            self._exchange_heartbeat()  # the PLC must see the state before the decision
        self._handle(request)

    def _exchange_heartbeat(self) -> None:
        self._heartbeat = (self._heartbeat + 1) & U16_MAX
        state = self._station_state
        self._do_write_status(self._heartbeat, state)
        self._written_state = state
        try:
            words = self._do_read_plc()
        except PlcValueError as exc:
            if exc.heartbeat is not None:
                self._note_heartbeat(exc.heartbeat)
            if str(exc) != self._last_value_alarm:  # once per distinct fault, not every heartbeat
                self._last_value_alarm = str(exc)
                self.stats.refused_values += 1
                self._alarm("PLC_VALUE_REFUSED", f"PLC block refused: {exc}")
        else:
            self._last_value_alarm = ""
            self._note_plc(words)
            if words.ack_sequence != self._sequence and not self._known_sequence(words.ack_sequence):
                # The echo word moved with no decision pending: out of sequence. Alarm once, then take it
                # as the new baseline so the next decision is judged against it.
                self.stats.refused_values += 1
                msg = f"echo word changed to {words.ack_sequence} with no decision pending"
                self._alarm("PLC_OUT_OF_SEQUENCE", msg)
                self._echo_baseline = words.ack_sequence
        self._next_heartbeat = time.monotonic() + self.heartbeat_s

    def _note_plc(self, words: PlcWords) -> None:
        self._note_heartbeat(words.heartbeat)
        if self._overdue:
            self._settle_overdue(words)

    def _note_heartbeat(self, heartbeat: int) -> None:
        now = time.monotonic()
        self._t_last_ok = now
        if heartbeat != self._plc_heartbeat:
            self._plc_heartbeat = heartbeat
            self._t_plc_change = now

    def _check_watchdog(self) -> None:
        stale = time.monotonic() - self._t_plc_change
        if stale > self.watchdog_s:
            raise PlcHeartbeatStale(
                f"PLC heartbeat unchanged for {stale * 1e3:.0f} ms (watchdog {self.watchdog_s * 1e3:.0f})",
                since=self._t_plc_change,
            )

    def _known_sequence(self, value: int) -> bool:
        return value == 0 or value == self._echo_baseline or value in self._recent

    def _handle(self, request: DecisionRequest) -> None:
        if request.t_submitted < self._t_up:
            # Made while the link was down and queued meanwhile: never written after the reconnect.
            self._resolve(ItemAck(request, AckResult.MISSING, detail="decided while the PLC link was down"))
            return
        if self._overdue:
            self._look_for_late_echoes()  # before this decision's echo can take the echo words
        seq = _seq_next(self._sequence)
        words = DecisionWords(request.item_id, int(request.decision), request.reason_code, request.exposure_ms)
        t0 = time.perf_counter()
        try:
            self._sequence = seq
            self._do_write_decision_sequence(words, seq)
        except (PlcSecurityError, PlcProtocolError) as exc:
            self._alarm("PLC_WRITE_REFUSED", f"item {request.item_id}: {exc}")
            self._resolve(ItemAck(request, AckResult.REFUSED, seq, detail=str(exc)))
            return
        except BaseException as exc:  # the transport (link lost) or a driver bug: never left unresolved
            self._resolve(ItemAck(request, AckResult.MISSING, seq, detail=f"not written: {exc}"))
            raise
        try:
            self._await_echo(request, seq, t0)
        except BaseException as exc:
            if seq not in self._recent:  # neither resolved nor overdue (the loss fails those)
                self._finish(request, seq, AckResult.MISSING, None, f"link lost: {exc}")
            raise

    def _await_echo(self, request: DecisionRequest, seq: int, t0: float) -> None:
        """Poll the PLC block until it echoes ``seq``; past ``ack_timeout`` the decision becomes overdue."""
        deadline = t0 + self.ack_timeout_s
        pause = _POLL_FIRST_S
        while True:
            try:
                plc = self._do_read_plc()
            except PlcValueError as exc:
                if exc.heartbeat is not None:
                    self._note_heartbeat(exc.heartbeat)
                self.stats.refused_values += 1
                self._last_value_alarm = str(exc)
                self._alarm("PLC_VALUE_REFUSED", f"item {request.item_id}: echo refused: {exc}")
                self._finish(request, seq, AckResult.REFUSED, None, f"malformed echo: {exc}")
                return
            except PlcProtocolError as exc:  # e.g. a Modbus exception reply: an answer, but no echo
                self.stats.refused_values += 1
                self._alarm("PLC_VALUE_REFUSED", f"item {request.item_id}: echo read answered with an error: {exc}")
                self._finish(request, seq, AckResult.REFUSED, None, f"echo read answered with an error: {exc}")
                return
            rtt_ms = (time.perf_counter() - t0) * 1e3
            self._note_plc(plc)
            verdict = self._judge(plc, seq, request)
            if verdict is not None:
                result, detail = verdict
                self._finish(request, seq, result, rtt_ms if result is AckResult.ACKED else None, detail)
                return
            if time.perf_counter() >= deadline:
                # Not missing yet: a PLC that takes it late still echoes it (then it is 'late').
                self._recent.append(seq)
                self._overdue[seq] = _Overdue(request, t0, time.monotonic() + self.watchdog_s)
                return
            time.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_S)

    # -- echoes after the window ------------------------------------------------------------
    def _look_for_late_echoes(self) -> None:
        try:
            words = self._do_read_plc()
        except (PlcValueError, PlcProtocolError):
            return  # judged again by the next read
        self._note_plc(words)

    def _settle_overdue(self, words: PlcWords) -> None:
        """An overdue decision's echo came (``late``), or a later decision's did (then it never will)."""
        echoed = words.ack_sequence
        hit = self._overdue.pop(echoed, None)
        if hit is not None:
            rtt_ms = (time.perf_counter() - hit.t0) * 1e3
            result, detail = self._judge(words, echoed, hit.request) or (AckResult.REFUSED, "")
            status: AckStatus | None = None
            if result is AckResult.ACKED:
                result, status = AckResult.LATE, AckStatus.ON_TIME
                detail = f"echoed {rtt_ms:.1f} ms after the write (window {self.ack_timeout_s * 1e3:.0f} ms), on time"
            elif result is AckResult.LATE:
                status = AckStatus.LATE
            self._resolve(ItemAck(hit.request, result, echoed, rtt_ms, detail, plc_status=status))
        if echoed == 0:
            return  # a restarted PLC: nothing echoed yet
        for seq in [q for q in self._overdue if 0 < (echoed - q) % (1 << 32) < _HALF_SEQUENCE]:
            late = self._overdue.pop(seq)
            self._resolve(ItemAck(late.request, AckResult.MISSING, seq, detail="a later decision was echoed first"))

    def _expire_overdue(self) -> None:
        now = time.monotonic()
        for seq in [q for q, o in self._overdue.items() if o.expires <= now]:
            late = self._overdue.pop(seq)
            window = (self.ack_timeout_s + self.watchdog_s) * 1e3
            self._resolve(ItemAck(late.request, AckResult.MISSING, seq, detail=f"no echo within {window:.0f} ms"))

    def _fail_overdue(self, detail: str) -> None:
        for seq, late in list(self._overdue.items()):
            del self._overdue[seq]
            self._resolve(ItemAck(late.request, AckResult.MISSING, seq, detail=detail))

    def _judge(self, plc: PlcWords, seq: int, request: DecisionRequest) -> tuple[AckResult, str] | None:
        """None while the echo still shows an earlier sequence; else the result."""
        if plc.ack_sequence != seq:
            if self._known_sequence(plc.ack_sequence):
                return None
            self.stats.refused_values += 1
            msg = f"item {request.item_id}: echoed sequence {plc.ack_sequence} is out of sequence (sent {seq})"
            self._alarm("PLC_OUT_OF_SEQUENCE", msg)
            self._echo_baseline = plc.ack_sequence  # judge the next decision against it, alarm only once
            return AckResult.REFUSED, "echo out of sequence"
        if plc.ack_item_id != request.item_id:
            self.stats.refused_values += 1
            msg = f"item {request.item_id}: PLC echoed item {plc.ack_item_id} for sequence {seq}"
            self._alarm("PLC_ITEM_MISMATCH", msg)
            return AckResult.REFUSED, f"echo names item {plc.ack_item_id}"
        if plc.ack_status == AckStatus.ON_TIME:
            return AckResult.ACKED, ""
        if plc.ack_status == AckStatus.LATE:
            return AckResult.LATE, "the item had passed the gate"
        if plc.ack_status == AckStatus.REFUSED:
            return AckResult.REFUSED, "the PLC refused the decision"
        self.stats.refused_values += 1
        self._alarm("PLC_VALUE_REFUSED", f"item {request.item_id}: ack status {plc.ack_status} is out of range")
        return AckResult.REFUSED, f"ack status {plc.ack_status} out of range"

    def _finish(self, request: DecisionRequest, seq: int, result: AckResult, rtt_ms: float | None, detail: str) -> None:
        self._recent.append(seq)
        self._resolve(ItemAck(request, result, seq, rtt_ms, detail))

    def _lost(self, reason: str, since: float | None = None) -> None:
        """The link is lost: announced first, then the connection torn down (which can take a while).

        ``since``: when the fault began (a stale heartbeat: when it last advanced); by default the
        last good exchange. The detection time reported is measured from there.
        """
        now = time.monotonic()
        detect_ms = (now - (self._t_last_ok if since is None else since)) * 1e3
        self._state = LinkState.LOST
        self._reconnected = False
        self._t_lost = now
        self.stats.losses += 1
        self.stats.detect_ms.append(detect_ms)
        self._next_connect = now + min(self.reconnect_interval_s, 0.05)
        self._written_state = None
        log.warning("PLC link %s lost: %s", self.endpoint, reason)
        self._emit(LinkEvent(LinkEventKind.LOST, f"PLC link lost: {reason}", code="PLC_LINK_LOST", detect_ms=detect_ms))
        self._fail_overdue("link lost before the echo")
        self._safe_disconnect()  # an OPC UA close to a stalled server waits for its own timeout

    def _service_lost(self) -> None:
        # Decisions during the outage are never written: the PLC rejects those items (positive release).
        now = time.monotonic()
        wake = self._next_heartbeat if self._reconnected else self._next_connect
        wait = max(0.0, min(wake - now, 0.02))
        try:
            request = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            pass
        else:
            self._resolve(ItemAck(request, AckResult.MISSING, detail="PLC link down"))
            return
        if self._stop.is_set():
            return
        if self._reconnected:
            self._await_heartbeat()
        elif time.monotonic() >= self._next_connect:
            self._reconnect()

    def _reconnect(self) -> None:
        try:
            self._do_connect(self.connect_timeout_s)
            self._after_connect()
        except Exception as exc:
            self._safe_disconnect()
            self._next_connect = time.monotonic() + self.reconnect_interval_s
            text = str(exc)
            if text != self._last_connect_error:
                self._last_connect_error = text
                if isinstance(exc, PlcSecurityError):
                    self._alarm("PLC_SECURITY", f"reconnect refused: {text}")
                log.info("PLC reconnect to %s failed: %s", self.endpoint, text)
            return
        self._last_connect_error = ""
        self._reconnected = True
        self._hb_at_reconnect = self._plc_heartbeat
        log.info("PLC link %s connected again; recovered once the PLC heartbeat advances", self.endpoint)

    def _await_heartbeat(self) -> None:
        """Connected again: keep the heartbeat exchange going; recovered only once the PLC's advances."""
        if time.monotonic() < self._next_heartbeat:
            return
        try:
            self._exchange_heartbeat()
        except Exception as exc:
            self._reconnected = False
            self._safe_disconnect()
            self._next_connect = time.monotonic() + self.reconnect_interval_s
            log.info("PLC link %s: exchange after the reconnect failed: %s", self.endpoint, exc)
            return
        if self._plc_heartbeat == self._hb_at_reconnect:
            return
        self._last_value_alarm = ""
        self._reconnected = False
        now = time.monotonic()
        self._t_up = now
        self._state = LinkState.CONNECTED
        self.stats.reconnects += 1
        outage_ms = (now - self._t_lost) * 1e3
        log.info("PLC link %s recovered after %.0f ms", self.endpoint, outage_ms)
        self._emit(
            LinkEvent(
                LinkEventKind.RECOVERED,
                f"PLC link recovered after {outage_ms:.0f} ms (PLC heartbeat advancing)",
                code="PLC_LINK_RECOVERED",
                outage_ms=outage_ms,
            )
        )

    def _fail_queued(self, detail: str) -> None:
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                return
            self._resolve(ItemAck(request, AckResult.MISSING, detail=detail))

    def _shutdown(self) -> None:
        was_connected = self._state is LinkState.CONNECTED
        self._state = LinkState.CLOSED  # before draining, so a racing submit() drains what it queued
        self._fail_queued("link closed")
        self._fail_overdue("link closed before the echo")
        if was_connected:
            try:
                self._heartbeat = (self._heartbeat + 1) & U16_MAX
                self._do_write_status(self._heartbeat, StationStateCode.IDLE)
            except Exception as exc:
                log.info("PLC link: final state write failed: %s", exc)
        self._safe_disconnect()
        try:
            self._do_release()
        except Exception:
            log.exception("PLC link: release failed")

    def _safe_disconnect(self) -> None:
        try:
            self._do_disconnect()
        except Exception:
            log.exception("PLC link: disconnect failed")

    # -- results and events -------------------------------------------------------------------
    def _resolve(self, ack: ItemAck) -> None:
        with self._pending_cond:  # submit() may resolve from the inspection thread too
            self.stats.results[ack.result.value] += 1
            if ack.round_trip_ms is not None:
                self.stats.rtt_ms.append(ack.round_trip_ms)
        try:
            self._emit(LinkEvent(LinkEventKind.ACK, ack=ack))
        finally:
            with self._pending_cond:
                self._pending -= 1
                self._pending_cond.notify_all()

    def _alarm(self, code: str, message: str) -> None:
        log.warning("PLC alarm %s: %s", code, message)
        self._emit(LinkEvent(LinkEventKind.ALARM, message, code=code))

    def _emit(self, event: LinkEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener must not stop the link
                log.exception("PLC link listener failed")
