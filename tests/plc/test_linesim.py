"""The line simulator on its own: PLC logic (positive release, tracking, refusals) and process lifecycle."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from inspector.plc.layout import AckStatus, StationStateCode, StationWords
from inspector.plc.sim.line import LineCore, LineSimSettings
from inspector.plc.sim.process import LineSimProcess
from tests.plc.conftest import ROOT, StartSim

PERIOD_S = 0.05


class Station:
    """Drives a LineCore like the station's link would (no network)."""

    def __init__(self, core: LineCore) -> None:
        self.core = core
        self.seq = 0
        self.hb = 0
        self.t0 = time.time()
        self.state = StationStateCode.RUNNING

    def status(self, state: StationStateCode = StationStateCode.RUNNING) -> None:
        self.hb += 1
        self.state = state
        self.core.on_station_block(StationWords(0, 0, 0, 0, self.seq, self.hb, int(state)))

    def decide(self, item: int, accept: bool, *, exposure_offset_s: float = 0.0, reason: int | None = None) -> int:
        self.seq += 1
        t_exp = self.t0 + (item - 1) * PERIOD_S + exposure_offset_s
        code = (0 if accept else 101) if reason is None else reason
        exposure = int(t_exp * 1000) & 0xFFFFFFFF
        words = StationWords(item, 1 if accept else 2, code, exposure, self.seq, self.hb, int(self.state))
        result = self.core.on_station_block(words)
        assert result is not None
        ack, _ = result
        assert ack.ack_sequence == self.seq and ack.ack_item_id == item
        return ack.ack_status


def _core(gate_ms: float = 100.0) -> LineCore:
    return LineCore(LineSimSettings(protocol="modbus", line_rate_per_min=60 / PERIOD_S, gate_delay_ms=gate_ms))


def test_positive_release_at_the_gate() -> None:
    core = _core()
    st = Station(core)
    st.status()
    assert st.decide(1, True) == AckStatus.ON_TIME
    assert st.decide(2, False) == AckStatus.ON_TIME
    # item 3: no decision at all; item 4: accept refused (tracking mismatch of 40 ms > half a period)
    assert st.decide(4, True, exposure_offset_s=0.04) == AckStatus.REFUSED
    assert st.decide(5, True, reason=104) == AckStatus.REFUSED  # an accept with a defect code
    time.sleep(5 * PERIOD_S + 0.1 + 0.05)
    st.status()
    core.tick()
    assert [core.outcomes[i] for i in range(1, 6)] == ["accepted", "rejected", "missing", "refused", "refused"]
    s = core.summary(0)
    assert s["accepted"] == 1 and s["rejected"] == s["items"] - 1 and s["tracking_mismatch"] == 1
    # A decision after its item passed the gate is late: still rejected.
    assert st.decide(3, True) == AckStatus.LATE
    assert core.outcomes[3] == "late" and core.summary(0)["decision_late"] == 1


def test_no_accept_while_the_station_is_not_running_or_its_heartbeat_is_stale() -> None:
    core = _core(gate_ms=500)
    st = Station(core)
    st.status(StationStateCode.FAULT)
    assert st.decide(1, True) == AckStatus.REFUSED
    st.status(StationStateCode.RUNNING)
    assert st.decide(2, True) == AckStatus.ON_TIME
    time.sleep(core.watchdog_s + 0.03)  # the station heartbeat goes stale
    core.tick()
    assert core.summary(0)["station_watchdog_trips"] == 1
    # decide() resends the last heartbeat value: still stale
    assert st.decide(3, True) == AckStatus.REFUSED
    assert st.decide(4, False) == AckStatus.ON_TIME  # a reject is always taken


def test_exits_when_stdin_closes_and_after_duration(start_sim: StartSim) -> None:
    sim = start_sim("modbus")
    assert sim.proc.stdin is not None
    sim.proc.stdin.close()  # the parent "goes away"
    sim.proc.wait(timeout=10)
    assert sim.proc.returncode == 0
    timed = start_sim("s7", "--duration", "0.3")
    timed.proc.wait(timeout=10)
    assert timed.stop()["stopped_by"] == "duration"


def test_outlives_the_thread_that_started_it(start_sim: StartSim) -> None:
    """The HMI starts its demo simulator from a worker thread; that thread ending must not stop it.

    (Linux's parent-death signal fires when the starting *thread* ends, which stopped the demo's
    PLC under a running station at shutdown and raised a false PLC fault.)
    """
    started: list[LineSimProcess] = []
    worker = threading.Thread(target=lambda: started.append(start_sim("modbus")))
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and started
    sim = started[0]
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        assert sim.proc.poll() is None, "the simulator ended with the thread that started it"
        time.sleep(0.05)
    assert sim.stop()["stopped_by"] == "signal"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--protocol", "modbus", "--security", "basic256sha256"], "OPC UA only"),
        (["--protocol", "s7", "--line-rate", "0"], "--line-rate must be positive"),
        (["--protocol", "modbus", "--inject", "bad_status"], "KIND@ITEM"),
        (["--protocol", "modbus", "--inject", "call_refused@3"], "only for --protocol opcua"),
    ],
)
def test_bad_arguments_are_one_clear_error(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "inspector.plc.sim", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


_INSIDE_WAIT = """
import signal, threading
from inspector.plc.sim.cli import stop_on_signal
stop = threading.Event()
handler = {handler}
with stop._cond:  # what Event.wait holds between its checks, where Python may run a handler
    handler(signal.SIGTERM, None)
assert stop.wait(3.0)
print("returned")
"""


def _signal_inside_wait(handler: str) -> bool:
    """Run ``handler`` the way Python may, in a child process (a deadlock there is killed)."""
    code = _INSIDE_WAIT.format(handler=handler)
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and "returned" in done.stdout


def test_sigterm_handler_never_waits_for_the_lock_of_a_stop_wait() -> None:
    """The simulator hung on SIGTERM once in CI (killed after 15 s, no summary): a plain
    ``stop.set()`` handler deadlocks when the signal lands inside ``stop.wait()``."""
    assert not _signal_inside_wait("lambda _s, _f: stop.set()"), "the scenario reproduces the hang"
    assert _signal_inside_wait("stop_on_signal(stop)")
