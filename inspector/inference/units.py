"""Cut a frame into the model's input units: the whole item, or one crop per blister pocket.

The station, ``inspector evaluate`` and training all use this one function, so the model
sees exactly the same pixels in production as in evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inspector.config.roi import DEFAULT_BLISTER_GRID, Roi
from inspector.taxonomy import IMAGE_SPECS, Product


def to_units(image: np.ndarray, rois: Sequence[Roi] | None) -> np.ndarray:
    """uint8 ``[U, H, W, C]``: one unit per ROI, or the whole frame as one unit."""
    if rois:
        return np.stack([image[r.slices()] for r in rois])
    if image.ndim == 2:
        return image[None, :, :, None]
    return image[None]


def unit_shape(product: Product) -> tuple[int, int, int]:
    """``(H, W, C)`` of one model unit: the frame, or a pocket crop of the default blister grid."""
    if product is Product.BLISTER:
        w, h = DEFAULT_BLISTER_GRID.roi_size
        return h, w, 3
    spec = IMAGE_SPECS[product]
    return spec.height, spec.width, spec.channels
