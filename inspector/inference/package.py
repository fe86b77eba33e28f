"""Model packages: ``models/<product>/<version>/`` with ``model.onnx`` and ``record.json``.

The ONNX file describes itself (``metadata_props``, keys prefixed ``inspector.``) and the
record carries the file's sha256. :func:`load_package` refuses a package whose hash,
metadata or interface do not match, so a changed byte stops the station (Annex 11 §10,
draft Annex 22 §10.2).

Interface every model fulfils:
- input ``image``: uint8, NHWC, ``[N, H, W, C]`` (C = 1 mono or 3 BGR), all
  preprocessing inside the graph;
- output ``scores``: float32 ``[N, K]`` class probabilities in the record's class order;
- output ``anomaly``: float32 ``[N]``, higher is more anomalous, compared with the
  record's anomaly threshold.
For blisters a unit is one pocket crop (the recipe's pocket ROIs); otherwise the item.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inspector.config.loader import format_validation_error
from inspector.config.roi import PocketGrid
from inspector.manifest import sha256_bytes, sha256_file
from inspector.taxonomy import OK, Product, labels

MODEL_FILE = "model.onnx"
RECORD_FILE = "record.json"
META_PREFIX = "inspector."


class ModelIntegrityError(RuntimeError):
    """The package's hash, metadata or interface does not match: the station must not run."""


class ModelInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "image"
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[1, 3]
    layout: Literal["NHWC"] = "NHWC"
    dtype: Literal["uint8"] = "uint8"


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    confidence: float = Field(ge=0.0, le=1.0, description="below it the result is 'undecided'")
    anomaly: float = Field(description="anomaly score above it rejects as 'anomaly'")


class FailedCriteria(BaseModel):
    """A model exported although it missed its acceptance criteria (``export --allow-failed``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failed: str = Field(min_length=1, description="the criteria it missed, with the measured figures")
    reason: str = Field(min_length=1, description="why it was exported all the same")


class ModelRecord(BaseModel):
    """The validated record next to a model file.

    ``criteria_failed`` marks a model exported although it missed its acceptance criteria: such
    a record is refused unless its status is ``draft``, and its ONNX file carries the same
    statement in its metadata, so the mark cannot be dropped from the record alone.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    model_id: str = Field(min_length=1)
    product: Product
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    status: Literal["draft", "approved", "retired"] = "draft"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    unit: Literal["item", "pocket"]
    classes: list[str]
    input: ModelInput
    thresholds: Thresholds
    pocket_grid: PocketGrid | None = None
    created_utc: str
    training: dict[str, Any] = Field(default_factory=dict)
    split_hashes: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    intended_use: dict[str, Any] = Field(default_factory=dict)
    acceptance_criteria: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    criteria_failed: FailedCriteria | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelRecord:
        if self.criteria_failed is not None and self.status != "draft":
            raise ValueError(
                f"status {self.status!r}: a model that missed its acceptance criteria stays draft"
                f" ({self.criteria_failed.failed})"
            )
        known = labels(self.product)
        if not self.classes or self.classes[0] != OK:
            raise ValueError("classes must start with 'ok'")
        bad = [c for c in self.classes if c not in known]
        if bad:
            raise ValueError(f"classes {bad} are not {self.product.value} labels")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be unique")
        if (self.unit == "pocket") != (self.product is Product.BLISTER):
            raise ValueError("unit 'pocket' is for blisters, 'item' for the other products")
        if self.unit == "pocket" and self.pocket_grid is None:
            raise ValueError("a pocket model needs its pocket_grid")
        return self

    def metadata_props(self) -> dict[str, str]:
        """What the exporter writes into the ONNX file's ``metadata_props``."""
        failed = {}
        if self.criteria_failed is not None:
            failed[f"{META_PREFIX}criteria_failed"] = json.dumps(
                self.criteria_failed.model_dump(mode="json"), sort_keys=True
            )
        return {
            **failed,
            f"{META_PREFIX}model_id": self.model_id,
            f"{META_PREFIX}product": self.product.value,
            f"{META_PREFIX}version": self.version,
            f"{META_PREFIX}unit": self.unit,
            f"{META_PREFIX}classes": json.dumps(self.classes),
            f"{META_PREFIX}input": json.dumps(self.input.model_dump(mode="json"), sort_keys=True),
            f"{META_PREFIX}thresholds": json.dumps(self.thresholds.model_dump(mode="json"), sort_keys=True),
            f"{META_PREFIX}split_hashes": json.dumps(self.split_hashes, sort_keys=True),
            f"{META_PREFIX}training_code_version": str(self.training.get("code_version", "")),
        }


