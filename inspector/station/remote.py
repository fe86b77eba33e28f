"""A :class:`StationClient` for a station in its own process (:mod:`inspector.station.server`).

:func:`open_remote` attaches to the station already serving this station id (its address file
in the run folder) or starts one, detached from the caller (own session, no pipe to it), so
that closing, crashing or killing the user interface leaves a running batch running.

:class:`RemoteClient` serves the same calls as the in-process client:

- calls go over a small pool of authenticated connections (one per call in flight);
  ``status`` and ``latest`` give up after :data:`POLL_TIMEOUT_S`, so a hung station cannot
  freeze the screen that polls them;
- ``latest`` sends the token of the frame it has, and the station answers ``None`` when it has
  nothing newer, so a frame crosses the socket once;
- events arrive on a connection of their own, read by one thread. When the station's process
  ends (EOF) or no message came for :data:`LOST_AFTER_S` (it sends a heartbeat every 0.25 s),
  the listener gets ``StateChanged(FAULT)`` and a ``STATION_LOST`` alarm, and from then on
  ``status`` reports FAULT from what it last knew instead of raising.
- ``close`` tells the station this client is gone; the station ends only when no batch runs
  and no other client is attached.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from inspector.config.station import StationConfig
from inspector.events import Alarm, AlarmRaised, AlarmSeverity, StateChanged, StationEvent, StationState
from inspector.pipeline.station import StationError
from inspector.processes import process_alive
from inspector.station.client import LatestFrame, StationInfo, StationStatus
from inspector.station.server import address_file, log_file

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 2.0  # status / latest: a screen's poll gives up after this
LOST_AFTER_S = 1.0  # no event or heartbeat for this long: the station is lost
START_TIMEOUT_S = 180.0  # a station opens (model verified, camera and PLC connected) within this
RUN_DIR_ENV = "INSPECTOR_RUN_DIR"

Listener = Callable[[StationEvent], None]
_OUTLIVING: list[subprocess.Popen[bytes]] = []  # stations this process started that outlive their client


class StationLost(StationError):
    """The station's process is gone or does not answer."""


def default_run_dir(root: Path) -> Path:
    """Where stations publish their address files: ``$INSPECTOR_RUN_DIR`` or ``<root>/var/run``."""
    env = os.environ.get(RUN_DIR_ENV)
    return Path(env) if env else root / "var" / "run"


