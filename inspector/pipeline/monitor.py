"""Input drift: do the frames still look like the ones the model was validated on?

A model is validated for an input space (its record's intended use: lighting, blur and
noise up to a stated nuisance level). On the line that space can be left without any single
frame looking wrong: a lamp ages, a lens gets dirty or loses focus, a camera gain is changed.
The monitor keeps a rolling mean of three cheap frame statistics over the last ``window`` frames and
compares it with limits measured on reference frames from inside the validated space
(:func:`build_reference`, ``inspector input-reference``):

- ``brightness``: mean grey level (lighting drift, exposure or gain changes);
- ``noise``: sensor noise in grey levels, Immerkaer's fast estimate (the mean absolute
  response of a Laplacian-difference kernel that cancels smooth image content);
- ``sharpness``: RMS Sobel gradient at half resolution (Tenengrad), where the noise weighs
  less: it falls when the image blurs (defocus) or loses contrast (a dirty lens, haze).

Leaving the limits raises the station's ``INPUT_DRIFT`` warning alarm (draft Annex 22:
monitor input drift in operation); coming back inside, with a small hysteresis, raises
``INPUT_DRIFT_CLEARED``. Each item is still judged by the model: drift tells QA that the
decisions are being made outside the validated input space, it does not accept anything.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspector.config.monitor import STATS, InputLimits
from inspector.manifest import read_manifest

# Immerkaer (1996): sigma = sqrt(pi / 2) / 6 * mean |I * N|, N = [1 -2 1]^T [1 -2 1] (separable).
_NOISE_TAP = np.array([1, -2, 1], np.float32)
_NOISE_SCALE = math.sqrt(math.pi / 2) / 6
HYSTERESIS = 0.05  # of each limit band: back inside only this far from the edge
DEFAULT_Z = 4.0  # standard errors of a rolling mean a stable line stays within


def frame_stats(image: np.ndarray) -> tuple[float, float, float]:
    """(brightness, noise, sharpness) of a uint8 mono or BGR frame, in grey levels."""
    if image.dtype != np.uint8:
        raise ValueError(f"frame dtype {image.dtype}: the input monitor reads uint8 frames")
    if image.ndim == 3:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.shape[2] == 3 else np.ascontiguousarray(image[..., 0])
    else:
        grey = image
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        raise ValueError(f"frame {grey.shape} too small for the noise estimate")
    # int16 holds every response (|r| <= 16 * 255); 0.3 ms on a 640 x 480 card, 3-9x a float filter.
    response = cv2.sepFilter2D(grey, cv2.CV_16S, _NOISE_TAP, _NOISE_TAP)[1:-1, 1:-1]
    half = cv2.pyrDown(grey)
    gx, gy = cv2.Sobel(half, cv2.CV_16S, 1, 0), cv2.Sobel(half, cv2.CV_16S, 0, 1)
    # RMS gradient (Tenengrad): blur spreads an edge's rise over more pixels, which keeps its
    # summed gradient but lowers its squared one; contrast loss scales it down directly.
    sharpness = math.sqrt((cv2.norm(gx, cv2.NORM_L2SQR) + cv2.norm(gy, cv2.NORM_L2SQR)) / gx.size)
    return float(cv2.mean(grey)[0]), _NOISE_SCALE * cv2.norm(response, cv2.NORM_L1) / response.size, sharpness


@dataclass(frozen=True)
class DriftChange:
    """The monitor crossed a limit (``drifting``) or came back inside (not ``drifting``)."""

    drifting: bool
    means: dict[str, float]
    outside: tuple[str, ...]  # statistics outside their limits (empty when back inside)

    def describe(self, limits: InputLimits) -> str:
        parts = [
            f"{name} {self.means[name]:.2f} (limits {getattr(limits, name)[0]:.2f}-{getattr(limits, name)[1]:.2f})"
            for name in (self.outside or STATS)
        ]
        head = "input outside the validated range" if self.drifting else "input back inside the validated range"
        return f"{head} over the last {limits.window} frames: " + ", ".join(parts)


class InputMonitor:
    """Rolling means of :func:`frame_stats` against :class:`InputLimits` (one thread adds)."""

    def __init__(self, limits: InputLimits) -> None:
        self.limits = limits
        self._rows: deque[tuple[float, float, float]] = deque(maxlen=limits.window)
        self._sums = np.zeros(len(STATS))
        self.drifting = False
        self.frames = 0
        self.last_means: dict[str, float] | None = None  # replaced whole per frame: other threads may read it

    def means(self) -> dict[str, float] | None:
        """Current rolling means, or None before the window is full."""
        if len(self._rows) < self.limits.window:
            return None
        return {name: float(v) / len(self._rows) for name, v in zip(STATS, self._sums, strict=True)}

    def as_dict(self) -> dict[str, object]:
        """The batch summary's ``input_monitor`` entry."""
        return {"window": self.limits.window, "frames": self.frames, "drifting": self.drifting, "means": self.means()}

    def add(self, image: np.ndarray) -> DriftChange | None:
        """Add a frame; returns a change when the drift state flips, else None."""
        row = frame_stats(image)
        if len(self._rows) == self._rows.maxlen:
            self._sums -= self._rows[0]
        self._rows.append(row)
        self._sums += row
        self.frames += 1
        means = self.means()
        self.last_means = means
        if means is None:
            return None
        outside = tuple(n for n in STATS if not getattr(self.limits, n)[0] <= means[n] <= getattr(self.limits, n)[1])
        if not self.drifting and outside:
            self.drifting = True
            return DriftChange(True, means, outside)
        if self.drifting and not outside and self._well_inside(means):
            self.drifting = False
            return DriftChange(False, means, ())
        return None

    def _well_inside(self, means: dict[str, float]) -> bool:
        for name in STATS:
            lo, hi = getattr(self.limits, name)
            margin = HYSTERESIS * (hi - lo)
            if not lo + margin <= means[name] <= hi - margin:
                return False
        return True


