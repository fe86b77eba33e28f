"""Cut a frame into the model's input units: the whole item, or one crop per blister pocket.

The station, ``inspector evaluate`` and training all use this one function, so the model
sees exactly the same pixels in production as in evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inspector.config.roi import Roi


def to_units(image: np.ndarray, rois: Sequence[Roi] | None) -> np.ndarray:
    """uint8 ``[U, H, W, C]``: one unit per ROI, or the whole frame as one unit."""
    if rois:
        return np.stack([image[r.slices()] for r in rois])
    if image.ndim == 2:
        return image[None, :, :, None]
    return image[None]
