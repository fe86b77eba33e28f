"""The camera contract for the simulated, file-replay and in-memory cameras, plus their line timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from inspector.camera.base import Camera, CameraEventKind, CameraFault, CameraState
from inspector.camera.sim import FilesCamera, MemoryCamera, SimCamera
from inspector.synth.generate import generate
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.contract.camera_contract import CameraContract


class TestSimCameraContract(CameraContract):
    expected_shape = IMAGE_SPECS[Product.TABLET].shape

    @pytest.fixture
    def make_camera(self) -> Callable[[], Camera]:
        return lambda: SimCamera(Product.TABLET, line_rate_per_min=3000, seed=1)


class TestFilesCameraContract(CameraContract):
    expected_shape = IMAGE_SPECS[Product.VIAL].shape

    @pytest.fixture
    def make_camera(self, tmp_path: Path) -> Callable[[], Camera]:
        generate("vial", 6, 3, tmp_path / "set", workers=1, masks=False)
        return lambda: FilesCamera(tmp_path / "set", line_rate_per_min=3000, loop=True)


class TestMemoryCameraContract(CameraContract):
    expected_shape = (8, 8)

    @pytest.fixture
    def make_camera(self) -> Callable[[], Camera]:
        frames = [(np.full((8, 8), i, np.uint8), None) for i in range(4)]
        return lambda: MemoryCamera(frames, line_rate_per_min=6000)


def test_sim_frames_carry_truth_but_the_image_is_just_pixels() -> None:
    with SimCamera(Product.VIAL, line_rate_per_min=3000, seed=2, defect_rate=1.0, items=3) as cam:
        cam.start()
        frames = [cam.grab(2.0) for _ in range(3)]
    assert all(f is not None and f.truth is not None and f.truth.label != "ok" for f in frames)
    assert [f.item_id for f in frames if f] == [1, 2, 3]


def test_sim_is_deterministic_per_seed() -> None:
    def first(seed: int) -> np.ndarray:
        with SimCamera(Product.TABLET, line_rate_per_min=3000, seed=seed, items=1) as cam:
            cam.start()
            f = cam.grab(2.0)
            assert f is not None
            return f.image

    assert np.array_equal(first(5), first(5))
    assert not np.array_equal(first(5), first(6))


def test_line_timing_and_lost_frames_show_as_gaps() -> None:
    frames = [(np.zeros((4, 4), np.uint8), None)]
    with MemoryCamera(frames, line_rate_per_min=6000) as cam:  # one item every 10 ms, 3 buffered
        cam.start()
        a = cam.grab(1.0)
        time.sleep(0.12)  # a slow consumer: the camera buffer overflows
        b = cam.grab(1.0)
    assert a is not None and b is not None
    assert b.frame_id - a.frame_id > 5
    assert cam.stats.gaps == b.frame_id - a.frame_id - 1
    assert abs((b.t_acquired - a.t_acquired) - 0.01 * (b.frame_id - a.frame_id)) < 1e-6


def test_killed_camera_faults_and_recovers_only_when_revived() -> None:
    events: list[CameraEventKind] = []
    cam = MemoryCamera([(np.zeros((4, 4), np.uint8), None)], line_rate_per_min=6000)
    cam.subscribe(lambda e: events.append(e.kind))
    with cam:
        cam.start()
        assert cam.grab(1.0) is not None
        cam.kill()
        with pytest.raises(CameraFault):
            cam.grab(1.0)
        assert cam.state is CameraState.FAULT
        assert cam.recover() is False
        cam.revive()
        assert cam.recover() is True
        assert cam.state is CameraState.ACQUIRING
        assert cam.grab(1.0) is not None
    assert events[:2] == [CameraEventKind.FAULT, CameraEventKind.RECOVERED]


def test_files_camera_replays_a_corrupt_file_as_an_empty_frame(tmp_path: Path) -> None:
    generate("tablet", 2, 1, tmp_path / "s", workers=1, masks=False)
    (tmp_path / "s" / "tablet_000001.png").write_bytes(b"not a png")
    with FilesCamera(tmp_path / "s", line_rate_per_min=6000) as cam:
        cam.start()
        a, b = cam.grab(1.0), cam.grab(1.0)
    assert a is not None and a.image.shape == IMAGE_SPECS[Product.TABLET].shape
    assert b is not None and b.image.size == 0, "the station rejects it as not inspected"
    assert b.refused is not None and "not the file it names" in b.refused and a.refused is None
    assert cam.finished


def test_a_files_batch_of_n_items_replays_the_folder_from_its_start(tmp_path: Path) -> None:
    generate("tablet", 3, 8, tmp_path / "s", workers=1, masks=False)
    assert FilesCamera(tmp_path / "s", line_rate_per_min=None).items == 3, "default: the folder once"
    with FilesCamera(tmp_path / "s", line_rate_per_min=None, items=5) as cam:
        cam.start()
        frames = [cam.grab(1.0) for _ in range(5)]
        assert cam.finished and cam.grab(0.1) is None
    sources = [f.truth.source for f in frames if f is not None and f.truth is not None]
    assert len(sources) == 5 and sources[3:] == sources[:2], "the folder again after its last image"
    with pytest.raises(ValueError, match="at least 1"):
        FilesCamera(tmp_path / "s", line_rate_per_min=None, items=0)
