"""Line simulator: a conveyor and a reject gate behind a real PLC protocol server.

``inspector line-sim --protocol {opcua,s7,modbus} --port P --line-rate R --gate-delay-ms D``
(also ``python -m inspector.plc.sim``) serves the station/PLC blocks of docs/plc.md on
127.0.0.1 (:mod:`.servers`), prints ``READY <port>`` once serving (port 0 picks a free one),
and a JSON summary when it ends (SIGTERM/SIGINT, ``--items``/``--duration`` reached, or stdin
closed when it is a pipe: :class:`~inspector.plc.sim.process.LineSimProcess` holds that pipe,
so the parent process's end, even by SIGKILL, ends the simulator, while a thread of the parent
ending does not).

``configure_parser`` and ``cmd_line_sim`` are what ``inspector line-sim`` registers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from inspector.plc.sim.line import INJECTIONS, PROTOCOLS, LineSimSettings
from inspector.plc.sim.servers import StopFlag, run_line_sim


def _watch_stdin(stop: StopFlag) -> None:
    """When stdin is a pipe, its closing (parent gone or done) stops the simulator."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if not stat.S_ISFIFO(mode):
        return

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        stop.set()

    threading.Thread(target=watch, name="linesim-stdin", daemon=True).start()


def _parse_inject(text: str) -> dict[int, str]:
    """``bad_status@5,late_echo@7:55`` -> ``{5: "bad_status", 7: "late_echo:55"}``."""
    out: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, at = part.partition("@")
        item, _, ms = at.partition(":")
        if not item.isdigit() or (ms and not ms.replace(".", "", 1).isdigit()):
            raise ValueError(f"--inject {part!r}: expected KIND@ITEM or KIND@ITEM:MS, e.g. bad_status@5")
        out[int(item)] = f"{kind}:{ms}" if ms else kind
    return out


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", required=True, choices=PROTOCOLS)
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 = any free port (see READY)")
    p.add_argument("--line-rate", type=float, default=600.0, help="items per minute (must match the station)")
    p.add_argument("--gate-delay-ms", type=float, default=500.0, help="camera -> reject gate travel time")
    p.add_argument("--items", type=int, default=None, help="stop after this many items reached the gate")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--json", type=Path, default=None, help="write the summary (with per-item outcomes) here")
    p.add_argument("--heartbeat-ms", type=float, default=10.0, help="PLC heartbeat period")
    p.add_argument("--watchdog-ms", type=float, default=100.0, help="station heartbeat watchdog")
    p.add_argument("--security", choices=["none", "basic256sha256"], default="none", help="OPC UA only")
    p.add_argument("--cert", type=Path, default=None, help="OPC UA server certificate (DER/PEM)")
    p.add_argument("--key", type=Path, default=None, help="OPC UA server private key (PEM)")
    p.add_argument("--trust-dir", type=Path, default=None, help="OPC UA: folder of trusted client certificates")
    kinds = ", ".join(INJECTIONS)
    p.add_argument(
        "--inject",
        default="",
        help=f"test hook: faults at an item, e.g. bad_status@5,late_echo@7:55,freeze_heartbeat@9:600 ({kinds})",
    )


def settings_from_args(args: argparse.Namespace) -> LineSimSettings:
    if args.port < 0 or args.port > 65535:
        raise ValueError("--port must be 0..65535")
    if args.line_rate <= 0 or args.gate_delay_ms < 0:
        raise ValueError("--line-rate must be positive and --gate-delay-ms not negative")
    if args.protocol != "opcua" and args.security != "none":
        raise ValueError("--security applies to OPC UA only")
    return LineSimSettings(
        protocol=args.protocol,
        port=args.port,
        line_rate_per_min=args.line_rate,
        gate_delay_ms=args.gate_delay_ms,
        items=args.items,
        duration_s=args.duration,
        heartbeat_ms=args.heartbeat_ms,
        watchdog_ms=args.watchdog_ms,
        json_out=args.json,
        security=args.security,
        certificate=args.cert,
        private_key=args.key,
        trust_dir=args.trust_dir,
        inject=_parse_inject(args.inject),
    )


def stop_on_signal(stop: StopFlag) -> Callable[[int, object], None]:
    """A signal handler that sets ``stop`` from another thread.

    Python runs a handler in the main thread between two bytecodes, which can fall inside
    ``stop.wait()`` while it holds the event's (non-reentrant) lock: a ``stop.set()`` there
    would wait for that lock forever, and the simulator would hang on SIGTERM. A short thread
    takes the lock once the main thread has let go of it.
    """

    def handler(_signum: int, _frame: object) -> None:
        threading.Thread(target=stop.set, name="line-sim-stop", daemon=True).start()

    return handler


def cmd_line_sim(args: argparse.Namespace) -> int:
    """Run the simulator in this process until a signal, stdin EOF (the parent gone) or the limits."""
    settings = settings_from_args(args)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="line-sim %(levelname)s %(message)s")
    stop = threading.Event()
    handler = stop_on_signal(stop)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    _watch_stdin(stop)
    summary = run_line_sim(settings, stop=stop)
    outcomes = summary.pop("outcomes")
    print(json.dumps(summary), flush=True)
    if settings.json_out is not None:
        settings.json_out.write_text(json.dumps({**summary, "outcomes": outcomes}, indent=2) + "\n", encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="inspector line-sim", description=__doc__.splitlines()[0] if __doc__ else None)
    configure_parser(p)
    args = p.parse_args(argv)
    try:
        return cmd_line_sim(args)
    except ValueError as exc:
        print(f"inspector line-sim: error: {exc}", file=sys.stderr)
        return 2
