"""Site forwarding benchmark: many stations, one PostgreSQL, the stations' latency with and without it.

``python -m inspector.site.bench --stations 10 --rate 20 --seconds 30 --repeats 2 --json FILE``

One real station (the shipped tablet recipe and model, simulated camera, the line simulator as its
Modbus PLC: ``inspector run``) and ``stations - 1`` simulated ones (a process each writing a batch
at the same rate through the records layer: hash-linked items, a PLC acknowledgement each, audit
entries) run side by side, in phases without and with forwarding (alternating, ``repeats`` of
each). With forwarding every station has its forwarder process (the real station starts its own,
``--site``). The figures:

- the real station's per-item latency p50 / p99 in each phase, and the ratio of the median p99 with
  forwarding to the median without;
- the replication lag of every row: the time from its commit at the station (the outbox entry's
  time) to the first moment the site's cursor for the station covered it (the site's cursors are
  read every 20 ms), p50 / p99 / max over all rows of all stations;
- after each forwarding phase: rows at each station and at the site, duplicates (none can be: keys),
  and the site's verification of every chain.

``--faults`` adds the fault cases with production running: the site server killed (SIGKILL) during
pushes and started again after 2 s; the site down for ``--cutoff`` seconds (60) and back; a second
forwarder started for one station. Each ends with rows equal, nothing duplicated, chains verified.

Without ``--url`` a throwaway server is started (:mod:`inspector.site.local_server`). JSON on stdout
(or to ``--json FILE``), progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

from inspector.records import RecordStore
from inspector.records.outbox import OutboxReader
from inspector.site import schema as S
from inspector.site.db import connect, upgrade
from inspector.site.process import ForwarderProcess

ROOT = Path(__file__).resolve().parents[2]


def say(msg: str) -> None:
    print(f"[site bench] {msg}", file=sys.stderr, flush=True)


# -- a simulated station ---------------------------------------------------------------------------


def simulate(
    db: Path, rate: float, seconds: float | None, batch_id: str, *, stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:  # fmt: skip
    """Write one batch at ``rate`` items/s as a station's writer does (hash-linked items, a PLC
    acknowledgement each, audit entries, the batch's end with its heads) for ``seconds`` or until
    ``stop`` is set; the items written (each also reported to ``progress``)."""
    from inspector.records import RecordStore, audit
    from inspector.records.chain import summary_sha256
    from inspector.records.store import ItemRecord, utc_now

    actor = audit.Actor("line", "operator", "Line Operator")
    n = 0
    with RecordStore(db) as store:
        store.start_batch(
            batch_id, product="tablet", recipe_id="tablet-round-white", recipe_version="1.9.0",
            recipe_sha256="a" * 64, model_id="tablet-cls", model_version="1.4.0", model_sha256="b" * 64,
            camera_serial="SIM", camera_settings={"exposure_us": 400}, plc="modbus://127.0.0.1:502",
        )  # fmt: skip
        audit.append(store, actor, "batch.start", object_type="batch", object_id=batch_id)
        t0 = time.monotonic()
        while not (stop is not None and stop.is_set()) and (seconds is None or time.monotonic() - t0 < seconds):
            n += 1
            ok = n % 20 != 0
            store.insert_items([ItemRecord(
                batch_id=batch_id, item_id=n, frame_id=n, t_frame=time.monotonic(), created_utc=utc_now(),
                decision="accept" if ok else "reject", reason="ok" if ok else "defect", deadline_met=True,
                label="ok" if ok else "chip", confidence=0.99, class_scores={"ok": 0.99, "chip": 0.01},
                anomaly_score=0.02, latency={"total_ms": 3.4},
            )])  # fmt: skip
            store.set_plc_ack(batch_id, n, "acked")
            if n % 50 == 0:
                audit.append(store, actor, "batch.progress", object_type="batch", object_id=batch_id,
                             new={"items": n}, reason="progress")  # fmt: skip
            if progress is not None:
                progress(n)
            delay = t0 + n / rate - time.monotonic()
            if delay > 0:
                if stop is not None:
                    stop.wait(delay)
                else:
                    time.sleep(delay)
        summary = {"items": n}
        body = json.dumps(summary, allow_nan=False, ensure_ascii=False, sort_keys=True)
        with store.transaction():
            ended = {"items_head": store.items_head(batch_id), "summary_sha256": summary_sha256(body)}
            end = audit.append(store, actor, "batch.end", object_type="batch", object_id=batch_id, new=ended)
            store.end_batch(batch_id, summary, audit_head=(end.seq, end.hash))
    return n


# -- measuring ---------------------------------------------------------------------------------------


class CursorWatch:
    """Reads every station's site cursor every ``period_s``; when each cursor value was first seen."""

    def __init__(self, engine: Engine, stations: list[str], period_s: float = 0.02) -> None:
        self.engine, self.stations, self.period_s = engine, stations, period_s
        self.seen: dict[str, list[tuple[float, int]]] = {s: [] for s in stations}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cursor-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            try:
                with self.engine.connect() as c:
                    rows = c.execute(select(S.stations.c.station_id, S.stations.c.cursor)).all()
            except Exception:  # the server down (fault cases): no sample
                rows = []
            for station, cursor in rows:
                if station in self.seen and (not self.seen[station] or self.seen[station][-1][1] < cursor):
                    self.seen[station].append((now, int(cursor)))
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def lags(self, station: str, db: Path, *, steady: bool = False) -> list[float]:
        """Seconds from each outbox entry's commit to the first cursor sample covering it (``steady``:
        only entries committed after the station's first push reached the site)."""
        reader = OutboxReader(db)
        try:
            entries = reader.times()
        finally:
            reader.close()
        seen = self.seen[station]
        if steady and seen:
            entries = [(seq, at) for seq, at in entries if float(at) >= seen[0][0]]
        out, j = [], 0
        for seq, at in entries:
            while j < len(seen) and seen[j][1] < seq:
                j += 1
            if j == len(seen):
                break  # not at the site (yet): counted by the row check
            out.append(max(0.0, seen[j][0] - float(at)))
        return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 4)


