"""GenICam cameras end to end against the simulated GenTL producer ``viky.cti`` (no hardware).

Viky offers three devices (serials 0, 1, 2, model Viky); its frame ids start at 1 on
every start, and with all buffers full it keeps the oldest frames and drops the newer
ones, so a slow consumer sees a jump in frame id once the queued buffers are drained.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from inspector.camera.base import CameraError, CameraEvent, CameraEventKind, CameraFault, CameraState, Frame
from inspector.camera.genicam import GenICamCamera, list_devices, select_device
from inspector.cli.cameras import register as register_cameras
from inspector.config.camera import CameraConfig, ConfigError, load_camera_config, resolve_cti, viky_cti_path

ROOT = Path(__file__).resolve().parents[2]
VIKY_YAML = ROOT / "camera_configs" / "viky.yaml"
SIM_YAML = ROOT / "camera_configs" / "sim.yaml"
TIMEOUT_S = 3.0


def _config(**overrides: Any) -> CameraConfig:
    data: dict[str, Any] = {
        "schema_version": 1,
        "name": "test",
        "kind": "genicam",
        "cti": "${GENICAM_VIKY}",
        "serial": "0",
        "features": {"Width": 320, "Height": 240, "AcquisitionFrameRate": 50.0},
    }
    data.update(overrides)
    return CameraConfig.model_validate(data)


def _grab(cam: GenICamCamera, n: int = 1) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + TIMEOUT_S * n
    while len(frames) < n and time.monotonic() < deadline:
        f = cam.grab(timeout_s=TIMEOUT_S)
        if f is not None:
            frames.append(f)
    assert len(frames) == n, f"got {len(frames)} of {n} frames"
    return frames


@pytest.fixture
def acquiring() -> Iterator[GenICamCamera]:
    cam = GenICamCamera(_config())
    cam.open()
    try:
        cam.start()
        yield cam
    finally:
        cam.close()


# -- configuration files --------------------------------------------------------------------
def test_shipped_configs_validate() -> None:
    viky = load_camera_config(VIKY_YAML)
    assert viky.kind == "genicam" and viky.serial == "0"
    assert list(viky.features)[:3] == ["PixelFormat", "Width", "Height"]  # order is kept
    assert viky.cti_path() == viky_cti_path() and viky.cti_path().is_file()
    sim = load_camera_config(SIM_YAML)
    assert sim.kind == "sim" and not sim.features


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("schema_version: 1\nname: a\nkind: sim\nexposure: 3\n", ["exposure", "Extra inputs"]),
        ("schema_version: 2\nname: a\nkind: sim\n", ["schema_version"]),
        (
            "schema_version: 1\nname: a\nkind: genicam\ncti: x.cti\nserial: '0'\nfeatures: {Width: [320]}\n",
            ["features.Width"],
        ),
        (
            "schema_version: 1\nname: a\nkind: genicam\ncti: x.cti\nserial: '0'\nfetch_timeout_ms: soon\n",
            ["fetch_timeout_ms"],
        ),
        ("schema_version: 1\nname: a\nkind: genicam\ncti: x.cti\n", ["serial or model"]),
        ("schema_version: 1\nname: a\nkind: genicam\nserial: '0'\n", ["cti"]),
        ("schema_version: 1\nname: a\nkind: sim\nfeatures: {Width: 3}\n", ["features", "only for kind genicam"]),
        (
            "schema_version: 1\nname: a\nkind: genicam\ncti: x.cti\nserial: '0'\noptional_features: [Gain]\n",
            ["optional_features", "Gain"],
        ),
        ("schema_version: 1\nname: a\nkind: camera\n", ["kind"]),
        ("schema_version: 1\nname: a\nkind: sim\nfeatures: {'Bad name': 1}\n", ["features.Bad name"]),
        ("schema_version: 1\nname: a\nkind: [sim\n", ["not valid YAML", "line"]),
        ("- just\n- a list\n", ["mapping"]),
    ],
)
def test_config_errors_name_file_and_field(tmp_path: Path, text: str, needles: list[str]) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_camera_config(path)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_camera_config(tmp_path / "nope.yaml")


def test_cti_placeholder_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_cti("${GENICAM_VIKY}") == viky_cti_path()
    monkeypatch.setenv("CTI_DIR", "/opt/gentl")
    assert resolve_cti("${CTI_DIR}/x.cti") == Path("/opt/gentl/x.cti")
    monkeypatch.delenv("CTI_DIR")
    with pytest.raises(ConfigError, match="not set"):
        resolve_cti("${CTI_DIR}/x.cti")


# -- devices ----------------------------------------------------------------------------------
def test_list_devices_finds_three_viky() -> None:
    devices = list_devices()
    assert [d["serial"] for d in devices] == ["0", "1", "2"]
    assert {d["model"] for d in devices} == {"Viky"}
    assert all(d["vendor"] and d["id"] for d in devices)


def test_list_devices_missing_producer(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="GenTL producer not found"):
        list_devices(tmp_path / "none.cti")


def test_invalid_producer_file_is_explained(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.cti"
    bogus.write_text("not a shared library")
    with pytest.raises(CameraError, match="offers no devices"):
        GenICamCamera(_config(cti=str(bogus))).open()
    assert list_devices(bogus) == []


def test_selection_by_model() -> None:
    one = [{"serial": "7", "model": "Cam", "vendor": "V"}, {"serial": "8", "model": "Other", "vendor": "V"}]
    assert select_device(one, serial=None, model="Other") == 1
    with pytest.raises(CameraError, match=r"3 devices match model 'Viky' \(serials '0', '1', '2'\)"):
        GenICamCamera(_config(serial=None, model="Viky")).open()
    cam = GenICamCamera(_config(serial="2", model="Viky"))
    with cam:
        assert cam.serial == "2" and cam.describe()["model"] == "Viky"
    with pytest.raises(CameraError, match="no GenICam device with serial '0' and model 'Nope'"):
        GenICamCamera(_config(model="Nope")).open()


def test_unknown_serial_lists_available_devices() -> None:
    cam = GenICamCamera(_config(serial="42"))
    with pytest.raises(CameraError) as info:
        cam.open()
    message = str(info.value)
    assert "serial '42'" in message
    for serial in ("0", "1", "2"):
        assert f"serial {serial!r} (Machine Vision Games Ltd. Viky)" in message
    assert cam.state is CameraState.CLOSED
    assert len(list_devices()) == 3  # the failed open released the producer


def test_two_cameras_share_one_producer() -> None:
    # A GenTL producer opens once per process: both cameras must go through one Harvester.
    a, b = GenICamCamera(_config(serial="0")), GenICamCamera(_config(serial="1"))
    with a, b:
        a.start()
        b.start()
        assert _grab(a)[0].camera_serial == "0"
        assert _grab(b)[0].camera_serial == "1"
        assert [d["serial"] for d in list_devices()] == ["0", "1", "2"]
    assert a.state is CameraState.CLOSED and b.state is CameraState.CLOSED


def test_constructor_without_config() -> None:
    cam = GenICamCamera(serial="1", features={"Width": 200, "Height": 100}, pixel_format_out="mono8")
    with cam:
        cam.start()
        assert _grab(cam)[0].image.shape == (100, 200)
    with pytest.raises(CameraError, match="serial or model"):
        GenICamCamera()
    with pytest.raises(CameraError, match="not genicam"):
        GenICamCamera(load_camera_config(SIM_YAML))


def test_sigint_handler_is_kept() -> None:
    before = signal.getsignal(signal.SIGINT)
    with GenICamCamera(_config()):
        assert signal.getsignal(signal.SIGINT) is before


# -- features -----------------------------------------------------------------------------------
def test_features_are_read_back_and_shape_the_frames() -> None:
    cfg = _config(features={"PixelFormat": "Mono8", "Width": 320, "Height": 240}, pixel_format_out="mono8")
    with GenICamCamera(cfg) as cam:
        d = cam.describe()
        assert d["settings"] == {"PixelFormat": "Mono8", "Width": 320, "Height": 240}
        assert d["image"] == {"width": 320, "height": 240, "pixel_format": "Mono8"}
        assert (d["serial"], d["model"], d["vendor"]) == ("0", "Viky", "Machine Vision Games Ltd.")
        cam.start()
        frame = _grab(cam)[0]
    assert frame.image.shape == (240, 320) and frame.image.flags.owndata
    assert frame.item_id == frame.frame_id >= 1


def test_rgba_to_bgr_conversion(acquiring: GenICamCamera) -> None:
    frame = _grab(acquiring)[0]
    assert frame.image.shape == (240, 320, 3) and frame.image.flags.c_contiguous
    assert frame.image.any()


def test_read_back_mismatch_names_node_expected_and_actual() -> None:
    # Viky's frame rate has an increment of 1: it stores 59.5 as 60.
    cam = GenICamCamera(_config(features={"AcquisitionFrameRate": 59.5}))
    with pytest.raises(CameraError, match=r"'AcquisitionFrameRate': wrote 59.5 but the device reads back 60.0"):
        cam.open()
    assert cam.state is CameraState.CLOSED


@pytest.mark.parametrize(
    ("features", "pattern"),
    [
        ({"Width": 5000}, r"'Width': cannot write 5000: .*Max = 800"),
        ({"PixelFormat": "Mono16"}, r"'PixelFormat': cannot write 'Mono16'"),
        ({"PixelFormat": False}, r"'PixelFormat' is an enumeration.*quote On/Off"),
        ({"Width": 1.5}, r"'Width' is an integer: give an integer value, not 1.5"),
        ({"Width": "320"}, r"'Width' is an integer: give an integer value, not '320'"),
        ({"PayloadSize": 10}, r"'PayloadSize' is not writable"),
        ({"Root": 1}, r"'Root' is not a value node \(ICategory\)"),
        ({"FancyBallOperation": True}, r"'FancyBallOperation' is not a value node \(ICommand\)"),
    ],
)
def test_bad_feature_values_are_clear(features: dict[str, Any], pattern: str) -> None:
    with pytest.raises(CameraError, match=pattern):
        GenICamCamera(_config(features=features)).open()


def test_absent_feature_is_an_error_naming_it() -> None:
    cam = GenICamCamera(_config(features={"Width": 320, "ExposureTime": 1000.0}))
    with pytest.raises(CameraError, match=r"has no feature 'ExposureTime'.*optional_features"):
        cam.open()
    assert cam.state is CameraState.CLOSED


def test_optional_absent_feature_is_skipped_and_reported() -> None:
    cfg = _config(
        features={"TriggerMode": "On", "Width": 320, "ExposureTime": 1000.0, "Height": 200},
        optional_features=["TriggerMode", "ExposureTime"],
    )
    with GenICamCamera(cfg) as cam:
        d = cam.describe()
        cam.start()
        frame = _grab(cam)[0]
    assert d["skipped_features"] == ["TriggerMode", "ExposureTime"]
    assert d["settings"] == {"Width": 320, "Height": 200}
    assert frame.image.shape == (200, 320, 3)


# -- acquisition accounting ------------------------------------------------------------------
def test_frame_id_gaps_are_counted() -> None:
    events: list[CameraEvent] = []
    cam = GenICamCamera(_config(features={"Width": 160, "Height": 120, "AcquisitionFrameRate": 200.0}))
    cam.subscribe(events.append)
    with cam:
        cam.start()
        frames = _grab(cam, 2)
        assert cam.stats.gaps == 0
        time.sleep(0.25)  # ~50 frames at 200 fps against 3 buffers: the producer must drop
        frames += _grab(cam, 6)
    ids = [f.frame_id for f in frames]
    assert ids == sorted(ids)
    assert cam.stats.gaps > 0 and cam.stats.gaps == (ids[-1] - ids[0] + 1) - len(ids)
    gaps = [e for e in events if e.kind is CameraEventKind.GAP]
    assert gaps and sum(e.detail["missed"] for e in gaps) == cam.stats.gaps


def test_timeout_returns_none_within_bounds(acquiring: GenICamCamera) -> None:
    # The device stops streaming behind the camera's back: fetches must time out, not hang.
    acquiring._acquirer.remote_device.node_map.AcquisitionStop.execute()
    _drain(acquiring)
    t0 = time.monotonic()
    assert acquiring.grab(timeout_s=0.2) is None
    assert 0.15 < time.monotonic() - t0 < 1.0
    assert acquiring.stats.timeouts >= 1


def _drain(cam: GenICamCamera) -> None:
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and cam.grab(timeout_s=0.1) is not None:
        pass


def test_incomplete_buffers_are_counted_and_skipped(acquiring: GenICamCamera, monkeypatch: pytest.MonkeyPatch) -> None:
    acquirer = acquiring._acquirer
    real = acquirer.try_fetch
    calls = {"n": 0}

    def flaky(*, timeout: float) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:  # what Harvesters does for an incomplete buffer: re-queue, notify, None
            acquirer._emit_callbacks(acquirer.Events.INCOMPLETE_BUFFER)
            return None
        return real(timeout=timeout)

    monkeypatch.setattr(acquirer, "try_fetch", flaky)
    frame = acquiring.grab(timeout_s=TIMEOUT_S)
    assert frame is not None
    assert acquiring.stats.incomplete == 2 and acquiring.stats.timeouts == 0


# -- faults and recovery -------------------------------------------------------------------------
def _unplug(cam: GenICamCamera) -> None:
    """Close the device handle behind the camera's back: GenTL answers like an unplugged cable."""
    cam._acquirer.device.close()


