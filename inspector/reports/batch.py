"""The batch report: what a batch record holds, as JSON and PDF, signed by its operator and QA.

Everything in it is read from the record database, never from the running station: the
reconciliation, decisions per reason (defect classes apart from ``not_inspected``), the alarms
with their acknowledgements, the start-up challenge the batch began with, the recipe and model
with their release signatures, the audit entries written while the batch ran, and the head of
the batch's item chain with its verification.

The signed content is the report without its generation time, by the SHA-256 of its canonical
JSON: a report built again from unchanged records has the same hash, so its signatures stay
valid; anything recorded later (an alarm acknowledged after the end) changes the hash and every
earlier signature shows INVALID. The operator signs ``authored``, then a QA user other than the
operator signs ``reviewed``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer

from inspector.events import utc_now
from inspector.records import audit, lifecycle
from inspector.records.chain import verify_batch
from inspector.records.signatures import Signature, sign_as, signatures, status
from inspector.records.store import RecordConstraintError, RecordError, RecordStore
from inspector.records.users import authenticate
from inspector.reports.pdf import pct, signature_rows, table
from inspector.roles import Meaning

OBJECT_TYPE = "batch_report"
REPORT_JSON = "batch-report.json"
REPORT_PDF = "batch-report.pdf"
SIGNING_ORDER = (Meaning.AUTHORED, Meaning.REVIEWED)  # the operator, then QA
_VOLATILE = ("generated_utc",)


class BatchReportError(RecordError):
    """The batch cannot be reported (still running) or the signature is out of order."""


def build(store: RecordStore, batch_id: str) -> dict[str, Any]:
    """The report of an ended batch, from its records."""
    b = store.batch(batch_id)
    if b["state"] == "running":
        raise BatchReportError(f"batch {batch_id} is still running: its report is made when it ends")
    summary: dict[str, Any] = b["summary"] or {}
    decisions = [
        {"decision": d, "reason": r, "items": int(n)}
        for d, r, n in store.execute(
            "SELECT decision, reason, COUNT(*) FROM items WHERE batch_id = ? GROUP BY decision, reason"
            " ORDER BY decision, reason",
            (batch_id,),
        )
    ]
    recorded = sum(d["items"] for d in decisions)
    accepted = sum(d["items"] for d in decisions if d["decision"] == "accept")
    not_inspected = sum(d["items"] for d in decisions if d["reason"] == "not_inspected")
    alarms = [
        {
            "uid": a.uid,
            "code": a.code,
            "severity": a.severity,
            "raised_utc": a.created_utc,
            "message": a.message,
            "acknowledged_utc": a.acknowledged_utc,
            "acknowledged_by": a.acknowledged_by,
        }
        for a in store.alarms(batch_id)
    ]
    chain = verify_batch(store, batch_id)
    return {
        "report_version": 1,
        "batch_id": batch_id,
        "generated_utc": utc_now(),
        "release_status": b.get("release_status"),
        "state": b["state"],  # ended, or aborted (its station stopped without ending it)
        "plc": b.get("plc"),
        "thresholds": b.get("thresholds"),
        "thresholds_validated": b.get("thresholds_validated"),
        "product": b["product"],
        "operator": b["operator"],
        "started_utc": b["started_utc"],
        "ended_utc": b["ended_utc"],
        "recipe": {"id": b["recipe_id"], "version": b["recipe_version"], "sha256": b["recipe_sha256"]},
        "model": {
            "id": b["model_id"],
            "version": b["model_version"],
            "onnx_sha256": b["model_sha256"],
            "digest": summary.get("model_digest"),
        },
        "camera": {"serial": b["camera_serial"], "settings": b["camera_settings"]},
        "counts": {
            "recorded": recorded,
            "accepted": accepted,
            "rejected": recorded - accepted,
            "not_inspected": not_inspected,
            "defect_rejects": recorded - accepted - not_inspected,
        },
        "decisions": decisions,
        "reconciliation": summary.get("reconciliation"),
        "latency_ms": {k: summary.get(k) for k in ("latency_ms_p50", "latency_ms_p99", "latency_ms_max")},
        "startup_challenge": _challenge(store, summary.get("startup_challenge")),
        "trending": summary.get("trending"),
        "reinspection_of": summary.get("reinspection_of"),
        "reinspections": [
            r[0]
            for r in store.execute(
                "SELECT batch_id FROM batches WHERE json_extract(summary, '$.reinspection_of') = ?"
                " ORDER BY started_utc",
                (batch_id,),
            )
        ],
        "alarms": alarms,
        "alarms_unacknowledged": sum(1 for a in alarms if a["acknowledged_utc"] is None),
        "releases": [_release(store, "recipe", b, summary), _release(store, "model", b, summary)],
        "audit": _audit(store, batch_id, b),
        "item_chain": {"head": b.get("items_head"), "verification": chain.as_dict()},
    }


def _challenge(store: RecordStore, ref: dict[str, Any] | None) -> dict[str, Any] | None:
    """The challenge the batch began with, as its own record holds it (item by item)."""
    if not ref:
        return None
    if "items" in ref:  # the challenge batch itself
        return ref
    try:
        full = (store.batch(ref["batch_id"])["summary"] or {}).get("startup_challenge")
    except RecordError:
        full = None
    return full or ref


def _release(store: RecordStore, kind: str, b: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    object_id = f"{b[f'{kind}_id']}@{b[f'{kind}_version']}"
    sha = b["recipe_sha256"] if kind == "recipe" else summary.get("model_digest")
    started = b["started_utc"]
    steps = [s for s in lifecycle.history(store, kind, object_id) if s.at_utc <= started]
    sigs = [s for s in signatures(store, kind, object_id) if s.signed_utc <= started]
    return {
        "object_type": kind,
        "object_id": object_id,
        "sha256": sha,
        "state_at_start": next((s.state.value for s in reversed(steps) if sha is None or s.sha256 == sha), None),
        "signatures": [
            {
                "meaning": s.meaning.value,
                "manifestation": s.manifestation(),
                "status": "unknown" if sha is None else status(s, sha),
                "reason": s.reason,
            }
            for s in sigs
            if sha is None or s.object_sha256 == sha
        ],
    }


def _audit(store: RecordStore, batch_id: str, b: dict[str, Any]) -> dict[str, Any]:
    """The audit entries from the batch's start to its end, and the head the batch stored."""
    start = audit.entries(store, action="batch.start", object_id=batch_id)
    first = start[0].seq if start else None
    last = b.get("audit_head_seq")
    rows = []
    if first is not None and last is not None:
        for e in audit.entries(store, since_utc=b["started_utc"]):
            if first <= e.seq <= last:
                rows.append(
                    {"seq": e.seq, "at_utc": e.at_utc, "user": e.username, "action": e.action,
                     "object": f"{e.object_type}:{e.object_id}", "reason": e.reason}
                )  # fmt: skip
    return {"first_seq": first, "head_seq": last, "head_hash": b.get("audit_head_hash"), "entries": rows}


