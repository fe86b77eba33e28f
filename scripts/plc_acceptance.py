"""PLC acceptance run: `inspector run --camera sim --plc URL` against `inspector line-sim`, per protocol.

For each protocol: start the line simulator (its own process, real server library, port 0,
readiness line), run the station CLI on a shipped recipe for ``--items`` items at
``--line-rate`` items/min with ``--plc`` pointing at it, stop the simulator and collect its
per-item gate outcomes. Prints one JSON object (and writes it with ``--json``):

    uv run python scripts/plc_acceptance.py --recipe vial --items 3000 --line-rate 600 --json var/plc_acceptance.json

Pass = every item decided before its gate (line sim: no late, no missing decision), every
station decision acknowledged, and no item accepted without an acknowledged accept.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspector.plc.sim.process import LineSimProcess  # noqa: E402

STATION_KEYS = (
    "items", "accepted", "rejected", "not_inspected", "escapes", "escapes_by_class", "critical_escapes",
    "false_rejects", "latency_ms_p50",
    "latency_ms_p99", "latency_ms_max", "plc_acked", "plc_late", "plc_missing", "plc_refused",
    "plc_rtt_ms_p50", "plc_rtt_ms_p99", "plc_rtt_ms_max", "plc_link_losses",
)  # fmt: skip


def run_protocol(protocol: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sim_json = work / f"line_sim_{protocol}.json"
    run_json = work / f"run_{protocol}.json"
    sim = LineSimProcess.start(
        protocol,
        "--line-rate", f"{args.line_rate:g}", "--gate-delay-ms", f"{args.gate_delay_ms:g}", "--json", str(sim_json),
        cwd=str(ROOT),
    )  # fmt: skip
    cmd = [
        sys.executable, "-m", "inspector", "run", "--recipe", args.recipe, "--camera", "sim",
        "--items", str(args.items), "--line-rate", f"{args.line_rate:g}", "--seed", str(args.seed),
        "--plc", f"{protocol}://127.0.0.1:{sim.port}", "--json", str(run_json),
        "--db", str(work / f"{protocol}.sqlite"),
    ]  # fmt: skip
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.items * 60 / args.line_rate + 120
        )
    finally:
        time.sleep(args.gate_delay_ms / 1e3 + 0.5)  # the last items reach the gate
        line = sim.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{protocol}: inspector run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    station = json.loads(run_json.read_text())
    result = {
        "protocol": protocol,
        "wall_s": round(time.monotonic() - t0, 1),
        "station": {k: station.get(k) for k in STATION_KEYS},
        "line_sim": {k: v for k, v in line.items() if k != "outcomes"},
    }
    s, ln = result["station"], result["line_sim"]
    result["pass"] = bool(
        s["items"] == args.items
        and s["plc_acked"] == s["items"]
        and not s["plc_late"]
        and not s["plc_missing"]
        and ln.get("all_decided_before_gate") is True
        and ln.get("items") == args.items
        and ln.get("foreign_writes") == 0
    )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="vial")
    p.add_argument("--protocols", nargs="+", default=["opcua", "s7", "modbus"])
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--line-rate", type=float, default=600.0, help="items per minute")
    p.add_argument("--gate-delay-ms", type=float, default=500.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inspector-plc-acceptance-") as tmp:
        runs = [run_protocol(proto, args, Path(tmp)) for proto in args.protocols]
    out = {
        "recipe": args.recipe,
        "items": args.items,
        "line_rate_per_min": args.line_rate,
        "gate_delay_ms": args.gate_delay_ms,
        "runs": runs,
        "pass": all(r["pass"] for r in runs),
    }
    text = json.dumps(out)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(text)
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
