"""Regions of interest shared by the renderer, training and the station's recipes."""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Roi(NamedTuple):
    x: int
    y: int
    w: int
    h: int

    def slices(self) -> tuple[slice, slice]:
        """Numpy ``(rows, cols)`` slices for ``image[roi.slices()]``."""
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


class PocketGrid(BaseModel):
    """An N x M grid of blister pockets, row-major, pocket 0 at the top left.

    ``roi_size`` is larger than a pocket so that the card's position jitter keeps the
    whole pocket inside its ROI.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int = Field(ge=1, le=20)
    cols: int = Field(ge=1, le=20)
    first_center: tuple[int, int] = Field(description="x, y of pocket 0's centre in pixels")
    pitch: tuple[int, int] = Field(description="x, y distance between pocket centres")
    pocket_diameter: int = Field(gt=0)
    roi_size: tuple[int, int] = Field(description="w, h of each pocket ROI")
    image_size: tuple[int, int] = Field(description="w, h of the card image")

    @model_validator(mode="after")
    def _inside_image(self) -> PocketGrid:
        w, h = self.image_size
        for i, r in enumerate(self.rois()):
            if r.x < 0 or r.y < 0 or r.x + r.w > w or r.y + r.h > h:
                raise ValueError(f"pocket {i} ROI {tuple(r)} lies outside the {w}x{h} image")
        if self.roi_size[0] < self.pocket_diameter or self.roi_size[1] < self.pocket_diameter:
            raise ValueError("roi_size must be at least pocket_diameter in both directions")
        return self

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def centers(self) -> list[tuple[int, int]]:
        x0, y0 = self.first_center
        px, py = self.pitch
        return [(x0 + c * px, y0 + r * py) for r in range(self.rows) for c in range(self.cols)]

    def rois(self) -> list[Roi]:
        rw, rh = self.roi_size
        return [Roi(cx - rw // 2, cy - rh // 2, rw, rh) for cx, cy in self.centers()]


DEFAULT_BLISTER_GRID = PocketGrid(
    rows=2,
    cols=5,
    first_center=(112, 178),
    pitch=(104, 124),
    pocket_diameter=76,
    roi_size=(100, 108),
    image_size=(640, 480),
)