class _Subscription:
    def __init__(self, client: RemoteClient, conn: Connection, listener: Listener) -> None:
        self.client = client
        self.conn = conn
        self.listener = listener
        self.cancelled = threading.Event()
        self.thread = threading.Thread(target=self._read, name="station-events", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        why = ""
        try:
            while not self.cancelled.is_set():
                if not self.conn.poll(LOST_AFTER_S):
                    why = f"no message from the station for {LOST_AFTER_S:g} s"
                    break
                kind, payload = self.conn.recv()
                if kind == "events":
                    for event in payload:
                        self.client._seen(event)
                        self.listener(event)
        except (EOFError, OSError) as exc:
            why = f"the station's connection closed ({type(exc).__name__})"
        finally:
            with contextlib.suppress(OSError):
                self.conn.close()
        if not self.cancelled.is_set():
            for event in self.client._lost_events(why):
                self.listener(event)

    def cancel(self) -> None:
        self.cancelled.set()
        with contextlib.suppress(OSError):
            self.conn.close()


class RemoteClient:
    """A :class:`~inspector.station.client.StationClient` over a station process (see the module)."""

    def __init__(
        self, port: int, key: bytes, *, pid: int | None = None, process: subprocess.Popen[bytes] | None = None
    ) -> None:
        self._address = ("127.0.0.1", port)
        self._key = key
        self.pid = pid
        self._process = process
        self._pool: list[Connection] = []
        self._pool_lock = threading.Lock()
        self._subscriptions: list[_Subscription] = []
        self._lost: str | None = None
        self._state = StationState.IDLE
        self._status: StationStatus | None = None
        self._latest: LatestFrame | None = None
        self._latest_lock = threading.Lock()
        self._info: StationInfo = self._call("info", timeout=POLL_TIMEOUT_S)
        self._status = self._call("status", timeout=POLL_TIMEOUT_S)
        self._state = self._status.state

    # -- plumbing -----------------------------------------------------------------------------
    def _connect(self) -> Connection:
        try:
            return Client(self._address, authkey=self._key)
        except (OSError, EOFError) as exc:
            raise self._mark_lost(f"cannot reach the station ({exc})") from exc

    def _call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``method`` at the station (``timeout``: give up waiting for the answer; never a filter's name)."""
        if self._lost is not None:
            raise StationLost(f"the station is lost: {self._lost}")
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self._connect()
        try:
            conn.send((method, args, kwargs))
            if timeout is not None and not conn.poll(timeout):
                raise TimeoutError(f"the station did not answer {method!r} within {timeout:g} s")
            kind, value = conn.recv()
        except (EOFError, OSError, TimeoutError) as exc:
            with contextlib.suppress(OSError):
                conn.close()
            raise self._mark_lost(f"{method}: {exc or type(exc).__name__}") from exc
        with self._pool_lock:
            self._pool.append(conn)
        if kind == "error":
            raise value
        return value

    def _mark_lost(self, why: str) -> StationLost:
        if self._lost is None:
            self._lost = why
            log.error("station lost: %s", why)
        return StationLost(f"the station is lost: {self._lost}")

    def _seen(self, event: StationEvent) -> None:
        if isinstance(event, StateChanged):
            self._state = event.state

    def _lost_events(self, why: str) -> list[StationEvent]:
        self._mark_lost(why)
        previous, self._state = self._state, StationState.FAULT
        alarm = Alarm(
            code="STATION_LOST",  # = STATION_LOST, written out for the alarm catalogue's scan
            message=f"The inspection station stopped answering ({why}). The line's positive release rejects every "
            "item without a decision; restart the station.",
            source="hmi",
            severity=AlarmSeverity.FAULT,
            detail={"pid": self.pid},
        )
        return [StateChanged(StationState.FAULT, previous), AlarmRaised(alarm)]

    # -- the StationClient protocol -------------------------------------------------------------
    @property
    def info(self) -> StationInfo:
        return self._info

    def status(self) -> StationStatus:
        if self._lost is None:
            with contextlib.suppress(StationLost):
                self._status = self._call("status", timeout=POLL_TIMEOUT_S)
        assert self._status is not None
        if self._lost is not None:
            return replace(self._status, state=StationState.FAULT, plc_connected=None)
        return self._status

    def subscribe(self, listener: Listener) -> _Subscription:
        conn = self._connect()
        conn.send(("subscribe", (), {}))
        sub = _Subscription(self, conn, listener)
        self._subscriptions.append(sub)
        return sub

    def latest(self) -> LatestFrame | None:
        with self._latest_lock:
            have = self._latest
        if self._lost is not None:
            return have
        try:
            newer = self._call("latest", have.token if have is not None else None, timeout=POLL_TIMEOUT_S)
        except StationLost:
            return have
        if newer is None:
            return have
        frame: LatestFrame = newer
        with self._latest_lock:
            self._latest = frame
        return frame

    def start_batch(self, batch_id: str | None, operator: str | None, actor: Any = None) -> str:
        return str(self._call("start_batch", batch_id, operator, actor=actor))

    def wait_finished(self, timeout_s: float) -> bool:
        return bool(self._call("wait_finished", timeout_s))

    def run_startup_challenge(self, actor: Any = None) -> Any:
        return self._call("run_startup_challenge", actor=actor)

    def stop_batch(self) -> Any:
        return self._call("stop_batch")

    def acknowledge_alarms(self, alarm_ids: Any, who: str, actor: Any = None) -> Any:
        return self._call("acknowledge_alarms", list(alarm_ids), who, actor=actor)

    def review(self, request: Any, actor: Any = None) -> Any:
        return self._call("review", request, actor=actor)

    def login(self, username: str, password: str) -> Any:
        return self._call("login", username, password)

    def logout(self, actor: Any, *, idle: bool = False) -> None:
        self._call("logout", actor=actor, idle=idle)

    def idle_logout_s(self) -> int | None:
        value = self._call("idle_logout_s")
        return None if value is None else int(value)

    def audit_entries(self, **filters: str) -> Any:
        query: dict[str, Any] = dict(filters)
        return self._call("audit_entries", **query)

    def verify_audit(self) -> Any:
        return self._call("verify_audit")

    def releases(self) -> Any:
        return self._call("releases")

    def sign_release(self, object_type: str, meaning: str, username: str, password: str, reason: str) -> Any:
        return self._call("sign_release", object_type, meaning, username, password, reason)

    def batch_report(self, batch_id: str) -> Any:
        return self._call("batch_report", batch_id)

    def sign_batch_report(self, batch_id: str, meaning: str, username: str, password: str, reason: str) -> Any:
        return self._call("sign_batch_report", batch_id, meaning, username, password, reason)

    def heatmap(self, image: Any, unit_reasons: Any) -> Any:
        return self._call("heatmap", image, None if unit_reasons is None else list(unit_reasons))

    def shutdown(self, *, wait_s: float = 60.0) -> str:
        """End the station (a demo's, or one with no batch running): its batch ends and reconciles."""
        answer = "lost"
        if self._lost is None:
            answer = str(self._call("shutdown", timeout=POLL_TIMEOUT_S))
        self._disconnect()
        self._wait(wait_s)
        return answer

    def _wait(self, wait_s: float) -> None:
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(wait_s)
        elif self.pid is not None:  # attached to a station another process started
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and process_alive(self.pid):
                time.sleep(0.05)

    def _disconnect(self) -> None:
        if self._process is not None:
            self._process.poll()  # a station process that ended (killed, crashed) is reaped here
        for sub in self._subscriptions:
            sub.cancel()
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self, *, wait_s: float = 60.0) -> str:
        """Leave the station: ``"stays"`` (a batch runs or another client is attached), ``"closing"``
        (it ends: records closed before this returns when this client started it) or ``"lost"``."""
        answer = "lost"
        if self._lost is None:
            with contextlib.suppress(StationLost):
                answer = str(self._call("close", bool(self._subscriptions), timeout=POLL_TIMEOUT_S))
        self._disconnect()
        if answer == "closing":
            self._wait(wait_s)
        elif self._process is not None and self._process.poll() is None:
            # The station goes on without this client: its process is not ours to wait for, but its
            # Popen stays referenced (collected, it would warn that the process still runs).
            _OUTLIVING.append(self._process)
        return answer


def _read_address(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError):
        return None


def attach(run_dir: Path, station_id: str) -> RemoteClient | None:
    """The client of the station serving ``station_id`` now, or ``None`` (none, or a stale file)."""
    path = address_file(run_dir, station_id)
    data = _read_address(path)
    if data is None:
        return None
    try:
        return RemoteClient(int(data["port"]), bytes.fromhex(data["key"]), pid=int(data["pid"]))
    except (StationLost, KeyError, ValueError):
        log.info("stale station address %s: removed", path)
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def spawn(config: StationConfig, root: Path, run_dir: Path, *, timeout_s: float = START_TIMEOUT_S) -> RemoteClient:
    """Start the station of ``config`` in its own process and return its client once it serves."""
    run_dir.mkdir(parents=True, exist_ok=True)
    address = address_file(run_dir, config.station_id)
    config_file = run_dir / f"station-{config.station_id}.config.json"
    config_file.unlink(missing_ok=True)  # made again, readable by this user only (it may name the site database)
    fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(config.model_dump_json())
    log_path = log_file(run_dir, config.station_id)
    with log_path.open("wb") as log_out:
        process = subprocess.Popen(
            [sys.executable, "-m", "inspector.station.server", "--config", str(config_file), "--root", str(root),
             "--run-dir", str(run_dir)],
            stdin=subprocess.DEVNULL, stdout=log_out, stderr=subprocess.STDOUT, start_new_session=True, cwd=root,
        )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = _read_address(address)
        if data is not None and data.get("pid") == process.pid:
            return RemoteClient(int(data["port"]), bytes.fromhex(data["key"]), pid=process.pid, process=process)
        if process.poll() is not None:
            raise StationError(_failure(log_path, process.returncode))
        time.sleep(0.05)
    process.kill()
    raise StationError(f"the station did not open within {timeout_s:g} s (log: {log_path})")


def _failure(log_path: Path, code: int | None) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    lines = [ln for ln in text.splitlines() if ln.startswith("STATION FAILED:")]
    if lines:
        return lines[-1].removeprefix("STATION FAILED:").strip()
    return f"the station process ended (exit {code}) before it served; log: {log_path}"


def open_remote(config: StationConfig, root: Path, run_dir: Path | None = None) -> RemoteClient:
    """Attach to the station serving ``config.station_id``, or start it in its own process."""
    run_dir = run_dir if run_dir is not None else default_run_dir(root)
    client = attach(run_dir, config.station_id)
    if client is not None:
        log.info("attached to the running station %s (pid %s)", config.station_id, client.pid)
        return client
    return spawn(config, root, run_dir)
