"""Modbus TCP driver (pymodbus sync client, holding registers).

Modbus has no security of its own, so the client enforces a write allow-list: every write
is checked against ``allowed_write_registers`` before anything goes on the wire, and a
write outside it raises :class:`PlcSecurityError`. Timeouts are short and retries zero
(pymodbus' default 3 s x 3 retries would block 12 s on a dead peer).
"""

from __future__ import annotations

import logging

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from inspector.plc.base import PlcIoError, PlcLink, PlcProtocolError, PlcSecurityError
from inspector.plc.config import ModbusConfig
from inspector.plc.layout import (
    PLC_BLOCK_REGISTERS,
    SEQUENCE_OFFSET,
    STATUS_OFFSET,
    DecisionWords,
    PlcWords,
    StationStateCode,
    bytes_to_registers,
    pack_decision,
    pack_sequence,
    pack_status,
    registers_to_bytes,
    unpack_plc,
)

log = logging.getLogger(__name__)


class ModbusLink(PlcLink):
    protocol = "modbus"

    def __init__(self, config: ModbusConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self._client: ModbusTcpClient | None = None

    # -- allow-listed register access (link thread, or a test before start) -----------------
    def check_write(self, address: int, count: int) -> None:
        """Raise PlcSecurityError unless [address, address + count) is allow-listed."""
        if count < 1 or not self.cfg.write_allowed(address, count):
            raise PlcSecurityError(
                f"Modbus write to registers {address}..{address + count - 1} refused: not in allowed_write_registers"
            )

    def write_registers(self, address: int, values: list[int]) -> None:
        """The only path to a register write; enforces the allow-list first."""
        self.check_write(address, len(values))
        client = self._require()
        try:
            rr = client.write_registers(address, values, device_id=self.cfg.device_id)
        except ModbusException as exc:
            raise PlcIoError(f"Modbus write {address}: {exc}") from exc
        if rr.isError():
            raise PlcProtocolError(f"Modbus write {address}: the PLC answered {rr}")

    def read_registers(self, address: int, count: int) -> list[int]:
        client = self._require()
        try:
            rr = client.read_holding_registers(address, count=count, device_id=self.cfg.device_id)
        except ModbusException as exc:
            raise PlcIoError(f"Modbus read {address}: {exc}") from exc
        if rr.isError():
            raise PlcProtocolError(f"Modbus read {address}: the PLC answered {rr}")
        regs = list(rr.registers)
        if len(regs) != count:
            raise PlcIoError(f"Modbus read {address}: {len(regs)} registers, expected {count}")
        return regs

    def _require(self) -> ModbusTcpClient:
        if self._client is None or not self._client.connected:
            raise PlcIoError("Modbus client not connected")
        return self._client

    # -- hooks --------------------------------------------------------------------------------
    def _do_connect(self, timeout_s: float) -> None:
        self._do_disconnect()
        client = ModbusTcpClient(self.cfg.host, port=self.cfg.port, timeout=timeout_s, retries=0)
        if not client.connect():  # type: ignore[no-untyped-call]
            client.close()  # type: ignore[no-untyped-call]
            raise PlcIoError(f"Modbus {self.cfg.host}:{self.cfg.port}: connection refused or timed out")
        # The same setting bounds every later receive: short, so a dead peer is a lost link at once.
        client.comm_params.timeout_connect = self.io_timeout_s
        self._client = client

    def _do_disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]

    def _do_write_decision(self, words: DecisionWords) -> None:
        self.write_registers(self.cfg.station_base, bytes_to_registers(pack_decision(words)))

    def _do_write_sequence(self, sequence: int) -> None:
        self.write_registers(self.cfg.station_base + SEQUENCE_OFFSET // 2, bytes_to_registers(pack_sequence(sequence)))

    def _do_write_decision_sequence(self, words: DecisionWords, sequence: int) -> None:
        # One write-multiple-registers request: the server applies it whole, so the PLC never
        # sees the new sequence with the old decision words.
        regs = bytes_to_registers(pack_decision(words) + pack_sequence(sequence))
        self.write_registers(self.cfg.station_base, regs)

    def _do_write_status(self, heartbeat: int, state: StationStateCode) -> None:
        regs = bytes_to_registers(pack_status(heartbeat, int(state)))
        self.write_registers(self.cfg.station_base + STATUS_OFFSET // 2, regs)

    def _do_read_plc(self) -> PlcWords:
        regs = self.read_registers(self.cfg.plc_base, PLC_BLOCK_REGISTERS)
        return unpack_plc(registers_to_bytes(regs))
