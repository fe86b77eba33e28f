"""The camera contract against the simulated GenTL device (viky.cti, serial 0)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from inspector.camera.base import Camera
from inspector.camera.genicam import GenICamCamera
from inspector.config.camera import load_camera_config
from tests.contract.camera_contract import CameraContract

VIKY_YAML = Path(__file__).resolve().parents[2] / "camera_configs" / "viky.yaml"
_CONFIG = load_camera_config(VIKY_YAML)


class TestGenICamCamera(CameraContract):
    expected_shape = (int(_CONFIG.features["Height"]), int(_CONFIG.features["Width"]), 3)

    @pytest.fixture
    def make_camera(self) -> Callable[[], Camera]:
        return lambda: GenICamCamera(_CONFIG)
