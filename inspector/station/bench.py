"""``inspector bench``: pre-rendered frames through the full pipeline at the maximum rate.

Closed loop: the next frame is released the moment the previous decision is out, so
the figures are the pipeline's own latency, not queueing. Rendering is done before the
clock starts. The station is the production one (:func:`open_station`, records with
``synchronous=FULL`` in a throwaway folder, no PLC), fed by an injected in-memory camera.
In the same run, the bare ``session.run`` on the same frames gives the floor, so the
pipeline's overhead reads as a difference; the same model in torch eager mode is measured
in a separate process when the training extra is installed (the runtime never imports torch).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from inspector.camera.sim import MemoryCamera, SimCamera
from inspector.config.recipe import find_project_root, load_recipe
from inspector.config.station import StationConfig, override
from inspector.events import GroundTruth
from inspector.inference.units import to_units
from inspector.pipeline.station import Station
from inspector.pipeline.summary import percentile
from inspector.station.session import new_batch_id, open_station

MAX_DISTINCT_FRAMES = 400


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def prerender(product: str, n: int, seed: int, defect_rate: float = 0.1) -> list[tuple[np.ndarray, GroundTruth | None]]:
    sim = SimCamera(product, line_rate_per_min=60, seed=seed, defect_rate=defect_rate)
    out: list[tuple[np.ndarray, GroundTruth | None]] = []
    for i in range(min(n, MAX_DISTINCT_FRAMES)):
        img, truth = sim.render_item(i)
        out.append((img, truth))
    return out


def bench(
    config: StationConfig,
    frames: int,
    *,
    seed: int = 1,
    line_rate: float | None = None,
    root: Path | None = None,
    with_torch: bool = True,
) -> dict[str, Any]:
    """Latency and throughput of ``config``'s recipe and model through the full pipeline (JSON-ready)."""
    if frames < 10:
        raise ValueError("--frames must be at least 10")
    base = root or find_project_root()
    pre = prerender(load_recipe(config.recipe, base).recipe.product.value, frames, seed)
    with tempfile.TemporaryDirectory(prefix="inspector-bench-") as tmp:
        cfg = override(config, plc="none", records={"database": str(Path(tmp) / "bench.sqlite"), "images": None})
        station_ref: list[Station] = []
        cam = MemoryCamera(
            pre,
            items=frames,
            line_rate_per_min=line_rate,
            ready=None if line_rate else (lambda: station_ref[0].ready_for_frame()),
        )
        session = open_station(cfg, root=base, camera=cam)
        try:
            rec = session.recipe.recipe
            engine = session.engine
            station_ref.append(session.station)
            session.start_batch(new_batch_id("bench"))
            t0 = time.perf_counter()
            finished = session.station.wait_finished(timeout_s=max(60.0, frames * 0.2))
            elapsed = time.perf_counter() - t0
            summary = session.end_batch().as_dict()
        finally:
            session.close()
        if not finished:
            raise RuntimeError("benchmark did not finish in time")

    # Bare session.run on the same frames, same process, same thread settings.
    bare: list[float] = []
    units = [to_units(img, rec.pocket_grid.rois() if rec.pocket_grid else None) for img, _ in pre]
    feed = engine.input_name
    for i in range(frames):
        u = units[i % len(units)]
        t = time.perf_counter()
        engine.session.run(None, {feed: u})
        bare.append((time.perf_counter() - t) * 1e3)

    result: dict[str, Any] = {
        "recipe": rec.recipe_id,
        "product": rec.product.value,
        "model_sha256": engine.package.sha256,
        "frames": frames,
        "distinct_frames": len(pre),
        "mode": "paced" if line_rate else "closed_loop",
        "latency_ms_p50": summary["latency_ms_p50"],
        "latency_ms_p99": summary["latency_ms_p99"],
        "latency_ms_max": summary["latency_ms_max"],
        "items_per_s": round(frames / elapsed, 1),
        "bare_ms_p50": _r(percentile(bare, 50)),
        "bare_ms_p99": _r(percentile(bare, 99)),
        "overhead_ms_p50": None,
        "torch_ms_p50": None,
        "not_inspected": summary["not_inspected"],
        "not_inspected_by_cause": summary["not_inspected_by_cause"],
        "accepted": summary["accepted"],
        "rejected": summary["rejected"],
        "budget_ms": rec.latency_budget_ms,
        "intra_op_threads": config.inference_threads,
    }
    if result["latency_ms_p50"] is not None and result["bare_ms_p50"] is not None:
        result["overhead_ms_p50"] = round(result["latency_ms_p50"] - result["bare_ms_p50"], 4)
    if with_torch:
        result.update(torch_eager(session.package.path, rec.product.value, frames, seed))
    return result


def torch_eager(model_dir: Path, product: str, frames: int, seed: int) -> dict[str, Any]:
    """Time the same model in torch eager mode in a child process, if torch and training/ exist."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("training") is None:
        return {"torch_ms_p50": None, "torch_note": "training extra not installed"}
    cmd = [
        sys.executable, "-m", "training.bench_torch", "--model", str(model_dir),
        "--frames", str(min(frames, 300)), "--seed", str(seed),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"torch_ms_p50": None, "torch_note": "torch benchmark timed out"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"torch_ms_p50": None, "torch_note": f"torch benchmark failed: {last}"}
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"torch_ms_p50": None, "torch_note": "torch benchmark printed no JSON"}
    keys = ("torch_ms_p50", "torch_ms_p99", "parity_max_abs_diff_scores", "parity_argmax_identical")
    return {k if k.startswith("torch") else f"torch_{k}": data.get(k) for k in keys}
