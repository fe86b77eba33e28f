"""The HMI's view of the PLC link and, in demo mode, the line simulator (``inspector.plc``).

- ``attach_plc(session, url)`` connects the station of a ``StationSession`` to a PLC (its
  sink reports faults through ``Station.report_fault("plc", ...)``, shown as alarms);
- ``start_line_simulator(session)`` (demo only) starts ``inspector line-sim`` with a reject
  gate and attaches the station to it.

Whatever is returned is closed with ``close()`` (or ``stop()``) when the session closes,
and described with ``describe()`` / ``url`` / ``connected`` when present.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from inspector.runner import StationSession

log = logging.getLogger(__name__)


def attach_plc(session: StationSession, url: str) -> Any:
    """Connect the session's station to the PLC at ``url`` (raises ConfigError / PlcError)."""
    from inspector.plc.sink import attach_plc as attach

    return attach(session, url)


def start_line_simulator(session: StationSession) -> Any | None:
    """Demo: start the simulated line and attach the station to it; ``None`` if it cannot start."""
    from inspector.plc.demo import start_line_simulator as start

    try:
        return start(session)
    except Exception:
        # The demo runs without a line simulator rather than not at all; the header says so.
        log.exception("line simulator did not start; the demo runs without a PLC")
        return None


def describe(link: Any | None) -> str:
    """One short line for the header."""
    if link is None:
        return "none"
    if callable(getattr(link, "describe", None)):
        with contextlib.suppress(Exception):
            return str(link.describe())
    url = getattr(link, "url", None)
    return str(url) if url else type(link).__name__


def is_connected(link: Any | None) -> bool | None:
    """``True``/``False`` when the link says so, ``None`` when it cannot tell."""
    value = getattr(link, "connected", None)
    if callable(value):
        with contextlib.suppress(Exception):
            value = value()
    return value if isinstance(value, bool) else None


def close(link: Any | None) -> None:
    if link is None:
        return
    for name in ("close", "stop"):
        fn = getattr(link, name, None)
        if callable(fn):
            try:
                fn()
            except Exception:
                log.exception("closing the PLC link failed")
            return
