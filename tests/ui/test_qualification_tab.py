"""The qualification tab: a suite run through the production station from the HMI, listed, and signed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pypdf import PdfReader

from inspector.records import RecordStore, qualification
from ui.controller import Phase
from ui.widgets.qualification import CommandResult

START_TIMEOUT_MS = 30_000
RUN_TIMEOUT_MS = 180_000


def _suite(root: Path) -> str:
    folder = root / "qualification"
    folder.mkdir(exist_ok=True)
    suite = {
        "schema_version": 1, "suite_id": "tablet-hmi-oq", "version": "1.0.0", "product": "tablet",
        "recipe": "tablet", "presentations": 10, "line_rate_per_min": 3000, "plc": "none",
        "challenge_sets": [{"name": "mixed", "render": {"seed": 5, "items": 4, "defect_rate": 0.5}}],
        "criteria": {"detection_rate_min": 0.0, "false_reject_rate_max": 1.0, "critical_escapes_max": 1000,
                     "reject_zone_efficiency_min": None},
    }  # fmt: skip
    (folder / "tablet-hmi.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return "tablet-hmi.yaml"


def test_command_result_reads_the_json_line_and_the_error_line() -> None:
    r = CommandResult(1, 'note\n{"passed": false}\n', "[mixed] [##..] 3/40\rerror: suite refused\n")
    assert r.json() == {"passed": False} and r.why() == "error: suite refused"
    assert CommandResult(0, '[\n  {"a": 1}\n]\n', "").json() == [{"a": 1}]
    assert CommandResult(2, "", "").json() is None and CommandResult(2, "", "").why() == "exit status 2"


def test_the_qualification_tab_runs_a_suite_and_qa_signs_its_report(
    qtbot: Any, make_hmi: Any, ui_project: Path
) -> None:
    suite = _suite(ui_project)
    w = make_hmi("tablet", demo=False, camera="sim", auto_login=False)
    c, tab = w.controller, w.qualification
    qtbot.waitUntil(lambda: c.phase == Phase.READY, timeout=START_TIMEOUT_MS)
    assert tab.suite.currentText() == suite
    assert not tab.run_button.isEnabled()  # nobody logged in: nobody runs a qualification
    c.login("operator", "operator-demo")
    qtbot.waitUntil(lambda: c.actor is not None, timeout=10_000)
    assert not tab.run_button.isEnabled()  # an operator may not either
    c.login("engineer", "engineer-demo")
    qtbot.waitUntil(lambda: c.actor is not None and c.actor.username == "engineer", timeout=10_000)
    assert tab.run_button.isEnabled()

    # A wrong password: the command refuses in one line, and the station opens again.
    with qtbot.waitSignal(tab.run_finished, timeout=RUN_TIMEOUT_MS) as refused:
        assert tab.run(password="not-the-password")
    assert refused.args[0] is None and "did not run" in tab.status.text(), tab.status.text()
    qtbot.waitUntil(lambda: c.phase == Phase.READY and c.client is not None, timeout=START_TIMEOUT_MS)
    qtbot.waitUntil(lambda: not tab.command.running, timeout=30_000)

    with qtbot.waitSignal(tab.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert tab.run(password="engineer-demo")
        # The station steps aside: the run has the record database to itself.
        qtbot.waitUntil(lambda: c.client is None and c.phase == Phase.QUALIFYING, timeout=10_000)
        assert not w.batch.start.isEnabled() and not tab.run_button.isEnabled()
    outcome = blocker.args[0]
    assert outcome is not None, tab.status.text()
    assert outcome["passed"] is True and outcome["formal"] is False  # the suite was never approved
    assert outcome["run_id"] in tab.status.text() and "PASSED" in tab.status.text()
    assert tab.bar.value() == tab.bar.maximum() and tab.bar.format() == "run complete"
    # The station opens again and the run is listed, completed, with its report.
    qtbot.waitUntil(lambda: c.phase == Phase.READY and c.client is not None, timeout=START_TIMEOUT_MS)
    qtbot.waitUntil(lambda: bool(tab.runs) and not tab.command.running, timeout=30_000)
    run = tab.selected_run()
    assert run is not None and run["run_id"] == outcome["run_id"] and run["state"] == "completed"
    folder = tab.report_folder(run["run_id"])
    assert folder is not None and (folder / "report.pdf").is_file() and (folder / "station.yaml").is_file()
    assert "4 items × 10 presentations" in tab.result.toPlainText()
    assert not tab.sign_buttons["reviewed"].isEnabled()  # the engineer signs no report

    c.login("qa", "qa-demo-pass")
    qtbot.waitUntil(lambda: c.actor is not None and c.actor.username == "qa", timeout=10_000)
    assert tab.sign_buttons["reviewed"].isEnabled() and not tab.sign_buttons["approved"].isEnabled()
    assert tab.sign("reviewed", password="wrong-password", reason="checked")
    qtbot.waitUntil(lambda: "Not signed" in tab.status.text(), timeout=30_000)
    qtbot.waitUntil(lambda: not tab.command.running, timeout=30_000)
    assert tab.sign("reviewed", password="qa-demo-pass", reason="report checked against the suite")
    qtbot.waitUntil(lambda: "signed reviewed" in tab.status.text(), timeout=30_000)
    qtbot.waitUntil(lambda: tab.runs and tab.runs[0]["state"] == "reviewed" and not tab.command.running,
                    timeout=30_000)  # fmt: skip
    assert tab.sign_buttons["approved"].isEnabled()

    db = c.record_database
    assert db is not None
    with RecordStore(db) as store:
        stored = qualification.get(store, run["run_id"])
    assert stored.state == "reviewed" and stored.created_by == "engineer"
    text = "".join(page.extract_text() for page in PdfReader(folder / "report.pdf").pages)
    assert "Demo QA" in text and "reviewed" in text
