"""``inspector line-sim`` and ``inspector plc-bench``: the line simulator and the PLC round-trip benchmark.

Both start the line simulator (a twin of the line PLC on loopback); the station's own PLC link
is configured in its station file, not here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from inspector.cli.common import Subparsers
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
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def configure_plc_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", action="append", choices=PROTOCOLS, help="repeat for several (default: all)")
    p.add_argument("--decisions", type=int, default=1000)
    p.add_argument("--interval-ms", type=float, default=5.0, help="time between decisions")
    p.add_argument("--warmup", type=int, default=50, help="decisions not measured")
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
    p.add_argument("--json", default=None, help="also write the result here")


def register(sub: Subparsers) -> None:
    ls = sub.add_parser(
        "line-sim", help="line PLC simulator: conveyor + reject gate (positive release) on a real protocol server"
    )
    line_sim.configure_parser(ls)
    ls.set_defaults(func=line_sim.cmd_line_sim, value_errors_are_user_errors=True)
    pb = sub.add_parser(
        "plc-bench", help="decision + acknowledgement round trip per PLC protocol against the line simulator (JSON)"
    )
    configure_plc_bench(pb)
    pb.set_defaults(func=cmd_plc_bench)
