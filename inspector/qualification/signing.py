"""Sign a completed qualification run's report and write its PDF again with the signature block.

One function for the command line (``inspector qualify sign``) and the HMI's qualification tab:
the report folder's ``report.json`` must be the report whose hash the run stored at completion,
so a report edited after the run can never collect a signature.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from inspector.qualification.report import write_pdf
from inspector.records import qualification
from inspector.records.signatures import signatures, status
from inspector.records.store import RecordStore


class ReportMismatchError(ValueError):
    """The folder's report.json is not the report the run stored (missing, or its hash differs)."""


def report_of(folder: Path) -> str:
    try:
        return (folder / "report.json").read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportMismatchError(f"{folder}/report.json: {exc.strerror}") from None


def sign_report(
    store: RecordStore, folder: Path, *, run_id: str, meaning: str, username: str, password: str, reason: str
) -> list[dict[str, str]]:
    """Sign ``meaning`` (reviewed, approved) on run ``run_id``; returns every signature with its status."""
    text = report_of(folder)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    run = qualification.get(store, run_id)
    if sha != run.report_sha256:
        raise ReportMismatchError(f"{folder}/report.json is not the report of run {run_id} (its hash differs)")
    qualification.sign(store, username=username, password=password, run_id=run_id, meaning=meaning, reason=reason)
    sigs = [
        {"manifestation": s.manifestation(), "reason": s.reason, "status": status(s, sha)}
        for s in signatures(store, qualification.OBJECT_TYPE, run_id)
    ]
    report: dict[str, Any] = json.loads(text)
    report["report_sha256"] = sha
    write_pdf(report, folder / "report.pdf", signatures=sigs)
    return sigs