def check_rows(engine: Engine, stations: dict[str, Path]) -> dict[str, Any]:
    """Rows at each station and at the site, and the site's verification of every chain."""
    from inspector.site.verify import verify_station

    out: dict[str, Any] = {"stations": {}, "lost": 0, "duplicated": 0, "unverified": 0}
    with engine.connect() as c:
        for station, db in stations.items():
            with RecordStore(db) as store:
                local = {t: store.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("items", "audit_trail")}
                local_acks = store.execute("SELECT count(*) FROM items WHERE plc_ack IS NOT NULL").fetchone()[0]
            site = {}
            for t in ("items", "audit_trail"):
                tb = S.metadata.tables[t]
                site[t] = c.execute(select(func.count()).select_from(tb).where(tb.c.station_id == station)).scalar()
            acks = c.execute(select(func.count()).select_from(S.items).where(
                S.items.c.station_id == station, S.items.c.plc_ack.is_not(None))).scalar()  # fmt: skip
            dup = c.execute(text(
                "SELECT count(*) FROM (SELECT batch_id, item_id FROM items WHERE station_id = :s"
                " GROUP BY batch_id, item_id HAVING count(*) > 1) d"), {"s": station}).scalar()  # fmt: skip
            out["stations"][station] = {"local": {**local, "acks": local_acks}, "site": {**site, "acks": acks}}
            out["lost"] += sum(local[t] - site[t] for t in local) + (local_acks - (acks or 0))
            out["duplicated"] += int(dup or 0)
    for station in stations:
        v = verify_station(engine, station)
        out["stations"][station]["verified"] = v.ok
        out["unverified"] += 0 if v.ok else 1
    return out


# -- one phase ---------------------------------------------------------------------------------------


