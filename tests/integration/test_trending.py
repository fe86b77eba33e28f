"""Trending through the station: a class's reject rate crosses its action limit live (an alarm), the
batch record and report carry the rates; a re-inspection is a batch of its own linked to the first."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inspector.config.errors import ConfigError
from inspector.config.recipe import load_recipe
from inspector.config.station import DEMO_STATION
from inspector.events import AlarmRaised, StationEvent
from inspector.pipeline.station import StationError
from inspector.records import RecordStore
from inspector.reports import batch as batch_report
from inspector.station import open_station
from inspector.taxonomy import IMAGE_SPECS, Product, labels
from tests.support.onnx_models import make_package

DEFECT = labels(Product.TABLET)[1]  # the brightness model's defect class


def _project(tmp: Path, trending: dict[str, object]) -> Path:
    # Every sim tablet is darker than 255: the model rejects them all as DEFECT.
    record = make_package(tmp / "models" / "tablet" / "0.0.1", Product.TABLET, dark_below=255)
    spec = IMAGE_SPECS[Product.TABLET]
    recipe = {
        "schema_version": 1, "recipe_id": "tablet-trend-test", "version": "1.0.0", "product": "tablet",
        "camera": "sim.yaml", "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
        "model": {"path": "models/tablet/0.0.1", "sha256": record.sha256},
        "latency_budget_ms": 300, "line_rate_per_min": 1200, "trending": trending,
    }  # fmt: skip
    (tmp / "recipes").mkdir(exist_ok=True)
    (tmp / "recipes" / "tablet.yaml").write_text(yaml.safe_dump(recipe))
    return tmp


def _config(items: int) -> object:
    camera = DEMO_STATION.camera.model_copy(update={"items": items, "seed": 3})
    return DEMO_STATION.model_copy(update={"recipe": "tablet", "plc": None, "camera": camera})


def test_a_rate_above_its_action_limit_raises_an_alarm_and_reaches_the_batch_report(tmp_path: Path) -> None:
    limits = {DEFECT: {"alert": 0.1, "action": 0.5}, "not_inspected": {"alert": 0.01, "action": 0.05}}
    root = _project(tmp_path, {"window": 20, "limits": limits})
    alarms: list[str] = []

    def on_event(event: StationEvent) -> None:
        if isinstance(event, AlarmRaised) and event.alarm.source == "trending":
            alarms.append(f"{event.alarm.code}:{event.alarm.detail['reason']}")

    session = open_station(_config(30), root=root, on_event=on_event)  # type: ignore[arg-type]
    try:
        first = session.run()
    finally:
        session.close()
    # The same items again (the sim camera renders them from the same seed): a second pass, linked.
    session = open_station(_config(30), root=root, on_event=on_event)  # type: ignore[arg-type]
    try:
        with pytest.raises(StationError, match="does not exist"):
            session.start_batch(reinspection_of="tablet-no-such-batch")
        again = session.run(reinspection_of=first.batch_id)
        assert session.recorder is not None
        db = session.recorder.database
    finally:
        session.close()
    assert first.rejected == 30 and first.not_inspected == 0, first.rejected_by_reason
    assert alarms == [f"REJECT_RATE_ACTION:{DEFECT}"] * 2, "once per batch, when its window filled"
    trend = first.trending
    assert trend is not None and trend["items"] == 30
    assert trend["classes"][DEFECT]["batch_level"] == "action" and trend["classes"][DEFECT]["batch_rate"] == 1.0
    assert trend["classes"]["not_inspected"]["batch_level"] == "normal"
    with RecordStore(db) as store:
        report = batch_report.build(store, first.batch_id or "")
        second = batch_report.build(store, again.batch_id or "")
        stored = store.batch(first.batch_id or "")["summary"]
    assert stored["trending"] == trend
    assert report["trending"] == trend and [a["code"] for a in report["alarms"]] == ["REJECT_RATE_ACTION"]
    assert report["reinspections"] == [again.batch_id] and report["reinspection_of"] is None
    assert second["reinspection_of"] == first.batch_id and second["reinspections"] == []


def test_trending_limits_name_classes_of_the_product(tmp_path: Path) -> None:
    root = _project(tmp_path, {"window": 20, "limits": {"particle": {"alert": 0.1, "action": 0.2}}})
    with pytest.raises(ConfigError, match=r"trending\.limits"):
        load_recipe("tablet", root)


def test_the_trend_across_batches_is_drawn_with_its_limits(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    import cv2
    from pypdf import PdfReader

    limits = {DEFECT: {"alert": 0.1, "action": 0.5}, "not_inspected": {"alert": 0.01, "action": 0.05}}
    root = _project(tmp_path, {"window": 20, "limits": limits})
    batches = []
    for _ in range(2):
        session = open_station(_config(25), root=root)  # type: ignore[arg-type]
        try:
            batches.append(session.run().batch_id)
            assert session.recorder is not None
            db = session.recorder.database
        finally:
            session.close()
    out = tmp_path / "trend"
    env = {**os.environ, "INSPECTOR_HOME": str(root)}
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", "records", "trend", "--recipe", "tablet-trend-test", "--db", str(db),
         "--out", str(out), "--json"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["batches"] == 2
    report = json.loads((out / "trend.json").read_text())
    assert [b["batch_id"] for b in report["batches"]] == batches
    assert report["classes"] == sorted(limits) and report["limits"][DEFECT] == limits[DEFECT]
    assert [(o["batch_id"], o["class"], o["level"]) for o in report["out_of_limits"]] == [
        (b, DEFECT, "action") for b in batches]  # fmt: skip
    picture = cv2.imread(str(out / "trend.png"))
    assert picture is not None and picture.shape[0] > 200 and picture.shape[1] > 600
    text = "".join(p.extract_text() for p in PdfReader(str(out / "trend.pdf")).pages)
    assert "tablet-trend-test" in text and "ACTION" in text and batches[0] in text
