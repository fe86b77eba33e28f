"""Station files (``station_configs/*.yaml``): what one inspection station is made of.

A station file names the recipe, the camera, the line PLC and where the records go. It is
what ``inspector run``, ``inspector-hmi``, ``inspector bench`` and qualification runs start
from; command-line flags only override single fields (:func:`override`). Site IT keeps these
files under change control like the recipes.

``mode: production`` refuses the simulated camera and the line simulator, and needs a PLC and
records: a production station never decides into nowhere. ``mode: demo`` runs anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inspector.config.errors import ConfigError
from inspector.config.loader import format_validation_error, load_yaml_model

STATION_CONFIGS_DIR = "station_configs"
DEFAULT_STATION = "demo"
LINE_SIM = "line-sim"
# The renderer's nuisance scale ends here (inspector.synth.MAX_NUISANCE; a test keeps them equal).
NUISANCE_MAX = 3.0
_NO = frozenset({"none", "off", "no"})


class CameraChoice(BaseModel):
    """Which camera feeds the station. ``sim`` renders items, ``files`` replays a manifest folder,
    ``genicam`` grabs from a GenTL device with the recipe's camera file (or ``config``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["sim", "files", "genicam"] = "sim"
    config: str | None = Field(default=None, description="genicam: camera_configs file; default: the recipe's")
    images: str | None = Field(default=None, description="files: the manifest folder to replay")
    items: int | None = Field(
        default=None, ge=1, description="items in a batch; None: until stopped (files: the folder once)"
    )
    line_rate_per_min: float | None = Field(default=None, gt=0, le=100_000, description="None: the recipe's")
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="sim: item seed")
    defect_rate: float = Field(default=0.05, ge=0.0, le=1.0, description="sim: share of defective items")
    nuisance: float = Field(default=1.0, ge=0.0, le=NUISANCE_MAX, description="sim: nuisance scale")
    shift_px: float = Field(default=0.0, ge=0.0, le=64.0, description="sim: the line shifts items up to this (dx, dy)")
    turn_deg: float = Field(default=0.0, ge=0.0, le=45.0, description="sim: the line turns items up to this")

    @model_validator(mode="after")
    def _fits_kind(self) -> CameraChoice:
        if self.kind == "files" and not self.images:
            raise ValueError("a files camera needs images: a manifest folder")
        if self.kind != "files" and self.images:
            raise ValueError(f"images is for a files camera, not {self.kind}")
        if self.kind != "genicam" and self.config:
            raise ValueError(f"config is for a genicam camera, not {self.kind}")
        return self


class PlcChoice(BaseModel):
    """The line PLC: ``line-sim`` (demo: started on this machine), a URL, or a ``plc_configs`` file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    link: str = Field(min_length=1, description="line-sim, opcua://HOST:PORT, s7://..., modbus://... or a file")
    protocol: Literal["opcua", "s7", "modbus"] = Field(default="modbus", description="line-sim: its protocol")

    @property
    def is_line_sim(self) -> bool:
        return self.link == LINE_SIM


class RecordsChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str = Field(default="var/inspector.sqlite", description="SQLite file, relative to the project root")
    images: str | None = Field(default=None, description="reject images; default: images/ beside the database")
    site: str | None = Field(
        default=None,
        description="site database the records are forwarded to (postgresql://USER@HOST:PORT/DB); None: kept here only",
    )


class StationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    station_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    description: str = ""
    mode: Literal["demo", "production"]
    recipe: str = Field(min_length=1, description="recipe name (recipes/NAME.yaml) or path")
    camera: CameraChoice = CameraChoice()
    plc: PlcChoice | None = Field(default=None, description="None: decisions are recorded, no PLC is told")
    records: RecordsChoice | None = Field(default=RecordsChoice(), description="None: nothing is recorded")
    inference_threads: int = Field(default=1, ge=1, le=64, description="ONNX Runtime intra-op threads")

    @model_validator(mode="after")
    def _production_is_real(self) -> StationConfig:
        if self.mode != "production":
            return self
        if self.camera.kind == "sim":
            raise ValueError("a production station cannot use the simulated camera")
        if self.plc is None or self.plc.is_line_sim:
            raise ValueError("a production station needs its line PLC (not none, not the line simulator)")
        if self.records is None:
            raise ValueError("a production station keeps records")
        return self


#: The station a project without ``station_configs/demo.yaml`` gets (a test keeps the shipped file equal).
DEMO_STATION = StationConfig(
    schema_version=1,
    station_id="demo",
    description="Demo station: simulated camera, line simulator as the PLC, records in var/. No hardware.",
    mode="demo",
    recipe="vial",
    camera=CameraChoice(kind="sim"),
    plc=PlcChoice(link=LINE_SIM, protocol="modbus"),
    records=RecordsChoice(),
)


def resolve_station_path(name_or_path: str, root: Path) -> Path:
    """``demo`` -> ``<root>/station_configs/demo.yaml``; a path is taken as given (relative to the root)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        return p if p.is_absolute() or p.exists() else root / p
    return root / STATION_CONFIGS_DIR / f"{name_or_path}.yaml"


