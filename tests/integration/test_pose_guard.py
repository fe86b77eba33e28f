"""The station locates every item before inspecting it; an item it cannot place is never accepted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inspector.camera.sim import MemoryCamera
from inspector.config.recipe import FrameSpec, ModelRef, Recipe
from inspector.config.registration import RegistrationSpec
from inspector.events import AlarmRaised, GroundTruth, ItemDecision, NotInspected, StationEvent
from inspector.inference.package import load_package
from inspector.inference.registration import measure_reference
from inspector.inference.session import InferenceEngine
from inspector.pipeline.station import Station
from inspector.synth import render
from inspector.synth.line import LinePresentation, present_on_line
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.support.onnx_models import make_package

ROOT = Path(__file__).resolve().parents[2]


class Collector:
    name = "collector"

    def __init__(self) -> None:
        self.decisions: list[ItemDecision] = []
        self.events: list[StationEvent] = []

    def on_decision(self, decision: ItemDecision) -> None:
        self.decisions.append(decision)

    def finish_batch(self, result: object) -> object:
        return result

    def __call__(self, event: StationEvent) -> None:
        self.events.append(event)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> InferenceEngine:
    folder = tmp_path_factory.mktemp("model") / "tablet"
    record = make_package(folder, Product.TABLET, defect_class="foreign_spot")
    return InferenceEngine(load_package(folder, record.sha256))


def test_items_outside_the_pose_range_are_not_inspected_and_a_run_of_them_raises_pose_guard(
    engine: InferenceEngine,
) -> None:
    product = Product.TABLET
    ref = measure_reference(product, [render(product, "ok", s, 0.0).image for s in range(3)])
    spec = RegistrationSpec(reference=ref, max_shift_px=12, max_turn_deg=45, min_score=0.3, align_rotation=False,
                            alarm_after=3)  # fmt: skip
    spec_ = IMAGE_SPECS[product]
    recipe = Recipe(
        schema_version=1, recipe_id="test-tablet", version="1.0.0", product=product, camera="sim.yaml",
        frame=FrameSpec(width=spec_.width, height=spec_.height, channels=3),
        model=ModelRef(path="unused", sha256=engine.package.sha256),
        latency_budget_ms=500, line_rate_per_min=600, queue_depth=8, registration=spec,
    )  # fmt: skip
    good = [render(product, "ok", 100 + i, 0.5).image for i in range(8)]
    moved = []
    for i, image in enumerate(good[:4]):
        far, drawn = present_on_line(image, LinePresentation(shift_px=40.0), 1000 + i)
        if max(abs(drawn["dx"]), abs(drawn["dy"])) > 20:  # well outside the 12 px range
            moved.append(far)
    assert len(moved) >= 3
    blank = np.full(good[0].shape, 40, np.uint8)  # the belt without a tablet: nothing to locate
    frames = [*good[:2], *moved, blank, *good[2:4]]
    items = len(frames)
    cam = MemoryCamera([(f, GroundTruth("ok")) for f in frames], line_rate_per_min=600, items=items)
    c = Collector()
    station = Station(recipe, cam, engine, sinks=[c])
    station.subscribe(c)
    station.start("B-POSE")
    assert station.wait_finished(30.0)
    summary = station.stop().as_dict()

    by_id = {d.item_id: d for d in c.decisions}
    assert sorted(by_id) == list(range(1, items + 1))
    refused = [by_id[i] for i in range(3, 3 + len(moved) + 1)]
    for d in refused:
        assert not d.accept and d.not_inspected is NotInspected.POSE, d
    assert all(d.pose is not None and np.hypot(d.pose["dx"], d.pose["dy"]) > 12 for d in refused[:-1])
    assert refused[-1].pose is None and "no item" in refused[-1].detail
    for i in (1, 2, items - 1, items):
        d = by_id[i]
        assert d.not_inspected is not NotInspected.POSE and d.pose is not None, d
        assert np.hypot(d.pose["dx"], d.pose["dy"]) <= 12 and d.times.t_registered is not None
        assert "register_ms" in d.times.ms()
    alarms = [e.alarm for e in c.events if isinstance(e, AlarmRaised) and e.alarm.code == "POSE_GUARD"]
    assert len(alarms) == 1, "one alarm for the run, raised at the third refusal in a row"
    assert alarms[0].detail["refused"] == 3
    assert summary["not_inspected_by_cause"] == {"pose": len(refused)}


def test_evaluate_locates_moved_cards_as_the_station_does(tmp_path: Path) -> None:
    """The shipped blister package on cards a line moved and turned: located, they are judged right;
    cut at the fixed places (the shortcut), good cards are rejected."""
    from inspector.cli import main
    from inspector.synth.generate import generate

    cards = tmp_path / "cards"
    line = LinePresentation(shift_px=8.0, turn_deg=5.0)
    entries = generate("blister", 30, 951001, cards, defect_rate=0.3, masks=False, workers=1, line=line)
    assert all(e.line is not None for e in entries)
    model = ROOT / "models" / "blister" / "1.7.0"
    located, fixed = tmp_path / "located.json", tmp_path / "fixed.json"
    common = ["evaluate", "--model", str(model), "--images", str(cards), "--no-plots", "--quiet"]
    code = main([*common, "--json", str(located)])
    main([*common, "--json", str(fixed), "--no-registration"])
    a, b = json.loads(located.read_text()), json.loads(fixed.read_text())
    # Exit 1 only for the record's inference-time criteria, which hold on the machine that validated
    # the package, not on any machine running the tests (speed is the benchmarks' business).
    judged = {k: c["passed"] for k, c in a["acceptance"]["checks"].items() if not k.startswith("infer_ms")}
    assert judged and all(judged.values()), judged
    assert code == (0 if a["acceptance"]["passed"] else 1)
    assert a["registration"]["located"] == 30 and a["registration"]["refused"] == 0
    assert a["false_reject_rate"] == 0.0 and a["critical_escapes"] == 0
    assert all(r == 1.0 for lab, r in a["per_class_recall"].items() if lab != "ok")
    assert "registration" not in b and b["false_reject_rate"] > 0.1, "the fixed cut misses moved pockets"
    shift = a["registration"]["pose"]["dx"]
    assert shift["max"] - shift["min"] > 8, "the set spreads over the line's shifts"


def test_the_demo_line_moves_its_cards_and_the_station_finds_every_one(tmp_path: Path) -> None:
    """`inspector run --shift 8 --turn 5`: the shipped blister recipe and package on a line that moves its cards."""
    import sqlite3
    import subprocess
    import sys

    db, out = tmp_path / "line.sqlite", tmp_path / "line.json"
    # 300 cards/min: the simulated camera renders each card on the station's own two cores; faster,
    # a slow machine's first cards can miss the 100 ms budget (rejected, not inspected: fail-safe).
    argv = ["run", "--recipe", "blister", "--items", "24", "--line-rate", "300", "--defect-rate", "0.3"]
    argv += ["--shift", "8", "--turn", "5", "--plc", "none", "--db", str(db), "--json", str(out), "--quiet"]
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", *argv], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    # Every card is found: none is refused for its pose. A card that a loaded machine finished after the
    # budget is rejected late (fail-safe, the station's timing, not registration's); it is not an accept.
    causes = summary["not_inspected_by_cause"]
    assert summary["items"] == 24 and "pose" not in causes and set(causes) <= {"late"}, causes
    late = causes.get("late", 0)
    assert late <= 2, f"{late} of 24 cards late: the machine is too loaded to say anything about registration"
    assert summary["escapes"] == 0 and summary["false_rejects"] == 0
    with sqlite3.connect(db) as conn:
        poses = [
            json.loads(p) for (p,) in conn.execute("SELECT pose FROM items WHERE batch_id = ?", (summary["batch_id"],))
        ]
    assert len(poses) == 24 and sum(p is not None for p in poses) >= 24 - late, "every item's pose is in its record"
    assert max(abs(p["angle_deg"]) for p in poses) > 1.5, "the line turned some cards past the renderer's own jitter"