def content_sha256(report: dict[str, Any]) -> str:
    """The hash a signature binds: the canonical JSON of the report without its generation time."""
    content = {k: v for k, v in report.items() if k not in _VOLATILE}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def signature_views(store: RecordStore, batch_id: str, sha256: str) -> list[dict[str, str]]:
    return [
        {"meaning": s.meaning.value, "manifestation": s.manifestation(), "status": status(s, sha256),
         "reason": s.reason}
        for s in signatures(store, OBJECT_TYPE, batch_id)
    ]  # fmt: skip


def write(store: RecordStore, batch_id: str, out: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Build the report from the records and write ``batch-report.json`` and ``batch-report.pdf`` into ``out``."""
    report = build(store, batch_id)
    sha = content_sha256(report)
    report["content_sha256"] = sha
    sigs = signature_views(store, batch_id, sha)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / REPORT_JSON
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(json_path)
    pdf_path = write_pdf(report, out / REPORT_PDF, signatures=sigs)
    return json_path, pdf_path, report


def sign(
    store: RecordStore, *, username: str, password: str, batch_id: str, meaning: Meaning | str, reason: str
) -> Signature:
    """Sign the batch report as it stands in the records now: the operator ``authored``, then QA ``reviewed``."""
    meaning = Meaning(meaning)
    if meaning not in SIGNING_ORDER:
        raise RecordConstraintError(f"a batch report is signed authored (operator) or reviewed (QA), not {meaning}")
    actor = authenticate(store, username, password, purpose="reauthenticate")
    with store.transaction():
        sha = content_sha256(build(store, batch_id))
        held = {s.meaning for s in signatures(store, OBJECT_TYPE, batch_id) if s.object_sha256 == sha}
        if meaning in held:
            raise BatchReportError(f"batch report {batch_id} already carries a valid {meaning.value} signature")
        if meaning is Meaning.REVIEWED and Meaning.AUTHORED not in held:
            raise BatchReportError(f"batch report {batch_id}: the operator signs it (authored) before QA reviews it")
        return sign_as(
            store, actor, object_type=OBJECT_TYPE, object_id=batch_id, object_sha256=sha, meaning=meaning,
            reason=reason,
        )  # fmt: skip


def _warnings(report: dict[str, Any]) -> list[str]:
    out = []
    if report.get("state") == "aborted":
        out.append("ABORTED: the station stopped without ending this batch; it was closed at the next start.")
    if report.get("thresholds_validated") == 0:
        out.append("Judged with thresholds LOOSER than the model was validated with (demo station).")
    if report.get("plc") is None:
        out.append("No PLC was told the decisions of this batch.")
    return out


def write_pdf(report: dict[str, Any], path: Path, *, signatures: list[dict[str, str]]) -> Path:
    styles = getSampleStyleSheet()
    h1, h2, body = styles["Title"], styles["Heading2"], styles["BodyText"]
    c = report["counts"]
    rec = report.get("reconciliation") or {}
    reconciled = "yes" if rec.get("reconciled") else "NO"
    counts = [
        ["Recorded", "Accepted", "Defect rejects", "Not inspected", "Reconciled"],
        [c["recorded"], c["accepted"], c["defect_rejects"], c["not_inspected"], reconciled],
    ]
    decisions = [["Decision", "Reason", "Items", "Share"]]
    for d in report["decisions"]:
        share = pct(d["items"] / c["recorded"]) if c["recorded"] else "–"
        decisions.append([d["decision"], d["reason"], d["items"], share])
    story: list[Any] = [
        Paragraph(f"Batch report {report['batch_id']}", h1),
        Paragraph(
            f"<b>{report['release_status']}</b> · {report['product']} · operator {report['operator'] or '–'} · "
            f"{report['started_utc']} to {report['ended_utc']}",
            body,
        ),
        *[Paragraph(f"<b>{w}</b>", body) for w in _warnings(report)],
        Spacer(1, 0.3 * cm),
        Paragraph("Reconciliation and decisions", h2),
        table(counts),
        Spacer(1, 0.2 * cm),
        table(decisions),
    ]
    checks = [["Check", "Result", "Detail"]]
    checks += [[k["name"], "ok" if k["ok"] else "FAILED", k.get("detail", "")] for k in rec.get("checks") or []]
    if len(checks) > 1:
        story += [Spacer(1, 0.2 * cm), table(checks)]

    links = []
    if report.get("reinspection_of"):
        links.append(f"This batch is a re-inspection of batch <b>{report['reinspection_of']}</b>.")
    if report.get("reinspections"):
        links.append("Re-inspected in batch(es): <b>" + ", ".join(report["reinspections"]) + "</b>.")
    story += [Paragraph(text, body) for text in links]

    trend = report.get("trending")
    if trend:
        story.append(Paragraph(f"Reject-rate trend (rolling over {trend['window']} items, and the batch)", h2))
        rows = [["Class", "Batch rate", "Alert", "Action", "Batch level", "Worst rolling", "Rolling alarms"]]
        for cls, v in trend["classes"].items():
            worst = "–" if v["max_rolling_rate"] is None else pct(v["max_rolling_rate"])
            rows.append([cls, pct(v["batch_rate"]), pct(v["alert"]), pct(v["action"]), v["batch_level"].upper(),
                         worst, v["rolling_alarms"]])  # fmt: skip
        story.append(table(rows))

    ch = report.get("startup_challenge")
    story.append(Paragraph("Start-up challenge", h2))
    if ch is None:
        story.append(Paragraph("None ran before this batch.", body))
    else:
        verdict = "PASSED" if ch.get("passed") else "FAILED"
        story.append(Paragraph(f"Challenge batch {ch.get('batch_id')}: <b>{verdict}</b>", body))
        items = [["File", "Label", "Expected", "Decided", "Right"]]
        for i in ch.get("items") or []:
            items.append([i["file"], i["label"], i["expected"], i["decided"] or "–", "yes" if i["right"] else "NO"])
        if len(items) > 1:
            story.append(table(items))

    story.append(Paragraph("Recipe and model", h2))
    rows = [["Object", "sha256", "State at start", "Release signatures"]]
    for r in report["releases"]:
        sigs = "<br/>".join(f"{s['manifestation']} ({s['status']})" for s in r["signatures"]) or "none"
        rows.append([r["object_id"], (r["sha256"] or "–")[:16], r["state_at_start"] or "not released", sigs])
    story.append(table(rows, [4.5 * cm, 3 * cm, 2.5 * cm, 7 * cm]))

    story.append(Paragraph("Alarms", h2))
    alarms = [["Raised (UTC)", "Code", "Severity", "Message", "Acknowledged"]]
    for a in report["alarms"]:
        ack = f"{a['acknowledged_by']} {a['acknowledged_utc']}" if a["acknowledged_utc"] else "NOT ACKNOWLEDGED"
        alarms.append([a["raised_utc"], a["code"], a["severity"] or "", a["message"], ack])
    if len(alarms) > 1:
        story.append(table(alarms, [3 * cm, 3 * cm, 1.6 * cm, 6.4 * cm, 3 * cm]))
    else:
        story.append(Paragraph("None.", body))

    a = report["audit"]
    story.append(Paragraph("Audit trail during the batch", h2))
    story.append(Paragraph(f"Entries {a['first_seq']}..{a['head_seq']}, head hash {a['head_hash']}", body))
    entries = [["Seq", "UTC", "User", "Action", "Object", "Reason"]]
    entries += [[e["seq"], e["at_utc"], e["user"], e["action"], e["object"], e["reason"]] for e in a["entries"]]
    if len(entries) > 1:
        story.append(table(entries, [1.1 * cm, 3.4 * cm, 1.8 * cm, 2.6 * cm, 4.4 * cm, 3.7 * cm]))

    ic = report["item_chain"]
    v = ic["verification"]
    broken = "" if v["ok"] else " — " + v["problem"]
    story.append(Paragraph("Item records", h2))
    story.append(
        Paragraph(
            f"Item chain head {ic['head']}; verification: <b>{'intact' if v['ok'] else 'BROKEN'}</b> over "
            f"{v['items']} rows{broken}",
            body,
        )
    )
    block = signature_rows(signatures, [m.value for m in SIGNING_ORDER])
    story.append(
        KeepTogether(
            [
                Paragraph("Signatures", h2),
                Paragraph(f"Signed content: SHA-256 {report['content_sha256']}", body),
                table(block, [2.2 * cm, 8 * cm, 3.8 * cm, 3 * cm]),
            ]
        )
    )

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(
            1.5 * cm, 1 * cm, f"Batch {report['batch_id']} · content sha256 {report['content_sha256']} · p. {doc.page}"
        )
        canvas.restoreState()

    doc = SimpleDocTemplate(
        str(path), pagesize=A4, leftMargin=1.5 * cm, rightMargin=1.5 * cm, title=f"Batch report {report['batch_id']}"
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return path
