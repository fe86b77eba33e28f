"""Random foreign tablets: tablets nobody rendered for training, to test the identity check.

A learned model knows the foreign tablets it was shown; a line meets others. :func:`draw` makes a
tablet of any colour, size (within the pocket, or the camera's view on the tablet line), shape
(round, oval, capsule, oblong), coated or not, with or without a break score; the blister and
tablet renderers draw it in place of the product's tablet (one pocket of an otherwise good card,
or the tablet on the belt). These sets are for evaluation only: training refuses them.

Half the tablets are drawn near the product (colour within about 25 grey levels per channel,
length within 15 %), where telling them apart is hard, and half anywhere. Each carries its
margins from the product: ``delta_e`` (CIE76, between the two base colours in CIE L*a*b*),
``area_ratio`` and ``length_ratio``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from inspector.taxonomy import Product

SHAPES = ("round", "oval", "capsule", "oblong")
#: The product's own tablet: base colour (BGR), length and width in pixels.
PRODUCT_TABLET: dict[Product, tuple[tuple[float, float, float], float, float]] = {
    Product.TABLET: ((210.0, 215.0, 217.0), 150.0, 150.0),
    Product.BLISTER: ((104.0, 175.0, 244.0), 56.0, 56.0),
}
#: The longest foreign tablet, relative to the product's: inside the pocket (76 px), inside the view.
MAX_LENGTH_RATIO = {Product.TABLET: 1.3, Product.BLISTER: 1.25}
LABEL = {Product.TABLET: "wrong_tablet", Product.BLISTER: "foreign_tablet"}


@dataclass(frozen=True)
class ForeignTablet:
    shape: str
    length_px: float
    width_px: float
    color_bgr: tuple[float, float, float]
    second_bgr: tuple[float, float, float] | None  # a two-tone capsule's other half
    coated: bool  # film coat: smooth and glossy; uncoated: matte and mottled
    marking: bool  # a break score across the face
    near: bool  # drawn near the product (the hard half of a set)
    delta_e: float  # base colour's CIE76 distance from the product's
    area_ratio: float  # outline area / the product's
    length_ratio: float

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["color_bgr"] = [round(c, 1) for c in self.color_bgr]
        if self.second_bgr is not None:
            out["second_bgr"] = [round(c, 1) for c in self.second_bgr]
        for k in ("length_px", "width_px", "delta_e", "area_ratio", "length_ratio"):
            out[k] = round(float(out[k]), 4)
        return out


def _lab(bgr: tuple[float, float, float]) -> np.ndarray:
    px = np.asarray(bgr, np.float32).reshape(1, 1, 3) / np.float32(255.0)
    lab: np.ndarray = cv2.cvtColor(px, cv2.COLOR_BGR2Lab).reshape(3)
    return lab


def outline_area(shape: str, length: float, width: float) -> float:
    if shape in ("round", "oval"):
        return math.pi * length * width / 4.0
    r = width / 2.0  # capsule, oblong: a stadium
    return math.pi * r * r + (length - width) * width


def draw(rng: np.random.Generator, product: Product) -> ForeignTablet:
    """One random foreign tablet for ``product``'s line (see the module)."""
    base_bgr, base_len, base_wid = PRODUCT_TABLET[product]
    near = bool(rng.random() < 0.5)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    if near:
        length = base_len * float(rng.uniform(0.85, 1.15))
        color = tuple(float(np.clip(c + rng.normal(0.0, 25.0), 8.0, 250.0)) for c in base_bgr)
    else:
        length = base_len * float(rng.uniform(0.5, MAX_LENGTH_RATIO[product]))
        color = tuple(float(rng.uniform(8.0, 250.0)) for _ in range(3))
    aspect = {
        "round": 1.0,
        "oval": rng.uniform(0.6, 0.9),
        "capsule": rng.uniform(0.36, 0.5),
        "oblong": rng.uniform(0.4, 0.6),
    }
    width = length * float(aspect[shape])
    second = None
    if shape == "capsule" and rng.random() < 0.5:
        second = tuple(float(rng.uniform(8.0, 250.0)) for _ in range(3))
    c3 = (color[0], color[1], color[2])
    de = float(np.linalg.norm(_lab(c3) - _lab(base_bgr)))
    if second is not None:  # the half nearest the product's colour is the margin
        de = min(de, float(np.linalg.norm(_lab((second[0], second[1], second[2])) - _lab(base_bgr))))
    return ForeignTablet(
        shape=shape,
        length_px=length,
        width_px=width,
        color_bgr=c3,
        second_bgr=None if second is None else (second[0], second[1], second[2]),
        coated=bool(rng.random() < 0.5),
        marking=bool(rng.random() < 0.5),
        near=near,
        delta_e=de,
        area_ratio=outline_area(shape, length, width) / outline_area("round", base_len, base_wid),
        length_ratio=length / base_len,
    )
