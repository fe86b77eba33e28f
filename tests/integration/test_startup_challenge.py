"""The start-up challenge: a pinned set presented through the station, judged item by item.

A production batch starts only after a passing challenge of the same recipe and model
(tests/gxp/test_production.py); here a demo station (brightness test model) shows the judging,
the pinning of a photographed set, and ``inspector run --challenge`` in a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inspector.config.station import DEMO_STATION, StationConfig
from inspector.pipeline.station import StationError
from inspector.records import RecordStore
from inspector.station import open_station
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.support.onnx_models import challenge_set, make_package

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp: Path, *, dark_defect: bool = True) -> Path:
    record = make_package(tmp / "models" / "tablet" / "0.0.1", Product.TABLET, dark_below=5)
    spec = IMAGE_SPECS[Product.TABLET]
    challenge = challenge_set(tmp / "challenge", Product.TABLET, seed=77, dark_defect=dark_defect)
    recipe = {
        "schema_version": 1, "recipe_id": "tablet-challenge-test", "version": "1.0.0", "product": "tablet",
        "camera": "sim.yaml", "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
        "model": {"path": "models/tablet/0.0.1", "sha256": record.sha256},
        "latency_budget_ms": 300, "line_rate_per_min": 600, "startup_challenge": yaml.safe_load(challenge),
    }  # fmt: skip
    (tmp / "recipes").mkdir(exist_ok=True)
    (tmp / "recipes" / "tablet.yaml").write_text(yaml.safe_dump(recipe))
    return tmp


def _config() -> StationConfig:
    return DEMO_STATION.model_copy(update={"recipe": "tablet", "plc": None, "station_id": "challenge-test"})


def test_a_passing_challenge_is_recorded_as_its_own_batch(tmp_path: Path) -> None:
    root = _project(tmp_path)
    session = open_station(_config(), root=root)
    try:
        result = session.run_startup_challenge()
        assert session.last_challenge is result
    finally:
        session.close()
    assert result.passed
    expected = [("reject", True), ("accept", True), ("accept", True)]
    assert [(it["expected"], it["right"]) for it in result.items] == expected
    assert result.items[0]["decided"] not in ("accept", "not_inspected")  # rejected for a defect
    assert session.recorder is not None
    with RecordStore(session.recorder.database) as store:
        stored = store.batch(result.batch_id)
    assert stored["release_status"] == "start-up challenge" and stored["summary"]["items"] == 3
    assert stored["summary"]["startup_challenge"]["passed"] is True


def test_an_accepted_defect_fails_the_challenge_and_names_the_item(tmp_path: Path) -> None:
    root = _project(tmp_path, dark_defect=False)  # the defect item bright: the brightness model accepts it
    session = open_station(_config(), root=root)
    try:
        result = session.run_startup_challenge()
    finally:
        session.close()
    assert not result.passed
    wrong = [it for it in result.items if not it["right"]]
    assert [(it["file"], it["expected"], it["decided"]) for it in wrong] == [(result.items[0]["file"], "reject",
                                                                              "accept")]  # fmt: skip


def test_a_changed_challenge_set_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path)
    image = root / "challenge" / "tablet_000001.png"
    image.write_bytes(image.read_bytes()[:-1] + b"\x00")  # one byte of one image
    session = open_station(_config(), root=root)
    try:
        with pytest.raises(StationError, match=r"sha256 of 'tablet_000001\.png'"):
            session.run_startup_challenge()
    finally:
        session.close()
    root = _project(tmp_path / "second")
    manifest = root / "challenge" / "manifest.jsonl"
    manifest.write_text(manifest.read_text() + "\n")  # the manifest itself, a line no reader would notice
    session = open_station(_config(), root=root)
    try:
        with pytest.raises(StationError, match="the challenge set was changed"):
            session.run_startup_challenge()
    finally:
        session.close()


def test_inspector_run_challenge_runs_the_batch_only_after_it_passed(tmp_path: Path) -> None:
    env = {**os.environ, "INSPECTOR_HOME": str(tmp_path)}
    for name, dark, code in (("pass", True, 0), ("fail", False, 2)):
        root = _project(tmp_path / name, dark_defect=dark)
        env["INSPECTOR_HOME"] = str(root)
        proc = subprocess.run(
            [sys.executable, "-m", "inspector", "run", "--recipe", "tablet", "--camera", "sim", "--items", "5",
             "--plc", "none", "--challenge", "--quiet"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert proc.returncode == code, proc.stderr
        if code == 0:
            assert "start-up challenge" in proc.stderr and "PASSED (3/3 items judged right)" in proc.stderr
            with RecordStore(root / "var" / "inspector.sqlite") as store:
                batches = [store.batch(b) for b in store.batch_ids()]
            assert [(b["release_status"], b["summary"]["items"]) for b in batches] == [
                ("start-up challenge", 3), ("NOT RELEASED - DEMO", 5)]  # fmt: skip
            assert batches[1]["summary"]["startup_challenge"]["passed"] is True
        else:
            assert "FAILED (2/3 items judged right)" in proc.stderr and "no batch started" in proc.stderr
            assert "tablet_000000.png: broken expected reject, got accept" in proc.stderr


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({}, "either seed"),
        ({"seed": 1, "folder": "c", "manifest_sha256": "0" * 64}, "either seed"),
        ({"folder": "c"}, "manifest_sha256 that pins it"),
        ({"seed": 1, "manifest_sha256": "0" * 64}, "manifest_sha256 that pins it"),
        ({"seed": 1, "classes": ["chip", "no_such_defect"]}, "startup_challenge.classes"),
        ({"seed": -1}, "greater than or equal"),
        ({"seed": 1, "good_items": 0}, "greater than or equal"),
    ],
)
def test_a_malformed_challenge_entry_is_refused_with_its_reason(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    from inspector.config.errors import ConfigError
    from inspector.config.recipe import load_recipe

    root = _project(tmp_path)
    path = root / "recipes" / "tablet.yaml"
    data = yaml.safe_load(path.read_text())
    data["startup_challenge"] = entry
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_recipe("tablet", root)
