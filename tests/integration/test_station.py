"""The station pipeline end to end with a real ONNX Runtime session and fault injection.

Every test checks the fail-safe invariant: an item is accepted only when it was
positively inspected in time; everything else is accounted for as a reject.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from inspector.camera.sim import MemoryCamera, SimCamera
from inspector.config.monitor import InputLimits
from inspector.config.recipe import FrameSpec, ModelRef, Recipe
from inspector.config.roi import DEFAULT_BLISTER_GRID
from inspector.events import (
    AlarmRaised,
    AlarmSeverity,
    BatchResult,
    GroundTruth,
    ItemDecision,
    NotInspected,
    StateChanged,
    StationEvent,
    StationState,
)
from inspector.inference.package import ModelIntegrityError, load_package
from inspector.inference.session import InferenceEngine, ModelError
from inspector.pipeline.monitor import build_reference
from inspector.pipeline.station import Station, StationError
from inspector.synth.generate import generate
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.support.onnx_models import make_package

TABLET_SHAPE = IMAGE_SPECS[Product.TABLET].shape


def _recipe(product: Product, sha: str, *, budget_ms: float = 200, rate: float = 1200, depth: int = 8) -> Recipe:
    spec = IMAGE_SPECS[product]
    return Recipe(
        schema_version=1,
        recipe_id=f"test-{product.value}",
        version="1.0.0",
        product=product,
        camera="sim.yaml",
        frame=FrameSpec(width=spec.width, height=spec.height, channels=spec.channels),  # type: ignore[arg-type]
        model=ModelRef(path="unused", sha256=sha),
        latency_budget_ms=budget_ms,
        line_rate_per_min=rate,
        queue_depth=depth,
        pocket_grid=DEFAULT_BLISTER_GRID if product is Product.BLISTER else None,
    )


@pytest.fixture(scope="module")
def tablet_engine(tmp_path_factory: pytest.TempPathFactory) -> InferenceEngine:
    folder = tmp_path_factory.mktemp("model") / "tablet"
    record = make_package(folder, Product.TABLET, defect_class="foreign_spot")
    return InferenceEngine(load_package(folder, record.sha256))


def _frames(n_good: int, n_dark: int) -> list[tuple[np.ndarray, GroundTruth]]:
    good = [(np.full(TABLET_SHAPE, 180, np.uint8), GroundTruth("ok")) for _ in range(n_good)]
    dark = [(np.full(TABLET_SHAPE, 5, np.uint8), GroundTruth("foreign_spot")) for _ in range(n_dark)]
    return good + dark


class Collector:
    def __init__(self) -> None:
        self.decisions: list[ItemDecision] = []
        self.events: list[StationEvent] = []
        self.name = "collector"

    def on_decision(self, decision: ItemDecision) -> None:
        self.decisions.append(decision)

    def finish_batch(self, result: BatchResult) -> BatchResult:
        return result

    def __call__(self, event: StationEvent) -> None:
        self.events.append(event)

    def alarms(self) -> list[str]:
        return [e.alarm.code for e in self.events if isinstance(e, AlarmRaised)]


def _run(station: Station, items: int, timeout_s: float = 20.0) -> dict[str, object]:
    station.start("B-TEST")
    assert station.wait_finished(timeout_s), "batch did not finish in time"
    return station.stop().as_dict()


def _assert_fail_safe(c: Collector, items: int) -> None:
    ids = [d.item_id for d in c.decisions]
    assert sorted(ids) == list(range(1, items + 1)), "every item decided exactly once"
    for d in c.decisions:
        if d.accept:
            assert d.reason == "ok" and d.deadline_met and d.not_inspected is None
            assert d.times.t_decided is not None and d.times.t_acquired is not None


def test_decides_every_item_and_scores_against_truth(tablet_engine: InferenceEngine) -> None:
    frames = _frames(3, 1)
    cam = MemoryCamera(frames, line_rate_per_min=3000, items=40)
    c = Collector()
    st = Station(_recipe(Product.TABLET, tablet_engine.package.sha256), cam, tablet_engine, sinks=[c])
    st.subscribe(c)
    summary = _run(st, 40)
    _assert_fail_safe(c, 40)
    assert summary["items"] == 40 and summary["reconciled"] is True
    assert summary["accepted"] == 30
    assert summary["rejected_by_reason"] == {"foreign_spot": 10}
    assert summary["escapes"] == 0 and summary["false_rejects"] == 0
    assert summary["latency_ms_p50"] is not None
    states = [e.state for e in c.events if isinstance(e, StateChanged)]
    assert states == [StationState.STARTING, StationState.RUNNING, StationState.STOPPING, StationState.IDLE]
    assert st.state is StationState.IDLE
    d = c.decisions[0]
    assert d.times.t_acquired <= d.times.t_queued <= d.times.t_dequeued <= d.times.t_inferred <= d.times.t_decided  # type: ignore[operator]


class SlowEngine:
    """The real engine, slowed down: a model that blows its latency budget."""

    def __init__(self, engine: InferenceEngine, delay_s: float, every: int = 1) -> None:
        self._engine, self.delay_s, self.every, self.calls = engine, delay_s, every, 0
        self.package = engine.package

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        if self.calls % self.every == 0:
            time.sleep(self.delay_s)
        return self._engine.run(batch)


def test_slowed_model_never_accepts_late_items(tablet_engine: InferenceEngine) -> None:
    cam = MemoryCamera(_frames(1, 0), line_rate_per_min=600, items=12)
    c = Collector()
    slow = SlowEngine(tablet_engine, delay_s=0.06, every=3)
    st = Station(_recipe(Product.TABLET, tablet_engine.package.sha256, budget_ms=30, rate=600), cam, slow, sinks=[c])  # type: ignore[arg-type]
    summary = _run(st, 12)
    _assert_fail_safe(c, 12)
    late = [d for d in c.decisions if d.not_inspected is NotInspected.LATE]
    assert len(late) == 4, "every third inference was slowed past the 30 ms budget"
    assert all(not d.accept for d in late)
    assert summary["accepted"] == 8 and summary["not_inspected"] == 4
    # One warning for the batch, not one per item: the next may come a minute later at the earliest.
    assert [a.code for a in st.alarms].count("LATE_DECISIONS") == 1
    alarm = next(a for a in st.alarms if a.code == "LATE_DECISIONS")
    assert alarm.severity is AlarmSeverity.WARNING and alarm.detail == {"late": 1} and "30 ms budget" in alarm.message


class BrokenEngine(SlowEngine):
    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        if self.calls % 2 == 0:
            raise ModelError("simulated runtime failure")
        return self._engine.run(batch)


def test_model_error_is_not_inspected_with_alarm(tablet_engine: InferenceEngine) -> None:
    cam = MemoryCamera(_frames(1, 0), line_rate_per_min=3000, items=10)
    c = Collector()
    st = Station(
        _recipe(Product.TABLET, tablet_engine.package.sha256),
        cam,
        BrokenEngine(tablet_engine, 0),  # type: ignore[arg-type]
        sinks=[c],
    )
    st.subscribe(c)
    summary = _run(st, 10)
    _assert_fail_safe(c, 10)
    assert summary["accepted"] == 5 and summary["not_inspected_by_cause"] == {"model_error": 5}
    assert c.alarms().count("MODEL_ERROR") == 5


def test_corrupt_frames_are_not_inspected(tablet_engine: InferenceEngine) -> None:
    cam = MemoryCamera(_frames(1, 0), line_rate_per_min=3000, items=10)
    c = Collector()
    st = Station(_recipe(Product.TABLET, tablet_engine.package.sha256), cam, tablet_engine, sinks=[c])
    st.subscribe(c)
    cam.inject_corrupt(2, "wrong_size")
    st.start("B")
    assert st.wait_finished(10)
    summary = st.stop().as_dict()
    _assert_fail_safe(c, 10)
    assert summary["not_inspected_by_cause"] == {"corrupt_frame": 2}
    assert c.alarms().count("CORRUPT_FRAME") == 2


def test_full_queue_overflow_is_not_inspected(tablet_engine: InferenceEngine) -> None:
    # 100 items/s into a model taking 40 ms with a queue of 1: the queue must overflow.
    cam = MemoryCamera(_frames(1, 0), line_rate_per_min=6000, items=30)
    c = Collector()
    slow = SlowEngine(tablet_engine, delay_s=0.04)
    st = Station(
        _recipe(Product.TABLET, tablet_engine.package.sha256, budget_ms=190, rate=6000, depth=1), cam, slow, sinks=[c]
    )  # type: ignore[arg-type]
    st.subscribe(c)
    summary = _run(st, 30)
    _assert_fail_safe(c, 30)
    causes = summary["not_inspected_by_cause"]
    assert isinstance(causes, dict)
    assert causes.get("queue_overflow", 0) + causes.get("frame_gap", 0) > 0
    assert "QUEUE_OVERFLOW" in c.alarms() or "FRAME_GAP" in c.alarms()
    assert summary["reconciled"] is True and summary["items"] == 30


def test_killed_camera_faults_recovers_and_accounts_for_lost_items(tablet_engine: InferenceEngine) -> None:
    cam = MemoryCamera(_frames(1, 0), line_rate_per_min=1200, items=60)  # 20 items/s for 3 s
    c = Collector()
    st = Station(_recipe(Product.TABLET, tablet_engine.package.sha256), cam, tablet_engine, sinks=[c])
    st.subscribe(c)
    st.start("B")
    deadline = time.monotonic() + 5
    while len(c.decisions) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    cam.kill()
    deadline = time.monotonic() + 5
    while st.state is not StationState.FAULT and time.monotonic() < deadline:
        time.sleep(0.01)
    assert st.state is StationState.FAULT
    time.sleep(0.6)  # the line keeps moving while the camera is gone
    cam.revive()
    deadline = time.monotonic() + 5
    while st.state is not StationState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    assert st.state is StationState.RUNNING
    assert st.wait_finished(10)
    summary = st.stop().as_dict()
    _assert_fail_safe(c, 60)
    assert "CAMERA_FAULT" in c.alarms() and "CAMERA_RECOVERED" in c.alarms()
    lost = [d for d in c.decisions if d.not_inspected is NotInspected.FRAME_GAP]
    assert len(lost) >= 8, "about 12 items passed while the camera was down"
    assert summary["accepted"] + summary["rejected"] == 60  # type: ignore[operator]


def test_sim_camera_runs_the_renderer_with_truth(tablet_engine: InferenceEngine) -> None:
    cam = SimCamera(Product.TABLET, line_rate_per_min=1200, items=15, seed=3, defect_rate=0.3)
    c = Collector()
    st = Station(_recipe(Product.TABLET, tablet_engine.package.sha256), cam, tablet_engine, sinks=[c])
    summary = _run(st, 15)
    _assert_fail_safe(c, 15)
    assert summary["scored"] == 15
    assert all(d.truth is not None for d in c.decisions)


@pytest.fixture(scope="module")
def nominal_input(tmp_path_factory: pytest.TempPathFactory) -> InputLimits:
    """Drift limits measured on rendered tablets at nominal nuisance."""
    folder = tmp_path_factory.mktemp("input") / "tablet_n1.0"
    generate("tablet", 80, 11, folder, nuisance=1.0, masks=False, workers=1)
    return build_reference([folder], window=10)[0]


@pytest.mark.parametrize("nuisance", [1.0, 3.0])
def test_input_drift_raises_a_warning_and_still_decides_every_item(
    tablet_engine: InferenceEngine, nominal_input: InputLimits, nuisance: float
) -> None:
    cam = SimCamera(Product.TABLET, line_rate_per_min=1200, items=40, seed=12, nuisance=nuisance)
    recipe = _recipe(Product.TABLET, tablet_engine.package.sha256).model_copy(update={"input_monitor": nominal_input})
    c = Collector()
    st = Station(recipe, cam, tablet_engine, sinks=[c])
    st.subscribe(c)
    summary = _run(st, 40)
    _assert_fail_safe(c, 40)
    monitor = summary["input_monitor"]
    assert isinstance(monitor, dict) and monitor["frames"] == 40 and monitor["window"] == 10
    if nuisance == 1.0:
        assert "INPUT_DRIFT" not in c.alarms() and not monitor["drifting"]
    else:
        assert c.alarms().count("INPUT_DRIFT") == 1 and monitor["drifting"]
        alarm = next(a for a in st.alarms if a.code == "INPUT_DRIFT")
        assert alarm.severity is AlarmSeverity.WARNING and "noise" in alarm.message
        assert st.state is StationState.IDLE  # a warning, not a fault: the batch ran to its end


def test_station_refuses_wrong_transitions(tablet_engine: InferenceEngine) -> None:
    cam = MemoryCamera(_frames(1, 0), line_rate_per_min=600, items=1)
    st = Station(_recipe(Product.TABLET, tablet_engine.package.sha256), cam, tablet_engine)
    with pytest.raises(StationError):
        st.stop()
    st.start("B")
    with pytest.raises(StationError):
        st.start("B2")
    st.stop()


def test_station_refuses_to_start_while_a_dependency_is_in_fault(tablet_engine: InferenceEngine) -> None:
    cam = MemoryCamera(_frames(1, 0), line_rate_per_min=600, items=1)
    st = Station(_recipe(Product.TABLET, tablet_engine.package.sha256), cam, tablet_engine)
    st.report_fault("plc", "PLC link lost")
    with pytest.raises(StationError, match="active fault in plc"):
        st.start("B")
    assert st.state is StationState.IDLE
    assert [a.code for a in st.alarms] == ["PLC_FAULT"]
    st.report_recovered("plc", "PLC link recovered")
    st.start("B")
    assert st.state is StationState.RUNNING
    st.stop()


def test_tampered_model_refuses_to_load(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    record = make_package(folder, Product.VIAL)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[-5] ^= 0x01
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match its record"):
        load_package(folder, record.sha256)


def test_recipe_hash_mismatch_refuses_to_load(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    make_package(folder, Product.VIAL)
    with pytest.raises(ModelIntegrityError, match="recipe expects"):
        load_package(folder, "f" * 64)


def test_blister_pockets_cropped_and_worst_pocket_reported(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    record = make_package(folder, Product.BLISTER, defect_class="empty_pocket")
    engine = InferenceEngine(load_package(folder, record.sha256))
    shape = IMAGE_SPECS[Product.BLISTER].shape
    card = np.full(shape, 200, np.uint8)
    roi = DEFAULT_BLISTER_GRID.rois()[7]
    card[roi.slices()] = 0
    cam = MemoryCamera([(card, GroundTruth("empty_pocket"))], line_rate_per_min=600, items=3)
    c = Collector()
    st = Station(_recipe(Product.BLISTER, record.sha256), cam, engine, sinks=[c])
    _run(st, 3)
    assert all(d.reason == "empty_pocket" and d.pocket_index == 7 and not d.accept for d in c.decisions)


def test_station_inspects_frames_from_the_genicam_producer(tmp_path: Path) -> None:
    """The real acquisition path: Harvesters + viky.cti -> station -> decisions, all accounted for."""
    from inspector.camera.genicam import GenICamCamera
    from inspector.config.camera import load_camera_config

    root = Path(__file__).resolve().parents[2]
    cam = GenICamCamera(load_camera_config(root / "camera_configs" / "viky_vial.yaml"))
    folder = tmp_path / "m"
    record = make_package(folder, Product.VIAL, defect_class="particle", dark_below=5)
    engine = InferenceEngine(load_package(folder, record.sha256))
    c = Collector()
    st = Station(_recipe(Product.VIAL, record.sha256, budget_ms=100, rate=1800), cam, engine, sinks=[c])
    st.start("B-GENICAM")
    deadline = time.monotonic() + 10
    while len(c.decisions) < 15 and time.monotonic() < deadline:
        time.sleep(0.02)
    summary = st.stop().as_dict()
    cam.close()
    assert len(c.decisions) >= 15, "viky delivers 30 frames/s"
    assert summary["items"] == len(c.decisions) and summary["reconciled"] is True
    assert {d.camera_serial for d in c.decisions} == {"0"}
    for d in c.decisions:
        if d.accept:
            assert d.reason == "ok" and d.deadline_met
    inspected = [d for d in c.decisions if d.not_inspected is None]
    assert inspected, "frames of the right size reach the model"
