"""Security posture per protocol, against the real servers on 127.0.0.1.

- OPC UA: Basic256Sha256 SignAndEncrypt with trust lists both ways; an untrusted station
  certificate is refused by the server, an untrusted server certificate by the station;
  the station cannot write the PLC's tags.
- Modbus: the client writes only allow-listed registers (and the simulator refuses writes
  to the PLC block as well).
- S7: the client writes only inside the configured DB area.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from inspector.plc.base import AckResult, PlcIoError, PlcSecurityError
from inspector.plc.config import ModbusConfig, OpcUaConfig, OpcUaSecurity, S7Config, parse_plc_url
from inspector.plc.layout import PLC_BLOCK_BYTES, STATION_BLOCK_BYTES, PlcWords, StationStateCode, unpack_plc
from inspector.plc.modbus import ModbusLink
from inspector.plc.opcua import OpcUaLink
from inspector.plc.s7 import S7Link
from inspector.plc.sim.bench import bench_protocol
from inspector.plc.sim.process import LineSimProcess
from tests.plc.conftest import ROOT, StartSim
from tests.plc.helpers import Feeder, Pki, Recorder

pytestmark = pytest.mark.slow


# -- OPC UA ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secure_sim(pki: Pki) -> Iterator[LineSimProcess]:
    sim = LineSimProcess.start(
        "opcua",
        "--line-rate",
        "1200",
        "--gate-delay-ms",
        "200",
        "--security",
        "basic256sha256",
        "--cert",
        str(pki.server_cert),
        "--key",
        str(pki.server_key),
        "--trust-dir",
        str(pki.server_trust),
        timeout_s=40.0,
        cwd=str(ROOT),
    )
    yield sim
    sim.stop()


def _secure_config(port: int, cert: Path, key: Path, trust: Path) -> OpcUaConfig:
    return OpcUaConfig(
        schema_version=1,
        protocol="opcua",
        host="127.0.0.1",
        port=port,
        security=OpcUaSecurity(certificate=cert, private_key=key, trusted_certificates=trust),
    )


def test_opcua_signed_and_encrypted_with_trusted_certificates(secure_sim: LineSimProcess, pki: Pki) -> None:
    link = OpcUaLink(_secure_config(secure_sim.port, pki.station_cert, pki.station_key, pki.station_trust))
    rec = Recorder()
    link.subscribe(rec)
    link.start()
    try:
        assert link._client is not None
        policy = link._client.security_policy
        assert policy.URI.endswith("#Basic256Sha256") and policy.Mode.name == "SignAndEncrypt"
        link.set_station_state(StationStateCode.RUNNING)
        feeder = Feeder(link, 0.05, items=6).start()
        feeder.wait_done(5)
        feeder.stop()
        assert link.drain(5.0)
    finally:
        link.close()
    assert [a.result for a in rec.acks.values()] == [AckResult.ACKED] * 6


def test_opcua_station_cannot_write_plc_tags(secure_sim: LineSimProcess, pki: Pki) -> None:
    link = OpcUaLink(_secure_config(secure_sim.port, pki.station_cert, pki.station_key, pki.station_trust))
    link._do_connect(10.0)
    try:
        with pytest.raises(PlcSecurityError, match="ack_status"):
            link.write_tags({"ack_status": 1})
        link.write_tags({"station_heartbeat": 7})  # its own tag is fine
    finally:
        link._do_disconnect()
        link._do_release()


def test_opcua_untrusted_station_certificate_refused_by_server(secure_sim: LineSimProcess, pki: Pki) -> None:
    # The rogue certificate carries the station's URI but is not in the server's trust list.
    link = OpcUaLink(_secure_config(secure_sim.port, pki.rogue_cert, pki.rogue_key, pki.station_trust))
    with pytest.raises(PlcSecurityError, match=r"Untrusted|untrusted|not trusted"):
        link.start(15.0)


def test_opcua_untrusted_server_certificate_refused_by_station(secure_sim: LineSimProcess, pki: Pki) -> None:
    # The station's trust list holds only the rogue certificate, not the server's.
    link = OpcUaLink(_secure_config(secure_sim.port, pki.station_cert, pki.station_key, pki.rogue_trust))
    with pytest.raises(PlcSecurityError, match=r"Untrusted|untrusted|not trusted"):
        link.start(15.0)


def test_opcua_policy_none_only_in_demo_mode(pki: Pki) -> None:
    with pytest.raises(ValueError, match="only with mode: demo"):
        OpcUaConfig(schema_version=1, protocol="opcua", host="127.0.0.1", security=OpcUaSecurity(policy="None"))
    with pytest.raises(ValueError, match="needs certificate, private_key, trusted_certificates"):
        OpcUaConfig(schema_version=1, protocol="opcua", host="127.0.0.1", security=OpcUaSecurity())


def test_opcua_demo_mode_logs_a_warning_at_every_connect(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nobody listens on: the attempt fails fast, after the warning
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    link = OpcUaLink(parse_plc_url(f"opcua://127.0.0.1:{port}"))  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="inspector.plc.opcua"), pytest.raises(PlcIoError):
        link.start(5.0)
    assert any("security policy None" in r.getMessage() for r in caplog.records)


# -- Modbus ---------------------------------------------------------------------------------------


def test_modbus_writes_only_allow_listed_registers(start_sim: StartSim) -> None:
    sim = start_sim("modbus")
    cfg = parse_plc_url(f"modbus://127.0.0.1:{sim.port}")
    assert isinstance(cfg, ModbusConfig)
    link = ModbusLink(cfg)
    link._do_connect(2.0)
    try:
        before = link.read_registers(16, 6)
        for address, values in ((16, [1]), (20, [1, 1]), (9, [0, 0]), (100, [5])):
            with pytest.raises(PlcSecurityError, match="not in allowed_write_registers"):
                link.write_registers(address, values)
        assert link.read_registers(16, 6) == before, "nothing reached the PLC block"
        link.write_registers(8, [42, 1])  # station heartbeat + state: allow-listed
        assert link.read_registers(8, 2) == [42, 1]
    finally:
        link._do_disconnect()
    # Defence in depth: the simulator refuses a raw write into its PLC block too.
    raw = ModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.5, retries=0)
    assert raw.connect()  # type: ignore[no-untyped-call]
    try:
        assert raw.write_registers(16, [1]).isError()
    finally:
        raw.close()  # type: ignore[no-untyped-call]
    assert sim.stop()["foreign_writes"] == 1


def test_modbus_config_refuses_an_allow_list_over_the_plc_block() -> None:
    with pytest.raises(ValueError, match="overlaps the PLC block"):
        ModbusConfig(
            schema_version=1,
            protocol="modbus",
            host="127.0.0.1",
            allowed_write_registers=({"start": 0, "count": 20},),  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="not inside allowed_write_registers"):
        ModbusConfig(schema_version=1, protocol="modbus", host="127.0.0.1", station_base=40)


# -- S7 -------------------------------------------------------------------------------------------


def test_s7_writes_only_inside_the_configured_area(start_sim: StartSim) -> None:
    sim = start_sim("s7")
    cfg = parse_plc_url(f"s7://127.0.0.1:{sim.port}")
    assert isinstance(cfg, S7Config)
    link = S7Link(cfg)
    link._do_connect(2.0)
    try:

        def plc_block() -> PlcWords:  # the acknowledgement words; the PLC's own heartbeat advances by itself
            return replace(unpack_plc(link.read_db(1, 32, PLC_BLOCK_BYTES)), heartbeat=0)

        before = plc_block()
        refused = [(2, 0, 4), (1, 32, 4), (1, 18, 4), (1, STATION_BLOCK_BYTES, 1), (1, 60, 2)]
        for db, start, size in refused:
            with pytest.raises(PlcSecurityError, match="outside the write area"):
                link.write_db(db, start, bytes(size))
        assert plc_block() == before, "nothing reached the PLC block"
        link.write_db(1, 16, b"\x00\x2a\x00\x01")  # heartbeat + state: inside the area
        assert link.read_db(1, 16, 4) == b"\x00\x2a\x00\x01"
    finally:
        link._do_disconnect()
    time.sleep(0.05)
    assert sim.stop()["foreign_writes"] == 0


def test_s7_config_refuses_an_area_outside_the_db_or_over_the_plc_block() -> None:
    with pytest.raises(ValueError, match="is not the configured DB"):
        S7Config(schema_version=1, protocol="s7", host="127.0.0.1", write_area={"db_number": 2})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="overlaps write_area"):
        S7Config(schema_version=1, protocol="s7", host="127.0.0.1", write_area={"size": 40})  # type: ignore[arg-type]


def test_plc_bench_runs_opcua_signed_and_encrypted() -> None:
    # The benchmark's production setting: throwaway certificates, SignAndEncrypt both ways.
    result = bench_protocol("opcua", decisions=20, interval_ms=10.0, warmup=5, opcua_security="basic256sha256")
    assert result["security"] == "Basic256Sha256 SignAndEncrypt" and result["handshake"] == "method"
    assert result["results"]["acked"] == 20 and result["decisions"] == 20
    assert result["sim"]["decision_late"] == 0 and result["sim"]["decision_missing"] == 0
    assert result["round_trip_ms"]["p50"] is not None and result["round_trip_ms"]["p50"] > 0
    with pytest.raises(ValueError, match="opcua_security"):
        bench_protocol("opcua", decisions=1, opcua_security="basic128")
    with pytest.raises(ValueError, match="opcua_handshake"):
        bench_protocol("opcua", decisions=1, opcua_handshake="subscribe")
