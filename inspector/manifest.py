"""The labelled image set format read everywhere the project needs labelled images.

A set is a folder holding images and ``manifest.jsonl``: one JSON object per line,
one line per image. Training, evaluation, qualification suites and reviewed line
rejects all use it. Keys:

``file``         image path relative to the folder (POSIX, no ``..``)
``product``      ``vial`` | ``tablet`` | ``blister``
``label``        ``ok`` or a defect code of the product (for blisters: the worst pocket)
``criticality``  ``critical`` | ``major`` | ``minor``, ``null`` for ``ok``
``seed``         renderer seed that reproduces the image, ``null`` for camera images
``sha256``       hex digest of the image file's bytes
``pockets``      blisters only: the label of every pocket, row-major
``mask``         optional: path of a 0/255 PNG marking the defect pixels
``source``       ``synth`` (rendered), ``camera`` (grabbed) or ``review`` (labelled reject)
``nuisance``     optional: renderer nuisance scale used
``item_key``     optional: identity of the physical item when a set presents items repeatedly
                 (qualification): every presentation of one item has the same key
``presentation`` optional: which presentation of the item this image is (0, 1, ...)
``look``         optional: the renderer's look the image was drawn in (``inspector.synth.looks``);
                 absent for the renderer's own

Unknown keys are refused so that a typo cannot silently drop information.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inspector.config.loader import format_validation_error
from inspector.taxonomy import Criticality, Product, criticality, labels, worst

MANIFEST_NAME = "manifest.jsonl"
_ALWAYS = frozenset({"file", "product", "label", "criticality", "seed", "sha256"})


class ManifestError(ValueError):
    """A manifest line or referenced file is invalid; the message names line and field."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _relative_posix(value: str, what: str) -> str:
    p = PurePosixPath(value)
    if not value or p.is_absolute() or ".." in p.parts or "\\" in value:
        raise ValueError(f"{what} must be a relative path inside the set folder, got {value!r}")
    return value


class ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    product: Product
    label: str
    criticality: Criticality | None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    pockets: list[str] | None = None
    mask: str | None = None
    source: Literal["synth", "camera", "review"] = "synth"
    nuisance: float | None = Field(default=None, ge=0)
    item_key: str | None = Field(default=None, min_length=1, max_length=128)
    presentation: int | None = Field(default=None, ge=0)
    line: dict[str, float] | None = None  # the line's presentation drawn on top (inspector.synth.line)
    # A random foreign tablet drawn in place of the product's (inspector.synth.foreign): evaluation only.
    foreign: dict[str, Any] | None = None
    look: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("file")
    @classmethod
    def _file_relative(cls, v: str) -> str:
        return _relative_posix(v, "file")

    @field_validator("mask")
    @classmethod
    def _mask_relative(cls, v: str | None) -> str | None:
        return None if v is None else _relative_posix(v, "mask")

    @model_validator(mode="after")
    def _consistent(self) -> ManifestEntry:
        known = labels(self.product)
        if self.label not in known:
            raise ValueError(f"label {self.label!r} is not a {self.product.value} label ({', '.join(known)})")
        expected = criticality(self.product, self.label)
        if self.criticality != expected:
            raise ValueError(
                f"criticality {self.criticality} does not match label {self.label!r} (expected {expected})"
            )
        if self.product is Product.BLISTER:
            if not self.pockets:
                raise ValueError("blister entries need 'pockets', the label of every pocket")
            bad = [p for p in self.pockets if p not in known]
            if bad:
                raise ValueError(f"unknown pocket labels {bad}")
            card = worst(self.product, self.pockets)[0]
            if card != self.label:
                raise ValueError(f"card label {self.label!r} is not the worst pocket label {card!r}")
        elif self.pockets is not None:
            raise ValueError(f"'pockets' is only for blisters, not {self.product.value}")
        if (self.item_key is None) != (self.presentation is None):
            raise ValueError("'item_key' and 'presentation' come together (a repeated presentation of an item)")
        return self

    def to_json(self) -> str:
        """One manifest line: the six core keys always present, optional keys only when set."""
        data = self.model_dump(mode="json")
        out = {k: v for k, v in data.items() if v is not None or k in _ALWAYS}
        return json.dumps(out, separators=(",", ":"))


def parse_line(line: str, where: str) -> ManifestEntry:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    try:
        return ManifestEntry.model_validate(obj)
    except ValidationError as exc:
        raise ManifestError(f"{where}: {format_validation_error(exc)}") from None


def read_manifest(folder: str | os.PathLike[str], *, verify: bool = False) -> list[ManifestEntry]:
    """Read and validate a set's manifest; with ``verify`` also check every file's sha256."""
    root = Path(folder)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{root}: no {MANIFEST_NAME} (not a labelled image set)")
    entries: list[ManifestEntry] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            entry = parse_line(line, where)
            if entry.file in seen:
                raise ManifestError(f"{where}: file {entry.file!r} already listed on line {seen[entry.file]}")
            seen[entry.file] = n
            if verify:
                img = root / entry.file
                if not img.is_file():
                    raise ManifestError(f"{where}: image {entry.file!r} is missing")
                actual = sha256_file(img)
                if actual != entry.sha256:
                    raise ManifestError(f"{where}: sha256 of {entry.file!r} is {actual}, manifest says {entry.sha256}")
            entries.append(entry)
    return entries


def write_manifest(folder: str | os.PathLike[str], entries: Iterable[ManifestEntry]) -> Path:
    """Write a whole manifest atomically (temp file, fsync, rename)."""
    root = Path(folder)
    path = root / MANIFEST_NAME
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for e in entries:
            fh.write(e.to_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def append_entry(folder: str | os.PathLike[str], entry: ManifestEntry) -> None:
    """Append one line durably (used when reviewed rejects are exported one at a time)."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / MANIFEST_NAME, "a", encoding="utf-8") as fh:
        fh.write(entry.to_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
