"""The station in its own process: the HMI is a client that may be closed, crash or be killed.

Real processes throughout: the station (``python -m inspector.station.server``), the HMI
(``python -m ui``, offscreen) where a test kills it, and the line simulator over Modbus on
127.0.0.1. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inspector.events import BatchInProgress, ItemDecided, StationEvent, StationState
from inspector.plc.sim.process import LineSimProcess
from inspector.records.audit import Actor
from inspector.station.client import STATION_LOST
from inspector.station.remote import RemoteClient, attach, open_remote, process_alive
from inspector.station.server import address_file
from tests.support.records import item_count
from tests.support.stations import station_config
from ui.controller import Phase

ROOT = Path(__file__).resolve().parents[2]
START_MS = 120_000


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _kill(client: RemoteClient) -> None:
    """A test's cleanup: the station it started is killed and reaped (never left to warn at collection)."""
    if client.pid is not None and process_alive(client.pid):
        os.kill(client.pid, signal.SIGKILL)
    client._wait(10)


def _records(db: Path) -> dict[int, str]:
    with sqlite3.connect(db) as conn:
        return {int(i): str(d) for i, d in conn.execute("SELECT item_id, decision FROM items")}


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the test's stations publish their address; any station left running is killed."""
    folder = tmp_path / "run"
    yield folder
    for path in folder.glob("station-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError):
            os.kill(int(json.loads(path.read_text())["pid"]), signal.SIGKILL)


def test_the_station_serves_its_client_from_its_own_process(ui_project: Path, run_dir: Path) -> None:
    db = ui_project / "var" / "db.sqlite"
    config = station_config("tablet", items=120, line_rate=6000, defect_rate=0.3, db=db)
    client = open_remote(config, ui_project, run_dir)
    try:
        assert client.pid is not None and client.pid != os.getpid() and process_alive(client.pid)
        assert client.info.recipe_id == "tablet-demo" and client.status().state is StationState.IDLE
        # The station file it was started with may name the site database: this user's only.
        assert (run_dir / "station-demo.config.json").stat().st_mode & 0o777 == 0o600
        events: list[StationEvent] = []
        client.subscribe(events.append)
        actor = client.login("operator", "operator-demo")
        assert actor.role == "operator"
        # The HMI acts for the user who logged in through this station, nobody else.
        with pytest.raises(PermissionError, match="not logged in"):
            client.start_batch(None, None, actor=Actor("qa", "qa", "Forged QA"))
        with pytest.raises(Exception, match=r"(?i)password"):  # the station's own error, across the socket
            client.login("operator", "wrong password")
        bid = client.start_batch("LOT-P1", None, actor=actor)
        assert bid == "LOT-P1"
        assert client.wait_finished(60)
        frame = client.latest()
        assert frame is not None and frame.image.shape[:2] == client.info.frame_shape[:2]
        assert client.latest() is frame  # nothing newer: the frame did not cross the socket again
        report = client.stop_batch()
        assert report.reconciled, report.checks
        assert report.result.items == 120 and report.records is not None and report.records["inspected"] == 120
        _wait(lambda: sum(isinstance(e, ItemDecided) for e in events) == 120, 10, "every decision event")
        decided = [e.decision.item_id for e in events if isinstance(e, ItemDecided)]
        # Keyed by item, not by order: the acquisition thread decides a frame gap while the
        # inference thread is still on an earlier item.
        assert sorted(decided) == list(range(1, 121))
        pid = client.pid
        assert client.close() == "closing"  # no batch runs and nobody else is attached: the station ends
        _wait(lambda: not process_alive(pid), 30, "the station process to end")
        assert not address_file(run_dir, "demo").exists()
        assert len(_records(db)) == 120
    finally:
        _kill(client)


def test_a_killed_hmi_leaves_the_batch_running_and_a_reopened_one_finishes_it(
    make_hmi: Any, qtbot: Any, ui_project: Path, run_dir: Path
) -> None:
    db = ui_project / "var" / "inspector.sqlite"
    items = 900  # 9 s at 100 items/s
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "INSPECTOR_RUN_DIR": str(run_dir)}
    cmd = [
        sys.executable, "-m", "ui", "--root", str(ui_project), "--product", "tablet", "--db", str(db),
        "--items", str(items), "--line-rate", "6000", "--seed", "5", "--defect-rate", "0.2",
    ]  # fmt: skip
    hmi = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait(lambda: item_count(db) >= 150 or hmi.poll() is not None, START_MS / 1e3, "the HMI's batch to get going")
        assert hmi.poll() is None, "the HMI ended by itself"
        os.killpg(hmi.pid, signal.SIGKILL)
        hmi.wait(10)
        at_kill = item_count(db)
        station = json.loads(address_file(run_dir, "demo").read_text())
        assert process_alive(station["pid"]), "killing the HMI killed the station"
        _wait(lambda: item_count(db) > at_kill + 100, 20, "the batch to go on without the HMI")

        # Reopen the HMI: it attaches to the running station and follows the batch it left.
        w = make_hmi("tablet", db=db, items=items, line_rate=6000, isolated=True, run_dir=run_dir)
        c = w.controller
        qtbot.waitUntil(lambda: c.phase == Phase.RUNNING and c.tally.inspected > at_kill, timeout=START_MS)
        client = c.client
        assert isinstance(client, RemoteClient) and client.pid == station["pid"]
        # The demo HMI ends a finite batch once its source is done; the report is the station's.
        qtbot.waitUntil(lambda: c.phase == Phase.READY and c.last_report is not None, timeout=60_000)
        report = c.last_report
        assert report is not None and report.reconciled, report.checks
        result = report.result
        assert result.items == items
        assert c.tally.inspected == items  # counters resumed from the station, then every decision
        plc = result.plc
        # The PLC got a decision for every item, each on time: no gap while the HMI was dead. (A
        # camera frame lost to a loaded machine is a not-inspected reject: decided, not a gap.)
        assert plc is not None and (plc.decisions, plc.late, plc.missing, plc.unresolved) == (items, 0, 0, 0)
        rows = _records(db)
        assert sorted(rows) == list(range(1, items + 1))  # nothing lost
        w.close()  # a demo's window ends its station
        _wait(lambda: not process_alive(station["pid"]), 30, "the station to end with the demo's window")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(hmi.pid, signal.SIGKILL)
        hmi.wait(10)


