"""Camera configuration files (``camera_configs/*.yaml``): which device, and the settings it gets.

GenICam ``features`` are written in file order (order matters: ``Width`` before
``OffsetX``) and each one is read back to verify. A feature the device lacks is an
error unless it is listed in ``optional_features``; then it is skipped and reported.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from inspector.config.errors import ConfigError
from inspector.config.loader import load_yaml_model

CAMERA_CONFIGS_DIR = "camera_configs"
VIKY_PLACEHOLDER = "${GENICAM_VIKY}"

# Strict types: YAML ``"320"`` stays a string and is refused by an integer node,
# instead of being coerced silently.
FeatureValue = StrictBool | StrictInt | StrictFloat | StrictStr

NodeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def viky_cti_path() -> Path:
    """The ``viky.cti`` GenTL producer shipped inside the ``genicam`` wheel (three simulated devices)."""
    # find_spec locates the package without importing its native libraries.
    spec = importlib.util.find_spec("genicam")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the genicam package is not installed, so ${GENICAM_VIKY} cannot be resolved")
    return Path(next(iter(spec.submodule_search_locations))) / "viky.cti"


def resolve_cti(value: str | os.PathLike[str]) -> Path:
    """Expand ``${GENICAM_VIKY}``, other ``${VAR}`` environment variables and ``~`` in a .cti path."""
    text = os.fspath(value)
    if VIKY_PLACEHOLDER in text:
        text = text.replace(VIKY_PLACEHOLDER, str(viky_cti_path()))
    expanded = os.path.expandvars(text)
    if "$" in expanded:
        raise ConfigError(f"cti path {text!r}: an environment variable in it is not set")
    return Path(expanded).expanduser()


class CameraConfig(BaseModel):
    """One camera: the device to open and the settings to apply (schema version 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: Literal["genicam", "sim", "files"]
    description: str = ""
    cti: str | None = Field(default=None, description="GenTL producer (.cti); ${GENICAM_VIKY} = the bundled viky.cti")
    serial: str | None = Field(default=None, min_length=1, description="device serial number (selects the device)")
    model: str | None = Field(default=None, min_length=1, description="device model name (selects the device)")
    features: dict[NodeName, FeatureValue] = Field(
        default_factory=dict, description="GenICam node writes, applied in this order and read back"
    )
    optional_features: list[NodeName] = Field(
        default_factory=list, description="features the device may lack: skipped and reported, not an error"
    )
    pixel_format_out: Literal["mono8", "bgr8"] = Field(default="bgr8", description="format of the frames delivered")
    fetch_timeout_ms: int = Field(default=1000, gt=0, le=60_000, description="default grab timeout of the station")
    num_buffers: int = Field(default=3, ge=1, le=64, description="GenTL buffers announced to the producer")

    @model_validator(mode="after")
    def _consistent(self) -> CameraConfig:
        unknown = [f for f in self.optional_features if f not in self.features]
        if unknown:
            raise ValueError(f"optional_features: {unknown} are not in features")
        if len(set(self.optional_features)) != len(self.optional_features):
            raise ValueError("optional_features: names repeat")
        if self.kind == "genicam":
            if self.cti is None:
                raise ValueError("cti: required for kind genicam (use ${GENICAM_VIKY} for the simulated Viky)")
            if self.serial is None and self.model is None:
                raise ValueError("kind genicam needs serial or model to select the device")
        else:
            # A sim or replay camera has no node map: settings here would be silently ignored.
            for field in ("cti", "model"):
                if getattr(self, field) is not None:
                    raise ValueError(f"{field}: only for kind genicam")
            if self.features or self.optional_features:
                raise ValueError("features: only for kind genicam")
        return self

    def cti_path(self) -> Path:
        """The resolved producer path (``${GENICAM_VIKY}`` expanded)."""
        if self.cti is None:
            raise ConfigError(f"camera {self.name}: no cti configured")
        return resolve_cti(self.cti)


def load_camera_config(path: str | os.PathLike[str]) -> CameraConfig:
    """Read and validate a camera YAML file; any problem is a :class:`ConfigError` naming file and field."""
    return load_yaml_model(path, CameraConfig)


__all__ = [
    "CAMERA_CONFIGS_DIR",
    "CameraConfig",
    "ConfigError",
    "FeatureValue",
    "load_camera_config",
    "resolve_cti",
    "viky_cti_path",
]
