"""Line simulator: a conveyor and a reject gate behind a real PLC protocol server.

Two ways to start it, one simulator:

- ``inspector line-sim --protocol {opcua,s7,modbus} --port P ...`` (the command, in
  :mod:`inspector.cli.plc`): says on stderr where it serves and how the line ended; ``--json``
  gives the summary with every item's outcome.
- ``python -m inspector.plc.sim ...`` (this module's :func:`main`): the child process of
  :class:`~inspector.plc.sim.process.LineSimProcess`, which talks to it over stdout: ``READY
  <port>`` once serving (port 0 picks a free one), the summary as the last JSON line when it
  ends, ``--json FILE`` for the per-item outcomes.

It serves the station/PLC blocks of docs/plc.md on 127.0.0.1 (:mod:`.servers`) until SIGTERM or
SIGINT, ``--items``/``--duration``, or stdin closing when it is a pipe: LineSimProcess holds that
pipe, so the parent process's end, even by SIGKILL, ends the simulator, while a thread of the
parent ending does not. Both share :func:`configure_parser` (the command passes its
range-checked number type) and :func:`serve`.
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
from typing import Any, Protocol

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


class NumberType(Protocol):
    """Makes an argparse ``type`` for a number within limits (the CLI's range-checked one, or a plain one)."""

    def __call__(
        self, kind: type[int] | type[float], *, low: float | None = None, high: float | None = None,
        above: float | None = None,
    ) -> Callable[[str], Any]: ...  # fmt: skip


def plain_number(
    kind: type[int] | type[float], *, low: float | None = None, high: float | None = None, above: float | None = None
) -> Callable[[str], Any]:
    """The child's number type: limits are checked by :func:`settings_from_args` (its caller passes valid ones)."""
    return kind


def configure_parser(p: argparse.ArgumentParser, number: NumberType = plain_number) -> None:
    p.add_argument("--protocol", required=True, choices=PROTOCOLS, help="PLC protocol the simulator serves")
    p.add_argument("--port", type=number(int, low=0, high=65535), default=0, help="TCP port on 127.0.0.1; 0 = any free")
    p.add_argument(
        "--line-rate",
        type=number(float, above=0, high=100_000),
        default=600.0,
        help="items per minute (must match the station)",
    )
    p.add_argument(
        "--gate-delay-ms", type=number(float, low=0, high=60_000), default=500.0, help="camera -> reject gate travel"
    )
    p.add_argument(
        "--items",
        type=number(int, low=1, high=100_000_000),
        default=None,
        help="stop after this many items reached the gate; default: until stopped",
    )
    p.add_argument(
        "--duration", type=number(float, above=0), default=None, help="stop after this many seconds; default: none"
    )
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="the summary with per-item outcomes as JSON: on stdout (--json), or written to FILE",
    )
    p.add_argument(
        "--heartbeat-ms", type=number(float, above=0, high=10_000), default=10.0, help="PLC heartbeat period"
    )
    p.add_argument(
        "--watchdog-ms", type=number(float, above=0, high=60_000), default=100.0, help="station heartbeat watchdog"
    )
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


def serve(settings: LineSimSettings, on_ready: Callable[[int], None]) -> dict[str, Any]:
    """Run the simulator in this process until a signal, stdin EOF (the parent gone) or the limits.

    Returns the summary, with ``outcomes`` (each item's fate at the gate).
    """
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="line-sim %(levelname)s %(message)s")
    stop = threading.Event()
    handler = stop_on_signal(stop)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    _watch_stdin(stop)
    return run_line_sim(settings, stop=stop, on_ready=on_ready)


def cmd_line_sim(args: argparse.Namespace) -> int:
    """The child process: ``READY <port>`` on stdout, then the summary as the last JSON line."""
    settings = settings_from_args(args)
    summary = serve(settings, lambda port: print(f"READY {port}", flush=True))
    outcomes = summary.pop("outcomes")
    print(json.dumps(summary), flush=True)
    if args.json not in (None, "-"):
        Path(args.json).write_text(json.dumps({**summary, "outcomes": outcomes}, indent=2) + "\n", encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m inspector.plc.sim", description="The line simulator as a child process (see the module doc)."
    )
    configure_parser(p)
    args = p.parse_args(argv)
    try:
        return cmd_line_sim(args)
    except ValueError as exc:
        print(f"inspector line-sim: error: {exc}", file=sys.stderr)
        return 2
