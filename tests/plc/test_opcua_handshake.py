"""OPC UA handshake choice: the SubmitDecision method (one request per item) or Write + Read.

The contract tests run both handshakes end to end; here: the config, a PLC without the
method (a clear error at start, not a silent fallback), and the simulated PLC refusing a
call whose arguments carry the wrong types.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from asyncua import ua
from asyncua.client.client import Client

from inspector.config.errors import ConfigError
from inspector.plc.base import AckResult, LinkEventKind, PlcProtocolError
from inspector.plc.config import PLC_CONFIGS_DIR, OpcUaConfig, OpcUaTags, load_plc_config, parse_plc_url
from inspector.plc.factory import create_link
from inspector.plc.opcua import OpcUaLink
from tests.plc.conftest import StartSim
from tests.plc.helpers import is_accept, run_batch

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_handshake_defaults_to_the_method_and_refuses_unknown_values(tmp_path: Path) -> None:
    cfg = parse_plc_url("opcua://127.0.0.1:4840")
    assert isinstance(cfg, OpcUaConfig) and cfg.handshake == "method"
    data = yaml.safe_load((ROOT / PLC_CONFIGS_DIR / "opcua_sim.yaml").read_text())
    data["handshake"] = "subscribe"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="handshake"):
        load_plc_config(path)
    data["handshake"] = "write_read"
    path.write_text(yaml.safe_dump(data))
    assert load_plc_config(path).handshake == "write_read"  # type: ignore[union-attr]


def test_a_plc_without_the_method_is_refused_at_start_with_a_clear_error(start_sim: StartSim) -> None:
    sim = start_sim("opcua", "--line-rate", "600")
    cfg = parse_plc_url(f"opcua://127.0.0.1:{sim.port}")
    assert isinstance(cfg, OpcUaConfig)
    cfg = cfg.model_copy(update={"tags": OpcUaTags(submit_decision="Inspector.NoSuchMethod")})
    link = OpcUaLink(cfg)
    with pytest.raises(PlcProtocolError, match=r"no method Inspector\.NoSuchMethod.*handshake: write_read"):
        link.start(10.0)
    # The same PLC with the two-request handshake is fine.
    link = OpcUaLink(cfg.model_copy(update={"handshake": "write_read"}))
    link.start(10.0)
    try:
        assert link.connected
    finally:
        link.close()


def test_the_simulated_plc_refuses_mistyped_arguments(start_sim: StartSim) -> None:
    sim = start_sim("opcua", "--line-rate", "600")
    tags = OpcUaTags()

    async def call(args: list[ua.Variant]) -> ua.CallMethodResult:
        async with Client(f"opc.tcp://127.0.0.1:{sim.port}/inspector", timeout=10) as client:
            ns = await client.get_namespace_index(tags.namespace_uri)
            request = ua.CallMethodRequest(
                ObjectId=ua.NodeId(ua.String(tags.station_object), ua.Int16(ns)),
                MethodId=ua.NodeId(ua.String(tags.submit_decision), ua.Int16(ns)),
                InputArguments=args,
            )
            return (await client.uaclient.call([request]))[0]

    good_types = [ua.VariantType.UInt32, ua.VariantType.UInt16, ua.VariantType.UInt16]
    good_types += [ua.VariantType.UInt32, ua.VariantType.UInt32]
    wrong = [ua.Variant(1, ua.VariantType.Int32)] + [ua.Variant(1, t) for t in good_types[1:]]
    result = asyncio.run(call(wrong))
    assert result.StatusCode.name == "BadInvalidArgument"
    result = asyncio.run(call([ua.Variant(1, t) for t in good_types[:4]]))  # one argument short
    assert result.StatusCode.name == "BadInvalidArgument"
    summary = sim.stop()
    assert summary["method_calls"] == 0 and summary["decisions_received"] == 0


def test_a_refused_call_is_a_refused_item_never_an_accept(start_sim: StartSim) -> None:
    # The PLC answers SubmitDecision for item 3 with BadUserAccessDenied: it took nothing.
    sim = start_sim("opcua", "--line-rate", "1200", "--gate-delay-ms", "250", "--inject", "call_refused@3")
    n = 8
    rec = run_batch(create_link(parse_plc_url(f"opcua://127.0.0.1:{sim.port}")), n, 0.05, settle_s=0.4)
    summary = sim.stop()
    assert is_accept(3), "the refused item must be one the station accepted"
    assert rec.acks[3].result is AckResult.REFUSED and not rec.acks[3].accepted_by_line
    assert "BadUserAccessDenied" in rec.acks[3].detail
    assert all(rec.acks[i].result is AckResult.ACKED for i in range(1, n + 1) if i != 3)
    assert "PLC_WRITE_REFUSED" in {e.code for e in rec.of_kind(LinkEventKind.ALARM)}
    assert not rec.of_kind(LinkEventKind.LOST)
    # The PLC never took item 3: its gate rejects it as undecided.
    assert summary["method_calls"] == n and summary["decisions_received"] == n - 1
    assert summary["decision_missing"] == 1 and summary["injected_faults"] == 1
    assert summary["accepted"] == sum(1 for i in range(1, n + 1) if is_accept(i) and i != 3)
