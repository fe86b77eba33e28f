"""A package exported although it missed its acceptance criteria stays a draft that says so (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from pydantic import ValidationError

from inspector.inference.package import (
    FailedCriteria,
    ModelIntegrityError,
    ModelRecord,
    load_package,
    write_package,
)
from inspector.manifest import sha256_bytes
from inspector.taxonomy import Product
from tests.support.onnx_models import brightness_model

FAILED = FailedCriteria(failed="acceptance criteria not met on validation: false reject rate 1.0", reason="a test")


def _failed_package(folder: Path) -> ModelRecord:
    """The brightness test model, marked as failed in its record and in its ONNX metadata."""
    data, record = brightness_model(Product.VIAL, defect_class="missing_cap")
    marked = record.model_copy(update={"criteria_failed": FAILED})
    model = onnx.load_from_string(data)
    del model.metadata_props[:]
    for key, value in sorted(marked.metadata_props().items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    data = model.SerializeToString()
    marked = marked.model_copy(update={"sha256": sha256_bytes(data)})
    write_package(folder, data, marked)
    return marked


def test_a_failed_model_loads_as_a_draft_that_says_so(tmp_path: Path) -> None:
    record = _failed_package(tmp_path / "pkg")
    package = load_package(tmp_path / "pkg")
    assert package.record.status == "draft" and package.record.criteria_failed == FAILED
    assert "inspector.criteria_failed" in record.metadata_props()


def test_its_status_cannot_leave_draft(tmp_path: Path) -> None:
    record = _failed_package(tmp_path / "pkg")
    for status in ("approved", "retired"):
        with pytest.raises(ValidationError, match="stays draft"):
            ModelRecord.model_validate({**record.model_dump(mode="json"), "status": status})
    path = tmp_path / "pkg" / "record.json"
    path.write_text(json.dumps({**record.model_dump(mode="json"), "status": "approved"}), encoding="utf-8")
    with pytest.raises(ModelIntegrityError, match="stays draft"):
        load_package(tmp_path / "pkg")


def test_the_mark_cannot_be_dropped_from_the_record_alone(tmp_path: Path) -> None:
    record = _failed_package(tmp_path / "pkg")
    path = tmp_path / "pkg" / "record.json"
    path.write_text(json.dumps({**record.model_dump(mode="json"), "criteria_failed": None}), encoding="utf-8")
    with pytest.raises(ModelIntegrityError, match="criteria_failed"):
        load_package(tmp_path / "pkg")


def test_records_without_the_mark_are_unchanged(tmp_path: Path) -> None:
    data, record = brightness_model(Product.VIAL, defect_class="missing_cap")
    assert "inspector.criteria_failed" not in record.metadata_props()
    write_package(tmp_path / "ok", data, record)
    assert load_package(tmp_path / "ok").record.criteria_failed is None
    shipped = sorted(Path(__file__).resolve().parents[2].glob("models/*/*/model.onnx"))
    assert len(shipped) == 3, "the versions the recipes name (superseded ones keep their record only)"
    for model in shipped:
        assert load_package(model.parent).record.criteria_failed is None, model
    for record in Path(__file__).resolve().parents[2].glob("models/*/*/record.json"):
        assert ModelRecord.model_validate_json(record.read_text()).criteria_failed is None, record
