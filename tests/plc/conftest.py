"""Fixtures: line simulator child processes (port 0, READY line, own process group, always torn down)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from inspector.plc.sim.process import LineSimProcess
from tests.plc.helpers import Pki, make_pki

ROOT = Path(__file__).resolve().parents[2]

StartSim = Callable[..., LineSimProcess]


@pytest.fixture
def start_sim() -> Iterator[StartSim]:
    """``start_sim("modbus", "--line-rate", "1200", port=0)``; every simulator is stopped at teardown."""
    sims: list[LineSimProcess] = []

    def start(protocol: str, *args: str, port: int = 0) -> LineSimProcess:
        sim = LineSimProcess.start(protocol, *args, port=port, timeout_s=40.0, cwd=str(ROOT))
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        sim.kill()  # SIGKILL to its process group if still running; reaps it and closes its log


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Throwaway self-signed certificates (server, station, rogue) in a temp folder."""
    return make_pki(tmp_path_factory.mktemp("pki"))