class ModelPackage(BaseModel):
    """A verified package: only :func:`load_package` makes these."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    path: Path
    record: ModelRecord
    onnx_bytes: bytes
    record_sha256: str = ""

    @property
    def sha256(self) -> str:
        return self.record.sha256

    @property
    def object_id(self) -> str:
        """How the release lifecycle names this package: ``model_id@version``."""
        return f"{self.record.model_id}@{self.record.version}"

    @property
    def digest(self) -> str:
        """The package's content hash, what an approval binds: the ONNX file and its record together.

        A changed threshold or intended use in ``record.json`` is a changed package, as much as a
        changed weight in ``model.onnx``.
        """
        return package_digest(self.sha256, self.record_sha256)


def package_digest(onnx_sha256: str, record_sha256: str) -> str:
    text = json.dumps({MODEL_FILE: onnx_sha256, RECORD_FILE: record_sha256}, sort_keys=True, separators=(",", ":"))
    return sha256_bytes(text.encode("utf-8"))


def read_record(folder: str | os.PathLike[str]) -> ModelRecord:
    return _read_record(Path(folder))[0]


def _read_record(folder: Path) -> tuple[ModelRecord, str]:
    path = folder / RECORD_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelIntegrityError(f"{path}: missing model record") from None
    try:
        return ModelRecord.model_validate_json(raw), sha256_bytes(raw)
    except ValidationError as exc:
        raise ModelIntegrityError(f"{path}: invalid model record: {format_validation_error(exc)}") from None


def load_package(folder: str | os.PathLike[str], expected_sha256: str | None = None) -> ModelPackage:
    """Read and verify a model package; raise :class:`ModelIntegrityError` on any mismatch.

    Checks: the record is valid; the file's sha256 equals the record's and, when given,
    the recipe's ``expected_sha256``; the ONNX ``metadata_props`` equal the record.
    The bytes that were hashed are the bytes returned, so nothing can change in between.
    """
    root = Path(folder)
    record, record_sha256 = _read_record(root)
    model_path = root / MODEL_FILE
    try:
        data = model_path.read_bytes()
    except FileNotFoundError:
        raise ModelIntegrityError(f"{model_path}: missing model file") from None
    actual = sha256_bytes(data)
    if actual != record.sha256:
        raise ModelIntegrityError(
            f"{model_path}: sha256 {actual} does not match its record ({record.sha256}); the file was changed"
        )
    if expected_sha256 is not None and actual != expected_sha256:
        raise ModelIntegrityError(
            f"{model_path}: sha256 {actual} is not the one the recipe expects ({expected_sha256})"
        )
    meta = onnx_metadata(data)
    want = record.metadata_props()
    diff = [k for k, v in want.items() if meta.get(k) != v]
    # Optional keys the file has and the record lacks count too (a failed-criteria mark dropped from the record).
    diff += [k for k in meta if k.startswith(META_PREFIX) and k not in want]
    if diff:
        keys = ", ".join(sorted(diff))
        raise ModelIntegrityError(f"{model_path}: ONNX metadata does not match the record for {keys}")
    return ModelPackage(path=root, record=record, onnx_bytes=data, record_sha256=record_sha256)


def onnx_metadata(data: bytes) -> dict[str, str]:
    """``metadata_props`` of a serialised ONNX model, read with ONNX Runtime (no onnx package)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelIntegrityError(f"not a loadable ONNX model: {exc}") from None
    props: dict[str, str] = dict(sess.get_modelmeta().custom_metadata_map)
    return props


def write_package(folder: str | os.PathLike[str], onnx_bytes: bytes, record: ModelRecord) -> Path:
    """Write ``model.onnx`` and ``record.json``; refuses to overwrite (versions are immutable)."""
    root = Path(folder)
    if (root / MODEL_FILE).exists() or (root / RECORD_FILE).exists():
        raise FileExistsError(f"{root} already holds a model package; a new model needs a new version")
    if sha256_bytes(onnx_bytes) != record.sha256:
        raise ValueError("record.sha256 does not match the ONNX bytes")
    root.mkdir(parents=True, exist_ok=True)
    (root / MODEL_FILE).write_bytes(onnx_bytes)
    (root / RECORD_FILE).write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    if sha256_file(root / MODEL_FILE) != record.sha256:
        raise ModelIntegrityError(f"{root / MODEL_FILE}: written bytes do not hash to the record")
    return root