def window_means(stats: np.ndarray, window: int) -> np.ndarray:
    """Every rolling mean of ``window`` consecutive rows of ``stats`` ``[N, S]`` -> ``[N - window + 1, S]``."""
    if len(stats) < window:
        raise ValueError(f"need at least {window} frames for a window of {window}, got {len(stats)}")
    c: np.ndarray = np.cumsum(np.vstack([np.zeros((1, stats.shape[1])), stats]), axis=0)
    means: np.ndarray = (c[window:] - c[:-window]) / window
    return means


def build_reference(
    folders: Sequence[str | os.PathLike[str]], *, window: int, z: float = DEFAULT_Z
) -> tuple[InputLimits, dict[str, object]]:
    """Limits from reference sets (manifest folders), each a stretch of frames in the validated space.

    Per folder (one condition of the line), a rolling mean stays within ``z`` standard
    errors of the folder's mean (``z * sd / sqrt(window)``) when frames are independent, and
    within the range of its own rolling means (manifest order, never across folders) when
    they are not; the limits take the wider of the two, over every folder.
    """
    if not 0.0 < z <= 10.0:
        raise ValueError(f"z must be above 0 and at most 10, got {z}")
    if not folders:
        raise ValueError("no reference folders")
    lows, highs, per_folder = [], [], []
    for folder in folders:
        root = Path(folder)
        entries = read_manifest(root)
        stats = np.array([frame_stats(_read(root / e.file)) for e in entries], np.float64)
        w = window_means(stats, window)
        mean, bound = stats.mean(axis=0), z * stats.std(axis=0, ddof=1) / math.sqrt(window)
        lows.append(np.minimum(w.min(axis=0), mean - bound))
        highs.append(np.maximum(w.max(axis=0), mean + bound))
        per_folder.append(
            {
                "folder": str(root),
                "frames": len(entries),
                "nuisance": sorted({e.nuisance for e in entries if e.nuisance is not None}),
                **{f"{n}_mean": round(float(mean[i]), 3) for i, n in enumerate(STATS)},
                **{f"{n}_sd": round(float(stats[:, i].std(ddof=1)), 3) for i, n in enumerate(STATS)},
            }
        )
    lo, hi = np.min(lows, axis=0), np.max(highs, axis=0)
    limits = {n: (round(float(lo[i]), 3), round(float(hi[i]), 3)) for i, n in enumerate(STATS)}
    names = ", ".join(Path(f).name for f in folders)
    ref = InputLimits(window=window, reference=f"{names}; z {z}", **limits)
    return ref, {"folders": per_folder, "window": window, "z": z}


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image
