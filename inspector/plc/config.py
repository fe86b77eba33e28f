"""PLC link configuration (``plc_configs/*.yaml``): endpoint, security, tag/register map, timing.

One pydantic model per protocol, told apart by ``protocol``. Each rejects unknown keys,
carries ``schema_version`` and refuses an insecure or unsafe map with an error naming
the field:

- OPC UA: security policy ``None`` only with ``mode: demo``; otherwise Basic256Sha256
  SignAndEncrypt with a client certificate and a trust list;
- S7: the station block must lie inside the configured write area (one DB), the PLC
  block outside it;
- Modbus: the station block must lie inside the write allow-list, the PLC block outside.

``load_plc_config`` also takes the URL forms ``opcua://HOST:PORT``, ``s7://HOST:PORT`` and
``modbus://HOST:PORT``: the built-in sim/demo defaults (the same values as
``plc_configs/<protocol>_sim.yaml``) with that host and port.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, RootModel, TypeAdapter, ValidationError, model_validator

from inspector.config.errors import ConfigError
from inspector.config.loader import format_validation_error, load_yaml_model
from inspector.plc.layout import PLC_BLOCK_BYTES, PLC_BLOCK_REGISTERS, STATION_BLOCK_BYTES, STATION_BLOCK_REGISTERS

PLC_CONFIGS_DIR = "plc_configs"
PROTOCOLS = ("opcua", "s7", "modbus")
DEFAULT_PORTS = {"opcua": 4840, "s7": 102, "modbus": 502}

Host = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\-\[\]]+$")]
Port = Annotated[int, Field(ge=1, le=65535)]


class PlcMode(enum.StrEnum):
    PRODUCTION = "production"
    DEMO = "demo"  # sim/demo only: allows OPC UA security policy None (with a logged warning)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinkTiming(_Strict):
    """Link thread timing. Loss of a dead peer is seen within about heartbeat_ms + io_timeout_ms."""

    heartbeat_ms: int = Field(default=20, ge=5, le=1000, description="station heartbeat write + PLC heartbeat read")
    watchdog_ms: int = Field(default=80, ge=10, le=10_000, description="PLC heartbeat unchanged this long: link lost")
    io_timeout_ms: int = Field(default=60, ge=5, le=10_000, description="one request; longer is a lost link")
    ack_timeout_ms: int = Field(default=50, ge=1, le=10_000, description="wait for the PLC's echo of one decision")
    connect_timeout_ms: int = Field(default=2000, ge=50, le=60_000)
    reconnect_interval_ms: int = Field(default=200, ge=10, le=60_000)
    queue_depth: int = Field(default=256, ge=1, le=100_000, description="decisions waiting for the link thread")

    @model_validator(mode="after")
    def _consistent(self) -> LinkTiming:
        if self.watchdog_ms < 2 * self.heartbeat_ms:
            raise ValueError("watchdog_ms must be at least two heartbeats (2 * heartbeat_ms)")
        if self.io_timeout_ms > self.watchdog_ms:
            raise ValueError("io_timeout_ms must not exceed watchdog_ms")
        return self


class _LinkBase(_Strict):
    schema_version: Literal[1]
    name: str = Field(default="plc", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    mode: PlcMode = PlcMode.PRODUCTION
    host: Host
    timing: LinkTiming = Field(default_factory=LinkTiming)


# -- OPC UA ---------------------------------------------------------------------------------


class OpcUaSecurity(_Strict):
    """Basic256Sha256 SignAndEncrypt with certificate trust, or None (demo mode only)."""

    policy: Literal["Basic256Sha256", "None"] = "Basic256Sha256"
    mode: Literal["SignAndEncrypt"] = "SignAndEncrypt"
    certificate: Path | None = Field(default=None, description="station application certificate (DER or PEM)")
    private_key: Path | None = Field(default=None, description="its private key (PEM); never committed")
    trusted_certificates: Path | None = Field(default=None, description="folder of trusted server/CA certificates")
    revocation_lists: Path | None = Field(default=None, description="folder of CRLs")
    server_certificate: Path | None = Field(default=None, description="pin the server certificate (optional)")
    application_uri: str = Field(default="urn:inspector:station", min_length=1, description="must match the cert")

    @model_validator(mode="after")
    def _complete(self) -> OpcUaSecurity:
        if self.policy != "None":
            missing = [k for k in ("certificate", "private_key", "trusted_certificates") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"policy {self.policy} needs {', '.join(missing)}")
        return self


class OpcUaTags(_Strict):
    """String node identifiers in namespace ``namespace_uri``; variant types are fixed (see docs/plc.md)."""

    namespace_uri: str = "urn:inspector:line"
    item_id: str = "Inspector.Station.ItemId"
    decision: str = "Inspector.Station.Decision"
    reason_code: str = "Inspector.Station.ReasonCode"
    exposure_ms: str = "Inspector.Station.ExposureMs"
    sequence: str = "Inspector.Station.Sequence"
    station_heartbeat: str = "Inspector.Station.Heartbeat"
    station_state: str = "Inspector.Station.State"
    ack_sequence: str = "Inspector.Plc.AckSequence"
    ack_item_id: str = "Inspector.Plc.AckItemId"
    ack_status: str = "Inspector.Plc.AckStatus"
    plc_heartbeat: str = "Inspector.Plc.Heartbeat"
    # handshake: method: the object that owns the method, and the method (see docs/plc.md)
    station_object: str = "Inspector"
    submit_decision: str = "Inspector.SubmitDecision"

    @model_validator(mode="after")
    def _unique(self) -> OpcUaTags:
        ids = [v for k, v in self.model_dump().items() if k != "namespace_uri"]
        if len(set(ids)) != len(ids):
            raise ValueError("every tag needs its own node id")
        return self


class OpcUaConfig(_LinkBase):
    protocol: Literal["opcua"]
    port: Port = 4840
    path: str = Field(default="/inspector", pattern=r"^/[A-Za-z0-9_./-]*$")
    security: OpcUaSecurity = Field(default_factory=OpcUaSecurity)
    tags: OpcUaTags = Field(default_factory=OpcUaTags)
    handshake: Literal["method", "write_read"] = Field(
        default="method",
        description=(
            "method: one Call of SubmitDecision per item, which returns the PLC's acknowledgement (one request); "
            "write_read: Write of the decision tags, then Read of the echo tags (two requests, any PLC)"
        ),
    )

    @model_validator(mode="after")
    def _none_only_in_demo(self) -> OpcUaConfig:
        if self.security.policy == "None" and self.mode is not PlcMode.DEMO:
            raise ValueError("security.policy None is allowed only with mode: demo (sim/demo lines)")
        return self

    @property
    def endpoint_url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{self.path}"


# -- Siemens S7 -----------------------------------------------------------------------------


class S7WriteArea(_Strict):
    """The only bytes the station may write: one DB, [start, start + size)."""

    db_number: int = Field(default=1, ge=1, le=65535)
    start: int = Field(default=0, ge=0, le=65535)
    size: int = Field(default=STATION_BLOCK_BYTES, ge=1, le=65535)


class S7Config(_LinkBase):
    protocol: Literal["s7"]
    port: Port = 102
    rack: int = Field(default=0, ge=0, le=7)
    slot: int = Field(default=1, ge=0, le=31)
    db_number: int = Field(default=1, ge=1, le=65535, description="DB holding both blocks (non-optimized)")
    station_offset: int = Field(default=0, ge=0, le=65535, description="byte offset of the station block")
    plc_offset: int = Field(default=32, ge=0, le=65535, description="byte offset of the PLC block")
    write_area: S7WriteArea = Field(default_factory=S7WriteArea)

    @model_validator(mode="after")
    def _area(self) -> S7Config:
        wa = self.write_area
        if wa.db_number != self.db_number:
            raise ValueError(f"write_area.db_number {wa.db_number} is not the configured DB {self.db_number}")
        if not (wa.start <= self.station_offset and self.station_offset + STATION_BLOCK_BYTES <= wa.start + wa.size):
            raise ValueError(
                f"the station block (DB{self.db_number}.DBB{self.station_offset}, 20 bytes) is outside write_area"
            )
        if self.plc_offset < wa.start + wa.size and wa.start < self.plc_offset + PLC_BLOCK_BYTES:
            raise ValueError("the PLC block overlaps write_area: the station must never write the PLC's words")
        return self


# -- Modbus TCP -----------------------------------------------------------------------------


class RegisterRange(_Strict):
    start: int = Field(ge=0, le=65535)
    count: int = Field(ge=1, le=125)

    def covers(self, address: int, count: int) -> bool:
        return self.start <= address and address + count <= self.start + self.count


class ModbusConfig(_LinkBase):
    protocol: Literal["modbus"]
    port: Port = 502
    device_id: int = Field(default=1, ge=0, le=247)
    station_base: int = Field(default=0, ge=0, le=65535, description="first holding register of the station block")
    plc_base: int = Field(default=16, ge=0, le=65535, description="first holding register of the PLC block")
    allowed_write_registers: tuple[RegisterRange, ...] = Field(
        default=(RegisterRange(start=0, count=STATION_BLOCK_REGISTERS),),
        min_length=1,
        description="the only holding registers the client may write",
    )

    @model_validator(mode="after")
    def _allow_list(self) -> ModbusConfig:
        if not self.write_allowed(self.station_base, STATION_BLOCK_REGISTERS):
            raise ValueError(
                f"the station block (registers {self.station_base}..{self.station_base + 9}) is not "
                "inside allowed_write_registers"
            )
        for r in self.allowed_write_registers:
            if r.start < self.plc_base + PLC_BLOCK_REGISTERS and self.plc_base < r.start + r.count:
                raise ValueError("allowed_write_registers overlaps the PLC block: the station must never write it")
        return self

    def write_allowed(self, address: int, count: int) -> bool:
        """True when every register in [address, address + count) is in one allow-listed range."""
        return any(r.covers(address, count) for r in self.allowed_write_registers)


PlcConfig = Annotated[OpcUaConfig | S7Config | ModbusConfig, Field(discriminator="protocol")]
_ADAPTER: TypeAdapter[OpcUaConfig | S7Config | ModbusConfig] = TypeAdapter(PlcConfig)


def sim_config(
    protocol: str, host: str = "127.0.0.1", port: int | None = None
) -> OpcUaConfig | S7Config | ModbusConfig:
    """The built-in sim/demo defaults for ``protocol`` (OPC UA: demo mode, policy None)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown PLC protocol {protocol!r}; choose {', '.join(PROTOCOLS)}")
    data: dict[str, object] = {
        "schema_version": 1,
        "protocol": protocol,
        "name": f"{protocol}-sim",
        "host": host,
        "port": port or DEFAULT_PORTS[protocol],
    }
    if protocol == "opcua":
        data["mode"] = "demo"
        data["security"] = {"policy": "None"}
    else:
        data["mode"] = "demo"
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(f"{protocol}://{host}:{port}: {format_validation_error(exc)}") from None


