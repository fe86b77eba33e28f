"""Background record writer: the inspection hot path only enqueues, a thread stores.

The writer thread owns its own SQLite connection (connections are per-thread), saves
reject images as PNG with their sha256, and commits queued messages in groups (one
transaction per ``group_window_s`` or 256 rows), so one fsync covers many records. With a
window of 0 it commits whatever is queued at once; under load the queue fills during each
fsync, so groups still form. ``on_items`` tells which item rows each commit made durable
(``synchronous=FULL``) and which were refused: the PLC sink releases an accept only then.

Nothing is dropped silently:

- ``submit`` raises :class:`RecordQueueFull` when the (large) queue is full; the station
  turns that into an alarm.
- A message the database refuses is reported through ``on_error`` and re-raised by the
  next ``flush``/``close``. The other messages of its group are still committed.
- If an image cannot be saved the item row is still committed, without the image and with
  ``image_not_saved`` in its ``alarm`` field, and the error is reported.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.realtime import raise_thread_priority
from inspector.records import audit
from inspector.records.store import (
    BATCH_ID_PATTERN,
    ItemRecord,
    RecordConstraintError,
    RecordError,
    RecordStore,
    StoreClosedError,
    Synchronous,
    UnknownBatchError,
    UnknownItemError,
    utc_now,
)

log = logging.getLogger(__name__)

IMAGE_NOT_SAVED = "image_not_saved"
_MAX_KEPT_ERRORS = 100  # beyond this only the count grows, so a flood cannot exhaust memory


class RecordQueueFull(RecordError):
    """The writer's queue is full: the record was NOT queued. The station raises an alarm."""


