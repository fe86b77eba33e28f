"""The camera interface every implementation fulfils (sim, files, genicam).

The pipeline pulls frames with :meth:`Camera.grab`, always with a timeout. A camera
never blocks forever and never hides a lost frame: ``frame_id`` gaps are counted in
:class:`CameraStats`, and a lost device moves the camera to ``FAULT`` and raises
:class:`CameraFault` from ``grab``; listeners get :class:`CameraEvent` notices.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspector.events import GroundTruth


class CameraState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    ACQUIRING = "acquiring"
    FAULT = "fault"


class CameraError(RuntimeError):
    """Configuration or usage error (bad settings, unknown device, wrong state)."""


class CameraFault(RuntimeError):
    """The device was lost or failed while acquiring; the camera is in FAULT."""


class ItemRefused(Exception):
    """A line source could not deliver a usable image for one item (a replayed file that is
    missing, unreadable, not the one its manifest names, or too large): the camera delivers a
    frame marked ``refused`` instead, and the station rejects the item as not inspected."""

    def __init__(self, reason: str, truth: GroundTruth | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.truth = truth


@dataclass(frozen=True)
class Frame:
    """One acquired image, owned by the receiver (never a view into a driver buffer)."""

    item_id: int
    frame_id: int
    t_acquired: float  # time.monotonic() seconds when the frame reached the station
    image: np.ndarray
    camera_serial: str
    truth: GroundTruth | None = None
    refused: str | None = None  # why the source could not deliver this item's image (then ``image`` is empty)


@dataclass
class CameraStats:
    frames: int = 0
    gaps: int = 0  # frames lost between two received frame ids
    timeouts: int = 0
    faults: int = 0
    reconnects: int = 0
    incomplete: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class CameraEventKind(enum.StrEnum):
    FAULT = "fault"
    RECOVERED = "recovered"
    GAP = "gap"


@dataclass(frozen=True)
class CameraEvent:
    kind: CameraEventKind
    camera_serial: str
    message: str
    t: float = field(default_factory=time.monotonic)
    detail: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[CameraEvent], None]


class Camera(ABC):
    """Base class: owns state, stats, gap counting and listeners; drivers fill ``_do_*``."""

    kind: str = "abstract"
    #: Item ids count 1, 2, 3... from the start of a batch, so a late first frame is a gap.
    item_ids_from_one: bool = False
    #: A line source (sim, files, memory) knows its batch: how many items (``None``: until
    #: stopped) and the line period in seconds (0: as fast as they come). A free-running device
    #: (GenICam) has no period; given a batch size it stops after that many frames.
    items: int | None = None
    period_s: float = 0.0

    def __init__(self) -> None:
        self._state = CameraState.CLOSED
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self.stats = CameraStats()
        self._last_frame_id: int | None = None

    # -- public API ---------------------------------------------------------------
    @property
    def state(self) -> CameraState:
        return self._state

    @property
    @abstractmethod
    def serial(self) -> str: ...

    @property
    def finished(self) -> bool:
        """A finite batch was delivered (or lost) to its last item; never for an endless source."""
        return False

    @property
    def test_pattern(self) -> str | None:
        """``None`` for a source of product images; for a test-pattern source (a GenTL simulator), what it is.

        Commands name it on their first progress line: its decisions judge no product.
        """
        return None

    def describe(self) -> dict[str, Any]:
        """Identity and settings, recorded with every batch (ALCOA+)."""
        return {"kind": self.kind, "serial": self.serial}

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def open(self) -> None:
        with self._lock:
            if self._state is not CameraState.CLOSED:
                raise CameraError(f"open() in state {self._state}")
            self._do_open()
            self._state = CameraState.OPEN

    def start(self) -> None:
        with self._lock:
            if self._state is not CameraState.OPEN:
                raise CameraError(f"start() in state {self._state}")
            self._last_frame_id = None
            self._do_start()
            self._state = CameraState.ACQUIRING

    def stop(self) -> None:
        with self._lock:
            if self._state in (CameraState.ACQUIRING, CameraState.FAULT):
                self._do_stop()
                self._state = CameraState.OPEN

    def close(self) -> None:
        with self._lock:
            if self._state is CameraState.CLOSED:
                return
            if self._state in (CameraState.ACQUIRING, CameraState.FAULT):
                with contextlib.suppress(Exception):
                    self._do_stop()
            self._do_close()
            self._state = CameraState.CLOSED

    def grab(self, timeout_s: float) -> Frame | None:
        """The next frame, or ``None`` if none arrived within ``timeout_s``.

        Raises :class:`CameraFault` when the device is lost, :class:`CameraError` when
        the camera is not acquiring.
        """
        if timeout_s <= 0:
            raise ValueError("grab() needs a positive timeout")
        if self._state is CameraState.FAULT:
            raise CameraFault(f"camera {self.serial} is in fault")
        if self._state is not CameraState.ACQUIRING:
            raise CameraError(f"grab() in state {self._state}")
        try:
            frame = self._do_grab(timeout_s)
        except CameraFault as exc:
            self._enter_fault(str(exc))
            raise
        if frame is None:
            if not self.finished:  # the end of a finite batch is no timeout
                self.stats.timeouts += 1
            return None
        self._count(frame)
        return frame

    def recover(self) -> bool:
        """One reconnect attempt while in FAULT; ``True`` once acquiring again.

        The caller (the station) paces the attempts; a camera never retries in a loop
        of its own, so a dead device cannot stall anything.
        """
        with self._lock:
            if self._state is not CameraState.FAULT:
                return self._state is CameraState.ACQUIRING
            try:
                self._do_recover()
            except Exception:
                return False
        self._recovered(f"camera {self.serial} acquiring again")
        return True

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for drivers --------------------------------------------------------------
    def _emit(self, event: CameraEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    def _enter_fault(self, message: str) -> None:
        with self._lock:
            if self._state is not CameraState.FAULT:
                self._state = CameraState.FAULT
                self.stats.faults += 1
        self._emit(CameraEvent(CameraEventKind.FAULT, self.serial, message))

    def _recovered(self, message: str) -> None:
        with self._lock:
            self._state = CameraState.ACQUIRING
            self.stats.reconnects += 1
            self._last_frame_id = None
        self._emit(CameraEvent(CameraEventKind.RECOVERED, self.serial, message))

    def _count(self, frame: Frame) -> None:
        self.stats.frames += 1
        last = self._last_frame_id
        if last is not None and frame.frame_id > last + 1:
            missed = frame.frame_id - last - 1
            self.stats.gaps += missed
            self._emit(
                CameraEvent(
                    CameraEventKind.GAP,
                    self.serial,
                    f"{missed} frame(s) lost before frame {frame.frame_id}",
                    detail={"missed": missed, "after": last, "before": frame.frame_id},
                )
            )
        self._last_frame_id = frame.frame_id

    def _do_recover(self) -> None:
        """Default reconnect: tear down what is left, then open and start again."""
        for teardown in (self._do_stop, self._do_close):
            with contextlib.suppress(Exception):
                teardown()
        self._do_open()
        self._do_start()

    @abstractmethod
    def _do_open(self) -> None: ...

    @abstractmethod
    def _do_start(self) -> None: ...

    @abstractmethod
    def _do_grab(self, timeout_s: float) -> Frame | None: ...

    @abstractmethod
    def _do_stop(self) -> None: ...

    @abstractmethod
    def _do_close(self) -> None: ...