def test_a_reattaching_client_gets_the_batch_where_it_stands(ui_project: Path, run_dir: Path) -> None:
    db = ui_project / "var" / "db.sqlite"
    config = station_config("tablet", items=400, line_rate=6000, db=db)
    first = open_remote(config, ui_project, run_dir)
    try:
        actor = first.login("operator", "operator-demo")
        first.start_batch("LOT-R1", None, actor=actor)
        _wait(lambda: (f := first.latest()) is not None and f.item_id >= 100, 30, "100 items")
        first._disconnect()  # gone without a word, as a crashed HMI goes
        second = attach(run_dir, "demo")
        assert second is not None and second.status().state is StationState.RUNNING
        events: list[StationEvent] = []
        second.subscribe(events.append)
        assert second.wait_finished(60)
        second.stop_batch()
        _wait(lambda: any(isinstance(e, ItemDecided) and e.decision.item_id == 400 for e in events), 10, "item 400")
        head = events[0]
        assert isinstance(head, BatchInProgress) and head.batch_id == "LOT-R1" and head.inspected >= 100
        later = [e.decision.item_id for e in events if isinstance(e, ItemDecided)]
        # The catch-up and the stream meet exactly: none counted twice, none missed. Decisions are
        # keyed by item, not ordered (a frame gap is decided beside the inference of an earlier item).
        assert len(set(later)) == len(later) and set(later) <= set(range(1, 401))
        assert set(later).isdisjoint(d.item_id for d in head.recent)
        assert head.inspected + len(later) == 400
        assert sorted(_records(db)) == list(range(1, 401))
        assert second.shutdown() == "closing"
        first._wait(30)  # the process this test started: ended and reaped
        assert first.pid is not None and not process_alive(first.pid)
    finally:
        _kill(first)