def run_phase(
    url: str, engine: Engine, folder: Path, *, tag: str, n: int, rate: float, seconds: float, forward: bool,
    fault: str | None = None, cutoff_s: float = 60.0, server: Any = None,
) -> dict[str, Any]:  # fmt: skip
    folder.mkdir(parents=True)
    ids = [f"{tag}-{i:02d}" for i in range(n)]
    dbs = {s: folder / f"{s}.sqlite" for s in ids}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for s in ids[1:]:
        RecordStore(dbs[s]).close()  # the station's database exists before its forwarder starts
    forwarders: list[ForwarderProcess] = []
    watch = CursorWatch(engine, ids) if forward else None
    if forward:
        forwarders = [ForwarderProcess(dbs[s], url, s, folder / f"{s}.fwd.json") for s in ids[1:]]
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not all(f.status() for f in forwarders):
            time.sleep(0.05)
    sims = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inspector.site.bench",
                "--simulate",
                str(dbs[s]),
                "--rate",
                str(rate),
                "--seconds",
                str(seconds),
                "--batch",
                f"{s}-B1",
            ],
            env=env,
        )
        for s in ids[1:]
    ]
    station_file = folder / "station.yaml"  # the demo station under this phase's id
    demo = (ROOT / "station_configs" / "demo.yaml").read_text(encoding="utf-8")
    station_file.write_text(demo.replace("station_id: demo", f"station_id: {ids[0]}"), encoding="utf-8")
    cmd = [sys.executable, "-m", "inspector", "run", "--station", str(station_file), "--recipe", "tablet",
           "--line-rate", str(rate * 60), "--duration", str(seconds), "--db", str(dbs[ids[0]]), "--quiet",
           "--json", str(folder / "station.json")]  # fmt: skip
    if forward:
        cmd += ["--site", url]
    real = subprocess.Popen(cmd, env=env, cwd=ROOT)
    fault_report: dict[str, Any] | None = None
    if fault is not None:
        fault_report = _fault(fault, server, seconds, cutoff_s, dbs, url, ids, folder)
    real.wait(timeout=seconds + 600)
    for p in sims:
        p.wait(timeout=seconds + 600)
    drained = [f.stop(drain_s=120.0) for f in forwarders]
    if watch is not None:
        time.sleep(0.2)
        watch.stop()
    summary = json.loads((folder / "station.json").read_text())
    result: dict[str, Any] = {
        "forwarding": forward,
        "station": {
            k: summary.get(k)
            for k in (
                "items",
                "latency_ms_p50",
                "latency_ms_p99",
                "latency_ms_max",
                "not_inspected",
                "reconciled",
                "inspected_in_time",
            )
        },
        "station_site": summary.get("site"),
    }
    if forward:
        assert watch is not None and summary.get("station") == ids[0]
        stations = dbs
        lags = [lag for s, db in stations.items() for lag in watch.lags(s, db)]
        steady = [lag for s, db in stations.items() for lag in watch.lags(s, db, steady=True)]
        result["lag_s"] = {"rows": len(lags), "p50": _pct(lags, 0.5), "p99": _pct(lags, 0.99),
                           "max": _pct(lags, 1.0)}  # fmt: skip
        # Without the rows a station committed before its forwarder's first push (the real station
        # starts its forwarder with the batch: its first second of rows waits for the process to start).
        result["lag_s_after_first_push"] = {"rows": len(steady), "p50": _pct(steady, 0.5),
                                            "p99": _pct(steady, 0.99), "max": _pct(steady, 1.0)}  # fmt: skip
        result["forwarders_drained"] = all(d is not None and d["rows_behind"] == 0 for d in drained)
        result["check"] = check_rows(engine, stations)
    if fault_report is not None:
        result["fault"] = fault_report
    return result


def _fault(kind: str, server: Any, seconds: float, cutoff_s: float, dbs: dict[str, Path], url: str,
           ids: list[str], folder: Path) -> dict[str, Any]:  # fmt: skip
    time.sleep(min(5.0, seconds / 4))
    if kind == "kill":
        t = time.monotonic()
        server.kill()
        time.sleep(2.0)
        server.start()
        return {"kind": "server SIGKILL during pushes, restarted", "down_s": round(time.monotonic() - t, 2)}
    if kind == "cutoff":
        t = time.monotonic()
        server.stop()
        time.sleep(cutoff_s)
        server.start()
        return {"kind": "site down, every station cut off", "down_s": round(time.monotonic() - t, 2)}
    if kind == "two":
        second = ForwarderProcess(dbs[ids[1]], url, ids[1], folder / "second.fwd.json")
        time.sleep(seconds / 2)
        second.stop(drain_s=30.0)
        return {"kind": "a second forwarder for one station", "station": ids[1]}
    raise ValueError(kind)


