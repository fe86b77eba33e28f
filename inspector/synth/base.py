"""Shared pieces of the procedural renderer: the result type, seeding and camera effects.

Every product renderer draws its item in a canonical pose, then applies the same
nuisance chain so that all products vary alike:

1. :func:`jitter_pose` - position and rotation jitter (image and masks move together);
2. :func:`camera_effects` - lighting drift (gain, offset, gradient), mild blur and
   sensor noise.

``nuisance`` scales every random variation: 1.0 is the nominal production spread,
0 gives the canonical item, values above 1 render a wider spread than nominal (used
to test robustness of models against conditions they were not trained on).

**Presentations** (qualification, the Knapp method): the same physical item shown to the
camera again and again. Inside :func:`presenting`, the pose jitter and the camera effects draw
from the presentation's own generator instead of the item's, so the item (its shape, its
defect, its place on the belt) stays the same and only its presentation changes. Outside it
nothing changes: same seed, same bytes as always.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from inspector.taxonomy import Criticality, Product

MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Rendered:
    """One rendered item with its exact ground truth.

    ``mask`` is a uint8 HxW image, 255 where the defect is, all zero for ``ok``.
    ``truth`` holds renderer-specific facts that tests check against the pixels (for
    example the meniscus row of a vial, or each pocket's ROI for a blister).
    """

    product: Product
    label: str
    criticality: Criticality | None
    seed: int
    image: np.ndarray
    mask: np.ndarray
    pockets: tuple[str, ...] | None = None
    pocket_masks: tuple[np.ndarray, ...] | None = None
    truth: dict[str, Any] = field(default_factory=dict)


def make_rng(seed: int) -> np.random.Generator:
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be in 0..{MAX_SEED}, got {seed}")
    return np.random.Generator(np.random.PCG64(int(seed)))


_PRESENTATION: contextvars.ContextVar[np.random.Generator | None] = contextvars.ContextVar("presentation", default=None)
_PRESENTATION_TAG = 0x9E5E_47ED  # keeps presentation streams apart from every other derived seed


@contextlib.contextmanager
def presenting(item_seed: int, presentation: int) -> Iterator[None]:
    """Render presentation ``presentation`` (0, 1, ...) of the item with seed ``item_seed``."""
    if presentation < 0:
        raise ValueError(f"presentation must be 0 or more, got {presentation}")
    seed = int(np.random.SeedSequence([int(item_seed), _PRESENTATION_TAG, int(presentation)]).generate_state(1)[0])
    token = _PRESENTATION.set(make_rng(seed))
    try:
        yield
    finally:
        _PRESENTATION.reset(token)


def _presentation_or(rng: np.random.Generator) -> np.random.Generator:
    return _PRESENTATION.get() or rng


def derive_seed(base_seed: int, index: int) -> int:
    """Per-image seed for image ``index`` of a set generated from ``base_seed``."""
    return int(np.random.SeedSequence([int(base_seed), int(index)]).generate_state(1)[0])


def jitter_pose(
    image: np.ndarray,
    masks: list[np.ndarray],
    rng: np.random.Generator,
    nuisance: float,
    *,
    max_shift: float,
    max_rot_deg: float,
    center: tuple[float, float] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Shift and rotate the image and its masks together.

    Returns the moved image, the moved masks (kept binary 0/255) and the 2x3 affine
    matrix used, so that a renderer can map truth coordinates as well.
    """
    rng = _presentation_or(rng)
    h, w = image.shape[:2]
    dx, dy = rng.uniform(-1, 1, 2) * max_shift * nuisance
    ang = rng.uniform(-1, 1) * max_rot_deg * nuisance
    cx, cy = center if center is not None else (w / 2, h / 2)
    mat = cv2.getRotationMatrix2D((cx, cy), ang, 1.0)
    mat[:, 2] += (dx, dy)
    moved = cv2.warpAffine(image, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out_masks = [
        cv2.warpAffine(m, mat, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        for m in masks
    ]
    return moved, out_masks, mat


_NOISE_MARGIN = 64
_noise_tiles: dict[tuple[int, ...], np.ndarray] = {}


def _noise_tile(shape: tuple[int, ...]) -> np.ndarray:
    """A fixed tile of unit Gaussian noise per image shape, made once per process.

    Drawing fresh noise for a 640x480x3 frame costs more than rendering the card; a
    random crop of a fixed, larger tile is as good for the station and keeps the
    renderer deterministic per seed.
    """
    tile = _noise_tiles.get(shape)
    if tile is None:
        h, w = shape[:2]
        gen = np.random.Generator(np.random.PCG64(0x5EED_0F_C0FFEE))
        tile = gen.standard_normal((h + _NOISE_MARGIN, w + _NOISE_MARGIN, *shape[2:]), dtype=np.float32)
        _noise_tiles[shape] = tile
    return tile


def camera_effects(image: np.ndarray, rng: np.random.Generator, nuisance: float) -> np.ndarray:
    """Lighting drift, mild defocus and sensor noise on a uint8 image (mono or BGR)."""
    rng = _presentation_or(rng)
    h, w = image.shape[:2]
    gain = 1.0 + rng.normal(0.0, 0.05) * nuisance
    offset = rng.normal(0.0, 4.0) * nuisance
    # Illumination gradient across the field of view (lamp ageing, misalignment).
    gx, gy = rng.normal(0.0, 0.04, 2) * nuisance
    ramp0 = gain * (
        1.0
        + gx * np.linspace(-1, 1, w, dtype=np.float32)[None, :]
        + gy * np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    )
    ramp: np.ndarray = ramp0.astype(np.float32)
    img: np.ndarray = image.astype(np.float32)
    if img.ndim == 3:
        ramp = cv2.merge([ramp] * img.shape[2])
    img = cv2.multiply(img, ramp)
    # Mild defocus only: capped so that no nuisance setting can erase a subtle defect.
    sigma = min(abs(rng.normal(0.0, 0.45)) * nuisance, 1.3)
    if sigma > 0.15:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma))
    noise_sd = (1.0 + abs(rng.normal(0.0, 1.2))) * max(nuisance, 0.25)
    ox, oy = (int(v) for v in rng.integers(0, _NOISE_MARGIN, 2))
    noise = _noise_tile(image.shape)[oy : oy + h, ox : ox + w]
    out: np.ndarray = cv2.scaleAdd(noise, float(noise_sd), img) + np.float32(offset + 0.5)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def empty_mask(shape: tuple[int, int]) -> np.ndarray:
    return np.zeros(shape, dtype=np.uint8)
