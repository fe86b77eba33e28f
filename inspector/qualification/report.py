"""The qualification report as a PDF (reportlab): tables, thumbnails, hashes and the signature block.

The PDF renders ``report.json`` (the signed content is that JSON, by its SHA-256); it is written
again after each signature so the signature block shows every manifestation (name, time,
meaning) and whether it still holds. Every page names the run and the report's hash.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer

from inspector.reports.pdf import interval, pct, table

THUMB_CM = 3.2
MAX_THUMBS = 48


def write_pdf(report: dict[str, Any], path: Path, *, signatures: Sequence[dict[str, str]] = ()) -> Path:
    """Render ``report`` (the content of report.json) with ``signatures`` (manifestation, meaning, status)."""
    styles = getSampleStyleSheet()
    h1, h2, body = styles["Title"], styles["Heading2"], styles["BodyText"]
    r = report["result"]
    verdict = "PASSED" if report["passed"] else "FAILED"
    story: list[Any] = [
        Paragraph(f"Qualification report {report['run_id']}", h1),
        Paragraph(
            f"Suite <b>{report['suite']['id']}</b> on recipe <b>{report['recipe']['id']}</b> and model "
            f"<b>{report['model']['id']}</b>: <b>{verdict}</b> by the suite's criteria, fixed before the run.",
            body,
        ),
        Spacer(1, 0.3 * cm),
        table(
            [
                ["What", "Identity", "SHA-256"],
                ["Suite", report["suite"]["id"], report["suite"]["sha256"]],
                ["Recipe", report["recipe"]["id"], report["recipe"]["sha256"]],
                ["Model package", report["model"]["id"], report["model"]["digest"]],
                ["Model file", "model.onnx", report["model"]["onnx_sha256"]],
                ["Software", json.dumps(report["software"]), ""],
                ["Audit trail head", f"entry {report['audit_head']['seq']}", report["audit_head"]["hash"]],
                ["Report content", "report.json", report.get("report_sha256", "")],
            ],
            [3 * cm, 6 * cm, 8.5 * cm],
        ),
        Spacer(1, 0.3 * cm),
        Paragraph(
            f"Station {report['station']['id']} ({report['station']['mode']}), run {report['started_utc']} to "
            f"{report['ended_utc']}; {r['items']} items x {report['suite']['presentations']} presentations = "
            f"{r['presentations']} inspections through the production path, {report['performance']['items_per_s']} "
            f"items/s, worst batch p99 latency {report['performance']['latency_ms_p99_worst_batch']} ms; "
            f"{r['not_inspected']} not inspected.",
            body,
        ),
        Paragraph("Acceptance criteria", h2),
        table(
            [["Criterion", "Value", "Limit", "Result"]]
            + [
                [
                    c["criterion"],
                    c["value"] if not isinstance(c["value"], float) else f"{c['value']:.4f}",
                    c["limit"],
                    "pass" if c["passed"] else "FAIL",
                ]
                for c in r["checks"]
            ],
            [7 * cm, 3 * cm, 3.5 * cm, 2 * cm],
        ),
        Paragraph("Detection per class and false rejects", h2),
        table(
            [["Class", "Criticality", "Items", "Reject zone", "Detection", "95 % interval"]]
            + [
                [
                    k,
                    c["criticality"],
                    c["items"],
                    c["items_in_reject_zone"],
                    pct(c["detection"]["rate"]),
                    interval(c["detection"]),
                ]
                for k, c in r["classes"].items()
            ]
            + [
                [
                    "good items",
                    "",
                    r["good_items"],
                    "",
                    f"false reject {pct(r['false_reject']['rate'])}",
                    interval(r["false_reject"]),
                ]
            ],
            [3.5 * cm, 2.5 * cm, 1.5 * cm, 2.2 * cm, 3.5 * cm, 3 * cm],
        ),
    ]
    k = r["knapp"]
    if "rzn_manual" in k:
        story += [
            Paragraph("Knapp: reject-zone efficiency against manual inspection", h2),
            Paragraph(
                f"Reject zone P &gt;= {k['reject_zone']}, accept zone P &lt;= {k['accept_zone']}. Over the "
                f"{k['manual_reject_zone_items']} items manual inspection rejects with P &gt;= {k['reject_zone']}: "
                f"RZN manual {k['rzn_manual']}, RZN station {k['rzn_station']}, reject-zone efficiency "
                f"<b>{k['reject_zone_efficiency']}</b>. Manual reject-zone items the station did not put in its "
                f"reject zone: {len(k['manual_reject_zone_not_rejected_by_station'])}.",
                body,
            ),
        ]
    labels = sorted(r["confusion"])
    columns = sorted({c for row in r["confusion"].values() for c in row})
    story += [
        Paragraph("Confusion (presentations): truth by the station's decision", h2),
        table(
            [["truth \\ decided", *columns]] + [[t, *(r["confusion"][t].get(c, 0) for c in columns)] for t in labels]
        ),
        Paragraph(f"Misjudged items ({len(r['misjudged'])}), critical first", h2),
    ]
    thumbs: list[Any] = []
    for m in r["misjudged"][:MAX_THUMBS]:
        caption = Paragraph(
            f"<b>{m['label']}</b> ({m['criticality'] or 'good'})<br/>{m['item_key']}<br/>"
            f"rejected {m['rejects']} of {m['presentations']}: {json.dumps(m['reasons'])}",
            body.clone("cap", fontSize=7, leading=8),
        )
        img: Any = ""
        if m["files"] and Path(m["files"][0]).is_file():
            img = Image(m["files"][0])
            scale = THUMB_CM * cm / max(img.drawWidth, img.drawHeight)
            img.drawWidth, img.drawHeight = img.drawWidth * scale, img.drawHeight * scale
        thumbs.append([img, caption])
    if thumbs:
        blank: list[Any] = ["", ""]
        rows: list[list[Any]] = [
            [*thumbs[i], *(thumbs[i + 1] if i + 1 < len(thumbs) else blank)] for i in range(0, len(thumbs), 2)
        ]
        story.append(table(rows, [THUMB_CM * cm + 0.3 * cm, 5.2 * cm] * 2, header=False))
    if len(r["misjudged"]) > MAX_THUMBS:
        story.append(Paragraph(f"... and {len(r['misjudged']) - MAX_THUMBS} more, all listed in report.json.", body))
    if not r["misjudged"]:
        story.append(Paragraph("None: every presentation of every item was judged right.", body))
    sig_rows = [["Signature (name, UTC time, meaning)", "Reason", "Status"]] + [
        [s["manifestation"], s.get("reason", ""), s["status"]] for s in signatures
    ]
    if not signatures:
        sig_rows.append(["Not signed yet: QA signs report.json with the password (inspector qualify sign).", "", ""])
    story += [
        KeepTogether([Paragraph("Signatures", h2), table(sig_rows, [9 * cm, 6 * cm, 2.5 * cm])]),
    ]

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(
            1.5 * cm,
            1.0 * cm,
            f"{report['run_id']} · report.json sha256 {report.get('report_sha256', '')} · page {doc.page}",
        )
        canvas.restoreState()

    path.parent.mkdir(parents=True, exist_ok=True)
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=1.5 * cm,
        rightMargin=1.5 * cm,
        topMargin=1.5 * cm,
        bottomMargin=1.8 * cm,
        title=f"Qualification {report['run_id']}",
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return path
