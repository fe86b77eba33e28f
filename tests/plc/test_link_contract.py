"""One contract, three protocols: the PLC link against the real servers of the line simulator on 127.0.0.1.

OPC UA runs twice: with the default handshake (one SubmitDecision method call per item)
and with ``handshake: write_read`` (Write of the decision tags, then Read of the echo).

Every protocol must:
- complete the handshake per item (echo of sequence and item id) and let the gate accept
  exactly the acknowledged accepts (positive release);
- refuse malformed, mismatched and out-of-sequence echoes, with an alarm, never as an accept;
- detect a killed PLC within 100 ms, accept nothing during the outage, reconnect to the
  restarted PLC and resume.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from inspector.plc.base import AckResult, LinkEventKind
from inspector.plc.config import ModbusConfig, OpcUaConfig, S7Config, parse_plc_url
from inspector.plc.factory import create_link
from inspector.plc.layout import StationStateCode
from tests.plc.conftest import StartSim
from tests.plc.helpers import Feeder, Recorder, is_accept, run_batch

PERIOD_S = 0.05  # 1200 items/min
GATE_MS = 250
SIM_ARGS = ("--line-rate", "1200", "--gate-delay-ms", str(GATE_MS))

pytestmark = pytest.mark.slow


VARIANTS = ["modbus", "s7", "opcua", "opcua-write_read"]


def _config(variant: str, port: int) -> OpcUaConfig | S7Config | ModbusConfig:
    protocol, _, handshake = variant.partition("-")
    cfg = parse_plc_url(f"{protocol}://127.0.0.1:{port}")
    if handshake:
        assert isinstance(cfg, OpcUaConfig)
        cfg = cfg.model_copy(update={"handshake": handshake})
    return cfg


SETTLE_S = GATE_MS / 1e3 + 0.15  # after the batch: the last items reach the simulator's gate


def _finish(link: object, seconds: float = SETTLE_S) -> None:
    """Batch over: state idle, then wait until the last items reached the simulator's gate."""
    link.set_station_state(StationStateCode.IDLE)  # type: ignore[attr-defined]
    time.sleep(seconds)


