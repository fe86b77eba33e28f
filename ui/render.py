"""Pixel work for the display (numpy + OpenCV, Qt-free): BGR conversion, scaling, heat maps.

OpenCV releases the GIL while it resizes and blends, so the pipeline threads keep running
while the display prepares a frame.
"""

from __future__ import annotations

import cv2
import numpy as np


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
