"""ONNX Runtime session for a verified model package: one intra-op thread, warmed up."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort

from inspector.inference.package import ModelIntegrityError, ModelPackage

OUTPUTS = ("scores", "anomaly")
HEATMAP = "heatmap"  # optional [N, h, w] anomaly map: what drove the score (explainability)


class ModelError(RuntimeError):
    """Inference failed for an input; the station rejects the item as not inspected."""


class InferenceEngine:
    """Runs a model package on uint8 NHWC batches.

    One intra-op thread by default: on a 2-core station two threads halve the median but
    gave 2-4x p99 spikes (DOMAIN.md section 6), and the other core serves acquisition and I/O.
    """

    def __init__(self, package: ModelPackage, *, threads: int = 1, warmup: int = 20) -> None:
        self.package = package
        rec = package.record
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                package.onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelIntegrityError(f"{package.path}: ONNX Runtime cannot load the model: {exc}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != rec.input.name or inputs[0].type != "tensor(uint8)":
            raise ModelIntegrityError(f"{package.path}: model input must be one uint8 tensor named {rec.input.name!r}")
        shape = inputs[0].shape
        want = [rec.input.height, rec.input.width, rec.input.channels]
        if len(shape) != 4 or [d if isinstance(d, int) else None for d in shape[1:]] != want:
            raise ModelIntegrityError(
                f"{package.path}: model input shape {shape} is not [N, {', '.join(map(str, want))}]"
            )
        names = [o.name for o in self.session.get_outputs()]
        if not set(OUTPUTS) <= set(names) or not set(names) <= {*OUTPUTS, HEATMAP}:
            raise ModelIntegrityError(
                f"{package.path}: model outputs {names} must be {list(OUTPUTS)} (plus optional {HEATMAP!r})"
            )
        self.has_heatmap = HEATMAP in names
        self.input_name = rec.input.name
        self.unit_shape = tuple(want)
        self.n_classes = len(rec.classes)
        if warmup:
            self.warm_up(warmup)

    def heatmap(self, batch: np.ndarray) -> np.ndarray | None:
        """The anomaly heat map for a batch, if the model provides one (off the hot path)."""
        if not self.has_heatmap:
            return None
        (hm,) = self.session.run([HEATMAP], {self.input_name: batch})
        return np.asarray(hm, dtype=np.float32)

    def warm_up(self, n: int = 20) -> float:
        """Run ``n`` dummy batches (first runs are slow); returns the last run's ms."""
        units = 1 if self.package.record.pocket_grid is None else self.package.record.pocket_grid.count
        dummy = np.zeros((units, *self.unit_shape), np.uint8)
        ms = 0.0
        for _ in range(n):
            t = time.perf_counter()
            self.run(dummy)
            ms = (time.perf_counter() - t) * 1e3
        return ms

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``[N, K]`` and anomaly ``[N]`` for a uint8 ``[N, H, W, C]`` batch."""
        if batch.dtype != np.uint8 or batch.shape[1:] != self.unit_shape:
            raise ModelError(f"input {batch.dtype}{list(batch.shape)} is not uint8[N, {list(self.unit_shape)}]")
        try:
            scores, anomaly = self.session.run(list(OUTPUTS), {self.input_name: batch})
        except Exception as exc:
            raise ModelError(f"inference failed: {exc}") from exc
        scores = np.asarray(scores, dtype=np.float32)
        anomaly = np.asarray(anomaly, dtype=np.float32).reshape(-1)
        n = batch.shape[0]
        if scores.shape != (n, self.n_classes) or anomaly.shape != (n,):
            raise ModelError(f"model returned scores {scores.shape} and anomaly {anomaly.shape} for {n} inputs")
        if not (np.isfinite(scores).all() and np.isfinite(anomaly).all()):
            raise ModelError("model returned non-finite values")
        return scores, anomaly