@pytest.mark.parametrize("variant", VARIANTS)
class TestPlcLinkContract:
    def test_handshake_gate_and_refused_values(self, variant: str, start_sim: StartSim, tmp_path: Path) -> None:
        protocol = variant.partition("-")[0]
        injected = {3: "bad_status", 5: "wrong_item", 7: "bad_sequence"}
        if protocol == "opcua":
            injected[9] = "bad_type"  # AckStatus sent as a String
        inject = ",".join(f"{kind}@{item}" for item, kind in injected.items())
        sim_json = tmp_path / "sim.json"
        sim = start_sim(protocol, *SIM_ARGS, "--inject", inject, "--json", str(sim_json))
        n = 24
        rec = run_batch(create_link(_config(variant, sim.port)), n, PERIOD_S, settle_s=SETTLE_S)
        summary = sim.stop()

        assert sorted(rec.acks) == list(range(1, n + 1))
        for item, ack in rec.acks.items():
            if item in injected:
                assert ack.result is AckResult.REFUSED, (item, ack)
                assert not ack.accepted_by_line
            else:
                assert ack.result is AckResult.ACKED, (item, ack)
                assert ack.round_trip_ms is not None and ack.round_trip_ms < 100
        codes = {e.code for e in rec.of_kind(LinkEventKind.ALARM)}
        assert {"PLC_VALUE_REFUSED", "PLC_ITEM_MISMATCH", "PLC_OUT_OF_SEQUENCE"} <= codes, codes
        assert not rec.of_kind(LinkEventKind.LOST), "no link loss in normal traffic"

        # Positive release at the gate: exactly the acknowledged accepts pass.
        acked_accepts = {i for i, a in rec.acks.items() if a.accepted_by_line}
        assert acked_accepts == {i for i in range(1, n + 1) if is_accept(i) and i not in injected}
        assert summary["items"] == n and summary["accepted"] == len(acked_accepts)
        assert summary["decision_late"] == 0 and summary["decision_missing"] == 0
        assert summary["decision_refused"] == len(injected)
        # The handshake the config asked for is the one that ran.
        assert summary["method_calls"] == (n if variant == "opcua" else 0)
        outcomes = json.loads(sim_json.read_text())["outcomes"]
        assert {int(i) for i, o in outcomes.items() if o == "accepted"} == acked_accepts
        assert all(outcomes[str(i)] == "refused" for i in injected)

    def test_killed_plc_detected_nothing_accepted_during_outage_resumes(
        self, variant: str, start_sim: StartSim, tmp_path: Path
    ) -> None:
        protocol = variant.partition("-")[0]
        sim = start_sim(protocol, *SIM_ARGS)
        port = sim.port
        link = create_link(_config(variant, port))
        rec = Recorder()
        link.subscribe(rec)
        link.start()
        sim2_json = tmp_path / "sim2.json"
        try:
            link.set_station_state(StationStateCode.RUNNING)
            feeder = Feeder(link, PERIOD_S).start()
            try:
                time.sleep(0.6)
                t_kill = time.monotonic()
                sim.kill()  # SIGKILL: the PLC process dies mid-stream
                lost = rec.wait_for(LinkEventKind.LOST, 2.0)
                assert lost is not None, "link loss not detected"
                detect_ms = (lost.t_mono - t_kill) * 1e3
                time.sleep(0.3)
                t_restart = time.monotonic()  # no PLC existed between t_kill and here
                sim2 = start_sim(protocol, *SIM_ARGS, "--json", str(sim2_json), port=port)
                recovered = rec.wait_for(LinkEventKind.RECOVERED, 10.0)
                assert recovered is not None, "no reconnect to the restarted PLC"
                t_recovered = recovered.t_mono
                time.sleep(0.8)
            finally:
                feeder.stop()
            assert link.drain(5.0)
            _finish(link)
        finally:
            link.close()
        summary = sim2.stop()

        print(f"{variant}: loss detected {detect_ms:.1f} ms after the kill")
        assert detect_ms < 100, f"loss detected after {detect_ms:.1f} ms"
        # No acknowledgement while no PLC was there, and nothing decided then is accepted.
        for ack in rec.acks.values():
            if ack.result is AckResult.ACKED:
                assert ack.t_mono < t_kill or ack.t_mono >= t_recovered, ack
        outage = [i for i, t in feeder.submitted.items() if t_kill <= t <= t_restart]
        assert len(outage) >= 5, "the feeder ran through the outage"
        for i in outage:
            assert rec.acks[i].result is AckResult.MISSING, (i, rec.acks[i])
            assert not rec.acks[i].accepted_by_line
        # Traffic resumes once reconnected.
        after = [i for i, t in feeder.submitted.items() if t > t_recovered + 0.05]
        assert len(after) >= 5
        assert all(rec.acks[i].result is AckResult.ACKED for i in after), [rec.acks[i] for i in after]
        # The restarted PLC's gate: items decided while the link was down reach it without an accept -> rejected.
        outcomes = {int(k): v for k, v in json.loads(sim2_json.read_text())["outcomes"].items()}
        down = [i for i, t in feeder.submitted.items() if t_kill <= t <= t_recovered and i in outcomes]
        unsent = [i for i in down if rec.acks[i].result is AckResult.MISSING]
        assert unsent, "some items decided during the outage reached the restarted PLC's gate"
        assert all(outcomes[i] == "missing" for i in unsent)
        acked_by_sim2 = {i for i, a in rec.acks.items() if a.accepted_by_line and a.t_mono > t_recovered}
        assert {i for i, o in outcomes.items() if o == "accepted"} == acked_by_sim2
        assert summary["accepted"] == len(acked_by_sim2)
