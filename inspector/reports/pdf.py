"""The parts every PDF report uses: tables, percentages, the signature block (reportlab)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reportlab.lib import colors
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import Flowable, Paragraph, Table, TableStyle


def pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.2f} %"


def interval(r: dict[str, Any]) -> str:
    iv = r.get("interval95")
    return "–" if not iv else f"{100 * iv[0]:.1f}–{100 * iv[1]:.1f} %"


def table(rows: Sequence[Sequence[Any]], widths: Sequence[float] | None = None, *, header: bool = True) -> Table:
    styles = getSampleStyleSheet()
    cell = styles["BodyText"].clone("cell", fontSize=8, leading=10)
    data = [[v if isinstance(v, Flowable) else Paragraph(str(v), cell) for v in row] for row in rows]
    t = Table(data, colWidths=widths, repeatRows=1 if header else 0)
    style = [
        ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")))
    t.setStyle(TableStyle(style))
    return t


def signature_rows(signatures: Sequence[dict[str, str]], expected: Sequence[str]) -> list[list[str]]:
    """The signature block: every signature given (name, time, meaning, status), then the empty lines still due."""
    rows = [["Meaning", "Signed by (name, user, time)", "Status", "Reason"]]
    for s in signatures:
        rows.append([s["meaning"], s["manifestation"], s["status"], s.get("reason", "")])
    signed = {s["meaning"] for s in signatures}
    for meaning in expected:
        if meaning not in signed:
            rows.append([meaning, "(not signed yet)", "", ""])
    return rows
