"""The ``inspector`` command line: one entry point, sub-commands per task."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inspector import __version__


class CliError(Exception):
    """A user error: printed as one clear line, exit status 2."""


def _progress(label: str) -> Callable[[int, int, float], None]:
    def show(done: int, total: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        end = "\n" if done == total else ""
        print(
            f"\r{label}: {done}/{total} images, {rate:.0f} img/s, ETA {eta:.0f} s   ",
            end=end,
            file=sys.stderr,
            flush=True,
        )

    return show


def cmd_samples_generate(args: argparse.Namespace) -> int:
    from inspector.synth.generate import generate

    start = time.perf_counter()
    try:
        entries = generate(
            args.product,
            args.count,
            args.seed,
            args.out,
            defect_rate=args.defect_rate,
            nuisance=args.nuisance,
            masks=not args.no_masks,
            workers=args.workers,
            progress=None if args.quiet else _progress(args.product),
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    elapsed = time.perf_counter() - start
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.label] = counts.get(e.label, 0) + 1
    summary = {
        "product": args.product,
        "images": len(entries),
        "seconds": round(elapsed, 3),
        "images_per_s": round(len(entries) / elapsed, 1),
        "labels": counts,
        "out": str(args.out),
    }
    print(json.dumps(summary))
    return 0


def cmd_samples_sheet(args: argparse.Namespace) -> int:
    import cv2

    from inspector.manifest import ManifestError
    from inspector.synth.sheet import contact_sheet

    try:
        sheet = contact_sheet(args.images, per_class=args.per_class)
    except (ManifestError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if not cv2.imwrite(str(args.out), sheet):
        raise CliError(f"cannot write {args.out}")
    print(json.dumps({"sheet": str(args.out), "width": sheet.shape[1], "height": sheet.shape[0]}))
    return 0


def cmd_samples_reference(args: argparse.Namespace) -> int:
    from inspector.synth.reference import build_reference_sets

    try:
        result = build_reference_sets(Path(args.out), per_class=args.per_class, seed=args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(result))
    return 0


def cmd_taxonomy(args: argparse.Namespace) -> int:
    from inspector.taxonomy import DEFECTS

    rows = [
        {
            "product": d.product.value,
            "code": d.code,
            "plc_code": d.plc_code,
            "criticality": d.criticality.value,
            "must_reject": d.must_reject,
            "description": d.description,
        }
        for d in DEFECTS
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            flag = "reject" if r["must_reject"] else "recipe"
            print(f"{r['product']:8} {r['code']:17} {r['plc_code']:4} {r['criticality']:9} {flag:7} {r['description']}")
    return 0


def _station_errors() -> tuple[type[BaseException], ...]:
    from inspector.config.errors import ConfigError
    from inspector.inference.package import ModelIntegrityError
    from inspector.pipeline.station import StationError
    from inspector.plc.base import PlcError
    from inspector.records import RecordError

    return (ConfigError, ModelIntegrityError, StationError, PlcError, RecordError, ValueError, FileNotFoundError)


def _station_config(args: argparse.Namespace) -> tuple[Any, Path]:
    """The station file named by ``--station`` (default: the demo), with the command's flags over it."""
    from inspector.config.errors import ConfigError
    from inspector.config.recipe import find_project_root
    from inspector.config.station import apply_flags, load_station_config

    root = find_project_root()
    try:
        config = load_station_config(args.station, root)
        config = apply_flags(
            config,
            recipe=args.recipe,
            camera=getattr(args, "camera", None),
            images=getattr(args, "images", None),
            items=getattr(args, "items", None),
            line_rate=args.line_rate,
            seed=args.seed,
            defect_rate=getattr(args, "defect_rate", None),
            nuisance=getattr(args, "nuisance", None),
            plc=getattr(args, "plc", None),
            db=getattr(args, "db", None),
            threads=getattr(args, "threads", None),
        )
    except ConfigError as exc:
        raise CliError(f"station refuses to start: {exc}") from None
    return config, root


def _run_progress(label: str, total: int | None) -> Callable[[dict[str, object]], None]:
    def show(s: dict[str, object]) -> None:
        of = f"/{total}" if total else ""
        print(
            f"\r[{label}] {s['items']}{of} items | accepted {s['accepted']} | rejected {s['rejected']}"
            f" (not_inspected {s['not_inspected']}) | p50 {s['latency_ms_p50']} ms p99 {s['latency_ms_p99']} ms   ",
            end="",
            file=sys.stderr,
            flush=True,
        )

    return show


