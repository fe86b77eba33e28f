"""Heat maps for SME review (draft Annex 22: keep what drove a decision): unit maps back on the frame."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from inspector.config.roi import Roi


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
