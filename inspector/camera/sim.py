"""Simulated and replay cameras that deliver items on a line schedule.

All three behave like a line camera with a small buffer: item ``i`` is exposed at
``t0 + i * period``; a frame not fetched within ``buffer_depth`` periods is lost and the
gap shows in ``frame_id`` (so the station accounts for it). ``t_acquired`` is the
exposure time, so any lag of the station shows in its latency.

- :class:`SimCamera` renders items (ground truth attached for scoring) ahead of time;
- :class:`FilesCamera` replays a manifest folder; an entry it cannot use (missing, a directory,
  unreadable, not the file the manifest hashed, larger than the station's frame) is delivered as
  a frame marked ``refused``, never skipped;
- :class:`MemoryCamera` replays pre-made frames, optionally closed-loop (benchmarks).

Each offers fault injection for tests and demos: :meth:`kill`, :meth:`revive`,
:meth:`inject_corrupt`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.camera.base import Camera, CameraError, CameraFault, Frame, ItemRefused
from inspector.camera.imagefile import MAX_SIDE, ImageRefused, read_image_file
from inspector.events import GroundTruth
from inspector.manifest import read_manifest
from inspector.synth import derive_seed, render
from inspector.synth.generate import choose_label
from inspector.synth.line import LinePresentation, present_on_line
from inspector.taxonomy import Product

Item = tuple[np.ndarray, GroundTruth | None]


class ScheduledCamera(Camera):
    """Line-timed delivery of items from a source; subclasses provide ``_item(index)``."""

    item_ids_from_one = True

    def __init__(
        self,
        *,
        serial: str,
        line_rate_per_min: float | None,
        items: int | None = None,
        buffer_depth: int = 3,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        if line_rate_per_min is not None and line_rate_per_min <= 0:
            raise ValueError("line_rate_per_min must be positive")
        self._serial = serial
        self.period_s = 60.0 / line_rate_per_min if line_rate_per_min else 0.0
        self.items = items
        self.buffer_depth = buffer_depth
        self._ready = ready  # closed loop: deliver only when the consumer is ready
        self._next = 0
        self._t0 = 0.0
        self._dead = False
        self._corrupt = 0
        self._corrupt_kind = "wrong_size"

    @property
    def serial(self) -> str:
        return self._serial

    @property
    def finished(self) -> bool:
        """All ``items`` delivered or lost (a finite batch is over)."""
        return self.items is not None and self._next >= self.items

    # -- fault injection --------------------------------------------------------------
    def kill(self) -> None:
        """Simulate a pulled cable: grabs fail and reconnects fail until :meth:`revive`."""
        self._dead = True

    def revive(self) -> None:
        self._dead = False

    def inject_corrupt(self, n: int = 1, kind: str = "wrong_size") -> None:
        """Deliver the next ``n`` frames damaged: ``wrong_size`` or ``truncated`` (half the rows)."""
        if kind not in ("wrong_size", "truncated", "wrong_dtype"):
            raise ValueError(f"unknown corruption {kind!r}")
        self._corrupt, self._corrupt_kind = n, kind

    # -- Camera hooks ---------------------------------------------------------------------
    def _do_open(self) -> None:
        if self._dead:
            raise CameraFault(f"camera {self.serial} does not answer")

    def _do_start(self) -> None:
        if self._dead:
            raise CameraFault(f"camera {self.serial} does not answer")
        if self._t0 == 0.0 or self._next == 0:
            self._t0 = time.monotonic() + 0.02
        else:
            # After a stop or a reconnect the line kept moving: resume at the current time.
            self._next = max(self._next, self._index_at(time.monotonic()))

    def _do_stop(self) -> None:
        pass

    def _do_close(self) -> None:
        pass

    def _do_recover(self) -> None:
        if self._dead:
            raise CameraFault(f"camera {self.serial} still does not answer")
        self._next = max(self._next, self._index_at(time.monotonic()))

    def _index_at(self, t: float) -> int:
        if self.period_s <= 0:
            return self._next
        return max(0, int((t - self._t0) / self.period_s) + 1)

    def _do_grab(self, timeout_s: float) -> Frame | None:
        if self._dead:
            raise CameraFault(f"camera {self.serial}: device lost")
        if self.finished:
            time.sleep(min(timeout_s, 0.01))
            return None
        deadline = time.monotonic() + timeout_s
        if self._ready is not None:
            while not self._ready():
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.0001)
        if self.period_s > 0:
            t_exp = self._t0 + self._next * self.period_s
            now = time.monotonic()
            if t_exp > now:
                if t_exp > deadline:
                    time.sleep(max(0.0, deadline - now))
                    return None
                time.sleep(t_exp - now)
            else:
                # Frames older than the buffer holds were overwritten: they are lost.
                while now - (self._t0 + self._next * self.period_s) > self.buffer_depth * self.period_s:
                    self._next += 1
                    if self.items is not None and self._next >= self.items:
                        return None
                t_exp = self._t0 + self._next * self.period_s
        else:
            t_exp = time.monotonic()
        index = self._next
        self._next += 1  # taken: a source that fails on it cannot stall the line on one item
        refused: str | None = None
        try:
            image, truth = self._item(index)
        except ItemRefused as exc:
            image, truth, refused = np.zeros((0, 0), np.uint8), exc.truth, exc.reason
        except Exception as exc:
            raise CameraError(f"camera {self.serial}: item {index + 1} not delivered: {exc}") from exc
        if self._dead:
            raise CameraFault(f"camera {self.serial}: device lost")
        if self._corrupt > 0 and refused is None:
            self._corrupt -= 1
            image = self._damage(image)
        return Frame(
            item_id=index + 1,
            frame_id=index + 1,
            t_acquired=t_exp,
            image=image,
            camera_serial=self.serial,
            truth=truth,
            refused=refused,
        )

    def _damage(self, image: np.ndarray) -> np.ndarray:
        if self._corrupt_kind == "truncated":
            return image[: image.shape[0] // 2].copy()
        if self._corrupt_kind == "wrong_dtype":
            return image.astype(np.float32)
        return cv2.resize(image, (image.shape[1] // 2 + 3, image.shape[0] // 2))

    def _item(self, index: int) -> Item:
        raise NotImplementedError


class SimCamera(ScheduledCamera):
    """Rendered items at line rate. A render-ahead thread keeps grabs cheap."""

    kind = "sim"

    def __init__(
        self,
        product: Product | str,
        *,
        line_rate_per_min: float,
        seed: int = 0,
        defect_rate: float = 0.05,
        nuisance: float = 1.0,
        items: int | None = None,
        serial: str = "SIM-0",
        ahead: int = 8,
        labels: Sequence[str] | None = None,
        line: LinePresentation | None = None,
    ) -> None:
        super().__init__(serial=serial, line_rate_per_min=line_rate_per_min, items=items)
        self.product = Product(product)
        self.line = line if line is not None and line.active else None  # where and how the line presents items
        self.seed = seed
        self.defect_rate = defect_rate
        self.nuisance = nuisance
        self.ahead = ahead
        self._labels = list(labels) if labels is not None else None
        self._cache: dict[int, Item] = {}
        self._cond = threading.Condition()
        self._want = 0
        self._stop_render = False
        self._render_thread: threading.Thread | None = None

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "product": self.product.value,
            "seed": self.seed,
            "defect_rate": self.defect_rate,
            "nuisance": self.nuisance,
            **({"line": asdict(self.line)} if self.line is not None else {}),
            "line_rate_per_min": 60.0 / self.period_s if self.period_s else None,
        }

    def label_of(self, index: int) -> str:
        if self._labels is not None:
            return self._labels[index % len(self._labels)]
        return choose_label(self.product, self.seed, index, self.defect_rate)

    def render_item(self, index: int) -> Item:
        label = self.label_of(index)
        seed = derive_seed(self.seed, index)
        r = render(self.product, label, seed, self.nuisance)
        image = r.image if self.line is None else present_on_line(r.image, self.line, seed)[0]
        return image, GroundTruth(label=r.label, pockets=r.pockets, source="sim")

    def _do_start(self) -> None:
        # Render the first item before the line clock starts: the first render builds the
        # renderer's caches and would otherwise show up as station latency.
        if self._next not in self._cache:
            self._cache[self._next] = self.render_item(self._next)
        super()._do_start()
        self._stop_render = False
        self._render_thread = threading.Thread(target=self._render_loop, name=f"sim-render-{self.serial}", daemon=True)
        self._render_thread.start()

    def _do_stop(self) -> None:
        with self._cond:
            self._stop_render = True
            self._cond.notify_all()
        if self._render_thread is not None:
            self._render_thread.join(timeout=5)
            self._render_thread = None

    def _render_loop(self) -> None:
        index = self._next
        while True:
            with self._cond:
                while not self._stop_render and index >= self._want + self.ahead:
                    self._cond.wait(0.1)
                if self._stop_render:
                    return
                index = max(index, self._want)
                if self.items is not None and index >= self.items:
                    self._cond.wait(0.05)
                    continue
            item = self.render_item(index)
            with self._cond:
                self._cache[index] = item
                self._cond.notify_all()
            index += 1

    def _item(self, index: int) -> Item:
        with self._cond:
            self._want = index
            for k in [k for k in self._cache if k < index]:
                del self._cache[k]
            self._cond.notify_all()
            while index not in self._cache:
                if self._render_thread is None or self._stop_render:
                    break
                self._cond.wait(0.5)
            item = self._cache.pop(index, None)
        if item is None:  # no render thread (or it stopped): render inline
            item = self.render_item(index)
        return item[0].copy(), item[1]


class FilesCamera(ScheduledCamera):
    """Replays a manifest folder in order (qualification suites, labelled rejects).

    One item per manifest entry, always: an entry whose file cannot be used as it stands (see
    :func:`~inspector.camera.imagefile.read_image_file`: missing, a directory, empty, unreadable,
    another file than the manifest's sha256 names, or larger than ``frame_shape``, judged from its
    header before decoding) becomes a frame marked ``refused``, which the station rejects as not
    inspected with an alarm. ``frame_shape`` is the station's frame (the recipe's), ``(height,
    width[, channels])``; without it, sizes up to the largest frame a recipe can name are read.
    """

    kind = "files"

    def __init__(
        self,
        folder: str | Path,
        *,
        line_rate_per_min: float | None,
        loop: bool = False,
        items: int | None = None,
        serial: str | None = None,
        ready: Callable[[], bool] | None = None,
        frame_shape: tuple[int, ...] | None = None,
    ) -> None:
        """``items``: a batch of that many (the folder replayed from its start, again if needed);
        default: the folder once, or without end with ``loop``."""
        self.folder = Path(folder)
        self.entries = read_manifest(self.folder, verify=False)  # hashes are checked per item, as each is read
        if not self.entries:
            raise ValueError(f"{self.folder}: the manifest lists no images")
        self.max_height, self.max_width = (frame_shape[0], frame_shape[1]) if frame_shape else (MAX_SIDE, MAX_SIDE)
        if items is not None and items < 1:
            raise ValueError(f"items must be at least 1, got {items}")
        super().__init__(
            serial=serial or f"FILES-{self.folder.name}",
            line_rate_per_min=line_rate_per_min,
            items=items if items is not None else None if loop else len(self.entries),
            ready=ready,
        )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "folder": str(self.folder),
            "images": len(self.entries),
            "max_size": [self.max_width, self.max_height],
        }

    def _item(self, index: int) -> Item:
        e = self.entries[index % len(self.entries)]
        truth = GroundTruth(label=e.label, pockets=tuple(e.pockets) if e.pockets else None, source=e.file)
        try:
            img = read_image_file(
                self.folder / e.file, sha256=e.sha256, max_width=self.max_width, max_height=self.max_height
            )
        except ImageRefused as exc:
            raise ItemRefused(f"{e.file}: {exc}", truth) from None
        return img, truth


class MemoryCamera(ScheduledCamera):
    """Replays frames held in memory; ``ready`` makes it closed-loop (maximum-rate benchmarks)."""

    kind = "memory"

    def __init__(
        self,
        frames: Sequence[Item],
        *,
        line_rate_per_min: float | None = None,
        items: int | None = None,
        ready: Callable[[], bool] | None = None,
        serial: str = "MEM-0",
    ) -> None:
        if not frames:
            raise ValueError("MemoryCamera needs at least one frame")
        super().__init__(serial=serial, line_rate_per_min=line_rate_per_min, items=items, ready=ready)
        self.frames = list(frames)

    def _item(self, index: int) -> Item:
        img, truth = self.frames[index % len(self.frames)]
        return img.copy(), truth
