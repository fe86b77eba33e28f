"""The one place where station events become Qt signals.

The station calls its listeners from pipeline threads (acquisition, inference) and from
whichever thread stops it. The listener here never touches a widget or a QObject's state:
it appends the event to a thread-safe deque and, at most once until the GUI has drained
it, emits a private signal connected with ``QueuedConnection``. The GUI thread then drains
the deque in order and emits the public signals, so they always arrive in the GUI thread.

Why coalesce: at 100 items/s a queued signal per decision costs the inference thread an
event allocation and a wake-up of the GUI thread per item, and every wake-up competes for
the GIL with the pipeline. Decisions are therefore drained on a short timer (20 Hz), while
state changes, alarms and the end of a batch wake the GUI at once. Events keep their order,
so a batch end is always seen after every decision of that batch.

When the HMI switches to another station the bridge cancels its subscription and bumps a
generation number, so events of the old station still on their way are dropped on arrival.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal

from inspector.events import (
    AlarmAcknowledged,
    AlarmRaised,
    BatchEnded,
    BatchInProgress,
    ItemDecided,
    StateChanged,
    StationEvent,
)
from inspector.station.client import StationClient, Unsubscribe

DRAIN_MS = 50


class StationBridge(QObject):
    """Qt signals for one station at a time; public signals always arrive in the GUI thread."""

    state_changed = pyqtSignal(object)  # StationState
    decision = pyqtSignal(object)  # ItemDecision, one per item
    decisions = pyqtSignal(object)  # list[ItemDecision]: the same decisions in batches (cheaper for counters)
    alarm = pyqtSignal(object)  # Alarm
    alarm_acknowledged = pyqtSignal(object)  # AlarmAcknowledged
    batch_ended = pyqtSignal(object)  # BatchResult
    batch_in_progress = pyqtSignal(object)  # BatchInProgress: attached to a station mid-batch

    # Emitted from pipeline threads; queued into the GUI thread.
    _wake = pyqtSignal()

    def __init__(self, parent: QObject | None = None, *, drain_ms: int = DRAIN_MS) -> None:
        super().__init__(parent)
        self._generation = 0
        self._counter = itertools.count(1)
        self._events: collections.deque[tuple[int, StationEvent]] = collections.deque()
        self._woken = threading.Event()  # a wake-up is already on its way
        self._subscription: Unsubscribe | None = None
        self._wake.connect(self.drain, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]
        self._timer = QTimer(self)
        self._timer.setInterval(drain_ms)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    def attach(self, client: StationClient) -> None:
        """Follow ``client``'s station from now on; events of a previously attached one are dropped."""
        self.detach()
        self._generation = next(self._counter)
        self._subscription = client.subscribe(self._listener_for(self._generation))

    def detach(self) -> None:
        """Unsubscribe and drop every event still on its way (the station is being closed)."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.cancel()
        self._generation = next(self._counter)
        self._events.clear()

    def _listener_for(self, generation: int) -> Callable[[StationEvent], None]:
        events, woken, wake = self._events, self._woken, self._wake.emit

        def listener(event: StationEvent) -> None:
            # Pipeline thread: append (atomic on a deque) and maybe emit a queued signal. Nothing else.
            events.append((generation, event))
            if not isinstance(event, ItemDecided) and not woken.is_set():
                woken.set()
                wake()

        return listener

    def drain(self) -> None:
        """GUI thread: hand every pending event to the public signals, in order."""
        self._woken.clear()
        batch: list[Any] = []
        gen = self._generation
        while True:
            try:
                generation, event = self._events.popleft()
            except IndexError:
                break
            if generation != gen:
                continue
            if isinstance(event, ItemDecided):
                batch.append(event.decision)
                continue
            self._flush(batch)
            batch = []
            if isinstance(event, StateChanged):
                self.state_changed.emit(event.state)
            elif isinstance(event, AlarmRaised):
                self.alarm.emit(event.alarm)
            elif isinstance(event, AlarmAcknowledged):
                self.alarm_acknowledged.emit(event)
            elif isinstance(event, BatchEnded):
                self.batch_ended.emit(event.result)
            elif isinstance(event, BatchInProgress):
                self.batch_in_progress.emit(event)
        self._flush(batch)

    def _flush(self, batch: list[Any]) -> None:
        if not batch:
            return
        self.decisions.emit(batch)
        if self.receivers(self.decision):
            for d in batch:
                self.decision.emit(d)

    def stop(self) -> None:
        self._timer.stop()
