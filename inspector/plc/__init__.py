"""PLC link: decisions to the line PLC over OPC UA, Siemens S7 or Modbus TCP, and a line simulator.

- :mod:`~inspector.plc.base`: the typed :class:`PlcLink` (threading, handshake, heartbeat,
  watchdog, reconnect) that the protocol drivers (:mod:`.opcua`, :mod:`.s7`, :mod:`.modbus`)
  fill in;
- :mod:`~inspector.plc.factory`: :func:`create_link`, the driver for a configuration;
- :mod:`~inspector.plc.config`: validated PLC configuration (``plc_configs/*.yaml`` or a URL);
- :mod:`~inspector.plc.sink`: :func:`attach_plc` / :class:`PlcSink` / :func:`plc_summary` for a station;
- :mod:`~inspector.plc.opcua_space`: the OPC UA address space, shared by the driver and the simulator;
- :mod:`~inspector.plc.sim`: the line simulator (conveyor + reject gate, positive release), a twin
  that production code never imports (the demo assembly excepted);
- :mod:`~inspector.plc.sim.bench`: decision round-trip benchmark against the simulator (``inspector plc-bench``).

Drivers import their protocol library only when a link of that kind is created.
"""

from inspector.plc.base import (
    AckResult,
    DecisionRequest,
    ItemAck,
    LinkEvent,
    LinkEventKind,
    LinkState,
    PlcError,
    PlcIoError,
    PlcLink,
    PlcProtocolError,
    PlcSecurityError,
    PlcValueError,
)
from inspector.plc.config import ModbusConfig, OpcUaConfig, S7Config, load_plc_config, parse_plc_url
from inspector.plc.factory import create_link

__all__ = [
    "AckResult",
    "DecisionRequest",
    "ItemAck",
    "LinkEvent",
    "LinkEventKind",
    "LinkState",
    "ModbusConfig",
    "OpcUaConfig",
    "PlcError",
    "PlcIoError",
    "PlcLink",
    "PlcProtocolError",
    "PlcSecurityError",
    "PlcValueError",
    "S7Config",
    "create_link",
    "load_plc_config",
    "parse_plc_url",
]