def parse_plc_url(url: str) -> OpcUaConfig | S7Config | ModbusConfig:
    """``opcua://127.0.0.1:4840`` -> the sim/demo config of that protocol at that host and port."""
    parts = urlsplit(url)
    if parts.scheme not in PROTOCOLS:
        raise ConfigError(f"{url!r}: PLC URL must start with opcua://, s7:// or modbus://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{url!r}: port is not a number in 1..65535") from None
    if not parts.hostname:
        raise ConfigError(f"{url!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(f"{url!r}: only {parts.scheme}://HOST:PORT is accepted; use a YAML file for more")
    return sim_config(parts.scheme, parts.hostname, port)


def load_plc_config(
    source: str | os.PathLike[str] | OpcUaConfig | S7Config | ModbusConfig, root: Path | None = None
) -> OpcUaConfig | S7Config | ModbusConfig:
    """A config object, a URL (``modbus://127.0.0.1:5020``) or a YAML file (path, or name in plc_configs/)."""
    if isinstance(source, OpcUaConfig | S7Config | ModbusConfig):
        return source
    text = os.fspath(source)
    if "://" in text:
        return parse_plc_url(text)
    path = Path(text)
    if not path.suffix and root is not None:
        path = root / PLC_CONFIGS_DIR / f"{text}.yaml"
    elif not path.is_absolute() and not path.exists() and root is not None:
        path = root / path
    cfg = load_yaml_model(path, _PlcFile).root
    return _resolve_paths(cfg, path.parent)


class _PlcFile(RootModel[PlcConfig]):
    """A PLC config file: one protocol's model, chosen by its ``protocol`` key."""


def _resolve_paths(cfg: OpcUaConfig | S7Config | ModbusConfig, base: Path) -> OpcUaConfig | S7Config | ModbusConfig:
    """Certificate paths in a file are relative to that file."""
    if not isinstance(cfg, OpcUaConfig):
        return cfg
    sec = cfg.security
    updates: dict[str, Path] = {}
    for key in ("certificate", "private_key", "trusted_certificates", "revocation_lists", "server_certificate"):
        value = getattr(sec, key)
        if value is not None and not value.is_absolute():
            updates[key] = (base / value).resolve()
    if not updates:
        return cfg
    return cfg.model_copy(update={"security": sec.model_copy(update=updates)})