def load_station_config(name_or_path: str | None, root: Path) -> StationConfig:
    """The station file; with no name, ``station_configs/demo.yaml`` or, where a project has none, the demo."""
    if name_or_path is None:
        path = resolve_station_path(DEFAULT_STATION, root)
        return load_yaml_model(path, StationConfig) if path.exists() else DEMO_STATION
    return load_yaml_model(resolve_station_path(name_or_path, root), StationConfig)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def override(config: StationConfig, **changes: Any) -> StationConfig:
    """``config`` with some fields replaced (``None`` leaves a field as it is), validated again.

    Nested sections take dicts: ``override(c, camera={"items": 5})``. ``plc="none"`` removes
    the PLC; any other string is its link. A bad value is a ConfigError naming the field.
    """
    data = config.model_dump(mode="json")
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None:
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
            if not value:
                continue
        if key == "plc" and isinstance(value, str):
            value = None if value.lower() in _NO else {"link": value}
            if value is not None and config.plc is not None and value["link"] == LINE_SIM:
                value["protocol"] = config.plc.protocol
            updates[key] = value
            data.pop("plc", None)
            continue
        if key == "camera" and value.get("kind", config.camera.kind) != config.camera.kind:
            value = {"images": None, "config": None, **value}  # another kind of camera: its own source
        updates[key] = value
    try:
        return StationConfig.model_validate(_merge(data, updates))
    except ValidationError as exc:
        raise ConfigError(f"station {config.station_id}: {format_validation_error(exc)}") from None


def apply_flags(
    config: StationConfig,
    *,
    recipe: str | None = None,
    camera: str | None = None,
    camera_config: str | None = None,
    images: str | None = None,
    items: int | None = None,
    line_rate: float | None = None,
    seed: int | None = None,
    defect_rate: float | None = None,
    nuisance: float | None = None,
    shift: float | None = None,
    turn: float | None = None,
    plc: str | None = None,
    db: str | None = None,
    threads: int | None = None,
    mode: str | None = None,
    site: str | None = None,
) -> StationConfig:
    """The command-line flags every station command shares, applied over a station file (``None``: as filed)."""
    return override(
        config,
        recipe=recipe,
        camera={
            "kind": camera,
            "config": camera_config,
            "images": images,
            "items": items,
            "line_rate_per_min": line_rate,
            "seed": seed,
            "defect_rate": defect_rate,
            "nuisance": nuisance,
            "shift_px": shift,
            "turn_deg": turn,
        },
        plc=plc,
        records={k: v for k, v in (("database", db), ("site", site)) if v is not None} or None,
        inference_threads=threads,
        mode=mode,
    )
