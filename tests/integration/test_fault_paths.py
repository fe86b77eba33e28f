"""Issue 34: fault paths an outside probe broke, each proved on the real station (no PLC here; see tests/plc).

- the files camera turns an unusable manifest entry into a `not_inspected` item with an alarm and
  goes on; the reconciliation counts manifest entries (case 1);
- recipe thresholds are finite and in range; looser than the package's validated ones they are
  refused in production and marked in every record in demo mode (case 2);
- a batch a crashed station left running is closed as aborted at the next start (case 6);
- an image larger than the station's frame is refused from its header, before decoding (case 7).
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from inspector.camera.sim import MemoryCamera
from inspector.config.errors import ConfigError
from inspector.config.recipe import load_recipe
from inspector.config.station import StationConfig
from inspector.events import GroundTruth
from inspector.manifest import read_manifest, sha256_file, write_manifest
from inspector.plc.base import PlcError
from inspector.records import ItemRecord, RecordConstraintError, RecordStore
from inspector.station import open_station
from inspector.synth.generate import generate
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.support.onnx_models import make_package
from tests.support.stations import station_config

ROOT = Path(__file__).resolve().parents[2]

RATE = 1200


def _project(tmp: Path, *, thresholds: dict[str, float] | None = None) -> Path:
    record = make_package(tmp / "models" / "tablet" / "0.0.1", Product.TABLET, dark_below=5)
    spec = IMAGE_SPECS[Product.TABLET]
    recipe: dict[str, object] = {
        "schema_version": 1,
        "recipe_id": "tablet-faults",
        "version": "1.0.0",
        "product": "tablet",
        "camera": "sim.yaml",
        "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
        "model": {"path": "models/tablet/0.0.1", "sha256": record.sha256},
        "latency_budget_ms": 300,
        "line_rate_per_min": RATE,
    }
    if thresholds is not None:
        recipe["thresholds"] = thresholds
    (tmp / "recipes").mkdir(exist_ok=True)
    (tmp / "recipes" / "tablet.yaml").write_text(yaml.safe_dump(recipe))
    return tmp


def _item(batch_id: str, i: int, *, accept: bool, plc_ack: str | None = None) -> ItemRecord:
    return ItemRecord(
        batch_id=batch_id,
        item_id=i,
        frame_id=i,
        t_frame=float(i),
        created_utc="2025-03-01T08:00:00.000000+00:00",
        decision="accept" if accept else "reject",
        reason="ok" if accept else "anomaly",
        deadline_met=True,
        plc_ack=plc_ack,
    )


# -- case 6: crash recovery -------------------------------------------------------------------


def test_a_batch_left_running_by_a_crash_is_closed_aborted_at_the_next_start(tmp_path: Path) -> None:
    """Issue 34, case 6: after a crash the batch stayed `running` forever, with no warning at the next start."""
    root = _project(tmp_path)
    db = root / "var" / "db.sqlite"
    with RecordStore(db) as store:  # what a station killed mid-batch leaves: a running batch, some rows
        store.start_batch(
            "CRASHED-1",
            product="tablet",
            recipe_id="tablet-faults",
            recipe_version="1.0.0",
            recipe_sha256="a" * 64,
            model_id="m",
            model_version="0.0.1",
            model_sha256="b" * 64,
            camera_serial="SIM-0",
            camera_settings={},
            plc="modbus://127.0.0.1:502",
        )
        store.insert_items([_item("CRASHED-1", i, accept=i % 3 != 0) for i in (1, 2, 3, 4, 6)])
        for i in (1, 2, 3):
            store.set_plc_ack("CRASHED-1", i, "acked rtt_ms=0.300")
    session = open_station(station_config("tablet", items=5, line_rate=RATE, db=db), root=root)
    try:
        (aborted,) = session.aborted_batches
        (alarm,) = session.startup_alarms
        assert aborted.batch_id == "CRASHED-1"
        assert (alarm.code, alarm.batch_id, alarm.severity.value) == ("BATCH_ABORTED", "CRASHED-1", "warning")
        result = session.run(duration_s=30)  # the station works on
        assert result.items == 5
    finally:
        session.close()
    with RecordStore(db) as store:
        batch = store.batch("CRASHED-1")
        stored = [a for a in store.alarms("CRASHED-1") if a.code == "BATCH_ABORTED"]
        assert store.batch(str(result.batch_id))["state"] == "ended"
        with pytest.raises(RecordConstraintError, match="not running"):
            store.insert_items([_item("CRASHED-1", 7, accept=True)])
    assert batch["state"] == "aborted" and batch["ended_utc"] is not None
    report = batch["summary"]["reconciliation"]
    assert report["reconciled"] is False
    assert report["records"]["inspected"] == 5 and report["records"]["accepted"] == 3
    checks = {c["name"]: (c["ok"], c["detail"]) for c in report["checks"]}
    assert checks["ended by its station"][0] is False
    assert checks["nothing unaccounted"] == (False, "item ids 1..6, 5 recorded")
    assert checks["every PLC acknowledgement stored"] == (False, "2 of 5 items without a PLC acknowledgement")
    assert len(stored) == 1 and stored[0].uid == alarm.alarm_id and stored[0].acknowledged_utc is None


# -- case 1: the files camera drops items silently -------------------------------------------


def _png(width: int, height: int) -> bytes:
    """A valid 8-bit grey PNG of zeros, written row by row (a huge one never exists in memory)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    rows = bytes(1 + width) * 500  # filter byte 0 + a row of zeros, 500 rows at a time
    data = bytearray()
    for start in range(0, height, 500):
        data += z.compress(rows if height - start >= 500 else bytes(1 + width) * (height - start))
    data += z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bytes(data)) + chunk(b"IEND", b"")