def test_lost_device_faults_and_recover_brings_it_back() -> None:
    events: list[CameraEvent] = []
    cam = GenICamCamera(_config())
    cam.subscribe(events.append)
    with cam:
        cam.start()
        _grab(cam, 2)
        _unplug(cam)
        with pytest.raises(CameraFault, match="device lost"):
            cam.grab(timeout_s=TIMEOUT_S)
        assert cam.state is CameraState.FAULT and cam.stats.faults == 1
        assert [e.kind for e in events] == [CameraEventKind.FAULT]
        with pytest.raises(CameraFault):  # stays down until recovered
            cam.grab(timeout_s=0.1)
        assert cam.recover() is True
        assert cam.state is CameraState.ACQUIRING and cam.stats.reconnects == 1
        assert events[-1].kind is CameraEventKind.RECOVERED
        frames = _grab(cam, 2)
        assert frames[0].image.shape == (240, 320, 3)  # features re-applied
        assert cam.describe()["settings"]["Width"] == 320
    assert cam.state is CameraState.CLOSED
    assert len(list_devices()) == 3


def test_recover_fails_while_producer_is_gone_then_succeeds(tmp_path: Path) -> None:
    cti = tmp_path / "viky.cti"
    shutil.copy(viky_cti_path(), cti)
    cam = GenICamCamera(_config(cti=str(cti)))
    with cam:
        cam.start()
        _grab(cam)
        _unplug(cam)
        with pytest.raises(CameraFault):
            cam.grab(timeout_s=TIMEOUT_S)
        hidden = cti.rename(tmp_path / "away.cti")
        assert cam.recover() is False
        assert cam.state is CameraState.FAULT
        hidden.rename(cti)
        assert cam.recover() is True
        _grab(cam)
    assert cam.state is CameraState.CLOSED


