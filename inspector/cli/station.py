"""``inspector run`` and ``inspector bench``: a station opened from its station file, flags over it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from inspector.cli.common import (
    EXIT_FAILED,
    LINE_RATE_MAX,
    SEED_MAX,
    THREADS_MAX,
    CliError,
    Progress,
    Subparsers,
    add_command,
    add_credentials,
    add_json_option,
    add_sim_line_options,
    add_station_arguments,
    bounded,
    emit_json,
    read_password,
    say,
    station_config,
    station_errors,
)
from inspector.config.station import NUISANCE_MAX

ITEMS_MAX = 100_000_000
FRAMES_MAX = 1_000_000


def _run_progress(bar: Progress) -> Callable[[dict[str, object]], None]:
    def show(s: dict[str, object]) -> None:
        items = s["items"]
        bar.update(
            items if isinstance(items, int) else 0,
            f"accepted {s['accepted']} | rejected {s['rejected']} (not_inspected {s['not_inspected']})"
            f" | p50 {s['latency_ms_p50']} ms p99 {s['latency_ms_p99']} ms",
        )

    return show


def describe_source(kind: str, camera: Any, items: int | None) -> str:
    """The run's first progress line: what the camera is, and a test pattern said out loud."""
    what = camera.describe()
    name = what.get("name") or what.get("serial")
    line = f"camera {kind} {name}"
    pattern = camera.test_pattern
    if pattern:
        line += f": TEST PATTERN ({pattern}; no product in view, decisions are meaningless)"
    return line + (f", batch of {items} items" if items else ", until stopped (Ctrl-C)")


def cmd_run(args: argparse.Namespace) -> int:
    """One batch; exit status 1 when it ended NOT reconciled (an item of the source undecided or unrecorded)."""
    from inspector.station import open_station

    config, root = station_config(args)
    try:
        session = open_station(config, root=root)
    except station_errors() as exc:
        raise CliError(f"station refuses to start: {exc}") from None
    bar = Progress(f"[{session.recipe.recipe.recipe_id}]", config.camera.items, "items")
    if not args.quiet:
        say(describe_source(config.camera.kind, session.camera, config.camera.items))
    try:
        actor = None
        if args.as_user:
            actor = session.login(args.as_user, read_password(args, f"password of {args.as_user}: "))
        if args.challenge:
            challenge = session.run_startup_challenge(actor=actor)
            wrong = [it for it in challenge.items if not it["right"]]
            say(
                f"start-up challenge {challenge.batch_id}: {'PASSED' if challenge.passed else 'FAILED'}"
                f" ({len(challenge.items) - len(wrong)}/{len(challenge.items)} items judged right)",
                *(f"  {it['file']}: {it['label']} expected {it['expected']}, got {it['decided']}" for it in wrong),
            )
            if not challenge.passed:
                raise CliError("the start-up challenge failed: no batch started; call the engineer")
        result = session.run(
            duration_s=args.duration,
            progress=None if args.quiet else _run_progress(bar),
            actor=actor,
            operator=actor.username if actor else None,
            reinspection_of=args.reinspect,
        )
    except station_errors() as exc:
        raise CliError(f"station refuses to start: {exc}") from None
    finally:
        session.close()
        bar.close()
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
    site = session.site_status()
    if site is not None:  # the forwarder drained at close: what the site has of this station now
        summary["site"] = site
    if not args.quiet:
        _print_run_summary(summary)
        if site is not None:
            say(f"site: {site['rows_behind']} rows behind" + (f" ({site['error']})" if site["error"] else ""))
    emit_json(args, summary)
    if not summary["reconciled"]:
        failed = [c.detail for c in report.checks if not c.ok] if report is not None else []
        why = "; ".join([*failed, *([report.error] if report is not None and report.error else [])])
        say(f"batch {summary['batch_id']} ended NOT reconciled: {why}")
        return EXIT_FAILED
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
    lines = [f"batch {s['batch_id']}: {s['items']} items, {s['accepted']} accepted, {s['rejected']} rejected"]
    by_reason = s.get("rejected_by_reason") or {}
    if isinstance(by_reason, dict):
        for reason, n in by_reason.items():
            lines.append(f"  rejected {reason:16} {n}")
    lines.append(f"  not_inspected      {s['not_inspected']} {s.get('not_inspected_by_cause') or ''}")
    if s.get("escapes") is not None:
        lines.append(f"  escapes {s['escapes']}, false rejects {s['false_rejects']} (against simulator ground truth)")
        escapes_by_class = s.get("escapes_by_class")
        if isinstance(escapes_by_class, dict) and escapes_by_class:
            by_class = ", ".join(f"{k} {v}" for k, v in escapes_by_class.items())
            lines.append(f"  escapes by class: {by_class}; critical escapes {s['critical_escapes']}")
    if "plc_decisions" in s:
        lines.append(
            f"  PLC {s['plc']}: acked {s['plc_acked']}, late {s['plc_late']}, missing {s['plc_missing']},"
            f" refused {s['plc_refused']}; round trip p99 {s['plc_rtt_ms_p99']} ms"
        )
    lines.append(
        f"  latency ms p50 {s['latency_ms_p50']} p99 {s['latency_ms_p99']} max {s['latency_ms_max']}"
        f" (budget {s['budget_ms']})"
    )
    if "records_reconciled" in s:
        lines.append(f"  records reconciled: {'yes' if s['records_reconciled'] else 'NO'}")
    say(*lines)


