"""Pixel work for the display (numpy + OpenCV, Qt-free): BGR conversion, scaling, heat maps.

OpenCV releases the GIL while it resizes and blends, so the pipeline threads keep running
while the display prepares a frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from inspector.config.roi import Roi


def to_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return image


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fit ``width`` x ``height``, keeping the aspect ratio."""
    h, w = image.shape[:2]
    s = min(width / w, height / h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def heatmap_to_frame(
    units: np.ndarray,
    frame_shape: tuple[int, ...],
    rois: Sequence[Roi] | None,
    *,
    only: Sequence[int] | None = None,
) -> np.ndarray:
    """Place per-unit maps ``[U, h, w]`` back on the frame: float32 ``H x W`` in 0..1.

    ``only`` (blister): the pockets whose maps are shown, the rejected ones. Every ok pocket
    has its own normal peak (a reflection, say); drawn beside a rejected pocket it would
    look like a second defect, and it could take the hot spot away from the pocket that
    decided the card.
    """
    fh, fw = frame_shape[:2]
    out = np.zeros((fh, fw), np.float32)
    maps = np.asarray(units, dtype=np.float32)
    if maps.ndim == 2:
        maps = maps[None]
    if rois:
        shown = set(range(len(rois))) if only is None else set(only)
        for i, (roi, m) in enumerate(zip(rois, maps, strict=False)):
            if i in shown:
                out[roi.slices()] = np.maximum(out[roi.slices()], cv2.resize(m, (roi.w, roi.h)))
    else:
        out = cv2.resize(maps[0], (fw, fh))
    lo, hi = float(out.min()), float(out.max())
    if hi - lo < 1e-6:
        return np.zeros_like(out)
    return (out - lo) / (hi - lo)


def blend_heatmap(bgr: np.ndarray, heat: np.ndarray, *, floor: float = 0.45) -> np.ndarray:
    """Colour the hottest parts of ``heat`` over the image; cool parts stay untouched."""
    h, w = bgr.shape[:2]
    heat = cv2.resize(heat, (w, h))
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = np.clip((heat - floor) / (1 - floor), 0, 1)[:, :, None] * 0.6
    out: np.ndarray = (bgr * (1 - alpha) + colour * alpha).astype(np.uint8)
    return out


def hot_spot(heat: np.ndarray) -> tuple[int, int]:
    """Pixel (x, y) of the heat map's maximum: the defect location to point at."""
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return int(x), int(y)