class RecordWriterError(RecordError):
    """One or more records could not be stored; ``errors`` holds the first of them."""

    def __init__(self, message: str, errors: Sequence[BaseException] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


@dataclass(frozen=True)
class _Item:
    record: ItemRecord
    image: np.ndarray | None


@dataclass(frozen=True)
class _Alarm:
    source: str
    code: str
    message: str
    batch_id: str | None
    created_utc: str
    uid: str | None = None
    severity: str | None = None
    detail: dict[str, Any] | None = None
    audited: bool = False  # a security event: the audit trail gets an entry with the alarm


@dataclass(frozen=True)
class _PlcAck:
    batch_id: str
    item_id: int
    ack: str
    at_utc: str


class _Stop:
    """Queued by close(): everything queued before it is stored, then the thread ends."""


_Message = _Item | _Alarm | _PlcAck
ItemKey = tuple[str, int]  # (batch_id, item_id)
ItemsCallback = Callable[[Sequence[ItemKey], Sequence[ItemKey]], None]


def _key(msg: _Item) -> ItemKey:
    return (msg.record.batch_id, msg.record.item_id)


def _describe(msg: _Message) -> str:
    if isinstance(msg, _Item):
        return f"item {msg.record.item_id} of batch {msg.record.batch_id!r}"
    if isinstance(msg, _Alarm):
        return f"alarm {msg.code!r} from {msg.source!r}"
    return f"PLC ack of item {msg.item_id} of batch {msg.batch_id!r}"


class RecordWriter:
    """Stores item records, alarms and PLC acknowledgements from a background thread.

    ``submit*`` methods are thread-safe and return at once. ``flush`` waits until everything
    submitted so far is committed; ``close`` flushes and joins the thread. Callbacks run in
    the writer thread: ``on_commit(committed_items_total)`` after every commit,
    ``on_items(committed, refused)`` with the ``(batch_id, item_id)`` of the item rows a commit
    stored and of those it refused, and ``on_error(exc)`` for every record that could not be
    stored as given.
    """

    def __init__(
        self,
        store_path: str | Path,
        images_dir: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        max_queue: int = 100_000,
        group_window_s: float = 0.020,
        group_max_rows: int = 256,
        fsync_images: bool = True,
        on_error: Callable[[BaseException], None] | None = None,
        on_commit: Callable[[int], None] | None = None,
        on_items: ItemsCallback | None = None,
        open_timeout_s: float = 30.0,
        realtime: bool = False,
    ) -> None:
        self.store_path = Path(store_path)
        self.images_dir = Path(images_dir).resolve()
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self._synchronous: Synchronous = synchronous
        self._window = group_window_s
        self._max_rows = group_max_rows
        self._fsync_images = fsync_images
        self._on_error = on_error
        self._on_commit = on_commit
        self._on_items = on_items
        self._realtime = realtime  # the thread runs at the inspection threads' priority (it releases accepts)

        self._queue: queue.Queue[_Message | _Stop] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()  # guards _closed + enqueue, so nothing lands after the stop marker
        self._cond = threading.Condition()  # guards the counters and errors below
        self._closed = False
        self._submitted = 0
        self._done = 0  # messages handled: committed or reported as failed
        self._committed = 0  # item rows committed
        self._commits = 0  # transactions committed (one fsync each with synchronous=FULL)
        self._errors: list[BaseException] = []
        self._error_count = 0
        self._fatal: BaseException | None = None

        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inspector-record-writer", daemon=True)
        self._thread.start()
        if not self._ready.wait(open_timeout_s):
            self._closed = True
            self._queue.put(_Stop())
            raise RecordWriterError(f"record writer: opening {self.store_path} took longer than {open_timeout_s} s")
        fatal = self.fatal_error
        if fatal is not None:
            self._closed = True
            self._thread.join()
            raise fatal
        # Daemon thread + atexit: an interpreter exit without close() still stores the queue.
        atexit.register(self._close_at_exit)

    # -- hot path --------------------------------------------------------------------------

    def submit(self, record: ItemRecord, image: np.ndarray | None = None) -> None:
        """Queue an item record and, optionally, its image to save as PNG. Never blocks.

        The image is copied: camera buffers are reused, and the saved PNG must be this frame.
        """
        if image is not None:
            if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
                raise TypeError(f"image must be a 2-D or 3-D numpy array, got {type(image).__name__}")
            image = image.copy()
        self._put(_Item(record, image))

    def submit_alarm(
        self,
        source: str,
        code: str,
        message: str,
        *,
        batch_id: str | None = None,
        created_utc: str | None = None,
        uid: str | None = None,
        severity: str | None = None,
        detail: dict[str, Any] | None = None,
        audited: bool = False,
    ) -> None:
        """Queue an alarm, time-stamped now (not when it is committed) unless ``created_utc`` says when.

        ``audited``: a security event; its audit entry commits with the alarm row.
        """
        self._put(_Alarm(source, code, message, batch_id, created_utc or utc_now(), uid, severity, detail, audited))

    def update_plc_ack(self, batch_id: str, item_id: int, ack: str, *, at_utc: str | None = None) -> None:
        """Queue the PLC acknowledgement of an already submitted item; time-stamped now by default."""
        self._put(_PlcAck(batch_id, item_id, ack, at_utc or utc_now()))

    def _put(self, msg: _Message) -> None:
        with self._lock:
            if self._closed:
                raise StoreClosedError("record writer is closed")
            if self._fatal is not None:
                raise RecordWriterError(f"record writer stopped: {self._fatal}", [self._fatal])
            with self._cond:
                self._submitted += 1
            try:
                self._queue.put_nowait(msg)
            except queue.Full:
                with self._cond:
                    self._submitted -= 1
                raise RecordQueueFull(
                    f"record queue full ({self._queue.maxsize} waiting); {_describe(msg)} was not queued"
                ) from None

    # -- state -----------------------------------------------------------------------------

    @property
    def committed(self) -> int:
        """Item rows committed so far."""
        with self._cond:
            return self._committed

    @property
    def commits(self) -> int:
        """Transactions committed so far (each one fsync of the WAL with ``synchronous=FULL``)."""
        with self._cond:
            return self._commits

    @property
    def pending(self) -> int:
        """Messages submitted but not yet committed or failed."""
        with self._cond:
            return self._submitted - self._done

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def fatal_error(self) -> BaseException | None:
        """Why the writer thread stopped (could not open the store, or died), ``None`` while healthy."""
        with self._cond:
            return self._fatal

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is committed; raise what went wrong meanwhile.

        ``timeout`` bounds a stall, not the wait: a writer that commits a backlog (a batch of
        reject images at line rate) is waited for as long as it goes on committing; one that
        commits nothing for ``timeout`` seconds raises ``TimeoutError`` (nothing queued is dropped).
        """
        with self._cond:
            target = self._submitted
            seen = self._done
            deadline = time.monotonic() + timeout
            while self._done < target and self._fatal is None:
                if self._done != seen:
                    seen, deadline = self._done, time.monotonic() + timeout
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"record writer: {target - self._done} of {target} messages not committed, none for {timeout} s"
                    )
                self._cond.wait(remaining)
        self._raise_errors()

    def close(self, timeout: float = 30.0) -> None:
        """Store everything queued, stop and join the thread, then raise any unreported error."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._close_at_exit)
        deadline = time.monotonic() + timeout
        while self._thread.is_alive():
            try:
                self._queue.put(_Stop(), timeout=0.1)  # only waits while the queue is full
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            raise TimeoutError(f"record writer: {self.pending} messages still not committed after {timeout} s")
        self._raise_errors()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception:
            log.exception("record writer: error while closing at interpreter exit")

    def _raise_errors(self) -> None:
        with self._cond:
            errors, count, fatal = self._errors, self._error_count, self._fatal
            lost = self._submitted - self._done
            self._errors, self._error_count = [], 0
        if fatal is not None:
            raise RecordWriterError(
                f"record writer stopped: {fatal}; {lost} submitted messages were not stored", [fatal, *errors]
            )
        if count:
            raise RecordWriterError(f"{count} record(s) could not be stored as given; first: {errors[0]}", errors)

    # -- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        if self._realtime:
            raise_thread_priority()
        try:
            store = RecordStore(self.store_path, synchronous=self._synchronous)
        except BaseException as exc:
            with self._cond:
                self._fatal = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if isinstance(first, _Stop):
                    break
                group: list[_Message] = [first]
                deadline = time.monotonic() + self._window
                while len(group) < self._max_rows:
                    remaining = deadline - time.monotonic()
                    try:
                        msg = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(msg, _Stop):
                        stop = True
                        break
                    group.append(msg)
                self._store_group(store, group)
        except BaseException as exc:
            # A bug here must not look like a healthy writer: flush/close/submit report it from now on.
            log.exception("record writer thread died")
            with self._cond:
                self._fatal = exc
                self._cond.notify_all()
            self._notify_error(exc)
        finally:
            store.close()

    def _store_group(self, store: RecordStore, group: list[_Message]) -> None:
        prepared: list[_Message] = []
        new_images: dict[int, Path] = {}
        for i, msg in enumerate(group):
            if isinstance(msg, _Item) and msg.image is not None:
                record, path = self._save_image(store, msg.record, msg.image, set(new_images.values()))
                if path is not None:
                    new_images[i] = path
                msg = _Item(record, None)
            prepared.append(msg)
        if new_images and self._fsync_images:
            try:
                _fsync_dirs({p.parent for p in new_images.values()})
            except OSError as exc:
                self._report(RecordWriterError(f"image folder not synced to disk: {exc}", [exc]))

        stored: list[ItemKey] = []
        refused: list[ItemKey] = []
        commits = 0
        try:
            with store.transaction():
                for run in _runs(prepared):
                    _apply(store, run)
            stored = [_key(m) for m in prepared if isinstance(m, _Item)]
            commits = 1
        except Exception:
            # One bad message must not take the good ones with it: store them one by one.
            for i, msg in enumerate(prepared):
                try:
                    _apply(store, [msg])
                except Exception as exc:
                    if i in new_images:
                        new_images[i].unlink(missing_ok=True)  # ours (created exclusively); no row refers to it
                    self._report(RecordWriterError(f"{_describe(msg)} not stored: {exc}", [exc]))
                    if isinstance(msg, _Item):
                        refused.append(_key(msg))
                else:
                    commits += 1
                    if isinstance(msg, _Item):
                        stored.append(_key(msg))
        with self._cond:
            self._committed += len(stored)
            self._commits += commits
            self._done += len(group)
            committed = self._committed
            self._cond.notify_all()
        if self._on_items is not None and (stored or refused):
            try:
                self._on_items(stored, refused)
            except Exception as exc:
                log.exception("record writer: on_items callback failed")
                self._report(exc)
        if self._on_commit is not None and stored:
            try:
                self._on_commit(committed)
            except Exception as exc:
                log.exception("record writer: on_commit callback failed")
                self._report(exc)

    def _save_image(
        self, store: RecordStore, record: ItemRecord, image: np.ndarray, claimed: set[Path]
    ) -> tuple[ItemRecord, Path | None]:
        """Write ``images_dir/<batch>/<item>.png`` exclusively; on failure keep the record, flagged.

        ``claimed`` are the images saved earlier in this (not yet committed) group.
        """
        try:
            if not BATCH_ID_PATTERN.match(record.batch_id):
                raise RecordConstraintError(f"batch id {record.batch_id!r} is not path-safe")
            ok, buf = cv2.imencode(".png", image)
            if not ok:
                raise RecordError(f"PNG encoding failed for an image of shape {image.shape} {image.dtype}")
            data = buf.tobytes()
            folder = self.images_dir / record.batch_id
            folder.mkdir(exist_ok=True)
            final = folder / f"{int(record.item_id)}.png"
            tmp = folder / f".{int(record.item_id)}.png.{os.getpid()}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                if self._fsync_images:
                    os.fsync(fh.fileno())  # the image must be durable before the row that names it
            try:
                try:
                    os.link(tmp, final)  # atomic and never overwrites an existing image
                except FileExistsError:
                    if final in claimed or _is_recorded(store, record):
                        raise RecordError(f"{final} already exists; refusing to overwrite a recorded image") from None
                    # Left by a crash between saving the image and committing its row: no record names it.
                    # Keep it aside for the investigation rather than deleting it.
                    os.replace(final, final.with_name(f"{final.name}.orphan-{time.time_ns()}"))
                    os.link(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        except Exception as exc:
            self._report(
                RecordWriterError(
                    f"item {record.item_id} of batch {record.batch_id!r}: image not saved, "
                    f"record kept with alarm {IMAGE_NOT_SAVED!r}: {exc}",
                    [exc],
                )
            )
            alarm = IMAGE_NOT_SAVED if record.alarm is None else f"{record.alarm}; {IMAGE_NOT_SAVED}"
            return replace(record, image_path=None, image_sha256=None, alarm=alarm), None
        digest = hashlib.sha256(data).hexdigest()
        return replace(record, image_path=str(final), image_sha256=digest), final

    def _report(self, exc: BaseException) -> None:
        with self._cond:
            self._error_count += 1
            if len(self._errors) < _MAX_KEPT_ERRORS:
                self._errors.append(exc)
        self._notify_error(exc)

    def _notify_error(self, exc: BaseException) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(exc)
        except Exception:
            log.exception("record writer: on_error callback failed")


def _is_recorded(store: RecordStore, record: ItemRecord) -> bool:
    try:
        store.item(record.batch_id, record.item_id)
    except (UnknownItemError, UnknownBatchError):
        return False
    return True


def _runs(messages: list[_Message]) -> list[list[_Message]]:
    """Split into runs of consecutive items (inserted with one call) and single other messages."""
    runs: list[list[_Message]] = []
    for msg in messages:
        if isinstance(msg, _Item) and runs and isinstance(runs[-1][0], _Item):
            runs[-1].append(msg)
        else:
            runs.append([msg])
    return runs


def _apply(store: RecordStore, run: list[_Message]) -> None:
    first = run[0]
    if isinstance(first, _Item):
        store.insert_items([m.record for m in run if isinstance(m, _Item)])
    elif isinstance(first, _Alarm):
        with store.transaction():
            store.add_alarm(
                first.source,
                first.code,
                first.message,
                batch_id=first.batch_id,
                created_utc=first.created_utc,
                uid=first.uid,
                severity=first.severity,
                detail=first.detail,
            )
            if first.audited:
                audit.append(
                    store,
                    audit.SYSTEM_ACTOR,
                    "security.event",
                    object_type="alarm",
                    object_id=first.uid or first.code,
                    new={"code": first.code, "source": first.source, "message": first.message, "batch": first.batch_id},
                    at_utc=first.created_utc,
                )
    else:
        store.set_plc_ack(first.batch_id, first.item_id, first.ack, at_utc=first.at_utc)


def _fsync_dirs(dirs: set[Path]) -> None:
    # New directory entries (the linked PNGs) must be durable too; not possible on Windows.
    if not hasattr(os, "O_DIRECTORY"):
        return
    for d in dirs:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
