"""HMI parts on their own: the bridge's threading, the pool, the PLC hooks, counters, the review exporter."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PyQt6.QtCore import QThread
from PyQt6.QtWidgets import QApplication

from inspector.config.station import DEMO_STATION
from inspector.events import (
    Alarm,
    AlarmRaised,
    BatchEnded,
    BatchResult,
    ItemDecided,
    ItemDecision,
    NotInspected,
    StageTimes,
    StateChanged,
    StationEvent,
    StationState,
)
from inspector.inference.heatmap import heatmap_to_frame
from inspector.records.review import ReviewError, ReviewExporter, ReviewRequest
from inspector.station.reconcile import Check, Reconciliation
from inspector.synth.blister import DEFAULT_BLISTER_GRID
from inspector.taxonomy import OK, Product, as_reason
from ui.bridge import StationBridge
from ui.model import LiveTally, RejectBuffer
from ui.render import hot_spot
from ui.workers import Jobs


class FakeStation:
    def __init__(self) -> None:
        self.listeners: list[Any] = []

    def subscribe(self, listener: Any) -> Any:
        self.listeners.append(listener)
        station = self

        class Handle:
            def cancel(self) -> None:
                station.listeners.remove(listener)

        return Handle()

    def emit(self, event: StationEvent) -> None:
        for listener in list(self.listeners):
            listener(event)


def result(items: int, accepted: int, rejected: int, **kw: Any) -> BatchResult:
    fields: dict[str, Any] = {
        "batch_id": "B-1",
        "rejected_by_reason": {},
        "not_inspected": 0,
        "not_inspected_by_cause": {},
        "scored": 0,
        "escapes": None,
        "escapes_by_class": None,
        "critical_escapes": None,
        "false_rejects": None,
        "false_rejects_not_inspected": None,
        "latency_ms_p50": None,
        "latency_ms_p99": None,
        "latency_ms_max": None,
        "inspected_in_time": accepted,
        **kw,
    }
    return BatchResult(items=items, accepted=accepted, rejected=rejected, **fields)


def decision(item: int, *, accept: bool = True, reason: str = "ok", image: np.ndarray | None = None) -> ItemDecision:
    t = StageTimes(1.0, 1.0, 1.001, 1.002 + item * 1e-4, 1.003 + item * 1e-4)
    return ItemDecision(
        item_id=item,
        frame_id=item,
        accept=accept,
        reason=as_reason(reason),
        times=t,
        deadline_met=accept,
        camera_serial="SIM-0",
        not_inspected=NotInspected.LATE if reason == "not_inspected" else None,
        pocket_index=2 if not accept else None,
        image=image,
    )


def test_a_reject_shows_its_anomaly_value_beside_the_limit() -> None:
    from dataclasses import replace

    from ui.widgets.live_view import describe

    d = replace(decision(7, accept=False, reason="anomaly"), confidence=0.97, anomaly=25.531)
    assert describe(d, anomaly_limit=0.9572) == (
        "REJECT · anomaly",
        "pocket 2 · conf 0.97 · anomaly 25.5 (limit 0.957)",
    )
    assert describe(d)[1] == "pocket 2 · conf 0.97 · anomaly 25.5"  # no station: the value alone
    near = replace(d, anomaly=0.9981)
    assert describe(near, anomaly_limit=0.99552)[1].endswith("anomaly 0.998 (limit 0.996)")


def test_a_long_detail_line_is_cut_short_before_the_item_number(qapp: QApplication) -> None:
    from PyQt6.QtGui import QFontMetrics

    from ui import theme
    from ui.widgets.live_view import fit_detail

    font = theme.font(10, bold=True)
    font.setPixelSize(12)
    fm = QFontMetrics(font)
    detail, item = "conf 1.00 · anomaly 44.4 (limit 0.980)", "item 194"
    wide = fm.horizontalAdvance(f"{detail}    {item}") + 10
    assert fit_detail(detail, item, font, wide) == detail  # room enough: unchanged
    narrow = wide - 80
    cut = fit_detail(detail, item, font, narrow)
    assert cut.endswith("…") and detail.startswith(cut[:-1])
    assert fm.horizontalAdvance(f"{cut}    {item}") <= narrow
    assert fit_detail("", item, font, narrow) == ""


def test_bridge_delivers_pipeline_events_in_the_gui_thread_in_order(qtbot: Any, qapp: QApplication) -> None:
    bridge = StationBridge()
    station = FakeStation()
    bridge.attach(station)  # type: ignore[arg-type]
    seen: list[tuple[str, Any, bool]] = []
    gui = qapp.thread()
    bridge.decisions.connect(lambda b: seen.extend(("d", d.item_id, QThread.currentThread() is gui) for d in b))
    bridge.state_changed.connect(lambda s: seen.append(("s", s, QThread.currentThread() is gui)))
    bridge.alarm.connect(lambda a: seen.append(("a", a.code, QThread.currentThread() is gui)))
    bridge.batch_ended.connect(lambda r: seen.append(("e", r.items, QThread.currentThread() is gui)))

    def pipeline() -> None:
        station.emit(StateChanged(StationState.RUNNING, StationState.STARTING))
        for i in range(1, 51):
            station.emit(ItemDecided(decision(i), "B-1"))
        station.emit(AlarmRaised(Alarm("X", "m", "camera")))
        station.emit(BatchEnded(result(50, 50, 0)))

    t = threading.Thread(target=pipeline, name="fake-pipeline")
    t.start()
    t.join()
    assert seen == [], "nothing is delivered in the pipeline thread"
    qtbot.waitUntil(lambda: len(seen) == 53, timeout=3_000)
    assert all(in_gui for *_, in_gui in seen)
    assert [k for k, *_ in seen] == ["s", *["d"] * 50, "a", "e"]
    assert [v for k, v, _ in seen if k == "d"] == list(range(1, 51))
    bridge.detach()
    assert station.listeners == [], "detaching unsubscribes"
    bridge._listener_for(0)(StateChanged(StationState.IDLE, StationState.STOPPING))  # one already on its way
    qapp.processEvents()
    bridge.drain()
    assert len(seen) == 53, "events of a detached station are dropped"
    bridge.stop()


def test_jobs_report_results_in_the_gui_thread_and_leave_no_threads(qtbot: Any, qapp: QApplication) -> None:
    jobs = Jobs()
    results: list[Any] = []

    def work() -> str:
        # Joining a thread from a pool thread makes CPython register a placeholder thread; it must go.
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        return "done"

    jobs.submit(work, lambda r: results.append((r, QThread.currentThread() is qapp.thread())))
    jobs.submit(lambda: 1 / 0, None, lambda e: results.append((type(e).__name__, True)))
    qtbot.waitUntil(lambda: len(results) == 2, timeout=5_000)
    assert ("done", True) in results and ("ZeroDivisionError", True) in results
    assert jobs.shutdown()
    assert not jobs.submit(lambda: None), "a shut-down pool takes no work"


def test_live_tally_counts_and_latency_window() -> None:
    tally = LiveTally()
    tally.reset("B1")
    for i in range(1, 101):
        if i % 10 == 0:
            tally.add(decision(i, accept=False, reason="chip"))
        elif i % 25 == 1:
            tally.add(decision(i, accept=False, reason="not_inspected"))
        else:
            tally.add(decision(i))
    snap = tally.snapshot()
    assert snap.inspected == 100 and snap.inspected == snap.accepted + snap.rejected
    assert snap.by_reason == {"chip": 10, "not_inspected": 4}
    assert snap.not_inspected == 4
    assert snap.yield_pct == pytest.approx(86.0)
    lat = sorted(snap.latencies_ms)
    assert snap.p50_ms == pytest.approx(float(np.percentile(lat, 50)))
    assert snap.p99_ms == pytest.approx(float(np.percentile(lat, 99)))


def test_reject_buffer_keeps_reviewable_frames_only() -> None:
    buf = RejectBuffer((8, 8, 3), maxlen=3)
    img = np.zeros((8, 8, 3), np.uint8)
    assert buf.offer("B", decision(1)) is None, "accepts are not kept"
    assert buf.offer("B", decision(2, accept=False, reason="chip")) is None, "no image"
    assert buf.offer("B", decision(3, accept=False, reason="chip", image=np.zeros((4, 8, 3), np.uint8))) is None
    for i in range(4, 9):
        assert buf.offer("B", decision(i, accept=False, reason="chip", image=img)) is not None
    assert [e.decision.item_id for e in buf] == [8, 7, 6]
    assert buf.find(("B", 7)) is not None and buf.find(("B", 4)) is None


def test_review_exporter_refuses_bad_requests(tmp_path: Path) -> None:
    buf = RejectBuffer((8, 8, 3))
    entry = buf.offer("B", decision(5, accept=False, reason="chip", image=np.full((8, 8, 3), 9, np.uint8)))
    assert entry is not None
    ex = ReviewExporter(tmp_path / "set", Product.TABLET)
    d = entry.decision
    with pytest.raises(ReviewError, match="operator"):
        ex.export(ReviewRequest("B", d, "chip", "  "))
    with pytest.raises(ReviewError, match="not a tablet class"):
        ex.export(ReviewRequest("B", d, "empty_pocket", "me"))
    review = ex.export(ReviewRequest("B", d, OK, "me"))
    assert review.false_reject and (tmp_path / "set" / review.file).is_file()
    with pytest.raises(ReviewError, match="already"):
        ex.export(ReviewRequest("B", d, "chip", "me"))
    blister = ReviewExporter(tmp_path / "b", Product.BLISTER, pocket_count=10)
    with pytest.raises(ReviewError, match="pocket"):
        blister.export(ReviewRequest("B", d, "empty_pocket", "me", pocket_index=12))
    with pytest.raises(ReviewError, match="image"):
        ex.export(ReviewRequest("B", decision(6, accept=False, reason="chip"), "chip", "me"))


def test_header_says_when_no_plc_is_linked(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("tablet", plc_url="none")
    qtbot.waitUntil(lambda: w.controller.client is not None, timeout=30_000)
    assert w.controller.client.info.plc_endpoint is None
    assert w.controller.client.status().plc_connected is None
    w.header.refresh()
    assert w.header.plc.text() == "NONE (demo)"
    w.close()


def test_demo_runs_against_the_real_line_simulator(qtbot: Any, make_hmi: Any) -> None:
    w = make_hmi("vial")
    qtbot.waitUntil(lambda: w.controller.client is not None, timeout=30_000)
    client = w.controller.client
    qtbot.waitUntil(lambda: client.status().plc_connected is True, timeout=10_000)
    w.header.refresh()
    assert w.header.plc.text() == "CONNECTED"
    assert w.header.input.text() == "NOT MONITORED"  # the test recipe has no input_monitor block
    assert w.header.plc.toolTip().startswith("modbus://127.0.0.1:")
    demo_line = client.session.demo_line
    assert demo_line is not None
    w.close()
    assert demo_line.sim.proc.poll() is not None, "closing the HMI ends the line simulator"


def test_main_refuses_an_unknown_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ui.app import main

    assert main(["--root", str(tmp_path), "--product", "nope"]) == 2
    assert "no recipe 'nope'" in capsys.readouterr().err


def test_main_refuses_a_nuisance_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    from ui.app import main

    assert main(["--product", "vial", "--nuisance", "3.5"]) == 2
    err = capsys.readouterr().err
    assert "argument --nuisance: must be a number from 0 to 3, got '3.5'" in err and len(err.splitlines()) == 1


def test_summary_dialog_says_not_reconciled_when_a_check_fails(qtbot: Any) -> None:
    from PyQt6.QtWidgets import QLabel

    from ui.widgets.batch import BatchSummaryDialog

    report = Reconciliation(
        batch_id="B-1",
        result=result(10, 7, 3, rejected_by_reason={"chip": 3}),
        records={"inspected": 9, "accepted": 7, "rejected": 2},
        highest_item_id=10,
        expected_items=None,
        checks=(
            Check("inspected = accepted + rejected", True, "10 = 7 + 3"),
            Check("records = station", False, "9 / 7 / 2"),
        ),
    )
    assert not report.reconciled
    dialog = BatchSummaryDialog(report)
    qtbot.addWidget(dialog)
    verdict = dialog.findChild(QLabel, "verdict")
    checks = dialog.findChild(QLabel, "checks")
    assert verdict is not None and verdict.text() == "NOT RECONCILED"
    assert checks is not None and "✘" in checks.text() and "records = station" in checks.text()


def test_summary_dialog_shows_the_input_drift_state(qtbot: Any) -> None:
    from PyQt6.QtWidgets import QLabel

    from ui.widgets.batch import BatchSummaryDialog

    def texts(monitor: dict[str, Any]) -> list[str]:
        report = Reconciliation(
            batch_id="B-2",
            result=result(300, 290, 10, input_monitor=monitor),
            records=None,
            highest_item_id=300,
            expected_items=None,
            checks=(Check("inspected = accepted + rejected", True, "300 = 290 + 10"),),
        )
        dialog = BatchSummaryDialog(report)
        qtbot.addWidget(dialog)
        return [label.text() for label in dialog.findChildren(QLabel)]

    drifting = {"window": 200, "frames": 300, "drifting": True, "means": {"brightness": 186.6, "noise": 5.33}}
    shown = texts(drifting)
    assert "Input, last 200 frames" in shown
    assert "OUTSIDE the validated range (brightness 186.60, noise 5.33)" in shown
    assert "inside the validated range (brightness 186.60, noise 5.33)" in texts({**drifting, "drifting": False})
    assert "not judged (150 frames, fewer than the window)" in texts({**drifting, "frames": 150, "means": None})


def test_live_view_samples_a_fast_line_at_half_rate(qtbot: Any, tmp_path: Path) -> None:
    from ui.controller import StationController, StationOptions
    from ui.widgets.live_view import LiveView

    controller = StationController(StationOptions(root=tmp_path, station=DEMO_STATION))
    view = LiveView(controller)
    qtbot.addWidget(view)
    assert view.timer.interval() == 1000 // 30
    view._adapt_rate(0.0, 1)
    view._adapt_rate(2.5, 201)  # 80 items/s: more than any display shows
    assert view.timer.interval() == 1000 // 15
    view._adapt_rate(5.0, 211)  # 4 items/s: every item is shown again
    assert view.timer.interval() == 1000 // 30
    controller.shutdown()


def test_blister_heat_map_shows_the_rejected_pockets_only() -> None:
    rois = DEFAULT_BLISTER_GRID.rois()
    frame = (480, 640, 3)
    maps = np.full((len(rois), 53, 49), 0.2, np.float32)
    maps[:, 40, 40] = 0.9  # every pocket's normal peak (a reflection, say)
    maps[4, 10, 10] = 0.6  # the rejected pocket: lower than the ok peaks
    everywhere = heatmap_to_frame(maps, frame, rois)
    x, y = hot_spot(everywhere)
    assert not rois[4].x <= x < rois[4].x + rois[4].w  # min-max over the card points elsewhere
    heat = heatmap_to_frame(maps, frame, rois, only=[4])
    x, y = hot_spot(heat)
    assert rois[4].x <= x < rois[4].x + rois[4].w and rois[4].y <= y < rois[4].y + rois[4].h
    others = np.ones(frame[:2], bool)
    others[rois[4].slices()] = False
    assert float(heat[others].max()) == 0.0 and float(heat.max()) == 1.0


def test_recipe_thresholds_looser_than_validated_are_marked_beside_the_recipe(
    qtbot: Any, make_hmi: Any, ui_project: Path
) -> None:
    """Issue 34, case 2: a demo station runs a recipe with looser thresholds only with a mark on screen."""
    import yaml

    path = ui_project / "recipes" / "tablet.yaml"
    recipe = yaml.safe_load(path.read_text())
    recipe["thresholds"] = {"confidence": 0.0, "anomaly": 1e9}
    path.write_text(yaml.safe_dump(recipe))
    w = make_hmi("tablet", plc_url="none")
    qtbot.waitUntil(lambda: w.controller.client is not None, timeout=30_000)
    w.batch.refresh()
    assert "THRESHOLDS NOT VALIDATED" in w.batch.recipe_info.text()
    assert "anomaly 1e+09 > validated" in w.batch.recipe_info.toolTip()
    w.close()


def test_a_batch_a_crash_left_running_is_an_alarm_on_the_hmi(qtbot: Any, make_hmi: Any, ui_project: Path) -> None:
    """Issue 34, case 6: the next start closes it as aborted, and the operator sees the alarm."""
    from inspector.records import RecordStore

    with RecordStore(ui_project / "var" / "inspector.sqlite") as store:
        store.start_batch(
            "KILLED-1",
            product="tablet",
            recipe_id="r",
            recipe_version="1",
            recipe_sha256="a" * 64,
            model_id="m",
            model_version="1",
            model_sha256="b" * 64,
            camera_serial="SIM-0",
            camera_settings={},
        )
    w = make_hmi("tablet", plc_url="none")
    qtbot.waitUntil(lambda: w.controller.client is not None, timeout=30_000)
    (entry,) = [e for e in w.controller.alarms.unacknowledged() if e.alarm.code == "BATCH_ABORTED"]
    assert entry.alarm.batch_id == "KILLED-1" and "closed as aborted" in entry.alarm.message
    w.close()