def test_close_after_fault_without_recover_is_clean() -> None:
    cam = GenICamCamera(_config())
    cam.open()
    cam.start()
    _unplug(cam)
    with pytest.raises(CameraFault):
        cam.grab(timeout_s=TIMEOUT_S)
    cam.close()
    assert cam.state is CameraState.CLOSED
    with GenICamCamera(_config()) as again:  # the device and producer were released
        again.start()
        _grab(again)


def test_destroyed_acquirer_is_a_fault() -> None:
    with GenICamCamera(_config()) as cam:
        cam.start()
        cam._acquirer.destroy()
        with pytest.raises(CameraFault, match="acquirer lost"):
            cam.grab(timeout_s=0.5)
        assert cam.recover() is True
        _grab(cam)


# -- command line ------------------------------------------------------------------------------------
def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="inspector")
    register_cameras(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["cameras", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["serial"] for r in rows] == ["0", "1", "2"]
    assert _run(["cameras", "list", "--cti", str(viky_cti_path())]) == 0
    said = capsys.readouterr()
    assert said.out == "" and "serial" in said.err and "VikyTL_DEV_blue" in said.err


def test_cli_grab_writes_pngs_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "frames"
    code = _run(
        ["cameras", "grab", "--config", str(VIKY_YAML), "--serial", "1", "--frames", "5", "--out", str(out), "--json"]
    )
    assert code == 0
    said = capsys.readouterr()
    summary = json.loads(said.out)
    assert "TEST PATTERN: Machine Vision Games Ltd. Viky from the GenTL producer viky.cti" in said.err
    assert summary["test_pattern"] == "Machine Vision Games Ltd. Viky from the GenTL producer viky.cti"
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 5
    image = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (240, 320, 3)
    assert summary["camera"] == "1" and summary["frames"] == 5
    assert summary["skipped_features"] == ["TriggerMode"]
    assert summary["fps"] > 0 and summary["fault"] is None
    for key in ("gaps", "timeouts", "incomplete"):
        assert summary[key] == 0


def test_cli_grab_without_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f"
    assert (
        _run(
            [
                "cameras",
                "grab",
                "--serial",
                "2",
                "--frames",
                "2",
                "--out",
                str(out),
                "--pixel-format",
                "mono8",
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["width"] == 400 and summary["pixel_format_out"] == "mono8"
    assert cv2.imread(str(out / "frame_00000.png"), cv2.IMREAD_UNCHANGED).shape == (400, 400)


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (["--serial", "9"], "no GenICam device with serial '9'"),
        (["--config", str(SIM_YAML)], "cameras grab needs a genicam config"),
        ([], "serial or model"),
        (["--serial", "0", "--cti", "/nonexistent/x.cti"], "GenTL producer not found"),
    ],
)
def test_cli_grab_bad_input(tmp_path: Path, extra: list[str], pattern: str) -> None:
    argv = ["cameras", "grab", "--frames", "1", "--out", str(tmp_path / "o"), *extra]
    with pytest.raises(ValueError, match=pattern):
        _run(argv)


def test_cli_grab_refuses_non_empty_out(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="new or empty folder"):
        _run(["cameras", "grab", "--serial", "0", "--frames", "1", "--out", str(tmp_path)])


# -- a batch on a free-running device -----------------------------------------------------------
def test_a_batch_size_stops_the_device_after_that_many_frames() -> None:
    # 10 frames/s: slow enough that the producer drops none, even on a busy machine.
    cam = GenICamCamera(_config(features={"Width": 160, "Height": 120, "AcquisitionFrameRate": 10.0}), items=5)
    assert cam.items == 5 and not cam.finished
    frames: list[Frame] = []
    with cam:
        cam.start()
        deadline = time.monotonic() + 10 * TIMEOUT_S
        while not cam.finished and time.monotonic() < deadline:
            f = cam.grab(timeout_s=TIMEOUT_S)
            if f is not None:
                frames.append(f)
        assert cam.finished
        assert cam.grab(timeout_s=0.2) is None, "nothing after the batch's last item"
    assert [f.item_id for f in frames] == [1, 2, 3, 4, 5] == [f.frame_id for f in frames]
    assert cam.stats.timeouts == 0, "the end of a batch is no timeout"
    assert cam.describe()["items"] == 5


def test_frames_lost_across_the_batch_end_finish_it() -> None:
    cam = GenICamCamera(_config(features={"Width": 160, "Height": 120, "AcquisitionFrameRate": 200.0}), items=4)
    with cam:
        cam.start()
        first = _grab(cam, 2)
        time.sleep(0.25)  # the producer drops frames: the next id jumps past item 4
        rest = []
        while not cam.finished:
            f = cam.grab(timeout_s=TIMEOUT_S)
            if f is not None:
                rest.append(f)
    ids = [f.frame_id for f in first + rest]
    assert ids[:2] == [1, 2] and all(i <= 4 for i in ids), ids


def test_a_test_pattern_producer_is_named() -> None:
    cam = GenICamCamera(_config())
    assert cam.test_pattern == "the GenTL simulator viky.cti"  # before open: by its producer
    with cam:
        assert cam.test_pattern == "Machine Vision Games Ltd. Viky from the GenTL producer viky.cti"
        assert cam.describe()["test_pattern"] == cam.test_pattern


def test_run_on_the_gentl_producer_honours_items_and_names_the_test_pattern(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    out = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", "run", "--recipe", "vial", "--camera", "genicam", "--items", "5",
         "--plc", "none", "--db", str(tmp_path / "r.sqlite"), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "INSPECTOR_HOME": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "camera genicam viky-vial: TEST PATTERN (the GenTL simulator viky.cti" in first and "5 items" in first
    summary = json.loads(out.read_text())
    assert summary["items"] == 5 and summary["records_reconciled"] is True
    assert proc.stdout == ""
