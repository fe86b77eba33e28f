"""Tiny, real ONNX model packages for pipeline tests (built with onnx.helper, run by ONNX Runtime).

The graph follows the station's model interface: uint8 NHWC ``image`` in, ``scores``
(softmax over the product's classes) and ``anomaly`` out. Its "judgement" is a linear
function of the mean brightness, so tests can steer the outcome: bright units score
``ok``, units darker than ``dark_below`` score as ``defect_class``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inspector.config.roi import DEFAULT_BLISTER_GRID
from inspector.inference.package import ModelInput, ModelRecord, Thresholds, write_package
from inspector.inference.units import unit_shape
from inspector.manifest import sha256_bytes
from inspector.taxonomy import Product, labels


def brightness_model(
    product: Product,
    *,
    defect_class: str,
    dark_below: float = 40.0,
    version: str = "0.0.1",
    model_id: str | None = None,
) -> tuple[bytes, ModelRecord]:
    classes = list(labels(product))
    k = len(classes)
    d = classes.index(defect_class)
    h, w, c = unit_shape(product)
    # logit_ok = 0.5 * (mean - dark_below), logit_defect = -0.5 * (mean - dark_below), others -20.
    slope = np.zeros(k, np.float32)
    bias = np.full(k, -20.0, np.float32)
    slope[0], bias[0] = 0.5, -0.5 * dark_below
    slope[d], bias[d] = -0.5, 0.5 * dark_below
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["m", "ax1"], ["m2"]),
        helper.make_node("Mul", ["m2", "slope"], ["s"]),
        helper.make_node("Add", ["s", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
        helper.make_node("Mul", ["m", "zero"], ["anomaly"]),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", h, w, c])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", k]),
            helper.make_tensor_value_info("anomaly", TensorProto.FLOAT, ["N"]),
        ],
        initializer=[
            numpy_helper.from_array(slope, "slope"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(np.array([1], np.int64), "ax1"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    record_wo_hash = dict(
        model_id=model_id or f"test-{product.value}-brightness",
        product=product,
        version=version,
        unit="pocket" if product is Product.BLISTER else "item",
        classes=classes,
        input=ModelInput(height=h, width=w, channels=c),
        thresholds=Thresholds(confidence=0.6, anomaly=0.5),
        pocket_grid=DEFAULT_BLISTER_GRID if product is Product.BLISTER else None,
        created_utc=_dt.datetime.now(_dt.UTC).isoformat(),
        training={"code_version": "test"},
    )
    provisional = ModelRecord(sha256="0" * 64, **record_wo_hash)  # type: ignore[arg-type]
    for key, value in provisional.metadata_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    record = ModelRecord(sha256=sha256_bytes(data), **record_wo_hash)  # type: ignore[arg-type]
    return data, record


def make_package(
    folder: Path, product: Product | str, *, defect_class: str | None = None, dark_below: float = 40.0
) -> ModelRecord:
    prod = Product(product)
    data, record = brightness_model(prod, defect_class=defect_class or labels(prod)[1], dark_below=dark_below)
    write_package(folder, data, record)
    return record


def challenge_set(folder: Path, product: Product | str, *, seed: int, dark_defect: bool = True) -> str:
    """A start-up challenge folder: one blacked-out (defect) item, then two good ones.

    The brightness model rejects the black item as its first defect class (``dark_defect=False``
    leaves it as rendered, bright, so that model accepts a defect). Returns the recipe's
    ``startup_challenge`` entry for the folder (with the sha256 of its manifest) as YAML.
    """
    import cv2

    from inspector.manifest import write_manifest
    from inspector.synth.generate import generate

    prod = Product(product)
    chosen = [labels(prod)[1], "ok", "ok"]
    entries = generate(prod.value, len(chosen), seed, folder, labels=chosen, masks=False, workers=1)
    if dark_defect:
        first = folder / entries[0].file
        image = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(first), np.zeros_like(image))
        entries[0] = entries[0].model_copy(update={"sha256": sha256_bytes(first.read_bytes())})
    manifest = write_manifest(folder, entries)
    return f"{{folder: {folder.name}, manifest_sha256: {sha256_bytes(manifest.read_bytes())}}}"
