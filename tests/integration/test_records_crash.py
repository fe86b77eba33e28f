"""SIGKILL a process while it writes records: everything it reported committed survives intact.

The child (this module, run with ``python -c``) writes items without pause through a
:class:`RecordWriter` and prints ``COMMITTED <n>`` after each commit, ``n`` being the number
of items in the batch it knows are committed. The parent kills the child's process group
mid-batch, checks the database, restarts the child on the same database and kills it again.
Every record is derived from its item id, so the parent knows exactly what must be there.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.records import ItemRecord, RecordStore, RecordWriter

ROOT = Path(__file__).resolve().parents[2]
BATCH = "CRASH-001"
# Extra wait before each kill, so the kills land at different points of the write/commit cycle.
KILL_DELAYS_S = (0.0, 0.009, 0.023, 0.041)
ITEMS_PER_ROUND = 1000  # committed items the parent waits for before each kill
ROUND_TIMEOUT_S = 60.0
CHILD_LIFETIME_S = 90.0  # the child stops by itself if the parent never kills it

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX process groups and SIGKILL"),
]

_T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def expected_record(i: int) -> ItemRecord:
    """The record the child writes for item ``i`` (image path and hash are filled in by the writer)."""
    reject = i % 8 == 0
    return ItemRecord(
        batch_id=BATCH,
        item_id=i,
        frame_id=10 * i + 1,
        t_frame=1000.0 + i * 0.05,
        created_utc=(_T0 + timedelta(milliseconds=50 * i)).isoformat(timespec="microseconds"),
        decision="reject" if reject else "accept",
        reason="defect" if reject else "ok",
        deadline_met=True,
        label="particle" if reject else "ok",
        confidence=(i % 97) / 97,
        class_scores={"ok": (i % 89) / 89, "particle": 1 - (i % 89) / 89},
        anomaly_score=(i % 13) * 0.125,
        latency={"queue_ms": (i % 7) * 0.5, "infer_ms": 4.0 + (i % 5), "total_ms": 9.5},
        truth_label="particle" if reject else "ok",
    )


def expected_image(i: int) -> np.ndarray | None:
    if i % 8:
        return None
    return np.random.default_rng(i).integers(0, 256, size=(40, 24), dtype=np.uint8)


def child_main(db: str, images: str) -> None:
    """Child process: resume after the last committed item and write until killed."""
    with RecordStore(db) as store:
        first = len(store.items(BATCH))  # committed items always form a prefix 0..first-1

    def on_commit(committed: int) -> None:
        sys.stdout.write(f"COMMITTED {first + committed}\n")
        sys.stdout.flush()

    with RecordWriter(db, images, on_commit=on_commit) as writer:
        i = first
        deadline = time.monotonic() + CHILD_LIFETIME_S
        while time.monotonic() < deadline:
            if writer.pending > 2000:  # keep the queue bounded without ever losing a record
                time.sleep(0.001)
                continue
            writer.submit(expected_record(i), expected_image(i))
            i += 1


_CHILD_CODE = "import sys; from tests.integration.test_records_crash import child_main; child_main(*sys.argv[1:3])"


def _start_child(db: Path, images: Path, stderr: Path) -> subprocess.Popen[bytes]:
    with open(stderr, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, str(db), str(images)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            bufsize=0,
            start_new_session=True,  # its own process group, so killpg hits the child and nothing else
        )


class _Lines:
    """Reads the child's stdout with a deadline (no reader thread) and tracks the last COMMITTED count."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._fd, selectors.EVENT_READ)
        self._buf = b""
        self.committed = -1
        self.eof = False

    def read(self, timeout: float) -> None:
        if self.eof or not self._sel.select(timeout):
            return
        chunk = os.read(self._fd, 1 << 16)
        if not chunk:
            self.eof = True
            return
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        for line in lines:
            if line.startswith(b"COMMITTED "):
                n = int(line.split()[1])
                assert n >= self.committed, "committed count never goes back"
                self.committed = n

    def close(self) -> None:
        self._sel.close()


def _kill_after(proc: subprocess.Popen[bytes], target: int, delay: float, stderr: Path) -> int:
    """Wait until the child reports ``target`` committed items, SIGKILL it, return the last count reported."""
    lines = _Lines(proc)
    try:
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        while lines.committed < target:
            if lines.eof or time.monotonic() > deadline:
                err = stderr.read_bytes().decode(errors="replace")[-3000:]
                pytest.fail(f"child reported {lines.committed} < {target} (exit {proc.poll()}); stderr:\n{err}")
            lines.read(min(1.0, max(0.0, deadline - time.monotonic())))
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-batch: the child keeps writing until this instant
        proc.wait(timeout=10)
        # Lines already in the pipe were printed after their commit, so they count too.
        drain_deadline = time.monotonic() + 5
        while not lines.eof and time.monotonic() < drain_deadline:
            lines.read(0.5)
        return lines.committed
    finally:
        lines.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def _check_database(db: Path, reported: int) -> int:
    """Integrity, and every committed record intact; returns the number of committed items."""
    with RecordStore(db) as store:
        assert store.integrity_check() == "ok"
        assert store.batch(BATCH)["state"] == "running", "killed mid-batch"
        got = store.items(BATCH)
    ids = [r.item_id for r in got]
    assert ids == list(range(len(ids))), "transactions are atomic and in order, so committed items form a prefix"
    assert len(ids) >= reported, f"child reported {reported} committed but only {len(ids)} survived"
    for rec in got:
        img = expected_image(rec.item_id)
        if img is None:
            assert rec.image_path is None and rec.image_sha256 is None
        else:
            data = Path(str(rec.image_path)).read_bytes()
            assert hashlib.sha256(data).hexdigest() == rec.image_sha256, f"image of item {rec.item_id}"
            assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), img)
        bare = replace(rec, image_path=None, image_sha256=None)
        assert bare == expected_record(rec.item_id), f"item {rec.item_id} differs from what was written"
    return len(ids)


def test_sigkill_mid_batch_loses_nothing_committed(tmp_path: Path) -> None:
    db, images, stderr = tmp_path / "station.db", tmp_path / "images", tmp_path / "child.stderr"
    with RecordStore(db) as store:
        store.start_batch(
            BATCH,
            product="vial",
            recipe_id="vial-10ml",
            recipe_version="3",
            recipe_sha256="a" * 64,
            model_id="vial-cls",
            model_version="1.2.0",
            model_sha256="b" * 64,
            camera_serial="SIM-0001",
            camera_settings={"exposure_us": 800},
        )

    committed = 0
    for delay in KILL_DELAYS_S:
        proc = _start_child(db, images, stderr)
        reported = _kill_after(proc, committed + ITEMS_PER_ROUND, delay, stderr)
        assert proc.returncode == -signal.SIGKILL, "the child was killed, it did not finish"
        committed = _check_database(db, reported)

    # After the last crash the database still takes new writes and reconciles.
    with RecordStore(db) as store:
        store.insert_items([expected_record(committed)])
        store.end_batch(BATCH, {"inspected": committed + 1})
        counts = store.counts(BATCH)
        assert counts["inspected"] == committed + 1 == counts["accepted"] + counts["rejected"]
        assert store.integrity_check() == "ok"
