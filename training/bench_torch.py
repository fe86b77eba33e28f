"""The same model in torch eager mode, for ``inspector bench`` (run as a child process).

``python -m training.bench_torch --model models/<product>/<version> --frames N --seed S``
loads the package's ``checkpoint.pt`` (the weights the ONNX file was exported from), runs
the same rendered frames with one torch thread (like the station's one ONNX Runtime
thread) and prints one JSON line with ``torch_ms_p50`` and ``torch_ms_p99``.
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
from inspector.inference.package import read_record
from inspector.inference.units import to_units
from training.train import load_checkpoint

WARMUP = 20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.bench_torch")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    ckpt_path = args.model / "checkpoint.pt"
    if not ckpt_path.is_file():
        print(f"no {ckpt_path}: this package ships no torch weights", file=sys.stderr)
        return 2
    record = read_record(args.model)
    _, net = load_checkpoint(ckpt_path)
    net.eval()
    torch.set_num_threads(1)
    sim = SimCamera(record.product, line_rate_per_min=60, seed=args.seed, defect_rate=0.1)
    rois = record.pocket_grid.rois() if record.pocket_grid is not None else None
    units = [torch.from_numpy(to_units(sim.render_item(i)[0], rois)) for i in range(min(args.frames, 200))]
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
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
