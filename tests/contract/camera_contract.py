"""One contract every camera implementation passes (sim, files, genicam).

Subclass :class:`CameraContract` and provide a ``make_camera`` fixture that returns a
*closed* camera factory; the tests open, start and close it themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from inspector.camera.base import Camera, CameraError, CameraState, Frame

GRAB_TIMEOUT_S = 5.0


def _grab(cam: Camera, n: int) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + GRAB_TIMEOUT_S * n
    while len(frames) < n and time.monotonic() < deadline:
        f = cam.grab(timeout_s=GRAB_TIMEOUT_S)
        if f is not None:
            frames.append(f)
    assert len(frames) == n, f"got {len(frames)} of {n} frames"
    return frames


class CameraContract:
    """Behaviour shared by every :class:`Camera`."""

    expected_shape: tuple[int, ...] | None = None

    @pytest.fixture
    def make_camera(self) -> Callable[[], Camera]:
        raise NotImplementedError

    def test_lifecycle_states(self, make_camera: Callable[[], Camera]) -> None:
        cam = make_camera()
        assert cam.state is CameraState.CLOSED
        cam.open()
        try:
            assert cam.state is CameraState.OPEN
            cam.start()
            assert cam.state is CameraState.ACQUIRING
            cam.stop()
            assert cam.state is CameraState.OPEN
        finally:
            cam.close()
        assert cam.state is CameraState.CLOSED
        cam.close()  # idempotent

    def test_grab_outside_acquisition_is_an_error(self, make_camera: Callable[[], Camera]) -> None:
        cam = make_camera()
        with pytest.raises(CameraError):
            cam.grab(timeout_s=0.1)
        with cam:
            with pytest.raises(CameraError):
                cam.grab(timeout_s=0.1)
            with pytest.raises(CameraError):
                cam.open()

    def test_grab_needs_a_timeout(self, make_camera: Callable[[], Camera]) -> None:
        with make_camera() as cam:
            cam.start()
            with pytest.raises(ValueError):
                cam.grab(timeout_s=0)

    def test_frames_are_owned_ordered_and_stamped(self, make_camera: Callable[[], Camera]) -> None:
        with make_camera() as cam:
            cam.start()
            frames = _grab(cam, 5)
            cam.stop()
        for f in frames:
            assert isinstance(f.image, np.ndarray) and f.image.dtype == np.uint8
            assert f.image.flags.owndata or f.image.base is None or f.image.flags.writeable
            if self.expected_shape is not None:
                assert f.image.shape == self.expected_shape
            assert f.camera_serial == cam.serial
        ids = [f.item_id for f in frames]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        fids = [f.frame_id for f in frames]
        assert fids == sorted(fids)
        ts = [f.t_acquired for f in frames]
        assert ts == sorted(ts) and ts[-1] <= time.monotonic()
        # Owned copies: changing one frame's pixels cannot change another's.
        before = frames[1].image.copy()
        frames[0].image[...] = 0
        assert np.array_equal(frames[1].image, before)

    def test_stats_count_frames(self, make_camera: Callable[[], Camera]) -> None:
        with make_camera() as cam:
            cam.start()
            _grab(cam, 3)
            assert cam.stats.frames >= 3
            assert cam.stats.gaps >= 0

    def test_describe_names_the_device(self, make_camera: Callable[[], Camera]) -> None:
        with make_camera() as cam:
            d = cam.describe()
            assert d["serial"] == cam.serial and d["kind"] == cam.kind

    def test_restart_after_stop(self, make_camera: Callable[[], Camera]) -> None:
        with make_camera() as cam:
            cam.start()
            _grab(cam, 2)
            cam.stop()
            cam.start()
            _grab(cam, 2)
