"""Demo line: a line simulator child process and the station's PLC link to it, as one handle."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from inspector.plc.sim.process import LineSimProcess
from inspector.plc.sink import PlcSink, attach_plc
from inspector.runner import StationSession

DEMO_PROTOCOL = "modbus"
MIN_GATE_DELAY_MS = 500.0


@dataclass
class DemoLine:
    """What :func:`start_line_simulator` started; ``close()`` ends both (link first)."""

    sim: LineSimProcess
    sink: PlcSink
    url: str

    @property
    def connected(self) -> bool:
        return self.sink.link.connected

    def describe(self) -> str:
        return f"line sim {self.url}"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sink.close()
        with contextlib.suppress(Exception):
            self.sim.stop()


def start_line_simulator(session: StationSession, protocol: str = DEMO_PROTOCOL) -> DemoLine:
    """Start ``inspector line-sim`` on a free loopback port at the camera's line rate and attach to it.

    The reject gate sits four latency budgets downstream (at least 500 ms), so a healthy
    station always decides in time and a stalled one is caught by positive release.
    """
    period_s = float(getattr(session.camera, "period_s", 0.0) or 0.0)
    rate = 60.0 / period_s if period_s > 0 else session.recipe.recipe.line_rate_per_min
    gate_ms = max(MIN_GATE_DELAY_MS, 4 * session.recipe.recipe.latency_budget_ms)
    sim = LineSimProcess.start(protocol, "--line-rate", f"{rate:g}", "--gate-delay-ms", f"{gate_ms:g}")
    url = f"{protocol}://127.0.0.1:{sim.port}"
    try:
        sink = attach_plc(session, url)
    except Exception:
        sim.kill()
        raise
    return DemoLine(sim=sim, sink=sink, url=url)
