"""The reject-rate trend across batches of a recipe: per class and batch, with the alert and action limits.

Read from the records only: each ended batch's own rates (its ``trending`` block, judged against
the limits it ran with) or, for a batch whose recipe trended nothing, the rates counted from its
item rows. Re-inspections and start-up challenges are left out (they are not production passes);
qualification runs too. :func:`write_pdf` lays the picture (drawn by the command, PNG) and the
table into a PDF.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer

from inspector.events import utc_now
from inspector.records.store import RecordError, RecordStore
from inspector.reports.pdf import pct, table

EXCLUDED = ("start-up challenge", "qualification run")


class TrendReportError(RecordError):
    """Nothing to trend (no ended batch of that recipe)."""


def build(store: RecordStore, recipe_id: str, *, last: int = 30) -> dict[str, Any]:
    """The last ``last`` ended production (or demo) batches of ``recipe_id``, oldest first, with rates per class."""
    rows = store.execute(
        "SELECT batch_id, recipe_version, started_utc, state, release_status, summary FROM batches"
        " WHERE recipe_id = ? AND state <> 'running' ORDER BY started_utc DESC, batch_id DESC",
        (recipe_id,),
    ).fetchall()
    batches = []
    limits: dict[str, dict[str, float]] = {}
    for batch_id, version, started, state, release, text in rows:
        summary = json.loads(text) if text else {}
        if release in EXCLUDED or summary.get("reinspection_of"):
            continue
        trend = summary.get("trending")
        if trend:
            rates = {c: v["batch_rate"] for c, v in trend["classes"].items()}
            for c, v in trend["classes"].items():
                limits.setdefault(c, {"alert": v["alert"], "action": v["action"]})
            items = int(trend["items"])
        else:
            counts = dict(
                store.execute("SELECT reason, COUNT(*) FROM items WHERE batch_id = ? GROUP BY reason", (batch_id,))
            )
            items = sum(counts.values())
            rates = {c: n / items for c, n in counts.items() if c != "ok"} if items else {}
        batches.append({"batch_id": batch_id, "recipe_version": version, "started_utc": started, "state": state,
                        "release_status": release, "items": items, "rates": rates})  # fmt: skip
        if len(batches) >= last:
            break
    if not batches:
        raise TrendReportError(f"recipe {recipe_id}: no ended batch in these records")
    batches.reverse()
    classes = sorted(limits) or sorted({c for b in batches for c in b["rates"]})
    for b in batches:
        b["levels"] = {}
        for c in classes:
            lim = limits.get(c)
            rate = b["rates"].get(c, 0.0)
            b["rates"][c] = rate
            if lim is not None:
                b["levels"][c] = "action" if rate > lim["action"] else "alert" if rate > lim["alert"] else "normal"
    return {
        "report_version": 1,
        "recipe_id": recipe_id,
        "generated_utc": utc_now(),
        "classes": classes,
        "limits": limits,
        "batches": batches,
        "out_of_limits": [
            {"batch_id": b["batch_id"], "class": c, "level": lvl, "rate": b["rates"][c]}
            for b in batches
            for c, lvl in b["levels"].items()
            if lvl != "normal"
        ],
    }


def write_pdf(report: dict[str, Any], picture: Path | None, path: Path) -> Path:
    styles = getSampleStyleSheet()
    h1, h2, body = styles["Title"], styles["Heading2"], styles["BodyText"]
    story: list[Any] = [
        Paragraph(f"Reject-rate trend: recipe {report['recipe_id']}", h1),
        Paragraph(
            f"{len(report['batches'])} batches, {report['batches'][0]['started_utc']} to"
            f" {report['batches'][-1]['started_utc']}; generated {report['generated_utc']}. Start-up challenges,"
            " qualification runs and re-inspections are left out.",
            body,
        ),
    ]
    if picture is not None and picture.is_file():
        story += [Spacer(1, 0.3 * cm), Image(str(picture), width=25 * cm, height=25 * cm * 0.5, kind="proportional")]
    story.append(Paragraph("Out of limits", h2))
    rows = [["Batch", "Class", "Level", "Rate"]]
    rows += [[o["batch_id"], o["class"], o["level"].upper(), pct(o["rate"])] for o in report["out_of_limits"]]
    story.append(table(rows) if len(rows) > 1 else Paragraph("None: every batch within its limits.", body))
    story.append(Paragraph("Rates per batch", h2))
    header = ["Batch", "Items", *report["classes"]]
    rows = [header]
    for b in report["batches"]:
        rows.append([b["batch_id"], b["items"], *[pct(b["rates"][c]) for c in report["classes"]]])
    story.append(table(rows))
    doc = SimpleDocTemplate(str(path), pagesize=landscape(A4), leftMargin=1.5 * cm, rightMargin=1.5 * cm,
                            title=f"Reject-rate trend {report['recipe_id']}")  # fmt: skip
    doc.build(story)
    return path
