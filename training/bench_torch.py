"""The same model in torch eager mode, for ``inspector bench`` (run as a child process).

``python -m training.bench_torch --model models/<product>/<version> --frames N --seed S``
loads the package's ``torch_weights.pt`` (the weights the ONNX file was exported from,
bound to it by sha256 and re-checked here against ONNX Runtime on the same frames), runs
those frames with one torch thread (like the station's one ONNX Runtime thread) and prints
one JSON line with ``torch_ms_p50``, ``torch_ms_p99`` and the parity figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from inspector.camera.sim import SimCamera
from inspector.inference.package import load_package
from inspector.inference.units import to_units
from training.export import TorchWeightsError, check_parity, read_torch_weights
from training.nets import InspectorNet, NetConfig

WARMUP = 20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.bench_torch")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    package = load_package(args.model)
    record = package.record
    try:
        payload = read_torch_weights(args.model, record.sha256)
    except TorchWeightsError as exc:
        print(exc, file=sys.stderr)
        return 2
    net = InspectorNet(NetConfig(**payload["net_config"]))
    net.load_state_dict(payload["state_dict"])
    net.eval()
    torch.set_num_threads(1)
    sim = SimCamera(record.product, line_rate_per_min=60, seed=args.seed, defect_rate=0.1)
    rois = record.pocket_grid.rois() if record.pocket_grid is not None else None
    frames = [to_units(sim.render_item(i)[0], rois) for i in range(min(args.frames, 200))]
    parity = check_parity(net, package.onnx_bytes, np.concatenate(frames[:8]))
    units = [torch.from_numpy(u) for u in frames]
    times: list[float] = []
    with torch.inference_mode():
        for i in range(WARMUP + args.frames):
            batch = units[i % len(units)]
            t = time.perf_counter()
            net(batch)
            if i >= WARMUP:
                times.append((time.perf_counter() - t) * 1e3)
    print(
        json.dumps(
            {
                "torch_ms_p50": round(float(np.percentile(times, 50)), 4),
                "torch_ms_p99": round(float(np.percentile(times, 99)), 4),
                "frames": args.frames,
                "torch_threads": 1,
                "parity_max_abs_diff_scores": parity["max_abs_diff_scores"],
                "parity_argmax_identical": parity["argmax_identical"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
