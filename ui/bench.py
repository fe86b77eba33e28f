"""Does the HMI slow inspection down? Pipeline latency at a line rate, headless vs with the HMI open.

Each run is a fresh child process: the same recipe, sim camera, seed, item count and demo
line (line simulator process + PLC link), either headless
(``StationSession.run``) or with the full HMI window open (offscreen, or the X display when
``--platform xcb``): live view, counters, reject strip and heat maps all running, and a
full-window grab every ``--grab-every`` seconds (a GUI-thread call that holds the GIL for
tens of ms). The HMI runs as it ships: the station in its own process, the window its client
(``--in-process``: both in one process, the arrangement the isolation replaced). Runs
alternate (headless, HMI, headless, ...) so a neighbour's load hits both alike, and the
medians are compared; an item late at the PLC or not inspected fails the run. Prints one
JSON object.

    python -m ui.bench --product tablet --rate 100 --items 1500 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_RATIO = 1.10


def _child_headless(args: argparse.Namespace, db: Path) -> dict[str, Any]:
    from inspector.config.recipe import find_project_root
    from inspector.config.station import apply_flags, load_station_config
    from inspector.station import open_station

    root = args.root or find_project_root()
    # The demo station the HMI opens (sim camera, line simulator process + PLC link), so the two
    # modes differ only by the HMI.
    config = apply_flags(
        load_station_config(None, root),
        recipe=args.product,
        camera="sim",
        items=args.items,
        line_rate=args.rate * 60,
        seed=args.seed,
        defect_rate=args.defect_rate,
        db=str(db),
    )
    session = open_station(config, root=root)
    try:
        result = session.run()
    finally:
        session.close()
    return {"summary": result.as_dict()}


def _child_hmi(args: argparse.Namespace, db: Path) -> dict[str, Any]:
    os.environ.setdefault("QT_QPA_PLATFORM", args.platform)
    from PyQt6.QtCore import QEventLoop, QTimer
    from PyQt6.QtWidgets import QApplication

    from ui.app import create_app

    run_dir = db.parent / "run"
    window = create_app(
        args.product,
        root=args.root,
        demo=True,
        exec_app=False,
        items=args.items,
        line_rate=args.rate * 60,
        seed=args.seed,
        defect_rate=args.defect_rate,
        db=db,
        size=(1920, 1080),
        isolated=not args.in_process,
        run_dir=run_dir,
    )
    app = QApplication.instance()
    assert app is not None
    c = window.controller
    grabs: list[float] = []

    def grab() -> None:
        t = time.perf_counter()
        shot = window.grab()  # the whole window, rendered in the GUI thread
        shot.toImage()
        grabs.append((time.perf_counter() - t) * 1e3)

    grabber = QTimer(window)
    grabber.timeout.connect(grab)
    if args.grab_every > 0:
        grabber.start(round(args.grab_every * 1000))
    loop = QEventLoop()
    c.batch_finished.connect(lambda _r: loop.quit())
    c.error.connect(lambda _m: loop.quit())
    QTimer.singleShot(int(args.items / args.rate * 1000) + 120_000, loop.quit)
    t0 = time.monotonic()
    loop.exec()
    elapsed = time.monotonic() - t0
    grabber.stop()
    report = c.last_report
    out: dict[str, Any] = {
        "summary": report.summary if report is not None else None,
        "reconciled": report.reconciled if report is not None else None,
        "display_fps": round(window.live.frames_shown / elapsed, 1) if elapsed > 0 else None,
        "grabs": len(grabs),
        "grab_ms_max": round(max(grabs), 1) if grabs else None,
        "station": "own process" if not args.in_process else "in the HMI's process",
        "error": c.last_error,
    }
    window.close()
    app.processEvents()
    return out


def child(args: argparse.Namespace) -> int:
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    cpu0, t0 = time.process_time(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="inspector-hmi-bench-") as tmp:
        db = Path(tmp) / "bench.sqlite"
        result = _child_headless(args, db) if args.child == "headless" else _child_hmi(args, db)
    cpu_share = (time.process_time() - cpu0) / max(1e-9, time.monotonic() - t0)
    s = result.pop("summary") or {}
    print(
        json.dumps(
            {
                "mode": args.child,
                "items": s.get("items"),
                "latency_ms_p50": s.get("latency_ms_p50"),
                "latency_ms_p99": s.get("latency_ms_p99"),
                "latency_ms_max": s.get("latency_ms_max"),
                "not_inspected": s.get("not_inspected"),
                # Decided after the item's budget, or no decision the PLC took in time: a lost item.
                "late": None if s.get("items") is None else _late(s),
                "not_inspected_by_cause": s.get("not_inspected_by_cause"),
                "process_cpu_cores": round(cpu_share, 3),
                **result,
            }
        )
    )
    return 0


def _late(s: dict[str, Any]) -> int:
    """Items decided after their budget, plus decisions the PLC did not take in time: lost items."""
    return int(s["items"] - s.get("inspected_in_time", 0) + (s.get("plc_late") or 0) + (s.get("plc_missing") or 0))


def _run_child(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "ui.bench", "--child", mode, "--product", args.product, "--items", str(args.items),
        "--rate", str(args.rate), "--seed", str(args.seed), "--defect-rate", str(args.defect_rate),
        "--platform", args.platform, "--grab-every", str(args.grab_every),
    ]  # fmt: skip
    if args.in_process:
        cmd.append("--in-process")
    if args.root is not None:
        cmd += ["--root", str(args.root)]
    if args.switch_interval:
        cmd += ["--switch-interval", str(args.switch_interval)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.items / args.rate + 300)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} run failed: {proc.stderr.strip().splitlines()[-5:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(vals), 3) if vals else None


def compare(args: argparse.Namespace) -> dict[str, Any]:
    if args.scratch:
        # Dev checkouts without real model packages: the HMI test project (tests/ui/support.py).
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from inspector.taxonomy import Product
        from tests.ui.support import make_project

        args.root = Path(tempfile.mkdtemp(prefix="inspector-hmi-bench-root-"))
        make_project(args.root, (Product(args.product),))
    runs: dict[str, list[dict[str, Any]]] = {"headless": [], "hmi": []}
    for _ in range(args.repeats):
        for mode in ("headless", "hmi"):
            runs[mode].append(_run_child(args, mode))
    head = {k: _median(runs["headless"], k) for k in ("latency_ms_p50", "latency_ms_p99", "latency_ms_max")}
    hmi = {k: _median(runs["hmi"], k) for k in ("latency_ms_p50", "latency_ms_p99", "latency_ms_max")}
    ratio = (
        round(hmi["latency_ms_p99"] / head["latency_ms_p99"], 3)
        if hmi["latency_ms_p99"] and head["latency_ms_p99"]
        else None
    )
    return {
        "product": args.product,
        "root": str(args.root) if args.root else None,
        "items_per_s": args.rate,
        "items_per_run": args.items,
        "repeats": args.repeats,
        "platform": args.platform,
        "headless_median": head,
        "hmi_median": hmi,
        "p99_ratio_hmi_over_headless": ratio,
        "target_ratio": TARGET_RATIO,
        "late": {m: [r.get("late") for r in rs] for m, rs in runs.items()},
        "pass": ratio is not None
        and ratio <= TARGET_RATIO
        and all(r.get("late") == 0 and r.get("not_inspected") == 0 for r in runs["hmi"]),
        "grab_every_s": args.grab_every,
        "station": "in the HMI's process" if args.in_process else "own process",
        "hmi_display_fps": _median(runs["hmi"], "display_fps"),
        "not_inspected": {m: [r.get("not_inspected") for r in rs] for m, rs in runs.items()},
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ui.bench", description=__doc__.splitlines()[0])
    p.add_argument("--product", default="tablet")
    p.add_argument("--rate", type=float, default=100.0, help="items per second")
    p.add_argument("--items", type=int, default=1500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--defect-rate", type=float, default=0.05)
    p.add_argument("--root", type=Path, default=None, help="project root (default: INSPECTOR_HOME / cwd)")
    p.add_argument("--scratch", action="store_true", help="build a throwaway project with test models")
    p.add_argument("--platform", default="offscreen", help="Qt platform for the HMI runs (offscreen, xcb)")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument("--grab-every", type=float, default=1.0, help="HMI runs: seconds between window grabs (0: none)")
    p.add_argument("--in-process", action="store_true", help="HMI runs: the station inside the HMI's process")
    p.add_argument("--child", choices=["headless", "hmi"], help=argparse.SUPPRESS)
    p.add_argument("--switch-interval", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    result = compare(args)
    text = json.dumps(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
