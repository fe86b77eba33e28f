"""Re-performance check: does a retrained checkpoint reproduce a shipped model package?

A validation team that reruns a record's training command (same data, seed and code) needs
evidence that the result is the package it judged, not just a similar model. This compares,
without running any data:
- product, class list and network configuration (the contrast floor fitted on ok units included);
- every weight tensor, bit for bit (the count that differ, their names and the largest difference);
- the operating thresholds (confidence, anomaly) exactly;
- the split hashes and the training sets' manifest hashes;
- the ONNX graph the checkpoint exports to against the package's ``model.onnx``, both without
  their metadata (which holds dates and the commands), byte for byte.

Bit for bit holds only on the same kind of CPU (torch picks its float kernels by instruction
set): the report names the CPU of both runs where the records say it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import onnx
import torch

from inspector.inference.package import load_package
from training.export import read_torch_weights, to_onnx
from training.train import load_checkpoint

LISTED_MAX = 10  # differing tensor names listed in the report


class CompareInputError(ValueError):
    """The checkpoint and the package cannot be compared (another product)."""


def graph_digest(onnx_bytes: bytes) -> str:
    """sha256 of an ONNX model with its metadata properties and producer fields removed."""
    model = onnx.load_from_string(onnx_bytes)
    del model.metadata_props[:]
    model.producer_name = ""
    model.producer_version = ""
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()


def _manifests(datasets: Any) -> list[str]:
    return [str(d.get("manifest_sha256")) for d in datasets or []]


def compare(checkpoint: str | os.PathLike[str], package_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The comparison as a JSON-ready dict; ``identical`` is true only when every check holds."""
    package = load_package(package_dir)  # hash and metadata verified first
    record = package.record
    shipped = read_torch_weights(package_dir, record.sha256)
    ckpt, net = load_checkpoint(checkpoint)
    if ckpt["product"] != record.product.value:
        raise CompareInputError(f"checkpoint is for {ckpt['product']}, the package for {record.product.value}")

    mine = net.state_dict()
    theirs = shipped["state_dict"]
    names = sorted(set(mine) | set(theirs))
    differing = []
    max_abs: float | None = 0.0  # None: some tensor has no counterpart of its shape to subtract
    for name in names:
        a, b = mine.get(name), theirs.get(name)
        if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
            differing.append(name)
            max_abs = None
        elif not torch.equal(a, b):
            differing.append(name)
            if max_abs is not None and a.is_floating_point():
                max_abs = max(max_abs, float((a.double() - b.double()).abs().max()))
    thresholds_ckpt = {k: float(ckpt["thresholds"][k]) for k in ("confidence", "anomaly")}
    thresholds_pkg = {"confidence": record.thresholds.confidence, "anomaly": record.thresholds.anomaly}
    datasets_record = record.training.get("datasets")
    checks = {
        "classes": list(ckpt["classes"]) == list(record.classes),
        "net_config": net.cfg.to_dict() == dict(shipped["net_config"]),
        "weights": not differing,
        "thresholds": thresholds_ckpt == thresholds_pkg,
        "split_hashes": dict(ckpt["splits"]["hashes"]) == dict(record.split_hashes or {}),
        "training_sets": _manifests(ckpt["datasets"]) == _manifests(datasets_record),
        "onnx_graph": graph_digest(to_onnx(net)) == graph_digest(package.onnx_bytes),
    }
    return {
        "checkpoint": str(checkpoint),
        "package": str(package_dir),
        "model": {"product": record.product.value, "version": record.version, "sha256": record.sha256},
        "identical": all(checks.values()),
        "checks": checks,
        "weights": {
            "tensors": len(names),
            "differing": len(differing),
            "differing_names": differing[:LISTED_MAX],
            "max_abs_diff": max_abs,
        },
        "thresholds": {"checkpoint": thresholds_ckpt, "package": thresholds_pkg},
        "cpu": {
            "checkpoint": [ckpt["training"].get("cpu"), ckpt["training"].get("cpu_capability")],
            "package": [record.training.get("cpu"), record.training.get("cpu_capability")],
        },
        "train_seconds": {
            "checkpoint": ckpt["training"].get("train_seconds"),
            "package": record.training.get("train_seconds"),
        },
    }
