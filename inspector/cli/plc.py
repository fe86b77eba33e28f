"""``inspector line-sim`` and ``inspector plc-bench``: the line simulator and the PLC round-trip benchmark.

Both start the line simulator (a twin of the line PLC on loopback); the station's own PLC link
is configured in its station file, not here.
"""

from __future__ import annotations

import argparse

from inspector.cli.common import EXIT_FAILED, Subparsers, add_command, add_json_option, bounded, emit_json, say
from inspector.plc.config import PROTOCOLS
from inspector.plc.sim import cli as line_sim
from inspector.plc.sim.bench import OPCUA_HANDSHAKES, OPCUA_SECURITY, run_plc_bench


def cmd_plc_bench(args: argparse.Namespace) -> int:
    protocols = tuple(args.protocol) if args.protocol else PROTOCOLS
    result = run_plc_bench(
        protocols,
        decisions=args.decisions,
        interval_ms=args.interval_ms,
        warmup=args.warmup,
        opcua_security=args.opcua_security,
        opcua_handshake=args.opcua_handshake,
    )
    for protocol, r in result["protocols"].items():
        rtt = r.get("round_trip_ms") or {}
        say(
            f"{protocol}: {r.get('decisions')} decisions, round trip ms p50 {rtt.get('p50')} p99 {rtt.get('p99')}"
            f" max {rtt.get('max')}; target p99 <= {result['target_p99_ms']} ms met: {r.get('meets_target')}"
        )
    emit_json(args, result)
    missed = [p for p, r in result["protocols"].items() if not r.get("meets_target")]
    return EXIT_FAILED if missed else 0


def cmd_line_sim(args: argparse.Namespace) -> int:
    """``inspector line-sim``: where it serves and how the line ended on stderr; the summary with ``--json``."""
    settings = line_sim.settings_from_args(args)

    def ready(port: int) -> None:
        say(
            f"line-sim: {settings.protocol} on 127.0.0.1:{port}, {settings.line_rate_per_min:g} items/min,"
            f" gate {settings.gate_delay_ms:g} ms after the camera; Ctrl-C ends it"
        )

    summary = line_sim.serve(settings, ready)
    say(
        f"line-sim ended ({summary.get('stopped_by')}): {summary['items']} items, {summary['accepted']} accepted,"
        f" {summary['rejected']} rejected; decisions late {summary['decision_late']},"
        f" missing {summary['decision_missing']}, refused {summary['decision_refused']}"
    )
    emit_json(args, summary)
    return 0


def configure_plc_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", action="append", choices=PROTOCOLS, help="repeat for several; default: all")
    p.add_argument(
        "--decisions", type=bounded(int, low=1, high=1_000_000), default=1000, help="decisions measured per protocol"
    )
    p.add_argument("--interval-ms", type=bounded(float, low=0, high=10_000), default=5.0, help="time between decisions")
    p.add_argument("--warmup", type=bounded(int, low=0, high=100_000), default=50, help="decisions not measured")
    p.add_argument(
        "--opcua-security",
        choices=OPCUA_SECURITY,
        default="none",
        help="OPC UA security policy; basic256sha256 = SignAndEncrypt with throwaway certificates (default none)",
    )
    p.add_argument(
        "--opcua-handshake",
        choices=OPCUA_HANDSHAKES,
        default="method",
        help="OPC UA handshake: method = one SubmitDecision call per item (default), write_read = Write then Read",
    )
    add_json_option(p, "the figures")


def register(sub: Subparsers) -> None:
    ls = add_command(
        sub,
        "line-sim",
        help="line PLC simulator: conveyor + reject gate (positive release) on a real protocol server",
        example="inspector line-sim --protocol modbus --port 5020 --line-rate 600",
    )
    line_sim.configure_parser(ls, number=bounded)
    ls.set_defaults(func=cmd_line_sim, value_errors_are_user_errors=True)
    pb = add_command(
        sub,
        "plc-bench",
        help="decision + acknowledgement round trip per PLC protocol against the line simulator",
        description="Decision + acknowledgement round trip per PLC protocol against the line simulator."
        " Exit 1 when a protocol misses the round-trip target.",
        example="inspector plc-bench --protocol modbus --decisions 500 --json /tmp/plc.json",
    )
    configure_plc_bench(pb)
    pb.set_defaults(func=cmd_plc_bench)