def test_a_killed_station_shows_within_a_second_and_the_line_rejects_what_follows(
    make_hmi: Any, qtbot: Any, ui_project: Path, run_dir: Path, tmp_path: Path
) -> None:
    sim_json = tmp_path / "line.json"
    sim = LineSimProcess.start("modbus", "--line-rate", "6000", "--gate-delay-ms", "500", "--json", str(sim_json))
    db = ui_project / "var" / "inspector.sqlite"
    try:
        w = make_hmi(
            "tablet", db=db, line_rate=6000, plc_url=f"modbus://127.0.0.1:{sim.port}", isolated=True, run_dir=run_dir
        )
        c = w.controller
        qtbot.waitUntil(lambda: c.phase == Phase.RUNNING and c.tally.inspected >= 200, timeout=START_MS)
        client = c.client
        assert isinstance(client, RemoteClient) and client.pid is not None
        t0 = time.monotonic()
        os.kill(client.pid, signal.SIGKILL)
        qtbot.waitUntil(lambda: w.banner.isVisible() and STATION_LOST in w.banner.text.text(), timeout=5_000)
        shown_s = time.monotonic() - t0
        assert c.phase == Phase.ERROR
        assert shown_s < 1.0, f"the HMI showed the lost station after {shown_s:.3f} s"
        assert c.state is StationState.FAULT
        assert [e.alarm.code for e in c.alarms.unacknowledged()][-1:] == [STATION_LOST]
        time.sleep(1.0)  # what was on the conveyor reaches the gate (500 ms)
        # Reopening the recipe starts a new station process; it closes the batch the crash left running.
        c.open("tablet")
        qtbot.waitUntil(lambda: c.phase == Phase.READY, timeout=START_MS)
        fresh = c.client
        assert isinstance(fresh, RemoteClient) and fresh.pid not in (None, client.pid)
        assert [a.code for a in fresh.info.startup_alarms] == ["BATCH_ABORTED"]
        w.close()
    finally:
        summary = sim.stop()
    outcomes = {int(i): o for i, o in json.loads(sim_json.read_text())["outcomes"].items()}
    station_accepts = {i for i, d in _records(db).items() if d == "accept"}
    line_accepts = {i for i, o in outcomes.items() if o == "accepted"}
    last_decided = max(_records(db))
    after = [i for i in outcomes if i > last_decided]
    assert len(after) >= 50, summary  # the line went on after the station died
    assert line_accepts <= station_accepts  # positive release: only what the station accepted passed
    assert all(outcomes[i] != "accepted" for i in after)


def test_closing_the_hmi_of_a_line_station_leaves_its_batch_running(
    make_hmi: Any, qtbot: Any, ui_project: Path, run_dir: Path
) -> None:
    """Not a demo (the station's own camera and PLC; batches started by hand): the screen closes, the batch goes on."""
    db = ui_project / "var" / "inspector.sqlite"
    w = make_hmi("tablet", db=db, demo=False, camera="sim", line_rate=6000, isolated=True, run_dir=run_dir)
    c = w.controller
    qtbot.waitUntil(lambda: c.phase == Phase.READY, timeout=START_MS)
    c.start_batch("LOT-CLOSE-1")
    qtbot.waitUntil(lambda: c.phase == Phase.RUNNING and c.tally.inspected >= 50, timeout=30_000)
    client = c.client
    assert isinstance(client, RemoteClient) and client.pid is not None
    pid = client.pid
    w.close()  # the operator closes the screen
    assert process_alive(pid), "closing the screen ended the station"
    at_close = item_count(db)
    _wait(lambda: item_count(db) > at_close + 100, 20, "the batch to go on without a screen")
    again = attach(run_dir, "demo")
    assert again is not None and again.pid == pid and again.status().state is StationState.RUNNING
    assert again.shutdown() == "closing"  # ended on purpose: the batch is ended and reconciled
    _wait(lambda: not process_alive(pid), 30, "the station to end")
    with sqlite3.connect(db) as conn:
        (state,) = conn.execute("SELECT state FROM batches WHERE batch_id = 'LOT-CLOSE-1'").fetchone()
    assert state == "ended"
