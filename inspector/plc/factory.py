"""The PLC link for a configuration: the one place that knows every driver.

Drivers are imported only when a link of their kind is created, so each pulls in its own
protocol library (asyncua, python-snap7, pymodbus) only when it is used. :mod:`.base` knows
no driver; the drivers import :mod:`.base`.
"""

from __future__ import annotations

from inspector.plc.base import AnyPlcConfig, PlcLink
from inspector.plc.config import OpcUaConfig, S7Config


def create_link(config: AnyPlcConfig) -> PlcLink:
    """The driver for ``config.protocol`` (imported lazily: each pulls in its own library)."""
    if isinstance(config, OpcUaConfig):
        from inspector.plc.opcua import OpcUaLink

        return OpcUaLink(config)
    if isinstance(config, S7Config):
        from inspector.plc.s7 import S7Link

        return S7Link(config)
    from inspector.plc.modbus import ModbusLink

    return ModbusLink(config)
