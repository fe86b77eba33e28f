"""Checkpoint -> verified model package ``models/<product>/<version>/``.

The ONNX graph takes uint8 NHWC ``image`` exactly in the unit shape and holds every
preprocessing step (cast, scale, normalise, space-to-depth). Before anything is written:
- parity: torch and ONNX Runtime on held-out test units (max abs differences recorded,
  identical argmax required);
- determinism: the same batch run repeatedly, in a second session too, gives bit-identical
  outputs.
Either failure raises :class:`ExportCheckError` and no package is written. The package is
then re-loaded through :func:`~inspector.inference.package.load_package` (hash + metadata).

Next to the ONNX file the package gets ``torch_weights.pt`` (weights and network config
only, loadable with ``weights_only=True``), bound to the ONNX file by its sha256: the torch
eager figure of ``inspector bench`` runs these weights. The runtime never loads them.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from inspector.config.roi import DEFAULT_BLISTER_GRID
from inspector.inference.package import (
    FailedCriteria,
    ModelInput,
    ModelRecord,
    Thresholds,
    load_package,
    write_package,
)
from inspector.inference.session import InferenceEngine
from inspector.manifest import sha256_bytes
from inspector.taxonomy import Product
from training.nets import InspectorNet
from training.train import load_checkpoint

OPSET = 17
TORCH_WEIGHTS = "torch_weights.pt"
SCORE_ATOL = 1e-4
ANOMALY_RTOL = 1e-3


class ExportCheckError(RuntimeError):
    """Parity or determinism failed: the exported graph does not reproduce the trained model."""


class CriteriaNotMetError(ValueError):
    """The checkpoint missed its acceptance criteria: no package unless the export says why (``allow_failed``)."""


class TorchWeightsError(ValueError):
    """A package's ``torch_weights.pt`` is missing, unreadable or bound to another ONNX file."""


# What the exported graph computes differently from the trained module (same arithmetic).
GRAPH_NOTE = "space-to-depth stem folded into one convolution on the image (InspectorNet.stem)"


