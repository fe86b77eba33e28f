"""docs/alarms.md names every alarm code the station can raise, and no code that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Alarm codes as they appear in the source: passed to an alarm call, chosen with a severity, or
# carried by a PLC link event; plus <SOURCE>_FAULT / _RECOVERED for each report_fault source.
_LITERAL = re.compile(
    r"(?:raise_alarm|_alarm|_store_alarm)\(\s*\"([A-Z][A-Z0-9_]+)\"|\(\"([A-Z][A-Z0-9_]+)\", AlarmSeverity"
)
_EVENT = re.compile(r"code=\"([A-Z][A-Z0-9_]+)\"")
_FAULT_SOURCE = re.compile(r"report_fault\(\"([a-z]+)\"")


def _source_codes() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "inspector").rglob("*.py"):
        text = path.read_text()
        codes |= {a or b for a, b in _LITERAL.findall(text)}
        codes |= set(_EVENT.findall(text))
        for source in _FAULT_SOURCE.findall(text):
            codes |= {f"{source.upper()}_FAULT", f"{source.upper()}_RECOVERED"}
    return codes


def test_every_alarm_code_is_documented() -> None:
    codes = _source_codes()
    assert {"CAMERA_FAULT", "INPUT_DRIFT", "PLC_FAULT", "PLC_SECURITY", "FRAME_GAP"} <= codes  # the scan works
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "alarms.md").read_text()))
    documented = named - {"FAULT", "WARNING", "INFO"}  # the severities
    assert codes - documented == set(), "alarm codes missing from docs/alarms.md"
    assert documented - codes == set(), "docs/alarms.md names codes the station never raises"
