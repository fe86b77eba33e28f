"""``inspector run`` and ``inspector bench``: a station opened from its station file, flags over it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspector.cli.common import (
    CliError,
    Subparsers,
    add_credentials,
    add_station_arguments,
    read_password,
    station_config,
    station_errors,
)


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
    """One batch; exit status 1 when it ended NOT reconciled (an item of the source undecided or unrecorded)."""
    from inspector.station import open_station

    config, root = station_config(args)
    try:
        session = open_station(config, root=root)
    except station_errors() as exc:
        raise CliError(f"station refuses to start: {exc}") from None
    try:
        actor = None
        if args.as_user:
            actor = session.login(args.as_user, read_password(args, f"password of {args.as_user}: "))
        if args.challenge:
            challenge = session.run_startup_challenge(actor=actor)
            wrong = [it for it in challenge.items if not it["right"]]
            print(
                f"start-up challenge {challenge.batch_id}: {'PASSED' if challenge.passed else 'FAILED'}"
                f" ({len(challenge.items) - len(wrong)}/{len(challenge.items)} items judged right)",
                file=sys.stderr,
            )
            for it in wrong:
                print(f"  {it['file']}: {it['label']} expected {it['expected']}, got {it['decided']}", file=sys.stderr)
            if not challenge.passed:
                raise CliError("the start-up challenge failed: no batch started; call the engineer")
        result = session.run(
            duration_s=args.duration,
            progress=None if args.quiet else _run_progress(session.recipe.recipe.recipe_id, config.camera.items),
            actor=actor,
            operator=actor.username if actor else None,
            reinspection_of=args.reinspect,
        )
    except station_errors() as exc:
        raise CliError(f"station refuses to start: {exc}") from None
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
        "mode": config.mode,
        "recipe": rec.recipe_id,
        "recipe_version": rec.version,
        "model_sha256": session.package.sha256,
        "camera": config.camera.kind,
        "line_rate_per_min": config.camera.line_rate_per_min or rec.line_rate_per_min,
        "budget_ms": rec.latency_budget_ms,
        "thresholds": session.station.thresholds(),
        **summary,
    }
    report = session.last_reconciliation
    if report is not None:
        # "reconciled" is the batch's: every item of a finite source decided, the records equal, none missing.
        summary["records_reconciled"] = report.reconciled
        summary["reconciled"] = bool(summary["reconciled"]) and report.reconciled
        summary["reconciliation"] = report.as_dict()
    _print_run_summary(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if not summary["reconciled"]:
        failed = [c.detail for c in report.checks if not c.ok] if report is not None else []
        why = "; ".join([*failed, *([report.error] if report is not None and report.error else [])])
        print(f"batch {summary['batch_id']} ended NOT reconciled: {why}", file=sys.stderr)
        return 1
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

    config, root = station_config(args)
    try:
        result = bench(
            config, args.frames, seed=args.seed, line_rate=args.line_rate, root=root, with_torch=not args.no_torch
        )
    except station_errors() as exc:
        raise CliError(str(exc)) from None
    text = json.dumps(result)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def register(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="run a batch headless: camera -> model -> decisions -> PLC and records")
    add_station_arguments(run)
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
    run.add_argument("--mode", choices=["demo", "production"], default=None, help="default: the station file's")
    run.add_argument(
        "--reinspect",
        default=None,
        metavar="BATCH",
        help="this batch re-inspects the items of that ended batch: a pass of its own, linked to the first",
    )
    run.add_argument(
        "--challenge",
        action="store_true",
        help="present the start-up challenge first; the batch starts only if it passes (production: required)",
    )
    add_credentials(run, who="the user running the batch (production: required)")
    run.set_defaults(func=cmd_run)

    b = sub.add_parser("bench", help="pre-rendered frames through the full pipeline at the maximum rate (JSON)")
    add_station_arguments(b)
    b.add_argument("--frames", type=int, default=2000)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--line-rate", type=float, default=None, help="paced at this rate instead of closed loop")
    b.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: the station's)")
    b.add_argument("--no-torch", action="store_true", help="skip the torch eager comparison")
    b.add_argument("--json", default=None)
    b.set_defaults(func=cmd_bench)
