"""The operator HMI driven offscreen through its app factory: batches, faults, alarms, review, reconciliation."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLabel

from inspector.manifest import read_manifest
from inspector.records import RecordStore
from inspector.records.review import REVIEW_LOG, review_folder
from inspector.roles import Action
from inspector.station import StationSession
from inspector.station.client import InProcessClient
from inspector.station.reconcile import Reconciliation
from inspector.taxonomy import OK, Product, labels
from tests.ui.conftest import OPERATOR
from ui.controller import Phase
from ui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[2]

START_TIMEOUT_MS = 30_000


def session_of(w: MainWindow) -> StationSession:
    """The station behind the HMI's in-process client: the tests inject faults into its camera."""
    client = w.controller.client
    assert isinstance(client, InProcessClient)
    return client.session


def wait_running(qtbot: Any, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: w.controller.phase == Phase.RUNNING, timeout=START_TIMEOUT_MS)


def test_demo_batch_starts_and_counters_move(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("tablet", line_rate=1200)
    wait_running(qtbot, w)
    qtbot.waitUntil(lambda: w.controller.tally.inspected >= 20, timeout=15_000)
    w.counters.refresh()
    w.header.refresh()
    shown = int(w.counters.inspected.value.text().replace(",", ""))
    accepted = int(w.counters.accepted.value.text().replace(",", ""))
    rejected = int(w.counters.rejected.value.text().replace(",", ""))
    assert shown >= 20 and accepted + rejected == shown
    assert w.counters.yield_pct.value.text().endswith("%")
    assert w.header.state.text() == "RUNNING"
    assert "ACQUIRING" in w.header.camera.text()
    qtbot.waitUntil(lambda: w.live.frames_shown > 0, timeout=5_000)
    assert w.counters.latency.text().startswith("p50 ") and "budget 500 ms" in w.counters.budget.text()
    # Recipe and model identity with version, short sha256 shown and the full one in the tooltip.
    s = session_of(w)
    assert "v1.0.0" in w.batch.recipe_info.text() and "v0.0.1" in w.batch.model_info.text()
    assert s.package.sha256[:12] in w.batch.model_sha.text()
    assert s.package.sha256 in w.batch.model_sha.toolTip()
    assert s.recipe.sha256 in w.batch.recipe_sha.toolTip()
    assert not w.batch.start.isEnabled() and w.batch.stop.isEnabled()
    assert not w.batch.recipe.isEnabled(), "the recipe cannot change under a running batch"


def test_camera_fault_shows_alarm_and_fault_state_and_ack_is_stored(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("vial", line_rate=1200)
    wait_running(qtbot, w)
    qtbot.waitUntil(lambda: w.live.frames_shown > 0, timeout=5_000)
    session = session_of(w)
    session.camera.kill()
    qtbot.waitUntil(lambda: w.banner.isVisible() and "CAMERA_FAULT" in w.banner.text.text(), timeout=10_000)
    w.header.refresh()
    assert w.header.state.text() == "FAULT"
    assert w.banner.icon.text() == "FAULT"
    assert "FAULT" in w.header.camera.text()
    qtbot.waitUntil(lambda: "fault" in (w.live.canvas.stale or ""), timeout=2_000)  # no stale frame passes as live

    qtbot.mouseClick(w.banner.ack, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.controller.alarms.unacknowledged(), timeout=10_000)
    assert not w.banner.isVisible()
    entry = next(e for e in w.controller.alarms.entries if e.alarm.code == "CAMERA_FAULT")
    assert entry.acknowledged_by == OPERATOR and entry.acknowledged_utc
    qtbot.waitUntil(lambda: entry.db_id is not None, timeout=10_000)  # stored by the record writer, in its time
    assert session.recorder is not None
    with RecordStore(session.recorder.database) as store:
        row = next(a for a in store.alarms() if a.id == entry.db_id)
    assert row.code == "CAMERA_FAULT" and row.acknowledged_by == OPERATOR
    assert row.acknowledged_utc is not None and row.acknowledged_utc.endswith("+00:00")
    assert row.batch_id == w.controller.batch_id

    session.camera.revive()
    qtbot.waitUntil(lambda: session.station.state.value == "running", timeout=10_000)
    w.header.refresh()
    assert w.header.state.text() == "RUNNING"


def test_input_drift_shows_a_warning_while_the_line_keeps_running(qtbot: Any, make_hmi: Any, ui_project: Path) -> None:
    """The demo camera at nuisance 3.0 against the shipped tablet recipe's noise limits (window 20)."""
    recipe = ui_project / "recipes" / "tablet.yaml"
    shipped = yaml.safe_load((ROOT / "recipes" / "tablet.yaml").read_text())["input_monitor"]
    data = yaml.safe_load(recipe.read_text())
    data["input_monitor"] = {**shipped, "window": 20}
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    w = make_hmi("tablet", line_rate=1200, nuisance=3.0)
    wait_running(qtbot, w)

    def drift_open() -> bool:
        return any(e.alarm.code == "INPUT_DRIFT" for e in w.controller.alarms.unacknowledged())

    qtbot.waitUntil(lambda: drift_open() and w.banner.isVisible(), timeout=20_000)
    assert w.banner.icon.text() == "WARNING"  # another alarm may be newer on the banner: the drift one stays open
    entry = next(e for e in w.controller.alarms.entries if e.alarm.code == "INPUT_DRIFT")
    assert "noise" in entry.alarm.message and "20 frames" in entry.alarm.message
    w.header.refresh()
    assert w.header.state.text() == "RUNNING"  # a warning: the model still judges every item
    assert w.header.input.text() == "OUTSIDE RANGE"
    assert "noise:" in w.header.input.toolTip() and "last 20 inspected frames" in w.header.input.toolTip()


def test_acknowledge_needs_a_logged_in_user(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("vial", line_rate=1200, auto_login=False)
    wait_running(qtbot, w)
    errors: list[str] = []
    w.controller.error.connect(errors.append)
    session_of(w).camera.kill()
    qtbot.waitUntil(lambda: w.banner.isVisible(), timeout=10_000)
    qtbot.mouseClick(w.banner.ack, Qt.MouseButton.LeftButton)
    assert errors and "Log in" in errors[0]
    assert w.controller.alarms.unacknowledged(), "nothing is acknowledged without a name"


@pytest.mark.parametrize("product", [Product.TABLET, Product.BLISTER])
def test_review_exports_labelled_images_for_training(qtbot: Any, make_hmi: Any, product: Product) -> None:
    w = make_hmi(product.value, line_rate=1200, defect_rate=0.5)
    wait_running(qtbot, w)
    rejects = w.controller.rejects
    assert rejects is not None
    # Rejects keep arriving after the first sync of the strip: it must keep up with the buffer.
    qtbot.waitUntil(lambda: len(rejects) >= 4 and w.strip.count() >= 4, timeout=20_000)
    defect_class = next(c for c in labels(product) if c != OK)

    # Clicking a thumbnail in the line screen's strip opens it for review.
    first = w.strip.entry_at(0)
    item = w.strip.item(0)
    assert first is not None and item is not None and first.decision.reason in item.text().replace(" ", "_")
    w.strip.itemClicked.emit(item)
    assert w.tabs.currentWidget() is w.review and w.review.entry is first
    second = next(e for e in rejects if e is not first)
    w.review.label.setCurrentText(defect_class)
    if product is Product.BLISTER:
        w.review.pocket.setValue(3)
    qtbot.mouseClick(w.review.confirm, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: first.review is not None, timeout=10_000)

    w.open_review(second)
    qtbot.mouseClick(w.review.false_reject, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: second.review is not None, timeout=10_000)
    assert "false reject" in w.review.status.text() and OPERATOR in w.review.status.text()

    folder = review_folder(w.controller.options.root, product)
    entries = read_manifest(folder, verify=True)  # the format training reads, hashes checked
    assert [e.label for e in entries] == [defect_class, OK]
    assert all(e.source == "review" and e.product is product and e.seed is None for e in entries)
    if product is Product.BLISTER:
        assert entries[0].pockets == [defect_class if i == 3 else OK for i in range(10)]
        assert entries[1].pockets == [OK] * 10
    else:
        assert all(e.pockets is None for e in entries)
    log = (folder / REVIEW_LOG).read_text().splitlines()
    assert len(log) == 2 and f'"reviewer":"{OPERATOR}"' in log[0] and '"reviewer_authenticated":true' in log[0]

    # The same reject is never labelled twice.
    failures: list[str] = []
    w.controller.review_failed.connect(lambda _e, why: failures.append(why))
    w.controller.review(first, OK)
    qtbot.waitUntil(lambda: bool(failures), timeout=5_000)
    assert "already" in failures[0]
    assert len(read_manifest(folder)) == 2


def test_stop_shows_summary_and_reconciles_with_the_records(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("tablet", line_rate=1500, defect_rate=0.2)
    wait_running(qtbot, w)
    qtbot.waitUntil(lambda: w.controller.tally.inspected >= 30, timeout=15_000)
    with qtbot.waitSignal(w.controller.batch_finished, timeout=20_000) as blocker:
        qtbot.mouseClick(w.batch.stop, Qt.MouseButton.LeftButton)
    report: Reconciliation = blocker.args[0]
    assert report.reconciled, report.checks
    s = report.summary
    assert s["items"] == s["accepted"] + s["rejected"] > 0
    assert report.records is not None and report.records["inspected"] == s["items"]
    assert report.hmi["inspected"] == s["items"]
    assert report.highest_item_id == s["items"], "item ids 1..N: nothing unaccounted"
    qtbot.waitUntil(lambda: w.summary_dialog is not None and w.summary_dialog.isVisible(), timeout=5_000)
    assert w.summary_dialog is not None
    verdict = w.summary_dialog.findChild(QLabel, "verdict")
    assert verdict is not None and verdict.text() == "RECONCILED"
    assert w.controller.phase == Phase.READY and w.batch.start.isEnabled()
    recorder = session_of(w).recorder
    assert recorder is not None
    with sqlite3.connect(recorder.database) as conn:
        (state,) = conn.execute("SELECT state FROM batches WHERE batch_id = ?", (report.batch_id,)).fetchone()
    assert state == "ended"
    assert w.batch.batch.text() != report.batch_id, "a fresh batch id is offered for the next batch"
    # The batch report, written at batch end, is shown and signed: the demo operator authors it.
    dialog = w.summary_dialog
    qtbot.waitUntil(lambda: dialog.report_view is not None, timeout=20_000)
    assert str(dialog.report_view.pdf).endswith(f"{report.batch_id}/batch-report.pdf")
    assert dialog.report_view.pdf.is_file() and "not signed yet" in dialog.report_label.text()
    assert dialog.sign_button.isEnabled() and "(authored)" in dialog.sign_button.text()
    dialog.sign(password="operator-demo", reason="batch run as shown")
    qtbot.waitUntil(lambda: bool(dialog.report_view.signatures), timeout=20_000)
    (signature,) = dialog.report_view.signatures
    assert signature.meaning == "authored" and signature.status == "valid"
    assert "Demo Operator (operator)" in dialog.report_label.text()
    assert not dialog.sign_button.isEnabled(), "an operator does not review; QA does"


def test_finite_demo_batch_ends_by_itself(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("blister", items=12, line_rate=1200)
    with qtbot.waitSignal(w.controller.batch_finished, timeout=40_000) as blocker:
        pass
    report: Reconciliation = blocker.args[0]
    assert report.reconciled, report.checks
    assert report.summary["items"] == 12
    assert any(c.name == "every item of the batch decided" and c.ok for c in report.checks)


def test_heat_map_is_computed_for_rejects(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("vial", line_rate=1200, defect_rate=0.5)
    wait_running(qtbot, w)
    rejects = w.controller.rejects
    assert rejects is not None
    qtbot.waitUntil(lambda: any(e.heatmap is not None for e in rejects), timeout=20_000)
    entry = next(e for e in rejects if e.heatmap is not None)
    assert entry.heatmap is not None and entry.heatmap.shape == entry.image.shape[:2]
    assert float(entry.heatmap.min()) >= 0.0 and float(entry.heatmap.max()) <= 1.0


def test_tampered_model_is_refused_with_a_clear_message(qtbot: Any, make_hmi: Any, ui_project: Path) -> None:
    model = ui_project / "models" / "tablet" / "0.0.1" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    w = make_hmi("tablet")
    qtbot.waitUntil(lambda: w.controller.phase == Phase.ERROR, timeout=START_TIMEOUT_MS)
    w.header.refresh()
    assert w.header.state.text() == "REFUSED"
    assert "sha256" in (w.controller.last_error or "")
    assert "sha256" in w.batch.status.text()
    assert not w.batch.start.isEnabled()


def test_the_demo_logs_its_operator_in_and_roles_decide_the_controls(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("vial", line_rate=1200)
    wait_running(qtbot, w)
    qtbot.waitUntil(lambda: w.controller.actor is not None, timeout=START_TIMEOUT_MS)
    w.header.refresh()
    assert w.header.user.text() == "Demo Operator · OPERATOR"
    assert w.header.release.text() == "NOT RELEASED - DEMO" and w.header.release.isVisible()
    assert w.controller.can(Action.ACK_ALARM) and not w.controller.can(Action.READ_AUDIT)
    assert not w.audit.verify.isEnabled() and not w.release.buttons[("model", "approved")].isEnabled()
    # A wrong password: one line, nobody logged in instead.
    failures: list[str] = []
    w.controller.login_failed.connect(failures.append)
    w.controller.login("qa", "not-her-password")
    qtbot.waitUntil(lambda: bool(failures), timeout=10_000)
    assert "wrong user name or password" in failures[0]
    assert w.controller.actor is not None and w.controller.actor.username == "operator"
    # QA logs in through the dialog: the audit trail opens and verifies.
    w.controller.logout()
    assert w.controller.actor is None and not w.controller.can(Action.ACK_ALARM)
    w.header._login_or_out()
    dialog = w.header.login_dialog
    dialog.username.setText("qa")
    dialog.password.setText("qa-demo-pass")
    dialog.submit()
    qtbot.waitUntil(lambda: w.controller.actor is not None, timeout=10_000)
    assert w.controller.actor.role == "qa" and not dialog.isVisible()
    assert w.audit.verify.isEnabled()
    w.audit.refresh()
    actions = {w.audit.table.item(r, 4).text() for r in range(w.audit.table.rowCount())}
    assert {"login", "login_failed", "logout", "batch.start"} <= actions
    w.audit.run_verify()
    assert w.audit.result.text().startswith("VERIFIED")


def test_idle_logout(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("tablet", line_rate=1200)
    qtbot.waitUntil(lambda: w.controller.actor is not None, timeout=START_TIMEOUT_MS)
    w.controller.idle_logout_s = 0.3
    w.controller.touch()
    qtbot.waitUntil(lambda: w.controller.actor is None, timeout=5_000)
    w.header.refresh()
    assert w.header.user.text() == "NOT LOGGED IN"
    session = session_of(w)
    assert session.recorder is not None
    from inspector.records import audit

    def logged_out() -> bool:
        assert session.recorder is not None
        with RecordStore(session.recorder.database) as store:
            return [e.username for e in audit.entries(store, action="idle_logout")] == ["operator"]

    qtbot.waitUntil(logged_out, timeout=5_000)


def test_the_release_screen_signs_with_the_password_and_shows_the_signature(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("tablet", demo=False, camera="sim", auto_login=False)
    qtbot.waitUntil(lambda: w.controller.phase == Phase.READY, timeout=START_TIMEOUT_MS)
    client = w.controller.client
    assert client is not None
    client.login("engineer", "engineer-demo")  # seeds the demo accounts; the engineer authors the model
    client.sign_release("model", "authored", "engineer", "engineer-demo", "first package")
    w.controller.login("qa", "qa-demo-pass")
    qtbot.waitUntil(lambda: w.controller.actor is not None, timeout=10_000)
    w.release.refresh()
    assert "MODEL" in w.release.text.toPlainText() and "DRAFT" in w.release.text.toPlainText()
    assert w.release.buttons[("model", "reviewed")].isEnabled()
    w.release.sign("model", "reviewed", password="wrong-password", reason="checked")
    qtbot.waitUntil(lambda: "Not signed" in w.release.status.text(), timeout=10_000)
    w.release.sign("model", "reviewed", password="qa-demo-pass", reason="evaluation checked")
    qtbot.waitUntil(lambda: "signed reviewed" in w.release.status.text(), timeout=10_000)
    text = w.release.text.toPlainText()
    assert "REVIEWED" in text and "Demo QA (qa)" in text and "reviewed" in text and "valid" in text


def test_recipe_can_be_changed_when_idle(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("vial", demo=False, camera="sim")
    qtbot.waitUntil(lambda: w.controller.phase == Phase.READY, timeout=START_TIMEOUT_MS)
    assert w.batch.recipe.isEnabled() and w.batch.start.isEnabled()
    w.batch.recipe.setCurrentText("blister")
    w.batch._recipe_chosen(w.batch.recipe.currentIndex())
    qtbot.waitUntil(
        lambda: w.controller.phase == Phase.READY and w.controller.client is not None
        and w.controller.client.info.product is Product.BLISTER,
        timeout=START_TIMEOUT_MS,
    )  # fmt: skip
    w.batch.batch.setText("LOT 42/A")  # not path-safe
    assert not w.batch.start.isEnabled()
    w.batch.batch.setText("LOT-42.A")
    assert w.batch.start.isEnabled()
    qtbot.mouseClick(w.batch.start, Qt.MouseButton.LeftButton)
    wait_running(qtbot, w)
    assert w.controller.batch_id == "LOT-42.A"


def test_the_start_up_challenge_runs_from_the_batch_bar(qtbot: Any, make_hmi: Any, ui_project: Path) -> None:
    from tests.support.onnx_models import challenge_set

    entry = challenge_set(ui_project / "challenge", Product.VIAL, seed=3)  # both good items pass the test model
    recipe = ui_project / "recipes" / "vial.yaml"
    recipe.write_text(recipe.read_text() + f"startup_challenge: {entry}\n")
    w = make_hmi("vial", demo=False, camera="sim")
    qtbot.waitUntil(lambda: w.controller.phase == Phase.READY, timeout=START_TIMEOUT_MS)
    assert w.batch.challenge.isVisible() and w.batch.challenge.isEnabled()
    with qtbot.waitSignal(w.controller.challenge_finished, timeout=30_000) as blocker:
        qtbot.mouseClick(w.batch.challenge, Qt.MouseButton.LeftButton)
        assert w.controller.phase == Phase.CHALLENGE and not w.batch.start.isEnabled()
    result = blocker.args[0]
    assert [(it["label"], it["expected"]) for it in result.items] == [
        ("missing_cap", "reject"), ("ok", "accept"), ("ok", "accept")]  # fmt: skip
    assert result.passed, result.items
    assert w.batch.status.text() == "START-UP CHALLENGE PASSED: 3/3 judged right"
    assert w.controller.phase == Phase.READY and w.batch.start.isEnabled()
    # The challenge is a batch of its own in the records, and the next batch names it.
    session = session_of(w)
    assert session.recorder is not None
    with RecordStore(session.recorder.database) as store:
        stored = store.batch(result.batch_id)
    assert stored["release_status"] == "start-up challenge" and stored["summary"]["startup_challenge"]["passed"]
