"""PLC configuration: committed files, URL forms, clear errors, and the wire layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inspector.config.errors import ConfigError
from inspector.plc.base import AckResult, DecisionRequest, ItemAck
from inspector.plc.config import (
    PLC_CONFIGS_DIR,
    ModbusConfig,
    OpcUaConfig,
    S7Config,
    load_plc_config,
    parse_plc_url,
)
from inspector.plc.layout import (
    PLC_BLOCK_BYTES,
    STATION_BLOCK_BYTES,
    DecisionWords,
    PlcWords,
    bytes_to_registers,
    pack_decision,
    pack_plc,
    pack_sequence,
    pack_status,
    registers_to_bytes,
    unpack_plc,
    unpack_station,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("protocol", ["opcua", "s7", "modbus"])
def test_committed_sim_config_equals_the_url_defaults(protocol: str) -> None:
    cfg = load_plc_config(ROOT / PLC_CONFIGS_DIR / f"{protocol}_sim.yaml")
    url = parse_plc_url(f"{protocol}://127.0.0.1:{cfg.port}")
    assert cfg.model_dump(exclude={"description"}) == url.model_dump(exclude={"description"})


def test_production_example_is_secure_and_resolves_paths_next_to_the_file() -> None:
    path = ROOT / PLC_CONFIGS_DIR / "opcua_production.example.yaml"
    cfg = load_plc_config(path)
    assert isinstance(cfg, OpcUaConfig)
    assert cfg.mode.value == "production" and cfg.security.policy == "Basic256Sha256"
    assert cfg.security.mode == "SignAndEncrypt"
    assert cfg.security.certificate == (path.parent / "pki/own/station.der").resolve()


def test_no_private_key_is_committed() -> None:
    keys = [p for p in (ROOT / PLC_CONFIGS_DIR).rglob("*") if p.suffix in (".pem", ".key", ".pfx", ".p12")]
    assert keys == []


def test_url_forms() -> None:
    assert isinstance(parse_plc_url("modbus://127.0.0.1:5020"), ModbusConfig)
    s7 = parse_plc_url("s7://127.0.0.1:1102")
    assert isinstance(s7, S7Config) and s7.port == 1102
    ua = parse_plc_url("opcua://127.0.0.1:4841")
    assert isinstance(ua, OpcUaConfig) and ua.endpoint_url == "opc.tcp://127.0.0.1:4841/inspector"
    assert ua.mode.value == "demo" and ua.security.policy == "None"
    for bad in ("http://127.0.0.1:1", "modbus://127.0.0.1:99999", "modbus://:502", "s7://127.0.0.1:102/x?y=1"):
        with pytest.raises(ConfigError):
            parse_plc_url(bad)


def test_yaml_errors_name_the_file_and_field(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / PLC_CONFIGS_DIR / "modbus_sim.yaml").read_text())
    data["colour"] = "blue"
    data["timing"]["watchdog_ms"] = 10
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_plc_config(path)
    text = str(err.value)
    assert "bad.yaml" in text and "colour" in text and "watchdog_ms" in text


def test_unknown_protocol_and_missing_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("schema_version: 1\nprotocol: profinet\nhost: 127.0.0.1\n")
    with pytest.raises(ConfigError, match=r"profinet|protocol"):
        load_plc_config(path)
    path.write_text("protocol: modbus\nhost: 127.0.0.1\n")
    with pytest.raises(ConfigError, match="schema_version"):
        load_plc_config(path)


def test_layout_round_trips() -> None:
    assert STATION_BLOCK_BYTES == 20 and PLC_BLOCK_BYTES == 12
    block = pack_decision(DecisionWords(0xDEADBEEF, 1, 0, 123456)) + pack_sequence(7) + pack_status(9, 2)
    w = unpack_station(block)
    assert (w.item_id, w.decision, w.reason_code, w.exposure_ms, w.sequence, w.heartbeat, w.state) == (
        0xDEADBEEF,
        1,
        0,
        123456,
        7,
        9,
        2,
    )
    plc = PlcWords(70000, 5, 1, 65535)
    assert unpack_plc(registers_to_bytes(bytes_to_registers(pack_plc(plc)))) == plc
    # Modbus word order: high word first, like an S7 DWORD.
    assert bytes_to_registers(pack_sequence(0x00010002)) == [1, 2]


def test_a_decision_request_is_fail_safe_by_construction() -> None:
    with pytest.raises(ValueError, match="accept must carry reason code 0"):
        DecisionRequest(1, True, 104)
    with pytest.raises(ValueError, match="item id"):
        DecisionRequest(0, False, 1)
    ack = ItemAck(DecisionRequest(3, True, 0), AckResult.MISSING)
    assert not ack.accepted_by_line and ack.record_text() == "missing"
    ok = ItemAck(DecisionRequest(3, True, 0), AckResult.ACKED, 1, 0.4567)
    assert ok.accepted_by_line and ok.record_text() == "acked rtt_ms=0.457"
