"""Siemens S7 driver (python-snap7 client, one data block).

S7comm has no authentication or encryption. The client writes only inside the configured
write area (one DB, a byte range); any other write raises :class:`PlcSecurityError`
before it reaches the wire. Real S7-1200/1500 CPUs need PUT/GET enabled and a
non-optimized DB. The snap7 client does not recover by itself: a lost link is
disconnect() + a fresh connect().
"""

from __future__ import annotations

import logging

import snap7
from snap7.error import S7ConnectionError, S7Error, S7ProtocolError, S7TimeoutError

from inspector.plc.base import PlcIoError, PlcLink, PlcProtocolError, PlcSecurityError, PlcValueError
from inspector.plc.config import S7Config
from inspector.plc.layout import (
    PLC_BLOCK_BYTES,
    SEQUENCE_OFFSET,
    STATUS_OFFSET,
    DecisionWords,
    PlcWords,
    StationStateCode,
    pack_decision,
    pack_sequence,
    pack_status,
    unpack_plc,
)

log = logging.getLogger(__name__)


class S7Link(PlcLink):
    protocol = "s7"

    def __init__(self, config: S7Config) -> None:
        super().__init__(config)
        self.cfg = config
        self._client: snap7.Client | None = None

    # -- area-checked access (link thread, or a test before start) ---------------------------
    def check_write(self, db_number: int, start: int, size: int) -> None:
        """Raise PlcSecurityError unless the bytes lie inside the configured write area."""
        wa = self.cfg.write_area
        if db_number != wa.db_number or size < 1 or start < wa.start or start + size > wa.start + wa.size:
            raise PlcSecurityError(
                f"S7 write to DB{db_number}.DBB{start} ({size} bytes) refused: outside the write area "
                f"DB{wa.db_number}.DBB{wa.start}..{wa.start + wa.size - 1}"
            )

    def write_db(self, db_number: int, start: int, data: bytes) -> None:
        """The only path to a DB write; enforces the write area first."""
        self.check_write(db_number, start, len(data))
        client = self._require()
        try:
            client.db_write(db_number, start, bytearray(data))
        except S7ProtocolError as exc:
            raise PlcProtocolError(f"S7 write DB{db_number}.DBB{start}: {exc}") from exc
        except (S7Error, OSError) as exc:
            raise PlcIoError(f"S7 write DB{db_number}.DBB{start}: {exc}") from exc

    def read_db(self, db_number: int, start: int, size: int) -> bytes:
        client = self._require()
        try:
            data = client.db_read(db_number, start, size)
        except S7ProtocolError as exc:
            raise PlcProtocolError(f"S7 read DB{db_number}.DBB{start}: {exc}") from exc
        except (S7Error, OSError) as exc:
            raise PlcIoError(f"S7 read DB{db_number}.DBB{start}: {exc}") from exc
        if len(data) != size:
            raise PlcValueError(f"S7 read DB{db_number}.DBB{start}: {len(data)} bytes, expected {size}")
        return bytes(data)

    def _require(self) -> snap7.Client:
        if self._client is None or not self._client.connected:
            raise PlcIoError("S7 client not connected")
        return self._client

    # -- hooks --------------------------------------------------------------------------------
    def _do_connect(self, timeout_s: float) -> None:
        self._do_disconnect()
        client = snap7.Client()
        try:
            client.connect(self.cfg.host, self.cfg.rack, self.cfg.slot, self.cfg.port)
        except (S7ConnectionError, S7TimeoutError, S7Error, OSError) as exc:
            client.disconnect()
            raise PlcIoError(f"S7 {self.cfg.host}:{self.cfg.port}: {exc}") from exc
        conn = client.connection
        if conn is not None and conn.socket is not None:
            # Every later request is bounded by the I/O timeout, so a dead peer is a lost link at once.
            conn.timeout = self.io_timeout_s
            conn.socket.settimeout(self.io_timeout_s)
        self._client = client

    def _do_disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()

    def _do_write_decision(self, words: DecisionWords) -> None:
        self.write_db(self.cfg.db_number, self.cfg.station_offset, pack_decision(words))

    def _do_write_sequence(self, sequence: int) -> None:
        self.write_db(self.cfg.db_number, self.cfg.station_offset + SEQUENCE_OFFSET, pack_sequence(sequence))

    def _do_write_decision_sequence(self, words: DecisionWords, sequence: int) -> None:
        # One DB write of 16 contiguous bytes: within one PDU, so the CPU applies it between scans.
        self.write_db(self.cfg.db_number, self.cfg.station_offset, pack_decision(words) + pack_sequence(sequence))

    def _do_write_status(self, heartbeat: int, state: StationStateCode) -> None:
        self.write_db(self.cfg.db_number, self.cfg.station_offset + STATUS_OFFSET, pack_status(heartbeat, int(state)))

    def _do_read_plc(self) -> PlcWords:
        return unpack_plc(self.read_db(self.cfg.db_number, self.cfg.plc_offset, PLC_BLOCK_BYTES))
