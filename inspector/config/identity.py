"""A recipe's product identity: what the product's tablet measures like, and how far it may stray.

The deterministic identity check (:mod:`inspector.inference.identity`) measures every tablet (each
blister pocket, each tablet on the tablet line) and compares it with this specification: colour in
CIE L*a*b* (lightness and chroma apart), area, length and width of its outline, and roundness. A
tablet outside any tolerance is rejected with the product's critical identity reason whatever the
model said: the model only adds rejects to it, never an accept.

The nominal values, spreads and tolerances come from good product (``inspector
identity-reference``: mean and standard deviation of each measure, tolerance ``--sigmas`` standard
deviations); they sit in the recipe under its change control, like the thresholds.

A blister card adds a second, relative check (``card``): each pocket's tablet against the median of
the tablets on the same card. The card's tablets share its lighting, focus and colour cast, which
move all of them together; a foreign tablet stands out from its nine neighbours by less than it
would have to stand out from the absolute specification, so the relative tolerances are tighter.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Tolerated(BaseModel):
    """One measure over the reference tablets, and how far a tablet may lie from its mean."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float
    sd: float = Field(ge=0)
    tolerance: float = Field(gt=0, description="largest |value - mean| of the product's tablet")


class CardTolerances(BaseModel):
    """Blister: how far one pocket's tablet may lie from the median of its card's tablets.

    Measured as the largest deviation of a good tablet from its own card's median over the reference
    cards (times the margin), so the lighting shared by a card cancels out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lightness: float = Field(gt=0, description="|L* - the card's median L*| (lighting-corrected)")
    chroma: float = Field(gt=0, description="distance in (a*, b*) from the card's median colour")
    area: float = Field(gt=0, lt=1, description="|area / the card's median area - 1|")
    length: float = Field(gt=0, lt=1, description="|length / the card's median length - 1|")
    width: float = Field(gt=0, lt=1, description="|width / the card's median width - 1|")
    min_tablets: int = Field(
        default=5,
        ge=3,
        description="the relative check needs this many tablets found on the card (a median of few is none)",
    )


class IdentitySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lab: tuple[float, float, float] = Field(description="mean colour of the tablet's face, CIE L*a*b* (D65)")
    lightness: Tolerated  # L* of the face, corrected for the lighting by the background's L* (below)
    background_l: float = Field(description="mean L* of the background (foil, belt) around the reference tablets")
    lightness_slope: float = Field(
        ge=0, le=3, description="the face's L* moves this much per unit of background L* (the lighting's drift)"
    )
    chroma: Tolerated  # distance from the mean (a*, b*): another product's colour shows here
    area_px: Tolerated
    length_px: Tolerated  # the outline's minimum-area rectangle, long side
    width_px: Tolerated  # its short side
    roundness: Tolerated  # 4 pi area / perimeter^2
    segment_delta_e: float = Field(
        default=18.0,
        gt=0,
        le=100,
        description="a pixel belongs to the tablet when its colour is this far (delta E) from the background's",
    )
    search_radius_px: float | None = Field(
        default=None, gt=0, description="blister: only this far from the pocket's centre (inside the pocket)"
    )
    card: CardTolerances | None = None  # blister: each tablet against its own card's median as well
    measured: str = ""  # how the reference was made (command, sets, count)

    @model_validator(mode="after")
    def _sane(self) -> IdentitySpec:
        for name in ("area_px", "length_px", "width_px"):
            if getattr(self, name).mean <= 0:
                raise ValueError(f"identity: {name} mean must be positive")
        if self.width_px.mean > self.length_px.mean:
            raise ValueError("identity: width_px is longer than length_px")
        if abs(self.lightness.mean - self.lab[0]) > 1e-6:
            raise ValueError("identity: lightness.mean must equal lab[0]")
        return self
