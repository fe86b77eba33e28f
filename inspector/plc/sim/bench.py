"""Decision round-trip benchmark: write + PLC acknowledgement per protocol against the line simulator.

For each protocol a line simulator child runs on 127.0.0.1 (port 0); a PLC link sends
``decisions`` decisions, one every ``interval_ms``, with exposure times on the simulator's
schedule, and the link measures each round trip: decision words written, sequence
strobe written, PLC block polled until the echo of that sequence and item id (the same
path production uses). Prints JSON with p50/p90/p99/max per protocol.

``--opcua-security basic256sha256`` runs OPC UA as production does (Basic256Sha256
SignAndEncrypt, certificate trust both ways) with throwaway certificates made for the run;
the default is policy None, the demo setting. ``--opcua-handshake write_read`` measures the
two-request handshake (Write, then Read of the echo) instead of the default SubmitDecision
method call.

This is the one part of the simulator package that drives a client link (through
:func:`inspector.plc.factory.create_link`, as the station does): it measures the one against
the other. ``configure_parser`` and ``cmd_plc_bench`` are what ``inspector plc-bench`` registers.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from inspector.plc.base import AckResult, DecisionRequest, ItemAck, LinkEvent, LinkEventKind
from inspector.plc.config import PROTOCOLS, OpcUaConfig, OpcUaSecurity, parse_plc_url
from inspector.plc.factory import create_link
from inspector.plc.layout import U32_MAX, StationStateCode
from inspector.plc.pki import loopback_pki
from inspector.plc.sim.process import LineSimProcess
from inspector.realtime import prepare_for_latency
from inspector.taxonomy import PLC_CODE_OK

TARGET_P99_MS = 2.0
OPCUA_SECURITY = ("none", "basic256sha256")
OPCUA_HANDSHAKES = ("method", "write_read")


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    s = sorted(values)

    def q(x: float) -> float:
        return round(s[min(len(s) - 1, int(x * len(s)))], 4)

    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": round(s[-1], 4), "mean": round(sum(s) / len(s), 4)}


def bench_protocol(
    protocol: str,
    *,
    decisions: int = 1000,
    interval_ms: float = 5.0,
    warmup: int = 50,
    opcua_security: str = "none",
    opcua_handshake: str = "method",
) -> dict[str, Any]:
    """Round trips of one protocol (ms), the ack results, and the simulator's own count."""
    if opcua_security not in OPCUA_SECURITY:
        raise ValueError(f"opcua_security must be one of {OPCUA_SECURITY}, got {opcua_security!r}")
    if opcua_handshake not in OPCUA_HANDSHAKES:
        raise ValueError(f"opcua_handshake must be one of {OPCUA_HANDSHAKES}, got {opcua_handshake!r}")
    secure = protocol == "opcua" and opcua_security == "basic256sha256"
    with tempfile.TemporaryDirectory(prefix="inspector-pki-") as tmp:  # certificates, when secure
        sim_args = ["--line-rate", f"{60.0 / (interval_ms / 1e3):.6f}", "--gate-delay-ms", "500"]
        security = None
        if secure:
            pki = loopback_pki(Path(tmp))
            sim_args += ["--security", "basic256sha256", "--cert", str(pki.server.cert), "--key", str(pki.server.key)]
            sim_args += ["--trust-dir", str(pki.server_trust)]
            security = OpcUaSecurity(
                certificate=pki.station.cert, private_key=pki.station.key, trusted_certificates=pki.station_trust
            )
        result = _bench(
            protocol,
            sim_args,
            security,
            opcua_handshake,
            decisions=decisions,
            interval_ms=interval_ms,
            warmup=warmup,
        )
    opcua = protocol == "opcua"
    result["security"] = ("Basic256Sha256 SignAndEncrypt" if secure else "None") if opcua else None
    result["handshake"] = opcua_handshake if opcua else "one block write + echo read"
    return result


def _bench(
    protocol: str,
    sim_args: list[str],
    security: OpcUaSecurity | None,
    opcua_handshake: str,
    *,
    decisions: int,
    interval_ms: float,
    warmup: int,
) -> dict[str, Any]:
    period_s = interval_ms / 1e3
    sim = LineSimProcess.start(protocol, *sim_args, timeout_s=40.0)
    acks: list[ItemAck] = []

    def on_event(event: LinkEvent) -> None:
        if event.kind is LinkEventKind.ACK and event.ack is not None:
            acks.append(event.ack)

    try:
        cfg = parse_plc_url(f"{protocol}://127.0.0.1:{sim.port}")
        if isinstance(cfg, OpcUaConfig):
            cfg = cfg.model_copy(update={"handshake": opcua_handshake})
        if security is not None:
            assert isinstance(cfg, OpcUaConfig)
            # Production mode, as a plant's config file would set it (demo mode means policy None).
            cfg = OpcUaConfig(
                schema_version=1,
                protocol="opcua",
                name="opcua-bench",
                host=cfg.host,
                port=cfg.port,
                security=security,
                handshake=opcua_handshake,  # type: ignore[arg-type]
            )
        link = create_link(cfg)
        link.subscribe(on_event)
        link.start()
        prepare_for_latency()  # as Station.start() does in production
        try:
            link.set_station_state(StationStateCode.RUNNING)
            time.sleep(0.05)
            t0 = time.time() + 0.01
            total = warmup + decisions
            for i in range(1, total + 1):
                t_exp = t0 + (i - 1) * period_s
                delay = t_exp - time.time()
                if delay > 0:
                    time.sleep(delay)
                accept = i % 10 != 0
                link.submit(DecisionRequest(i, accept, PLC_CODE_OK if accept else 101, int(t_exp * 1000) & U32_MAX))
            link.drain(10.0)
            link.set_station_state(StationStateCode.IDLE)
            time.sleep(0.6)  # the last items reach the simulator's gate (500 ms behind the camera)
        finally:
            link.close()
    finally:
        summary = sim.stop()
    measured = [a for a in acks if a.request.item_id > warmup]
    rtt = [a.round_trip_ms for a in measured if a.round_trip_ms is not None]
    results = {r.value: sum(1 for a in measured if a.result is r) for r in AckResult}
    stats = _stats(rtt)
    p99 = stats["p99"]
    return {
        "decisions": len(measured),
        "interval_ms": interval_ms,
        "round_trip_ms": stats,
        "results": results,
        "meets_target": p99 is not None and p99 <= TARGET_P99_MS and results[AckResult.ACKED] == len(measured),
        "sim": {k: summary.get(k) for k in ("items", "accepted", "rejected", "decision_late", "decision_missing")},
    }


def run_plc_bench(
    protocols: tuple[str, ...] = PROTOCOLS,
    *,
    decisions: int = 1000,
    interval_ms: float = 5.0,
    warmup: int = 50,
    opcua_security: str = "none",
    opcua_handshake: str = "method",
) -> dict[str, Any]:
    """Benchmark every protocol in turn; returns the JSON-ready result."""
    out: dict[str, Any] = {
        "what": "decision + strobe sent, PLC acknowledgement received: station link -> line simulator (loopback)",
        "target_p99_ms": TARGET_P99_MS,
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "protocols": {},
    }
    for protocol in protocols:
        out["protocols"][protocol] = bench_protocol(
            protocol,
            decisions=decisions,
            interval_ms=interval_ms,
            warmup=warmup,
            opcua_security=opcua_security,
            opcua_handshake=opcua_handshake,
        )
    return out