def cmd_bench(args: argparse.Namespace) -> int:
    from inspector.station.bench import bench

    config, root = station_config(args)
    try:
        result = bench(
            config, args.frames, seed=args.seed, line_rate=args.line_rate, root=root, with_torch=not args.no_torch
        )
    except station_errors() as exc:
        raise CliError(str(exc)) from None
    torch = f", torch eager p50 {result['torch_ms_p50']} ms" if result.get("torch_ms_p50") is not None else ""
    say(
        f"bench {result['recipe']}: {result['frames']} frames, {result['items_per_s']} items/s,"
        f" latency ms p50 {result['latency_ms_p50']} p99 {result['latency_ms_p99']} max {result['latency_ms_max']}"
        f" (bare ONNX Runtime p50 {result['bare_ms_p50']}{torch}; budget {result['budget_ms']})"
    )
    emit_json(args, result)
    return 0


def register(sub: Subparsers) -> None:
    run = add_command(
        sub,
        "run",
        help="run a batch headless: camera -> model -> decisions -> PLC and records",
        description="Run a batch headless: camera -> model -> decisions -> PLC and records. Exit 1 when the"
        " batch's records do not reconcile with the station's counts.",
        example="inspector run --recipe vial --items 600",
    )
    add_station_arguments(run)
    run.add_argument(
        "--camera", default=None, choices=["sim", "files", "genicam"], help="camera kind; default: the station's"
    )
    run.add_argument(
        "--items",
        type=bounded(int, low=1, high=ITEMS_MAX),
        default=None,
        help="items in the batch (a GenICam camera stops after that many frames); default: until Ctrl-C",
    )
    run.add_argument(
        "--duration", type=bounded(float, above=0), default=None, help="stop after this many seconds; default: none"
    )
    run.add_argument(
        "--line-rate",
        type=bounded(float, above=0, high=LINE_RATE_MAX),
        default=None,
        help="items per minute; default: the recipe's",
    )
    run.add_argument(
        "--seed", type=bounded(int, low=0, high=SEED_MAX), default=None, help="sim: item seed; default: the station's"
    )
    run.add_argument(
        "--defect-rate",
        type=bounded(float, low=0, high=1),
        default=None,
        help="sim: share of defective items; default: the station's",
    )
    run.add_argument(
        "--nuisance",
        type=bounded(float, low=0, high=NUISANCE_MAX),
        default=None,
        help="sim: nuisance scale (the models are validated to 2.5); default: the station's",
    )
    add_sim_line_options(run)
    run.add_argument("--images", default=None, help="files: manifest folder to replay")
    run.add_argument("--db", default=None, help="station records database; default: the station's")
    run.add_argument(
        "--site",
        default=None,
        help="forward the records to this site database (postgresql://USER@HOST:PORT/DB); default: the station's",
    )
    run.add_argument(
        "--plc",
        default=None,
        help="line PLC: none, line-sim, opcua://HOST:PORT, s7://HOST:PORT, modbus://HOST:PORT or a plc_configs YAML"
        " (default: the station's; the demo station starts the line simulator)",
    )
    add_json_option(run, "the batch summary")
    run.add_argument("--quiet", action="store_true", help="no progress and no summary on stderr")
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

    b = add_command(
        sub,
        "bench",
        help="pre-rendered frames through the full pipeline at the maximum rate",
        example="inspector bench --recipe blister --frames 2000 --json /tmp/bench.json",
    )
    add_station_arguments(b)
    b.add_argument("--frames", type=bounded(int, low=10, high=FRAMES_MAX), default=2000, help="frames to time")
    b.add_argument("--seed", type=bounded(int, low=0, high=SEED_MAX), default=1, help="seed of the rendered frames")
    b.add_argument(
        "--line-rate",
        type=bounded(float, above=0, high=LINE_RATE_MAX),
        default=None,
        help="items per minute: paced at this rate instead of closed loop; default: closed loop",
    )
    b.add_argument(
        "--threads",
        type=bounded(int, low=1, high=THREADS_MAX),
        default=None,
        help="ONNX Runtime intra-op threads; default: the station's",
    )
    b.add_argument("--no-torch", action="store_true", help="skip the torch eager comparison")
    add_json_option(b, "the figures")
    b.set_defaults(func=cmd_bench)
