"""Run slow jobs (model load, batch stop, export, heat maps) in a QThreadPool, off the GUI thread.

A job is a plain callable; its result or exception comes back through queued signals, so
the callbacks always run in the GUI thread. The pool belongs to the window that made it,
and :meth:`Jobs.shutdown` waits for every job and removes the pool's threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import QObject, QRunnable, Qt, QThreadPool, pyqtSignal

log = logging.getLogger(__name__)


def _forget_foreign_thread() -> None:
    """Drop the ``_DummyThread`` CPython registers when a Qt pool thread touches ``threading``.

    A foreign thread that calls ``threading.current_thread()`` (``Thread.join`` and logging
    do) gets a placeholder that CPython < 3.13 never removes, so it would look like a live
    thread forever, long after Qt ended the real one.
    """
    active: Any = getattr(threading, "_active", None)
    dummy: Any = getattr(threading, "_DummyThread", None)
    lock: Any = getattr(threading, "_active_limbo_lock", None)
    if not isinstance(active, dict) or dummy is None or lock is None:
        return
    with lock:
        t = active.get(threading.get_ident())
        if isinstance(t, dummy):
            del active[threading.get_ident()]


class _Signals(QObject):
    done = pyqtSignal(object)
    failed = pyqtSignal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], signals: _Signals) -> None:
        super().__init__()
        self.fn = fn
        self.signals = signals

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:  # reported to the GUI, never lost in a pool thread
            log.debug("job failed", exc_info=True)
            self.signals.failed.emit(exc)
        else:
            self.signals.done.emit(result)
        finally:
            _forget_foreign_thread()


class Jobs(QObject):
    """A small QThreadPool with callbacks delivered in the GUI thread."""

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        # Two: a model load or a batch stop never waits behind an export or a heat map.
        self.pool.setMaxThreadCount(max_threads)
        self._live: set[_Signals] = set()
        self._closed = False

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> bool:
        """Run ``fn()`` in the pool; ``on_done(result)`` / ``on_error(exc)`` run in the GUI thread."""
        if self._closed:
            return False
        signals = _Signals()  # lives in the GUI thread, so its queued slots run there
        self._live.add(signals)

        def done(result: Any) -> None:
            self._live.discard(signals)
            if on_done is not None:
                on_done(result)

        def failed(exc: Any) -> None:
            self._live.discard(signals)
            if on_error is not None:
                on_error(exc)
            else:
                log.error("background job failed: %s", exc)

        signals.done.connect(done, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]
        signals.failed.connect(failed, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]
        self.pool.start(_Job(fn, signals))
        return True

    @property
    def busy(self) -> int:
        """Jobs submitted whose callbacks have not run yet."""
        return len(self._live)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Refuse new jobs, wait for the running ones and end the pool's threads."""
        self._closed = True
        self.pool.clear()
        return bool(self.pool.waitForDone(timeout_ms))
