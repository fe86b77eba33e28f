"""Demo line: the line simulator as the station's PLC, started on this machine (loopback only).

Only a demo station (``plc: {link: line-sim}``) starts one; production stations refuse it. This
is the one production module that imports the simulator (an import contract says so).
"""

from __future__ import annotations

from dataclasses import dataclass

from inspector.plc.sim.process import LineSimProcess

MIN_GATE_DELAY_MS = 500.0


@dataclass
class DemoLine:
    """A running line simulator; ``close()`` stops it (after the station's link to it is closed)."""

    sim: LineSimProcess
    url: str

    def close(self) -> None:
        self.sim.stop()

    def kill(self) -> None:
        self.sim.kill()


def start_demo_line(protocol: str, *, line_rate_per_min: float, latency_budget_ms: float) -> DemoLine:
    """Start ``inspector line-sim`` on a free loopback port at the camera's line rate.

    The reject gate sits four latency budgets downstream (at least 500 ms), so a healthy
    station always decides in time and a stalled one is caught by positive release.
    """
    gate_ms = max(MIN_GATE_DELAY_MS, 4 * latency_budget_ms)
    sim = LineSimProcess.start(protocol, "--line-rate", f"{line_rate_per_min:g}", "--gate-delay-ms", f"{gate_ms:g}")
    return DemoLine(sim=sim, url=f"{protocol}://127.0.0.1:{sim.port}")