def cmd_run(args: argparse.Namespace) -> int:
    from inspector.station import open_station

    config, root = _station_config(args)
    try:
        session = open_station(config, root=root)
    except _station_errors() as exc:
        raise CliError(f"station refuses to start: {exc}") from None
    try:
        result = session.run(
            duration_s=args.duration,
            progress=None if args.quiet else _run_progress(session.recipe.recipe.recipe_id, config.camera.items),
        )
    finally:
        session.close()
    if not args.quiet:
        print(file=sys.stderr)
    summary = result.as_dict()
    if result.plc is not None:
        summary = positive_release_view(summary)
    rec = session.recipe.recipe
    summary = {
        "station": config.station_id,
        "recipe": rec.recipe_id,
        "recipe_version": rec.version,
        "model_sha256": session.package.sha256,
        "camera": config.camera.kind,
        "line_rate_per_min": config.camera.line_rate_per_min or rec.line_rate_per_min,
        "budget_ms": rec.latency_budget_ms,
        **summary,
    }
    if session.last_reconciliation is not None:
        summary["records_reconciled"] = session.last_reconciliation.reconciled
    _print_run_summary(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


def positive_release_view(summary: dict[str, Any]) -> dict[str, Any]:
    """With a PLC, an accept counts only once the PLC acknowledged it (positive release).

    The station's own verdicts stay in the records and in ``station_accepted``; an accept the
    PLC never acknowledged was rejected at the gate and is reported as such.
    """
    out = dict(summary)
    not_acked = int(out.get("accepted_not_acked") or 0)
    out["station_accepted"] = out["accepted"]
    out["accepted"] = int(out["accepted"]) - not_acked
    out["rejected"] = int(out["rejected"]) + not_acked
    if not_acked:
        by_reason = dict(out.get("rejected_by_reason") or {})
        by_reason["plc_not_acknowledged"] = not_acked
        out["rejected_by_reason"] = by_reason
    return out


def _print_run_summary(s: dict[str, object]) -> None:
    print(f"batch {s['batch_id']}: {s['items']} items, {s['accepted']} accepted, {s['rejected']} rejected")
    by_reason = s.get("rejected_by_reason") or {}
    if isinstance(by_reason, dict):
        for reason, n in by_reason.items():
            print(f"  rejected {reason:16} {n}")
    print(f"  not_inspected      {s['not_inspected']} {s.get('not_inspected_by_cause') or ''}")
    if s.get("escapes") is not None:
        print(f"  escapes {s['escapes']}, false rejects {s['false_rejects']} (against simulator ground truth)")
        escapes_by_class = s.get("escapes_by_class")
        if isinstance(escapes_by_class, dict) and escapes_by_class:
            by_class = ", ".join(f"{k} {v}" for k, v in escapes_by_class.items())
            print(f"  escapes by class: {by_class}; critical escapes {s['critical_escapes']}")
    if "plc_decisions" in s:
        print(
            f"  PLC {s['plc']}: acked {s['plc_acked']}, late {s['plc_late']}, missing {s['plc_missing']},"
            f" refused {s['plc_refused']}; round trip p99 {s['plc_rtt_ms_p99']} ms"
        )
    print(
        f"  latency ms p50 {s['latency_ms_p50']} p99 {s['latency_ms_p99']} max {s['latency_ms_max']}"
        f" (budget {s['budget_ms']})"
    )
    print(json.dumps(s))


def cmd_bench(args: argparse.Namespace) -> int:
    from inspector.station.bench import bench

    config, root = _station_config(args)
    try:
        result = bench(
            config, args.frames, seed=args.seed, line_rate=args.line_rate, root=root, with_torch=not args.no_torch
        )
    except _station_errors() as exc:
        raise CliError(str(exc)) from None
    text = json.dumps(result)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def cmd_input_reference(args: argparse.Namespace) -> int:
    from inspector.pipeline.monitor import build_reference

    limits, info = build_reference(args.images, window=args.window, z=args.z)
    result = {"input_monitor": limits.model_dump(mode="json"), **info}
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inspector", description="Inline machine-vision inspection station")
    p.add_argument("--version", action="version", version=f"inspector {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    samples = sub.add_parser("samples", help="render labelled product images")
    ssub = samples.add_subparsers(dest="samples_command", required=True, metavar="ACTION")

    g = ssub.add_parser("generate", help="render a labelled image set (PNGs + manifest.jsonl)")
    g.add_argument("--product", required=True, choices=["vial", "tablet", "blister"])
    g.add_argument("--count", required=True, type=int, help="number of images")
    g.add_argument("--seed", required=True, type=int, help="base seed (0..2^32-1); same seed, same bytes")
    g.add_argument("--out", required=True, type=Path, help="new or empty folder")
    g.add_argument("--defect-rate", type=float, default=0.5, help="share of defective items (default 0.5)")
    g.add_argument("--nuisance", type=float, default=1.0, help="scale of nuisance variation, 0..3 (default 1)")
    g.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    g.add_argument("--no-masks", action="store_true", help="do not write ground-truth masks")
    g.add_argument("--quiet", action="store_true", help="no progress line")
    g.set_defaults(func=cmd_samples_generate)

    s = ssub.add_parser("sheet", help="contact sheet of a labelled set: every class side by side")
    s.add_argument("--images", required=True, type=Path, help="folder with manifest.jsonl")
    s.add_argument("--out", required=True, type=Path, help="PNG to write")
    s.add_argument("--per-class", type=int, default=3)
    s.set_defaults(func=cmd_samples_sheet)

    r = ssub.add_parser("reference", help="build the small committed set of every class (sample_images/)")
    r.add_argument("--out", type=Path, default=Path("sample_images"))
    r.add_argument("--per-class", type=int, default=3)
    r.add_argument("--seed", type=int, default=20261123)
    r.set_defaults(func=cmd_samples_reference)

    run = sub.add_parser("run", help="run a batch headless: camera -> model -> decisions -> PLC and records")
    run.add_argument(
        "--station", default=None, help="station file (station_configs/NAME.yaml or a path); default: the demo"
    )
    run.add_argument("--recipe", default=None, help="recipe name (recipes/NAME.yaml) or path; default: the station's")
    run.add_argument("--camera", default=None, choices=["sim", "files", "genicam"], help="default: the station's")
    run.add_argument("--items", type=int, default=None, help="items in the batch (sim, files); default: until Ctrl-C")
    run.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    run.add_argument("--line-rate", type=float, default=None, help="items per minute (default: the recipe's)")
    run.add_argument("--seed", type=int, default=None, help="sim: item seed")
    run.add_argument("--defect-rate", type=float, default=None, help="sim: share of defective items")
    run.add_argument("--nuisance", type=float, default=None, help="sim: nuisance scale 0..3")
    run.add_argument("--images", default=None, help="files: manifest folder to replay")
    run.add_argument("--db", default=None, help="station records database (default: the station's)")
    run.add_argument(
        "--plc",
        default=None,
        help="line PLC: none, line-sim, opcua://HOST:PORT, s7://HOST:PORT, modbus://HOST:PORT or a plc_configs YAML"
        " (default: the station's; the demo station starts the line simulator)",
    )
    run.add_argument("--json", default=None, help="write the summary as JSON here")
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(func=cmd_run)

    b = sub.add_parser("bench", help="pre-rendered frames through the full pipeline at the maximum rate (JSON)")
    b.add_argument("--station", default=None, help="station file; default: the demo (its PLC is not used)")
    b.add_argument("--recipe", default=None, help="default: the station's")
    b.add_argument("--frames", type=int, default=2000)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--line-rate", type=float, default=None, help="paced at this rate instead of closed loop")
    b.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: the station's)")
    b.add_argument("--no-torch", action="store_true", help="skip the torch eager comparison")
    b.add_argument("--json", default=None)
    b.set_defaults(func=cmd_bench)

    ir = sub.add_parser(
        "input-reference",
        help="input drift limits for a recipe's input_monitor block, from reference sets (JSON)",
    )
    ir.add_argument("--images", nargs="+", required=True, help="manifest folders, each one line condition")
    ir.add_argument("--window", type=int, default=200, help="frames in the rolling mean")
    ir.add_argument("--z", type=float, default=4.0, help="standard errors of the rolling mean the limits allow")
    ir.add_argument("--json", default=None)
    ir.set_defaults(func=cmd_input_reference, value_errors_are_user_errors=True)

    from inspector.camera.grab import add_camera_commands

    add_camera_commands(sub)
    sub.choices["cameras"].set_defaults(value_errors_are_user_errors=True)

    from inspector.plc.sim import bench as plc_bench
    from inspector.plc.sim import cli as line_sim

    ls = sub.add_parser(
        "line-sim", help="line PLC simulator: conveyor + reject gate (positive release) on a real protocol server"
    )
    line_sim.configure_parser(ls)
    ls.set_defaults(func=line_sim.cmd_line_sim, value_errors_are_user_errors=True)
    pb = sub.add_parser(
        "plc-bench", help="decision + acknowledgement round trip per PLC protocol against the line simulator (JSON)"
    )
    plc_bench.configure_parser(pb)
    pb.set_defaults(func=plc_bench.cmd_plc_bench)

    from inspector.evaluation import add_evaluate_command

    add_evaluate_command(sub).set_defaults(value_errors_are_user_errors=True)

    t = sub.add_parser("taxonomy", help="list the defect classes, criticality and PLC reason codes")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_taxonomy)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"inspector: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # Commands that report bad input as ValueError opt in; elsewhere it is a bug: show the traceback.
        if not getattr(args, "value_errors_are_user_errors", False):
            raise
        print(f"inspector: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