def _probe_set(folder: Path) -> dict[int, str]:
    """18 rendered tablets, then the probe's faults in five of them; returns item -> fault."""
    generate("tablet", 18, 3400, folder, defect_rate=0.3, masks=False, workers=1)
    entries = read_manifest(folder)
    faults = {4: "empty file", 7: "missing", 10: "directory", 13: "sha256", 16: "larger than"}
    (folder / entries[3].file).write_bytes(b"")  # zero bytes (cv2: !buf.empty())
    (folder / entries[6].file).unlink()  # FileNotFoundError
    (folder / entries[9].file).unlink()
    (folder / entries[9].file).mkdir()  # IsADirectoryError
    other = folder / entries[0].file
    (folder / entries[12].file).write_bytes(other.read_bytes())  # a valid image, but not the one named
    big = folder / entries[15].file
    big.write_bytes(_png(2000, 2000))
    write_manifest(
        folder, [e.model_copy(update={"sha256": sha256_file(big)}) if i == 15 else e for i, e in enumerate(entries)]
    )
    return faults


def test_files_camera_rejects_unusable_entries_as_not_inspected_and_goes_on(tmp_path: Path) -> None:
    """Issue 34, case 1: a zero-byte 4th entry of 18 killed acquisition: 3 items recorded, "reconciled": true."""
    root = _project(tmp_path)
    faults = _probe_set(tmp_path / "set")
    db = root / "var" / "db.sqlite"
    config = station_config("tablet", camera="files", images=str(tmp_path / "set"), line_rate=RATE, db=db)
    session = open_station(config, root=root)
    try:
        result = session.run(duration_s=60)
        report = session.last_reconciliation
        alarms = [a for a in session.station.alarms if a.code == "IMAGE_REFUSED"]
    finally:
        session.close()
    assert result.items == 18 and result.not_inspected_by_cause == {"image_refused": 5}
    assert report is not None and report.reconciled, report.as_dict()
    assert {c.name: c.detail for c in report.checks}["every item of the batch decided"] == "18 of 18"
    assert len(alarms) == 5
    for alarm, (item, why) in zip(alarms, sorted(faults.items()), strict=True):
        assert alarm.message.startswith(f"item {item}: ") and why in alarm.message, alarm.message
    with RecordStore(db) as store:
        rows = store.items(str(result.batch_id))
    assert [r.item_id for r in rows] == list(range(1, 19))
    refused = {r.item_id for r in rows if r.alarm == "image_refused"}
    assert refused == set(faults) and all(r.decision == "reject" for r in rows if r.item_id in refused)
    assert {r.item_id for r in rows if r.alarm is None} == set(range(1, 19)) - set(faults), "the others inspected"