# -- main --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m inspector.site.bench", description=__doc__.split("\n")[0])
    p.add_argument("--stations", type=int, default=10)
    p.add_argument("--rate", type=float, default=20.0, help="items/s per station")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    p.add_argument("--repeats", type=int, default=2, help="phases without and with forwarding, each")
    p.add_argument("--url", default=None, help="site database (default: a throwaway server)")
    p.add_argument("--faults", action="store_true", help="also the fault cases (server kill, cut-off, two forwarders)")
    p.add_argument("--cutoff", type=float, default=60.0, help="seconds the site is down in the cut-off case")
    p.add_argument("--json", default=None, help="write the figures here (default: stdout)")
    p.add_argument("--simulate", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", default="B1", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.simulate is not None:
        simulate(args.simulate, args.rate, args.seconds, args.batch)
        return 0

    from inspector.site.local_server import LocalPostgres

    server = None if args.url else LocalPostgres()
    url = args.url or server.url  # type: ignore[union-attr]
    engine = connect(url)
    upgrade(engine)
    phases: list[dict[str, Any]] = []
    faults: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="inspector-site-bench-") as tmp:
            order = [False, True] * args.repeats
            for k, forward in enumerate(order):
                say(f"phase {k + 1}/{len(order)}: {args.stations} stations at {args.rate:g} items/s, "
                    f"forwarding {'on' if forward else 'off'}")  # fmt: skip
                phases.append(run_phase(url, engine, Path(tmp) / f"p{k}", tag=f"p{k}", n=args.stations,
                                        rate=args.rate, seconds=args.seconds, forward=forward))  # fmt: skip
                say(json.dumps(phases[-1].get("station")) + " lag " + json.dumps(phases[-1].get("lag_s")))
            if args.faults and server is not None:
                for kind, secs in (("kill", args.seconds), ("cutoff", args.cutoff + 20.0), ("two", args.seconds)):
                    say(f"fault case {kind}")
                    r = run_phase(url, engine, Path(tmp) / f"f-{kind}", tag=f"f{kind}", n=args.stations,
                                  rate=args.rate, seconds=secs, forward=True, fault=kind, cutoff_s=args.cutoff,
                                  server=server)  # fmt: skip
                    engine.dispose()
                    faults.append(r)
                    say(json.dumps(r["fault"]) + " check: lost " + str(r["check"]["lost"]) + ", duplicated "
                        + str(r["check"]["duplicated"]) + ", unverified " + str(r["check"]["unverified"]))  # fmt: skip
    finally:
        engine.dispose()
        if server is not None:
            server.close()
    off = [ph["station"]["latency_ms_p99"] for ph in phases if not ph["forwarding"]]
    on = [ph["station"]["latency_ms_p99"] for ph in phases if ph["forwarding"]]
    lag99 = [ph["lag_s"]["p99"] for ph in phases if ph["forwarding"] and ph["lag_s"]["p99"] is not None]
    steady99 = [ph["lag_s_after_first_push"]["p99"] for ph in phases if ph["forwarding"]]
    result = {
        "benchmark": "site forwarding",
        "machine": {"cpus": os.cpu_count()},
        "stations": args.stations,
        "rate_per_station": args.rate,
        "seconds_per_phase": args.seconds,
        "station_p99_ms_without": off,
        "station_p99_ms_with": on,
        "p99_ratio_with_vs_without": round(statistics.median(on) / statistics.median(off), 4) if on and off else None,
        "lag_p99_s": max(lag99) if lag99 else None,
        "lag_p99_s_after_first_push": max((x for x in steady99 if x is not None), default=None),
        "rows_lost": sum(ph["check"]["lost"] for ph in phases + faults if "check" in ph),
        "rows_duplicated": sum(ph["check"]["duplicated"] for ph in phases + faults if "check" in ph),
        "stations_unverified": sum(ph["check"]["unverified"] for ph in phases + faults if "check" in ph),
        "phases": phases,
        "faults": faults,
    }
    text_out = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text_out + "\n", encoding="utf-8")
    else:
        print(text_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
