"""The batch report: made from the records at batch end, signed by the operator and then QA, and bound to
its content (a later acknowledgement makes every earlier signature INVALID).

A demo station with records (brightness test model, files camera: one dark item rejected), its
start-up challenge, an alarm during the batch; signatures through the real command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader

from inspector.config.station import DEMO_STATION
from inspector.manifest import read_manifest
from inspector.records import RecordStore
from inspector.reports import batch as batch_report
from inspector.station import open_station
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.support.onnx_models import challenge_set, make_package

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _project(tmp: Path) -> Path:
    record = make_package(tmp / "models" / "tablet" / "0.0.1", Product.TABLET, dark_below=5)
    spec = IMAGE_SPECS[Product.TABLET]
    challenge = challenge_set(tmp / "challenge", Product.TABLET, seed=77)
    recipe = {
        "schema_version": 1, "recipe_id": "tablet-report-test", "version": "1.0.0", "product": "tablet",
        "camera": "sim.yaml", "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
        "model": {"path": "models/tablet/0.0.1", "sha256": record.sha256},
        "latency_budget_ms": 300, "line_rate_per_min": 600, "startup_challenge": yaml.safe_load(challenge),
    }  # fmt: skip
    (tmp / "recipes").mkdir(exist_ok=True)
    (tmp / "recipes" / "tablet.yaml").write_text(yaml.safe_dump(recipe))
    return tmp


def _text(pdf: Path) -> str:
    return "".join(page.extract_text() for page in PdfReader(str(pdf)).pages)


def _sign(root: Path, batch: str, meaning: str, user: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INSPECTOR_HOME": str(root)}
    db = str(root / "var" / "inspector.sqlite")
    cmd = [sys.executable, "-m", "inspector", "records", "sign", "--batch", batch, "--meaning", meaning, "--as", user,
           "--reason", "batch record read", "--password-stdin", "--db", db]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, input=password + "\n", capture_output=True, text=True, timeout=120)


def test_the_batch_report_is_made_at_batch_end_and_signed_operator_then_qa(tmp_path: Path) -> None:
    root = _project(tmp_path)
    config = DEMO_STATION.model_copy(
        update={"recipe": "tablet", "plc": None, "station_id": "report-test",
                "camera": DEMO_STATION.camera.model_copy(update={"kind": "files", "images": str(root / "challenge")})}
    )  # fmt: skip
    session = open_station(config, root=root)
    try:
        operator = session.login("operator", "operator-demo")  # seeds the demo accounts
        challenge = session.run_startup_challenge(actor=operator)
        assert challenge.passed
        batch = session.start_batch(actor=operator)
        alarm = session.station.raise_alarm("INPUT_DRIFT", "drift during the test batch", "input")
        session.station.wait_finished(30)
        result = session.end_batch()
        folder = session.last_batch_report
    finally:
        session.close()
    assert folder is not None and folder == root / "var" / "reports" / batch
    report = json.loads((folder / batch_report.REPORT_JSON).read_text())

    # Counts from the item records, equal to the batch result; the defect apart from not_inspected.
    entries = read_manifest(root / "challenge")
    assert report["counts"] == {"recorded": 3, "accepted": result.accepted, "rejected": 1, "not_inspected": 0,
                                "defect_rejects": 1}  # fmt: skip
    assert result.accepted == 2 and len(entries) == 3
    assert report["reconciliation"]["reconciled"] is True
    assert report["startup_challenge"]["batch_id"] == challenge.batch_id and report["startup_challenge"]["passed"]
    assert len(report["startup_challenge"]["items"]) == 3, "the challenge item by item, from its own record"
    assert [a["code"] for a in report["alarms"]] == ["INPUT_DRIFT"] and report["alarms_unacknowledged"] == 1
    assert report["item_chain"]["verification"]["ok"] and report["item_chain"]["head"]
    actions = [e["action"] for e in report["audit"]["entries"]]
    assert actions[0] == "batch.start" and "batch.end" in actions
    assert report["release_status"] == "NOT RELEASED - DEMO"
    assert [r["object_type"] for r in report["releases"]] == ["recipe", "model"]
    text = _text(folder / batch_report.REPORT_PDF)
    assert batch in text and "NOT RELEASED - DEMO" in text and "PASSED" in text and "(not signed yet)" in text

    db = root / "var" / "inspector.sqlite"
    proc = _sign(root, batch, "reviewed", "qa", "qa-demo-pass")
    assert proc.returncode == 2 and "before QA reviews it" in proc.stderr
    proc = _sign(root, batch, "authored", "operator", "wrong-password")
    assert proc.returncode == 2 and "wrong user name or password" in proc.stderr
    proc = _sign(root, batch, "authored", "operator", "operator-demo")
    assert proc.returncode == 0, proc.stderr
    proc = _sign(root, batch, "reviewed", "operator", "operator-demo")
    assert proc.returncode == 2 and "may not" in proc.stderr, "an operator does not review reports"
    proc = _sign(root, batch, "reviewed", "qa", "qa-demo-pass")
    assert proc.returncode == 0, proc.stderr
    text = _text(folder / batch_report.REPORT_PDF)
    assert "Demo Operator (operator)" in text and "Demo QA (qa)" in text and text.count("valid") >= 2
    assert "(not signed yet)" not in text

    # An acknowledgement recorded after the signatures changes the report: both signatures no longer hold.
    session = open_station(config, root=root)
    try:
        qa = session.login("qa", "qa-demo-pass")
        session.acknowledge_alarms([alarm.alarm_id], "qa", actor=qa)
    finally:
        session.close()
    with RecordStore(db) as store:
        _, pdf, again = batch_report.write(store, batch, folder)
        views = batch_report.signature_views(store, batch, again["content_sha256"])
    assert again["alarms_unacknowledged"] == 0 and again["content_sha256"] != report["content_sha256"]
    assert [v["status"] for v in views] == ["INVALID (object changed since it was signed)"] * 2
    assert "INVALID" in _text(pdf)


def test_a_running_batch_has_no_report(tmp_path: Path) -> None:
    root = _project(tmp_path)
    config = DEMO_STATION.model_copy(update={"recipe": "tablet", "plc": None, "station_id": "report-test"})
    session = open_station(config, root=root)
    try:
        batch = session.start_batch()
        assert session.recorder is not None
        session.recorder.flush(10)
        with RecordStore(session.recorder.database) as store, pytest.raises(batch_report.BatchReportError,
                                                                             match="still running"):  # fmt: skip
            batch_report.build(store, batch)
        session.end_batch()
    finally:
        session.close()