def test_inspector_run_on_a_damaged_set_records_every_entry(tmp_path: Path) -> None:
    """The probe's own command: `inspector run --camera files` on the damaged set (was: 3 items, exit 0)."""
    root = _project(tmp_path)
    _probe_set(tmp_path / "set")
    out = tmp_path / "summary.json"
    env = {**os.environ, "INSPECTOR_HOME": str(root)}
    args = ["run", "--recipe", "tablet", "--camera", "files", "--images", str(tmp_path / "set"), "--plc", "none"]
    proc = subprocess.run(
        [sys.executable, "-m", "inspector", *args, "--line-rate", "1200", "--quiet", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    s = json.loads(out.read_text())
    assert (s["items"], s["not_inspected"], s["reconciled"]) == (18, 5, True)
    assert s["reconciliation"]["records"]["inspected"] == 18


class _FailingSource(MemoryCamera):
    """A line source whose driver raises on one item (not a refusal it knows how to report)."""

    def _item(self, index: int) -> tuple[np.ndarray, GroundTruth | None]:
        if index == 3:
            raise RuntimeError("driver bug")
        return super()._item(index)


def test_a_source_error_on_one_item_is_alarmed_and_accounted_never_the_end_of_the_batch(tmp_path: Path) -> None:
    root = _project(tmp_path)
    frame = np.full(IMAGE_SPECS[Product.TABLET].shape, 180, np.uint8)
    cam = _FailingSource([(frame, GroundTruth("ok"))], line_rate_per_min=RATE, items=12)
    session = open_station(
        station_config("tablet", line_rate=RATE, db=root / "var" / "db.sqlite"), root=root, camera=cam
    )
    try:
        result = session.run(duration_s=30)
        report = session.last_reconciliation
        codes = [a.code for a in session.station.alarms]
    finally:
        session.close()
    # Item 4 is lost, and the frames the line moved on meanwhile (the error pauses acquisition a moment).
    assert result.items == 12 and set(result.not_inspected_by_cause) == {"frame_gap"}
    assert 1 <= result.not_inspected <= 5
    assert "CAMERA_ERROR" in codes and "FRAME_GAP" in codes
    assert report is not None and report.reconciled


# -- case 7: an oversized image is decoded in full before it is refused ------------------------

_MEASURE = """
import resource, sys
from inspector.camera.sim import FilesCamera
cam = FilesCamera(sys.argv[1], line_rate_per_min=None, frame_shape=(256, 256, 3))
cam.open(); cam.start()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
frame = cam.grab(30.0)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(frame.refused if frame is not None else None)
print((after - before) // 1024)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
def test_an_image_over_the_frame_size_is_refused_from_its_header_before_decoding(tmp_path: Path) -> None:
    """Issue 34, case 7: a 20000 x 20000 PNG was decoded in full (930 MB peak) before it was refused."""
    folder = tmp_path / "huge"
    generate("tablet", 1, 1, folder, masks=False, workers=1)
    (entry,) = read_manifest(folder)
    path = folder / entry.file
    path.write_bytes(_png(20000, 20000))  # a few hundred kB on disk, 400 MB as pixels
    write_manifest(folder, [entry.model_copy(update={"sha256": sha256_file(path)})])
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(folder)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    refused, grown_mb = proc.stdout.split("\n")[:2]
    assert "20000 x 20000 image is larger than the camera's 256 x 256 frame" in refused
    assert int(grown_mb) < 50, f"peak memory grew {grown_mb} MB while refusing it"


# -- case 2: a recipe can switch a defect class off ------------------------------------------


@pytest.mark.parametrize(
    ("thresholds", "field"),
    [
        ({"confidence": 0.9, "anomaly": float("nan")}, "anomaly"),  # NaN compares false: no anomaly reject ever
        ({"confidence": 0.9, "anomaly": float("inf")}, "anomaly"),
        ({"confidence": 0.9, "anomaly": -1.0}, "anomaly"),
        ({"confidence": float("nan"), "anomaly": 1.0}, "confidence"),
        ({"confidence": 1.5, "anomaly": 1.0}, "confidence"),
    ],
)
def test_recipe_thresholds_must_be_finite_and_in_range(
    tmp_path: Path, thresholds: dict[str, float], field: str
) -> None:
    """Issue 34, case 2: `thresholds: {anomaly: .nan}` loaded without a warning (24 crimp defects accepted of 150)."""
    recipe = yaml.safe_load((ROOT / "recipes" / "vial.yaml").read_text())
    recipe["thresholds"] = thresholds
    path = tmp_path / "vial.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ConfigError, match=f"thresholds.{field}"):
        load_recipe(str(path), ROOT)


def _production(recipe: Path, db: Path) -> StationConfig:
    return StationConfig.model_validate(
        {
            "schema_version": 1,
            "station_id": "line1",
            "mode": "production",
            "recipe": str(recipe),
            "camera": {"kind": "files", "images": str(ROOT / "sample_images" / "vial")},
            "plc": {"link": "modbus://127.0.0.1:9"},  # refused before any connection is tried
            "records": {"database": str(db)},
        }
    )


def test_looser_thresholds_than_validated_are_refused_on_a_production_station(tmp_path: Path) -> None:
    """Issue 34, case 2: `{confidence: 0.0, anomaly: 1e9}` is schema-valid and switched the defect checks off."""
    recipe = yaml.safe_load((ROOT / "recipes" / "vial.yaml").read_text())
    recipe["thresholds"] = {"confidence": 0.0, "anomaly": 1e9}
    path = tmp_path / "vial-loose.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(
        ConfigError, match=r"looser than model .* \(confidence 0 < validated 0.9; anomaly 1e\+09 > validated"
    ):
        open_station(_production(path, tmp_path / "db.sqlite"), root=ROOT)
    # Stricter thresholds than validated are a recipe's right.
    recipe["thresholds"] = {"confidence": 0.95, "anomaly": 0.5}
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(PlcError):  # past the thresholds: only the PLC is not there
        open_station(_production(path, tmp_path / "db.sqlite"), root=ROOT, plc_connect_timeout_s=0.5)


def test_looser_thresholds_in_demo_mode_are_marked_in_every_record(tmp_path: Path) -> None:
    root = _project(tmp_path, thresholds={"confidence": 0.0, "anomaly": 1e9})  # the package: 0.6 / 0.5
    db = root / "var" / "db.sqlite"
    session = open_station(station_config("tablet", items=6, line_rate=RATE, db=db), root=root)
    try:
        assert session.station.looser_thresholds == ("confidence", "anomaly")
        result = session.run(duration_s=30)
        alarms = [a for a in session.station.alarms if a.code == "THRESHOLDS_NOT_VALIDATED"]
    finally:
        session.close()
    assert len(alarms) == 1 and alarms[0].batch_id == result.batch_id
    with RecordStore(db) as store:
        batch = store.batch(str(result.batch_id))
    assert batch["thresholds_validated"] == 0
    assert batch["thresholds"]["looser"] == ["confidence", "anomaly"] and batch["thresholds"]["anomaly"] == 1e9
    assert batch["thresholds"]["validated"] == {"confidence": 0.6, "anomaly": 0.5}
    with sqlite3.connect(db) as conn:
        marks = conn.execute("SELECT thresholds_validated FROM item_trace WHERE batch_id = ?", (result.batch_id,))
        assert [m for (m,) in marks] == [0] * 6, "every item's trace carries the mark"
