"""A throwaway project root for HMI tests, screenshots and the bench, until real model packages exist.

The model is a tiny, real ONNX graph in the station's interface (uint8 NHWC in; ``scores``,
``anomaly`` and a ``heatmap`` out): it compares each unit with a mean "good" reference
rendered by the simulator and scores the largest 8x8 block difference. Defects therefore
really light up in the heat map, and items far from the reference are rejected as
``defect_class`` (or ``undecided`` / ``anomaly`` near the thresholds). It is not a trained
model: the reason it gives is always ``defect_class``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

from inspector.camera.sim import SimCamera
from inspector.config.roi import DEFAULT_BLISTER_GRID
from inspector.inference.package import ModelInput, ModelRecord, Thresholds, write_package
from inspector.inference.units import to_units
from inspector.manifest import sha256_bytes
from inspector.taxonomy import IMAGE_SPECS, OK, Product, labels

POOL = 8
DEFAULT_CLASS = {Product.VIAL: "particle", Product.TABLET: "chip", Product.BLISTER: "broken_tablet"}


def _units(product: Product, image: np.ndarray) -> np.ndarray:
    rois = DEFAULT_BLISTER_GRID.rois() if product is Product.BLISTER else None
    return to_units(image, rois)


def _gray(units: np.ndarray) -> np.ndarray:
    out: np.ndarray = units.astype(np.float32).mean(axis=3)
    return out


def _block_dev(gray: np.ndarray, ref: np.ndarray) -> np.ndarray:
    d = np.abs(gray - ref)
    n, h, w = d.shape
    hh, ww = h // POOL, w // POOL
    blocks: np.ndarray = d[:, : hh * POOL, : ww * POOL].reshape(n, hh, POOL, ww, POOL).mean(axis=(2, 4))
    return blocks.max(axis=(1, 2))  # type: ignore[no-any-return]


def reference_model(
    product: Product, *, defect_class: str | None = None, reject_share: float = 0.15, seed: int = 99
) -> tuple[bytes, ModelRecord]:
    """Build the reference-difference model, its thresholds set so ~``reject_share`` of sim items reject."""
    defect_class = defect_class or DEFAULT_CLASS[product]
    good = SimCamera(product, line_rate_per_min=60, seed=seed, labels=[OK])
    ref_units = np.concatenate([_units(product, good.render_item(i)[0]) for i in range(24)])
    ref = _gray(ref_units).mean(axis=0)
    mixed = SimCamera(product, line_rate_per_min=60, seed=seed + 1, defect_rate=0.2)
    devs = []
    for i in range(60):
        units = _units(product, mixed.render_item(i)[0])
        devs.append(_block_dev(_gray(units), ref).max())  # a card rejects on its worst pocket
    t_reject = float(np.quantile(devs, 1 - reject_share))
    t_anomaly = 0.97 * t_reject

    classes = list(labels(product))
    k = len(classes)
    d_idx = classes.index(defect_class)
    unit = ref_units.shape[1:]
    h, w, c = int(unit[0]), int(unit[1]), int(unit[2])
    gain = 2.0 / max(t_reject * 0.1, 1e-3)
    slope = np.zeros(k, np.float32)
    bias = np.full(k, -20.0, np.float32)
    slope[0], bias[0] = -gain, gain * t_reject
    slope[d_idx], bias[d_idx] = gain, -gain * t_reject
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["g"], axes=[3], keepdims=1),
        helper.make_node("Transpose", ["g"], ["gt"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["gt", "ref"], ["d"]),
        helper.make_node("Abs", ["d"], ["ad"]),
        helper.make_node("AveragePool", ["ad"], ["pooled"], kernel_shape=[POOL, POOL], strides=[POOL, POOL]),
        helper.make_node("Squeeze", ["pooled", "ax1"], ["hm"]),
        helper.make_node("ReduceMax", ["hm"], ["dev"], axes=[1, 2], keepdims=0),
        helper.make_node("Unsqueeze", ["dev", "ax1"], ["dev2"]),
        helper.make_node("Mul", ["dev2", "slope"], ["s"]),
        helper.make_node("Add", ["s", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
        helper.make_node("Div", ["dev", "t_anomaly"], ["anomaly"]),
        helper.make_node("Div", ["hm", "t_reject"], ["heatmap"]),
    ]
    graph = helper.make_graph(
        nodes,
        "reference_difference",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", h, w, c])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", k]),
            helper.make_tensor_value_info("anomaly", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, ["N", h // POOL, w // POOL]),
        ],
        initializer=[
            numpy_helper.from_array(ref[None, None].astype(np.float32), "ref"),
            numpy_helper.from_array(slope, "slope"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(np.array([1], np.int64), "ax1"),
            numpy_helper.from_array(np.array(t_anomaly, np.float32), "t_anomaly"),
            numpy_helper.from_array(np.array(t_reject, np.float32), "t_reject"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    fields = dict(
        model_id=f"test-{product.value}-refdiff",
        product=product,
        version="0.0.1",
        unit="pocket" if product is Product.BLISTER else "item",
        classes=classes,
        input=ModelInput(height=h, width=w, channels=1 if c == 1 else 3),
        thresholds=Thresholds(confidence=0.6, anomaly=1.0),
        pocket_grid=DEFAULT_BLISTER_GRID if product is Product.BLISTER else None,
        created_utc=_dt.datetime.now(_dt.UTC).isoformat(),
        training={"code_version": "test"},
        intended_use={"note": "HMI tests and screenshots only; not a trained model"},
    )
    provisional = ModelRecord(sha256="0" * 64, **fields)  # type: ignore[arg-type]
    for key, value in provisional.metadata_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    return data, ModelRecord(sha256=sha256_bytes(data), **fields)  # type: ignore[arg-type]


def make_project(
    root: Path,
    products: tuple[Product, ...] = (Product.VIAL, Product.TABLET, Product.BLISTER),
    *,
    rate: float | None = None,
    budget_ms: float = 200,
    reject_share: float = 0.15,
) -> Path:
    """Write ``models/<product>/0.0.1`` and ``recipes/<product>.yaml`` for each product under ``root``."""
    default_rate = {Product.VIAL: 300.0, Product.TABLET: 1800.0, Product.BLISTER: 240.0}
    for product in products:
        folder = root / "models" / product.value / "0.0.1"
        if not (folder / "record.json").exists():
            data, record = reference_model(product, reject_share=reject_share)
            write_package(folder, data, record)
        sha = ModelRecord.model_validate_json((folder / "record.json").read_text()).sha256
        spec = IMAGE_SPECS[product]
        recipe: dict[str, object] = {
            "schema_version": 1,
            "recipe_id": f"{product.value}-demo",
            "version": "1.0.0",
            "product": product.value,
            "description": "HMI test recipe with a reference-difference test model",
            "camera": "sim.yaml",
            "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
            "model": {"path": f"models/{product.value}/0.0.1", "sha256": sha},
            "latency_budget_ms": budget_ms,
            "line_rate_per_min": rate or default_rate[product],
        }
        if product is Product.BLISTER:
            recipe["pocket_grid"] = DEFAULT_BLISTER_GRID.model_dump(mode="json")
        (root / "recipes").mkdir(parents=True, exist_ok=True)
        (root / "recipes" / f"{product.value}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return root
