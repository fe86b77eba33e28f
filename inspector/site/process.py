"""The forwarder in a process of its own, beside the station (``python -m inspector.site.process``).

In the station's process the forwarder's Python work (reading rows, recomputing hashes, talking
to PostgreSQL) would compete for the interpreter lock with the inspection threads; in its own
process it competes only for a core, at a lower priority (nice +10) than the station's threads,
which run at real-time priority where they may. It reads the station's database read-only and
writes its status (lag, errors) to a small JSON file, replaced atomically, that the station and its
screen read. SIGTERM stops it after the push in progress.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

STALE_S = 10.0  # a forwarder writes its status after every push (every 0.2 s) or failed attempt (<= 5 s)

if TYPE_CHECKING:
    from inspector.site.forwarder import ForwardStatus


def write_status(path: Path, status: ForwardStatus) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**status.as_dict(), "written_at": time.time()}) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    """The forwarder's last status, or ``None`` while it has written none (or it is unreadable)."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


class ForwarderProcess:
    """Starts the forwarder process for a station database and stops it (draining first)."""

    def __init__(self, station_db: Path, url: str, station_id: str, status_file: Path, *, interval_s: float = 0.2):
        self.status_file = status_file
        status_file.parent.mkdir(parents=True, exist_ok=True)
        status_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "inspector.site.process", "--db", str(station_db), "--station-id", station_id,
               "--status-file", str(status_file), "--interval", str(interval_s)]  # fmt: skip
        env = {**os.environ, "INSPECTOR_SITE_URL": url}  # not on the command line: ps shows arguments
        self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def status(self) -> dict[str, Any] | None:
        """The forwarder's last status; an ended or silent forwarder says so in ``error``."""
        status = read_status(self.status_file)
        if status is None:
            return None
        if self._proc.poll() is not None and status.get("rows_behind"):
            return {**status, "error": f"the forwarder process ended (exit status {self._proc.returncode})"}
        if self._proc.poll() is None and time.time() - float(status.get("written_at", 0.0)) > STALE_S:
            return {**status, "error": f"the forwarder has reported nothing for {STALE_S:g} s"}
        return status

    def alive(self) -> bool:
        return self._proc.poll() is None

    def stop(self, *, drain_s: float = 10.0) -> dict[str, Any] | None:
        """Wait up to ``drain_s`` for the site to have every row, then stop; the last status."""
        deadline = time.monotonic() + drain_s
        while self.alive() and time.monotonic() < deadline:
            st = self.status()
            if st is not None and st["rows_behind"] == 0 and st["error"] is None:
                break
            time.sleep(0.1)
        if self.alive():
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=30.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        return self.status()


def main(argv: list[str] | None = None) -> int:
    from inspector.site.forwarder import Forwarder

    p = argparse.ArgumentParser(prog="python -m inspector.site.process")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--station-id", required=True)
    p.add_argument("--status-file", type=Path, required=True)
    p.add_argument("--interval", type=float, default=0.2)
    args = p.parse_args(argv)
    url = os.environ.get("INSPECTOR_SITE_URL")
    if not url:
        print("INSPECTOR_SITE_URL is not set", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        os.nice(10)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    fwd = Forwarder(args.db, url, args.station_id, interval_s=args.interval,
                    on_status=lambda s: write_status(args.status_file, s))  # fmt: skip
    fwd.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        write_status(args.status_file, fwd.stop())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