def to_onnx(net: InspectorNet) -> bytes:
    """Serialise the network with a dynamic batch axis and a uint8 NHWC input named ``image``.

    A copy is exported with the space-to-depth stem folded into its first convolution; the
    parity check compares that graph with the module as trained.
    """
    cfg = net.cfg
    net = copy.deepcopy(net).eval().to(memory_format=torch.contiguous_format)
    net.fold_stem = True
    dummy = torch.zeros(2, cfg.height, cfg.width, cfg.channels, dtype=torch.uint8)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is the one that needs no extra package; its deprecation
        # notice says nothing about this graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (dummy,),
            buf,
            input_names=["image"],
            output_names=["scores", "anomaly", "heatmap"],
            dynamic_axes={"image": {0: "N"}, "scores": {0: "N"}, "anomaly": {0: "N"}, "heatmap": {0: "N"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model)
    return model.SerializeToString()


def with_metadata(onnx_bytes: bytes, props: dict[str, str]) -> bytes:
    model = onnx.load_from_string(onnx_bytes)
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "inspector-training"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _session(data: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def check_parity(net: InspectorNet, onnx_bytes: bytes, units: np.ndarray) -> dict[str, Any]:
    """Torch vs ONNX Runtime on the same uint8 units; raises if any argmax differs."""
    if len(units) == 0:
        raise ExportCheckError("no held-out units for the parity check")
    with torch.no_grad():
        ts, ta, th = (t.numpy() for t in net.eval()(torch.from_numpy(units)))
    sess = _session(onnx_bytes)
    os_, oa, oh = sess.run(["scores", "anomaly", "heatmap"], {"image": units})
    report = {
        "units": len(units),
        "max_abs_diff_scores": float(np.abs(ts - os_).max()),
        "max_abs_diff_anomaly": float(np.abs(ta - oa).max()),
        "max_rel_diff_anomaly": float((np.abs(ta - oa) / np.maximum(np.abs(ta), 1e-6)).max()),
        "max_abs_diff_heatmap": float(np.abs(th - oh).max()),
        "argmax_identical": bool(np.array_equal(ts.argmax(1), os_.argmax(1))),
    }
    report["passed"] = bool(
        report["argmax_identical"]
        and report["max_abs_diff_scores"] <= SCORE_ATOL
        and report["max_rel_diff_anomaly"] <= ANOMALY_RTOL
    )
    if not report["passed"]:
        raise ExportCheckError(f"torch vs ONNX Runtime parity failed: {report}")
    return report


def check_determinism(onnx_bytes: bytes, units: np.ndarray, repeats: int = 5) -> dict[str, Any]:
    """Same input -> bit-identical outputs, over repeated runs and a fresh session."""
    outputs = ["scores", "anomaly", "heatmap"]
    first = _session(onnx_bytes)
    ref = first.run(outputs, {"image": units})
    runs = [first.run(outputs, {"image": units}) for _ in range(repeats - 1)]
    runs.append(_session(onnx_bytes).run(outputs, {"image": units}))
    identical = all(np.array_equal(a, b) for run in runs for a, b in zip(ref, run, strict=True))
    # One unit at a time must give the bits of the batch too: the station's batch size varies.
    single = [first.run(outputs, {"image": units[i : i + 1]}) for i in range(min(len(units), 8))]
    single_identical = all(
        np.array_equal(ref[k][i : i + 1], single[i][k]) for i in range(len(single)) for k in range(len(outputs))
    )
    report = {
        "units": len(units),
        "runs": repeats + 1,
        "bit_identical": identical,
        "batch_of_one_identical": single_identical,
    }
    report["passed"] = identical
    if not identical:
        raise ExportCheckError(f"ONNX Runtime outputs are not bit-identical over repeated runs: {report}")
    return report


def _nuisance_range(ckpt: dict[str, Any]) -> tuple[float, float, float]:
    """Lowest and highest nuisance scale of the training sets, and the top of the threshold range."""
    scales = [float(n) for d in ckpt["datasets"] for n in d.get("nuisance", [])]
    lo, hi = (min(scales), max(scales)) if scales else (1.0, 1.0)
    top = ckpt["thresholds"].get("nuisance_max")
    return lo, hi, hi if top is None else min(float(top), hi)


def _intended_use(
    product: Product, record_input: ModelInput, withheld: list[str], classes: list[str], ckpt: dict[str, Any]
) -> dict[str, Any]:
    grid = product is Product.BLISTER
    lo, hi, top = _nuisance_range(ckpt)
    beyond = (
        f"nuisance scale {top:g}-{hi:g} was trained on but not used to set thresholds: expect more false rejects there"
        if top < hi
        else None
    )
    return {
        "task": (
            f"Accept/reject decision support for {product.value} inspection: classify each "
            f"{'blister pocket (recipe pocket ROIs)' if grid else 'item image'} into {classes} and score anomalies "
            "against good items; the station's decide() turns outputs and thresholds into the verdict."
        ),
        "input_space": {
            "unit": "pocket crop" if grid else "whole frame",
            "shape_nhwc": [record_input.height, record_input.width, record_input.channels],
            "dtype": "uint8",
            "colour": "mono8" if record_input.channels == 1 else "BGR8",
            "frame": "640x480 BGR8 blister card, DEFAULT_BLISTER_GRID pockets" if grid else "station camera frame",
            "conditions": f"procedurally rendered images, nuisance scale {lo:g}-{top:g} (pose jitter, lighting "
            "drift, blur, noise) as produced by inspector.synth",
        },
        "limits": [
            "trained only on rendered images; camera images need a qualification run before any use",
            f"classes withheld from the classifier ({', '.join(withheld)}) have no reason code in this model: "
            "they are rejected as 'anomaly' or under the trained class they resemble most (the evaluation's "
            "confusion matrix shows which), never with their own reason code",
            f"nuisance beyond scale {top:g} or a different product style / camera geometry is outside the input space",
            *([beyond] if beyond else []),
            "status draft: not approved for GMP decisions until QA release",
        ],
    }


def missed_criteria(ckpt: dict[str, Any]) -> str | None:
    """What the checkpoint's acceptance check on validation missed, in words; ``None`` when it passed.

    Training chooses the thresholds on validation so that the false reject rate stays within
    its target with zero critical escapes (:func:`training.thresholds.select_thresholds`);
    ``criteria_met_on_val`` says whether any choice did.
    """
    from training.verdict import of_checkpoint

    thresholds = ckpt["thresholds"]
    verdict = of_checkpoint(ckpt)
    if thresholds.get("criteria_met_on_val", True) and verdict.met:
        return None
    val = ckpt["metrics"]["val"]
    target = thresholds.get("rule", {}).get("frr_target")
    frr = val.get("false_reject_rate")
    classes = "; ".join(
        f"{r.label} {100 * (r.recall or 0):.1f} % (needs >= {100 * (r.limit or 0):.1f} %)"
        for r in verdict.rows
        if r.met is False
    )
    return (
        f"acceptance criteria not met on validation: false reject rate {frr if frr is None else round(frr, 4)}"
        f" (target <= {target}), critical escapes {val.get('critical_escapes')} (target 0)"
        + (f"; classes missed: {classes}" if classes else "")
    )


def export(
    checkpoint: str | os.PathLike[str],
    models_dir: str | os.PathLike[str] = "models",
    *,
    version: str = "1.0.0",
    model_id: str | None = None,
    command: str | None = None,
    allow_failed: str | None = None,
) -> Path:
    """Export a checkpoint into ``models_dir/<product>/<version>/`` after parity and determinism checks.

    A checkpoint that missed its acceptance criteria is refused (:class:`CriteriaNotMetError`)
    unless ``allow_failed`` gives the reason; its record then says what failed and why it was
    exported, and stays ``draft`` (the record refuses any other status).
    """
    ckpt, net = load_checkpoint(checkpoint)
    missed = missed_criteria(ckpt)
    if missed is not None and not (allow_failed or "").strip():
        raise CriteriaNotMetError(
            f"{checkpoint}: {missed}; not exported (--allow-failed REASON exports it as a draft that says so)"
        )
    failed = None if missed is None else FailedCriteria(failed=missed, reason=str(allow_failed).strip())
    product = Product(ckpt["product"])
    cfg = net.cfg
    classes: list[str] = list(ckpt["classes"])
    model_input = ModelInput(height=cfg.height, width=cfg.width, channels=cfg.channels)
    if product is Product.BLISTER:
        w, h = DEFAULT_BLISTER_GRID.roi_size
        if (cfg.height, cfg.width) != (h, w):
            raise ValueError(f"blister model input {cfg.height}x{cfg.width} is not the pocket ROI {h}x{w}")
    thresholds = Thresholds(confidence=ckpt["thresholds"]["confidence"], anomaly=ckpt["thresholds"]["anomaly"])
    training = dict(ckpt["training"])
    if command:
        training["export_command"] = command
    training["onnx_graph"] = GRAPH_NOTE
    base = {
        "model_id": model_id or f"inspector-{product.value}-mnv3s-ae",
        "product": product,
        "version": version,
        "status": "draft",
        "unit": "pocket" if product is Product.BLISTER else "item",
        "classes": classes,
        "input": model_input,
        "thresholds": thresholds,
        "pocket_grid": DEFAULT_BLISTER_GRID if product is Product.BLISTER else None,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "training": training,
        "split_hashes": dict(ckpt["splits"]["hashes"]),
        "criteria_failed": failed,
    }
    provisional = ModelRecord(sha256="0" * 64, **base)
    onnx_bytes = with_metadata(to_onnx(net), provisional.metadata_props())
    held_out = np.ascontiguousarray(ckpt["test_sample_units"])
    parity = check_parity(net, onnx_bytes, held_out)
    determinism = check_determinism(onnx_bytes, held_out[:16])
    metrics = {
        "val": ckpt["metrics"]["val"],
        "test_internal": ckpt["metrics"]["test_internal"],
        "training_history": ckpt["metrics"]["history"],
        "anomaly_head": ckpt["metrics"]["anomaly"],
        "threshold_selection": ckpt["thresholds"],
        "split_check": ckpt["splits"],
        "parity": parity,
        "determinism": determinism,
        "onnx_bytes": len(onnx_bytes),
    }
    intended_use = _intended_use(product, model_input, list(ckpt["withheld_classes"]), classes, ckpt)
    if failed is not None:
        intended_use["limits"].append(f"exported although it FAILED: {failed.failed}; reason: {failed.reason}")
    record = ModelRecord(
        sha256=sha256_bytes(onnx_bytes),
        metrics=metrics,
        intended_use=intended_use,
        acceptance_criteria=dict(ckpt["acceptance_criteria"]),
        **base,
    )
    folder = Path(models_dir) / product.value / version
    write_package(folder, onnx_bytes, record)
    write_torch_weights(ckpt, net, folder)
    # The runtime path must accept what was written: hash, metadata and interface.
    engine = InferenceEngine(load_package(folder), warmup=2)
    scores, _ = engine.run(held_out[: 4 if product is not Product.BLISTER else 10])
    if not np.isfinite(scores).all():
        raise ExportCheckError("the written package gives non-finite scores")
    return folder


def read_torch_weights(folder: str | os.PathLike[str], onnx_sha256: str) -> dict[str, Any]:
    """``<package>/torch_weights.pt``, refused unless it was written for the ONNX file of this sha256."""
    path = Path(folder) / TORCH_WEIGHTS
    if not path.is_file():
        raise TorchWeightsError(f"{path} is missing: this package ships no torch weights")
    try:
        payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise TorchWeightsError(f"{path}: unreadable torch weights ({exc})") from None
    if payload.get("onnx_sha256") != onnx_sha256:
        raise TorchWeightsError(f"{path} belongs to another ONNX file (sha256 {payload.get('onnx_sha256')})")
    return payload


def write_torch_weights(ckpt: dict[str, Any], net: InspectorNet, folder: str | os.PathLike[str]) -> Path:
    """``<package>/torch_weights.pt``: the weights the package's ONNX file was exported from.

    Refused unless the weights reproduce the package's ONNX outputs on the checkpoint's
    held-out units (same parity rule as the export), so they can only sit next to their own graph.
    """
    package = load_package(folder)
    check_parity(net, package.onnx_bytes, np.ascontiguousarray(ckpt["test_sample_units"]))
    if list(ckpt["classes"]) != list(package.record.classes):
        raise ExportCheckError("checkpoint classes differ from the package's")
    payload = {
        "format": 1,
        "product": ckpt["product"],
        "classes": list(ckpt["classes"]),
        "net_config": net.cfg.to_dict(),
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "onnx_sha256": package.record.sha256,
    }
    path = Path(folder) / TORCH_WEIGHTS
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path
