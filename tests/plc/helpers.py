"""Test helpers for the PLC link: a decision feeder on a line schedule and throwaway OPC UA certificates."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from inspector.plc.base import DecisionRequest, ItemAck, LinkEvent, LinkEventKind, PlcLink
from inspector.plc.layout import U32_MAX, StationStateCode
from inspector.plc.pki import STATION_URI, app_certificate, loopback_pki, trust_folder
from inspector.taxonomy import PLC_CODE_OK


@dataclass
class Recorder:
    """Collects a link's events (called from the link thread)."""

    acks: dict[int, ItemAck] = field(default_factory=dict)
    events: list[LinkEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: LinkEvent) -> None:
        with self.lock:
            if event.kind is LinkEventKind.ACK and event.ack is not None:
                self.acks[event.ack.request.item_id] = event.ack
            else:
                self.events.append(event)

    def of_kind(self, kind: LinkEventKind) -> list[LinkEvent]:
        with self.lock:
            return [e for e in self.events if e.kind is kind]

    def wait_for(self, kind: LinkEventKind, timeout_s: float, after: float = 0.0) -> LinkEvent | None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            hits = [e for e in self.of_kind(kind) if e.t_mono >= after]
            if hits:
                return hits[0]
            time.sleep(0.005)
        return None


def is_accept(item_id: int) -> bool:
    """Every fourth item is a reject (reason code 101), the rest accepts."""
    return item_id % 4 != 0


class Feeder:
    """Sends decisions like a station: item i exposed at t0 + (i-1)*period, decided ``latency_s`` later.

    Runs in its own thread (so the test can kill and restart the PLC meanwhile); ``stop()`` joins it.
    """

    def __init__(self, link: PlcLink, period_s: float, *, latency_s: float = 0.005, items: int | None = None) -> None:
        self.link = link
        self.period_s = period_s
        self.latency_s = latency_s
        self.items = items
        self.t0 = time.time() + 0.02
        self.submitted: dict[int, float] = {}  # item -> time.monotonic() at submit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-feeder", daemon=True)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def _run(self) -> None:
        i = 1
        while not self._stop.is_set() and (self.items is None or i <= self.items):
            t_exp = self.t0 + (i - 1) * self.period_s
            delay = t_exp + self.latency_s - time.time()
            if delay > 0 and self._stop.wait(delay):
                break
            accept = is_accept(i)
            request = DecisionRequest(i, accept, PLC_CODE_OK if accept else 101, int(t_exp * 1000) & U32_MAX)
            self.submitted[i] = time.monotonic()
            self.link.submit(request)
            i += 1

    def wait_done(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)


def run_batch(link: PlcLink, items: int, period_s: float, *, settle_s: float = 0.0) -> Recorder:
    """Start ``link``, send ``items`` decisions one period apart as a running station, drain them,
    then (``settle_s`` > 0) end the batch (state idle) and wait that long for the last items to
    reach the gate; the link is closed in any case. Returns what the link reported."""
    rec = Recorder()
    link.subscribe(rec)
    link.start()
    try:
        link.set_station_state(StationStateCode.RUNNING)
        feeder = Feeder(link, period_s, items=items).start()
        feeder.wait_done(items * period_s + 5)
        feeder.stop()
        assert link.drain(5.0)
        if settle_s > 0:
            link.set_station_state(StationStateCode.IDLE)
            time.sleep(settle_s)
    finally:
        link.close()
    return rec


@dataclass(frozen=True)
class Pki:
    """Self-signed OPC UA application certificates, made at test time (never committed)."""

    server_cert: Path
    server_key: Path
    server_trust: Path  # certificates the server trusts (the station's)
    station_cert: Path
    station_key: Path
    station_trust: Path  # certificates the station trusts (the server's)
    rogue_cert: Path
    rogue_key: Path
    rogue_trust: Path  # trusts only the rogue certificate


def make_pki(folder: Path) -> Pki:
    """The loopback cell's certificates plus a rogue station certificate no one trusts by default."""
    cell = loopback_pki(folder)
    rogue = app_certificate(folder, "rogue", STATION_URI, server=False)
    return Pki(
        cell.server.cert,
        cell.server.key,
        cell.server_trust,
        cell.station.cert,
        cell.station.key,
        cell.station_trust,
        rogue.cert,
        rogue.key,
        trust_folder(folder / "rogue_trust", rogue.cert),
    )
