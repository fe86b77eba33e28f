"""Station files: validated, versioned, unknown keys refused; flags override single fields."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inspector.config.errors import ConfigError
from inspector.config.loader import load_yaml_model
from inspector.config.station import (
    DEMO_STATION,
    NUISANCE_MAX,
    StationConfig,
    apply_flags,
    load_station_config,
    override,
)
from inspector.synth import MAX_NUISANCE

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_demo_station_is_the_built_in_one() -> None:
    assert load_station_config(None, ROOT) == DEMO_STATION
    assert load_station_config("demo", ROOT) == DEMO_STATION
    assert NUISANCE_MAX == MAX_NUISANCE


def test_a_project_without_station_files_gets_the_demo(tmp_path: Path) -> None:
    assert load_station_config(None, tmp_path) == DEMO_STATION
    with pytest.raises(ConfigError, match="file not found"):
        load_station_config("line7", tmp_path)


def test_every_shipped_station_file_validates() -> None:
    files = sorted((ROOT / "station_configs").glob("*.yaml"))
    assert len(files) >= 2
    modes = {load_yaml_model(f, StationConfig).mode for f in files}
    assert modes == {"demo", "production"}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"colour": "blue"}, "colour"),
        ({"schema_version": 2}, "schema_version"),
        ({"camera": {"kind": "sim", "exposure": 3}}, "camera.exposure"),
        ({"camera": {"kind": "files"}}, "manifest folder"),
        ({"camera": {"kind": "sim", "nuisance": 9}}, "camera.nuisance"),
        ({"camera": {"kind": "sim", "items": -3}}, "camera.items"),
        ({"camera": {"kind": "sim", "line_rate_per_min": 0}}, "camera.line_rate_per_min"),
        ({"mode": "production"}, "simulated camera"),
        ({"mode": "production", "camera": {"kind": "genicam"}}, "line PLC"),
        ({"mode": "production", "camera": {"kind": "genicam"}, "plc": None}, "line PLC"),
        ({"station_id": "../x"}, "station_id"),
    ],
)
def test_a_bad_station_file_names_the_field(tmp_path: Path, change: dict[str, object], needle: str) -> None:
    data = {**DEMO_STATION.model_dump(mode="json"), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_station_config(str(path), tmp_path)
    assert needle in str(err.value) and "bad.yaml" in str(err.value)


def test_flags_override_single_fields_and_are_validated() -> None:
    c = apply_flags(DEMO_STATION, recipe="tablet", items=5, nuisance=2.0, plc="none", db="/tmp/x.sqlite")
    assert c.recipe == "tablet" and c.camera.items == 5 and c.camera.nuisance == 2.0 and c.plc is None
    assert c.records is not None and c.records.database == "/tmp/x.sqlite"
    assert c.camera.seed == DEMO_STATION.camera.seed, "fields not given stay as filed"
    assert apply_flags(DEMO_STATION) == DEMO_STATION
    url = apply_flags(DEMO_STATION, plc="modbus://127.0.0.1:5020")
    assert url.plc is not None and url.plc.link == "modbus://127.0.0.1:5020"
    assert apply_flags(c, plc="line-sim").plc == DEMO_STATION.plc
    with pytest.raises(ConfigError, match=r"camera\.nuisance"):
        apply_flags(DEMO_STATION, nuisance=9)
    with pytest.raises(ConfigError, match=r"camera\.items"):
        apply_flags(DEMO_STATION, items=-3)


def test_another_camera_kind_brings_its_own_source() -> None:
    files = apply_flags(DEMO_STATION, camera="files", images="sample_images/vial")
    assert files.camera.kind == "files" and files.camera.images == "sample_images/vial"
    assert apply_flags(files, camera="sim").camera.images is None
    assert override(files, camera={"kind": "genicam"}).camera.images is None
