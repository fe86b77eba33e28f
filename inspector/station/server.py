"""The station in its own process, served to user interfaces over an authenticated local socket.

Why a process: the HMI's event loop, its paint and a full-window grab hold the GIL of the
process they run in. In the HMI's process a grab stalled a 1 ms pipeline thread for 60 ms,
so items went late. Here the pipeline has a process (and a GIL) of its own; the HMI is a
client that may stall, crash or be closed without the line noticing.

- :class:`StationServer` serves one open station (:class:`InProcessClient`) on 127.0.0.1,
  a random port and a random 32-byte key (``multiprocessing.connection``: HMAC challenge
  on connect). It writes ``station-<id>.json`` (port, key, pid; mode 0600) in its run
  folder, so only a user who can read that file can attach.
- Calls are messages ``(method, args, kwargs)`` answered ``("ok", value)`` or
  ``("error", exception)``: the :class:`StationClient` methods and nothing else.
- Events go to each subscriber through a bounded queue drained by that client's own thread, so the
  pipeline's listener only appends; a subscriber that cannot keep up loses the oldest
  events (its counters fall short until it attaches again and gets :class:`BatchInProgress`), never stalls
  the station. A heartbeat every :data:`HEARTBEAT_S` lets a client see a hung station.
- A subscriber that attaches while a batch runs first gets :class:`BatchInProgress`: the
  counts so far and the latest decisions, so a reopened HMI shows the batch it left.
- Users: the HMI acts for the user who logged in *through this server*: a call that names an
  actor this server did not log in (or that logged out) is refused, and the station's own
  role checks and audit trail apply as in-process.
- The station ends with the server: on ``shutdown`` (the last client closing while no batch
  runs), SIGTERM or SIGINT it ends a running batch, reconciles and closes its records.
  A finite (demo) batch whose source is done is ended by the server when no client is
  attached, so its records reconcile without an HMI.

Run by :func:`inspector.station.remote.open_remote` as ``python -m inspector.station.server``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from inspector.config.station import StationConfig
from inspector.events import BatchEnded, BatchInProgress, BatchStarted, ItemDecided, StationEvent, StationState
from inspector.realtime import lower_thread_priority
from inspector.records.audit import Actor
from inspector.station.client import InProcessClient, open_in_process

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.25
EVENT_QUEUE = 65536  # events a subscriber may fall behind by before the oldest are dropped
RECENT_KEPT = 600  # decisions a reattaching HMI gets (its latency window)
HEATMAP_WAIT_S = 0.25  # a heat map waits at most this long for the gap after a decision

#: What a client may call: the StationClient protocol, served by InProcessClient.
CALLS = frozenset(
    {
        "info", "status", "latest", "start_batch", "wait_finished", "run_startup_challenge", "stop_batch",
        "acknowledge_alarms", "review", "login", "logout", "idle_logout_s", "audit_entries", "verify_audit",
        "releases", "sign_release", "batch_report", "sign_batch_report", "heatmap",
    }
)  # fmt: skip
#: Calls that act for a user: the ``actor`` must be one this server logged in.
ACTOR_CALLS = frozenset({"start_batch", "run_startup_challenge", "acknowledge_alarms", "review", "logout"})


def address_file(run_dir: Path, station_id: str) -> Path:
    return run_dir / f"station-{station_id}.json"


def log_file(run_dir: Path, station_id: str) -> Path:
    return run_dir / f"station-{station_id}.log"


class _Fanout:
    """The station's one listener here: keeps where the running batch stands and feeds subscribers.

    One lock orders both, so a subscriber added mid-batch gets a :class:`BatchInProgress` that
    holds exactly the decisions before its first event: none counted twice, none missed.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batch_id: str | None = None
        self.inspected = 0
        self.accepted = 0
        self.by_reason: collections.Counter[str] = collections.Counter()
        self.recent: collections.deque[Any] = collections.deque(maxlen=RECENT_KEPT)
        self.subscribers: list[_Subscriber] = []
        self.decided = threading.Condition()  # notified at every decision: a gap before the next item

    def after_next_decision(self, timeout_s: float) -> None:
        """Wait (bounded) until the station decides its next item: the inference thread is then idle
        for most of an item period, the time for a screen's heavy request (a heat map)."""
        with self.decided:
            self.decided.wait(timeout_s)

    def __call__(self, event: StationEvent) -> None:
        if isinstance(event, ItemDecided):
            with self.decided:
                self.decided.notify_all()
        with self.lock:
            if isinstance(event, ItemDecided):
                d = event.decision
                self.inspected += 1
                if d.accept:
                    self.accepted += 1
                else:
                    self.by_reason[d.reason] += 1
                self.recent.append(d)
            elif isinstance(event, BatchStarted):
                self.batch_id = event.batch.batch_id
                self.inspected = self.accepted = 0
                self.by_reason.clear()
                self.recent.clear()
            elif isinstance(event, BatchEnded):
                self.batch_id = None
            for sub in self.subscribers:
                sub(event)

    def add(self, sub: _Subscriber) -> None:
        with self.lock:
            if self.batch_id is not None:
                # Accepted items' images are not needed to redraw counters and the reject strip.
                recent = tuple(d if not d.accept else replace(d, image=None) for d in self.recent)
                sub(BatchInProgress(self.batch_id, self.inspected, self.accepted, dict(self.by_reason), recent))
            self.subscribers = [s for s in self.subscribers if s.alive] + [sub]

    def remove(self, sub: _Subscriber) -> None:
        with self.lock:
            self.subscribers = [s for s in self.subscribers if s is not sub and s.alive]

    def attached(self) -> int:
        with self.lock:
            return sum(1 for s in self.subscribers if s.alive)


