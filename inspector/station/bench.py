"""``inspector bench``: pre-rendered frames through the full pipeline at the maximum rate.

Closed loop: the next frame is released the moment the previous decision is out, so
the figures are the pipeline's own latency, not queueing. Rendering is done before the
clock starts. The station is the production one (:func:`open_station`, records with
``synchronous=FULL`` in a throwaway folder, no PLC), fed by an injected in-memory camera.

Durable before release: a PLC station sends an accept only once its item record is committed.
The same run measures what that costs: ``release_ms_*`` is frame -> release (a reject at its
decision, an accept when the recorder reports its row durable), ``hold_ms_*`` the accepts' wait
from decision to durable row, and ``release_over_decision_p50`` the ratio of the release p50 to
the decision latency p50.
In the same run, the bare ``session.run`` on the same frames gives the floor, so the
pipeline's overhead (registration included) reads as a difference; registration is also timed
alone on the same frames and as the pipeline's stage; the same model in torch eager mode is measured
in a separate process when the training extra is installed (the runtime never imports torch).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inspector.camera.sim import MemoryCamera, SimCamera
from inspector.config.recipe import find_project_root, load_recipe
from inspector.config.station import StationConfig, override
from inspector.events import GroundTruth, ItemDecided, StationEvent
from inspector.inference.identity import check_units
from inspector.inference.registration import register
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
        durability = _Durability()
        try:
            rec = session.recipe.recipe
            engine = session.engine
            station_ref.append(session.station)
            session.station.subscribe(durability.on_event)
            assert session.recorder is not None
            session.recorder.add_durable_listener(durability.on_durable)
            session.start_batch(new_batch_id("bench"))
            t0 = time.perf_counter()
            finished = session.station.wait_finished(timeout_s=max(60.0, frames * 0.2))
            elapsed = time.perf_counter() - t0
            summary = session.end_batch().as_dict()
            commits = session.recorder.writer.commits
        finally:
            session.close()
        if not finished:
            raise RuntimeError("benchmark did not finish in time")

    # Registration alone on the same frames (one core, as in the station's inference thread).
    rois = rec.pocket_grid.rois() if rec.pocket_grid else None
    registration: list[float] = []
    units = []
    for img, _ in pre:
        if rec.registration is None:
            units.append(to_units(img, rois))
            continue
        t = time.perf_counter()
        reg = register(rec.product, img, rec.registration, rois)
        registration.append((time.perf_counter() - t) * 1e3)
        units.append(reg.units if reg.units is not None else to_units(img, rois))
    # The identity check alone on the same units (tablet, blister), one core.
    identity: list[float] = []
    if rec.identity is not None:
        for u in units:
            t = time.perf_counter()
            check_units(u, rec.identity)
            identity.append((time.perf_counter() - t) * 1e3)
    # Bare session.run on the same units, same process, same thread settings.
    bare: list[float] = []
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
        # Registration: alone on the frames, and as the pipeline's stage (both included in latency_ms_*).
        "registration_ms_p50": _r(percentile(registration, 50)),
        "registration_ms_p99": _r(percentile(registration, 99)),
        "registration_stage_ms_p50": _r(percentile(durability.registered, 50)),
        "registration_stage_ms_p99": _r(percentile(durability.registered, 99)),
        "pose_refused": summary["not_inspected_by_cause"].get("pose", 0),
        # The identity check: alone on the units, and as the pipeline's stage (per item: a card's ten pockets).
        "identity_ms_p50": _r(percentile(identity, 50)),
        "identity_ms_p99": _r(percentile(identity, 99)),
        "identity_stage_ms_p50": _r(percentile(durability.identified, 50)),
        "identity_stage_ms_p99": _r(percentile(durability.identified, 99)),
        "torch_ms_p50": None,
        "not_inspected": summary["not_inspected"],
        "not_inspected_by_cause": summary["not_inspected_by_cause"],
        "accepted": summary["accepted"],
        "rejected": summary["rejected"],
        "budget_ms": rec.latency_budget_ms,
        "intra_op_threads": config.inference_threads,
        **durability.figures(summary["latency_ms_p50"]),
        "record_commits": commits,
    }
    if result["latency_ms_p50"] is not None and result["bare_ms_p50"] is not None:
        result["overhead_ms_p50"] = round(result["latency_ms_p50"] - result["bare_ms_p50"], 4)
    if with_torch:
        result.update(torch_eager(session.package.path, rec.product.value, frames, seed))
    return result


class _Durability:
    """Decision and durable-record times per item, for the cost of durable before release."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decided: dict[int, tuple[float, float, bool]] = {}  # item -> (frame, decision, accept)
        self._durable: dict[int, float] = {}
        self.registered: list[float] = []  # ms of the registration stage per item
        self.identified: list[float] = []  # ms of the identity check's stage per item

    def on_event(self, event: StationEvent) -> None:
        if isinstance(event, ItemDecided):
            t = event.decision.times
            if t.t_registered is not None and t.t_dequeued is not None:
                self.registered.append((t.t_registered - t.t_dequeued) * 1e3)
            if t.t_identity is not None:
                start = t.t_registered if t.t_registered is not None else t.t_dequeued
                if start is not None:
                    self.identified.append((t.t_identity - start) * 1e3)
            if t.t_acquired is not None and t.t_decided is not None:
                with self._lock:
                    self._decided[event.decision.item_id] = (t.t_acquired, t.t_decided, event.decision.accept)

    def on_durable(self, durable: Sequence[tuple[str, int]], _not_stored: Sequence[tuple[str, int]]) -> None:
        now = time.monotonic()
        with self._lock:
            for _batch, item in durable:
                self._durable[item] = now

    def figures(self, decision_p50: float | None) -> dict[str, Any]:
        release: list[float] = []
        hold: list[float] = []
        with self._lock:
            for item, (t_frame, t_decided, accept) in self._decided.items():
                if not accept:
                    release.append((t_decided - t_frame) * 1e3)
                elif item in self._durable:
                    hold.append((self._durable[item] - t_decided) * 1e3)
                    release.append((self._durable[item] - t_frame) * 1e3)
        p50 = percentile(release, 50)
        return {
            "release_ms_p50": _r(p50),
            "release_ms_p99": _r(percentile(release, 99)),
            "release_ms_max": _r(max(release) if release else None),
            "hold_ms_p50": _r(percentile(hold, 50)),
            "hold_ms_p99": _r(percentile(hold, 99)),
            "hold_ms_max": _r(max(hold) if hold else None),
            "release_over_decision_p50": _r(p50 / decision_p50) if p50 is not None and decision_p50 else None,
        }


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
