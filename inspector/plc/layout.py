"""The words exchanged with the line PLC, and their byte layout on S7 and Modbus.

Two blocks, each owned by one side (docs/plc.md has the tables):

- the *station block* (station writes, PLC reads): item id, decision, reason code,
  exposure time, sequence (the strobe), station heartbeat, station state;
- the *PLC block* (PLC writes, station reads): echoed sequence, echoed item id, ack
  status, PLC heartbeat.

S7 and Modbus share one big-endian byte layout (a Modbus register is a big-endian
16-bit word; 32-bit values put the high word first, like an S7 DWORD), so the drivers and
the line simulator pack and unpack the same bytes.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF


class DecisionCode(enum.IntEnum):
    """The decision word. Zero is never an accept, so cleared memory reads as 'no decision'."""

    NONE = 0
    ACCEPT = 1
    REJECT = 2


class AckStatus(enum.IntEnum):
    """The PLC's verdict on a decision it echoes."""

    NONE = 0
    ON_TIME = 1  # valid and before the item reached the gate
    LATE = 2  # the item had already passed the gate (rejected there)
    REFUSED = 3  # the PLC refused the values (out of range, tracking mismatch, station not running)


class StationStateCode(enum.IntEnum):
    """The station state register the PLC reads (OPC 40100-1 style, reduced)."""

    UNKNOWN = 0
    IDLE = 1
    RUNNING = 2
    FAULT = 3


@dataclass(frozen=True)
class DecisionWords:
    """The decision part of the station block (written before the sequence strobe)."""

    item_id: int
    decision: int
    reason_code: int
    exposure_ms: int


@dataclass(frozen=True)
class StationWords:
    """The whole station block as the PLC sees it."""

    item_id: int
    decision: int
    reason_code: int
    exposure_ms: int
    sequence: int
    heartbeat: int
    state: int


@dataclass(frozen=True)
class PlcWords:
    """The PLC block as read by the station (validated by the link, never trusted as is)."""

    ack_sequence: int
    ack_item_id: int
    ack_status: int
    heartbeat: int


# Byte layout of the station block: item_id u32, decision u16, reason u16, exposure_ms u32 | sequence u32 |
# heartbeat u16, state u16.
DECISION_STRUCT = struct.Struct(">IHHI")
SEQUENCE_STRUCT = struct.Struct(">I")
STATUS_STRUCT = struct.Struct(">HH")
STATION_STRUCT = struct.Struct(">IHHIIHH")
PLC_STRUCT = struct.Struct(">IIHH")

STATION_BLOCK_BYTES = STATION_STRUCT.size  # 20
PLC_BLOCK_BYTES = PLC_STRUCT.size  # 12
SEQUENCE_OFFSET = DECISION_STRUCT.size  # 12
STATUS_OFFSET = SEQUENCE_OFFSET + SEQUENCE_STRUCT.size  # 16
STATION_BLOCK_REGISTERS = STATION_BLOCK_BYTES // 2  # 10
PLC_BLOCK_REGISTERS = PLC_BLOCK_BYTES // 2  # 6


def pack_decision(w: DecisionWords) -> bytes:
    return DECISION_STRUCT.pack(w.item_id, w.decision, w.reason_code, w.exposure_ms)


def pack_sequence(sequence: int) -> bytes:
    return SEQUENCE_STRUCT.pack(sequence)


def pack_status(heartbeat: int, state: int) -> bytes:
    return STATUS_STRUCT.pack(heartbeat, state)


def unpack_station(data: bytes | bytearray) -> StationWords:
    return StationWords(*STATION_STRUCT.unpack(bytes(data[:STATION_BLOCK_BYTES])))


def pack_plc(w: PlcWords) -> bytes:
    return PLC_STRUCT.pack(w.ack_sequence, w.ack_item_id, w.ack_status, w.heartbeat)


def unpack_plc(data: bytes | bytearray) -> PlcWords:
    return PlcWords(*PLC_STRUCT.unpack(bytes(data[:PLC_BLOCK_BYTES])))


def bytes_to_registers(data: bytes) -> list[int]:
    if len(data) % 2:
        raise ValueError("a register block needs an even number of bytes")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def registers_to_bytes(registers: list[int]) -> bytes:
    return b"".join(int(r).to_bytes(2, "big") for r in registers)