class _Subscriber:
    """One client's event stream: the station's threads append, the client's serving thread sends."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.queue: collections.deque[StationEvent] = collections.deque(maxlen=EVENT_QUEUE)
        self.wake = threading.Event()
        self.alive = True

    def __call__(self, event: StationEvent) -> None:
        # Pipeline thread: append and set a flag. Nothing that can block.
        self.queue.append(event)
        if not isinstance(event, ItemDecided):
            self.wake.set()

    def send_until_gone(self) -> None:
        try:
            while self.alive:
                self.wake.wait(0.02 if self.queue else HEARTBEAT_S)
                self.wake.clear()
                batch = []
                while self.queue:
                    batch.append(self.queue.popleft())
                self.conn.send(("events", batch) if batch else ("beat", time.time()))
        except (OSError, EOFError, ValueError):
            pass  # the client went away (closed, crashed, killed): the station goes on
        finally:
            self.alive = False
            with contextlib.suppress(OSError):
                self.conn.close()


class StationServer:
    """One open station served to clients (see the module's docstring)."""

    def __init__(self, client: InProcessClient, run_dir: Path) -> None:
        self.client = client
        self.run_dir = run_dir
        self.key = secrets.token_bytes(32)
        self.listener = Listener(("127.0.0.1", 0), authkey=self.key)
        self.port = int(self.listener.address[1])
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._actors: list[Actor] = []  # logged in through this server, not yet logged out
        self.fanout = _Fanout()
        self._unsubscribe = client.subscribe(self.fanout)
        self.address = address_file(run_dir, client.info.station_id)

    # -- the address file ---------------------------------------------------------------------
    def publish(self) -> None:
        """Write the address file (mode 0600, atomically): clients find the station by it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        info = self.client.info
        data = {
            "station_id": info.station_id,
            "pid": os.getpid(),
            "port": self.port,
            "key": self.key.hex(),
            "recipe": f"{info.recipe_id}@{info.recipe_version}",
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = self.address.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.address)

    def _unpublish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.address.read_text(encoding="utf-8"))
            if data.get("pid") == os.getpid():
                self.address.unlink()

    # -- serving ----------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        threading.Thread(target=self._accept_loop, name="accept", daemon=True).start()
        while not self.stopping.wait(0.5):
            self._end_finished_batch_unattended()
        self._close()

    def _accept_loop(self) -> None:
        n = 0
        while not self.stopping.is_set():
            try:
                conn = self.listener.accept()
            except (OSError, EOFError):
                if self.stopping.is_set():
                    return
                continue  # a connection that failed the key challenge, or went away during it
            except Exception:  # multiprocessing.AuthenticationError
                log.warning("a client failed the station key challenge")
                continue
            n += 1
            threading.Thread(target=self._serve, args=(conn,), name=f"client-{n}", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        lower_thread_priority()  # a screen's calls (heat maps, reports) wait for the inspection path
        try:
            while not self.stopping.is_set():
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    return
                method, args, kwargs = message
                if method == "subscribe":  # the connection carries events only from now on
                    sub = _Subscriber(conn)
                    self.fanout.add(sub)
                    sub.send_until_gone()
                    self.fanout.remove(sub)
                    return
                if method == "close":
                    self._close_requested(conn, subscribed=bool(args and args[0]))
                    return
                if method == "shutdown":
                    conn.send(self._shutdown_requested())
                    continue
                conn.send(self._call(method, args, kwargs))
        except (EOFError, OSError):
            return

    def _call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
        try:
            if method not in CALLS:
                raise ValueError(f"the station serves no call {method!r}")
            if method in ACTOR_CALLS:
                self._check_actor(kwargs.get("actor", args[-1] if args and isinstance(args[-1], Actor) else None))
            if method == "info":
                return "ok", self.client.info
            if method == "latest":
                return "ok", self._latest(*args)
            if method == "heatmap" and self.client.status().state is StationState.RUNNING:
                # A heat map is a second model run: start it just after a decision, in the gap
                # before the next item, not on top of that item's inference.
                self.fanout.after_next_decision(HEATMAP_WAIT_S)
            value = getattr(self.client, method)(*args, **kwargs)
            if method == "login":
                with self._lock:
                    self._actors.append(value)
            elif method == "logout":
                gone: Any = kwargs.get("actor", args[0] if args else None)
                with self._lock, contextlib.suppress(ValueError):
                    self._actors.remove(gone)
            return "ok", value
        except Exception as exc:  # the client re-raises it
            return "error", _portable(exc)

    def _check_actor(self, actor: Actor | None) -> None:
        if actor is None:
            return  # the station's own rule applies (a demo acts as the station, production refuses)
        with self._lock:
            known = actor in self._actors
        if not known:
            raise PermissionError(f"{actor.username!r} is not logged in at this station")

    def _latest(self, token: object = None) -> Any:
        """The newest frame, or ``None`` when it is the one the client has (same token)."""
        latest = self.client.latest()
        if latest is None:
            return None
        remote_token = (latest.item_id, latest.decision is not None)
        if remote_token == token:
            return None
        return replace(latest, token=remote_token)

    def attached(self) -> int:
        return self.fanout.attached()

    def _close_requested(self, conn: Connection, *, subscribed: bool) -> None:
        """A client closes: the station stays while a batch runs or another client is attached.

        ``subscribed``: the closing client's own event stream, which may still be open, is not another.
        """
        running = self.client.status().state.in_batch
        others = self.attached() - (1 if subscribed else 0)
        stays = running or others > 0
        with contextlib.suppress(OSError):
            conn.send(("ok", "stays" if stays else "closing"))
        if not stays:
            self.stopping.set()

    def _shutdown_requested(self) -> tuple[str, Any]:
        """A demo's HMI closing ends its demo line; a production station ends only when idle."""
        running = self.client.status().state.in_batch
        if running and self.client.info.mode == "production":
            return "error", PermissionError("a production station's batch is ended by a user (Stop), not by a screen")
        self.stopping.set()
        return "ok", "closing"

    def _end_finished_batch_unattended(self) -> None:
        """A finite batch whose source is done ends here when no client is attached to end it."""
        if self.attached():
            return
        with contextlib.suppress(Exception):
            status = self.client.status()
            if status.state == StationState.RUNNING and status.source_finished:
                self.client.wait_finished(10.0)
                report = self.client.stop_batch()
                log.info("finite batch ended without a client: %s", report)
                if not self.attached():
                    self.stopping.set()  # nothing left to do and nobody to show it: the station ends

    def _close(self) -> None:
        self._unpublish()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._unsubscribe.cancel()
        try:
            self.client.close()  # ends a running batch, reconciles, closes the records
        finally:
            for s in list(self.fanout.subscribers):
                s.alive = False
                with contextlib.suppress(OSError):
                    s.conn.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its text (the client raises it)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def serve(
    config: StationConfig, root: Path, run_dir: Path, *, ready: Callable[[StationServer], None] | None = None
) -> int:
    """Open the station, publish its address, serve until told to stop; 0 on a clean end."""
    client = open_in_process(config, root)
    server = StationServer(client, run_dir)

    def stop(_signum: int, _frame: object) -> None:
        server.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.publish()
    if ready is not None:
        ready(server)
    log.info("station %s serving on 127.0.0.1:%d", config.station_id, server.port)
    server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inspector.station.server", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the station file's content as JSON")
    parser.add_argument("--root", type=Path, required=True, help="project root")
    parser.add_argument("--run-dir", type=Path, required=True, help="where the address file is written")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = StationConfig.model_validate_json(args.config.read_text(encoding="utf-8"))
        return serve(config, args.root, args.run_dir)
    except Exception as exc:
        print(f"STATION FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        log.debug("station failed", exc_info=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
