"""``inspector bench`` of this checkout against an earlier revision, in the same run (JSON).

Each repeat runs the baseline and this checkout back to back, per recipe, as fresh child
processes on the same machine, the first side alternating from repeat to repeat (so a
neighbour's load or a drift of the machine hits both alike). The baseline is a git
worktree of ``--baseline`` in a temporary folder, run with this checkout's virtual environment.
Prints one JSON object: per recipe the medians of p50 / p99 / items per second of each side
and the ratios this/baseline (1.00 = the same; the structural refactors promise within 3 %).

    python scripts/bench_ab.py --baseline b566815 --frames 2000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("latency_ms_p50", "latency_ms_p99", "items_per_s", "bare_ms_p50", "overhead_ms_p50")


def bench(tree: Path, recipe: str, frames: int, seed: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), "INSPECTOR_HOME": str(tree)}
    # --json FILE: every revision writes its figures there (older ones also printed them on stdout).
    with tempfile.TemporaryDirectory(prefix="inspector-bench-") as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "inspector", "bench", "--recipe", recipe, "--frames", str(frames)]
        cmd += ["--seed", str(seed), "--no-torch", "--json", str(out)]
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{tree}: bench {recipe} failed: {proc.stderr.strip().splitlines()[-1:]}")
        result: dict[str, Any] = json.loads(out.read_text())
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="git revision to compare with, e.g. a commit hash")
    p.add_argument("--recipes", nargs="+", default=["vial", "tablet", "blister"])
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.baseline], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {r: {"baseline": [], "this": []} for r in args.recipes}
    with tempfile.TemporaryDirectory(prefix="inspector-bench-ab-") as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), rev], cwd=ROOT, capture_output=True, check=True
        )
        try:
            for i in range(args.repeats):
                for recipe in args.recipes:
                    # Alternate which side goes first, so a drift of the machine cannot favour one.
                    order = (("baseline", base), ("this", ROOT)) if i % 2 == 0 else (("this", ROOT), ("baseline", base))
                    for side, tree in order:
                        runs[recipe][side].append(bench(tree, recipe, args.frames, args.seed))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    out: dict[str, Any] = {
        "baseline": rev,
        "this": head,
        "frames": args.frames,
        "repeats": args.repeats,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "recipes": {},
    }
    for recipe, sides in runs.items():
        row: dict[str, Any] = {}
        for side, results in sides.items():
            row[side] = {k: round(statistics.median(r[k] for r in results), 4) for k in KEYS}
            row[side]["runs"] = {k: [r[k] for r in results] for k in KEYS}
        row["ratio"] = {k: round(row["this"][k] / row["baseline"][k], 4) for k in KEYS}
        # Each repeat's pair (run back to back) as a ratio: its median and spread show the noise.
        pairs = {k: sorted(t[k] / b[k] for t, b in zip(sides["this"], sides["baseline"], strict=True)) for k in KEYS}
        row["paired_ratio_median"] = {k: round(statistics.median(v), 4) for k, v in pairs.items()}
        row["paired_ratio_range"] = {k: [round(v[0], 4), round(v[-1], 4)] for k, v in pairs.items()}
        row["not_inspected"] = {side: [r["not_inspected"] for r in results] for side, results in sides.items()}
        out["recipes"][recipe] = row
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
