"""The deterministic identity check: is this the product's tablet? OpenCV measures, no learning.

For each unit (a blister pocket, or the tablet line's frame, both cut in the item's own frame by
registration) :func:`measure` finds the tablet against its background and measures it:

- everything at half resolution (``INTER_AREA``), sizes given back in full-resolution pixels;
- background: the median colour of the unit's outer 4-pixel frame (foil around the pocket, or
  the belt), in CIE L*a*b*;
- tablet: the pixels at least ``segment_delta_e`` from that colour (inside the pocket's radius
  on a blister card), opened by a 3x3 ellipse, the convex hull of the largest outline (a highlight
  as bright as the foil cannot notch it);
- area, the minimum-area rectangle's long and short sides, roundness (4 pi A / P^2) and the mean
  L*a*b* of its face (the outline eroded by 4 px, away from the bevel's shading).

:func:`specify` makes the recipe's specification from good tablets' measurements.

Colour is judged as lightness and chroma apart (CMC-style): the lighting's gain drift moves L*
several units on good product, while another product's colour shows in a* and b*.

:func:`check` compares a measurement with the recipe's :class:`IdentitySpec`. On a blister card
:func:`check_units` also compares every tablet with the median of the card's tablets
(:func:`card_deviations`, the spec's ``card`` tolerances): the card's lighting, focus and colour cast
move all ten tablets alike, so a foreign one stands out from its neighbours by more than from the
absolute specification, which has to allow for every lighting the line may show. A unit with no
tablet, or one outside any tolerance, fails: the caller rejects it with the product's critical
identity reason (blister: ``empty_pocket`` or ``foreign_tablet``, tablet line: ``wrong_tablet``).
A model's output is never consulted here, so no model output can turn a failed check into an
accept.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from inspector.config.identity import CardTolerances, IdentitySpec
from inspector.taxonomy import DefectCode, Product

SCALE = 2  # measured at half resolution: a tenth of a tablet's size is still 7 px or more
BORDER_PX = 2  # at half resolution
FACE_ERODE_PX = 2
MIN_AREA_SHARE = 0.05  # an outline below 5 % of the product's area is no tablet (dust, a reflection)
WILD_SHARE = 0.5  # a size tolerance of half the tablet or more: good tablets' outlines are not theirs
_OPEN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_FACE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * FACE_ERODE_PX + 1, 2 * FACE_ERODE_PX + 1))


@dataclass(frozen=True)
class Measurement:
    """One unit's tablet as measured (``found`` False: no tablet; the sizes are then 0)."""

    found: bool
    area_px: float = 0.0
    length_px: float = 0.0
    width_px: float = 0.0
    roundness: float = 0.0
    lab: tuple[float, float, float] = (0.0, 0.0, 0.0)
    background_l: float = 0.0  # L* of the unit's background: how bright the lighting is now

    def as_dict(self) -> dict[str, object]:
        return {
            "found": self.found,
            "area_px": round(self.area_px, 1),
            "length_px": round(self.length_px, 2),
            "width_px": round(self.width_px, 2),
            "roundness": round(self.roundness, 4),
            "lab": [round(v, 2) for v in self.lab],
            "background_l": round(self.background_l, 2),
        }


@dataclass(frozen=True)
class Checked:
    """A measurement against the specification: ``failures`` empty means the product's tablet."""

    measurement: Measurement
    failures: tuple[str, ...]
    delta_e: float | None
    card: dict[str, float] | None = None  # deviations from the card's median (blister), see card_deviations

    @property
    def ok(self) -> bool:
        return not self.failures

    def describe(self) -> str:
        return "; ".join(self.failures) if self.failures else "identity ok"

    def as_record(self) -> dict[str, object]:
        """What the item record keeps of this unit: the measurement and the tolerances it broke."""
        out = self.measurement.as_dict()
        out["delta_e"] = None if self.delta_e is None else round(self.delta_e, 2)
        out["failures"] = list(self.failures)
        if self.card is not None:
            out["card"] = {k: round(v, 4) for k, v in self.card.items()}
        return out


def warm_up() -> None:
    """OpenCV builds its L*a*b* tables on the first conversion (about 250 ms): done at station start,
    not on the first item."""
    measure(np.full((32, 32, 3), 128, np.uint8), segment_delta_e=18.0)


def lab_image(image: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of a BGR uint8 image as float32: L in 0..100, a and b about -128..127."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"the identity check needs a colour image, got shape {image.shape}")
    return cv2.cvtColor(image.astype(np.float32) * np.float32(1.0 / 255.0), cv2.COLOR_BGR2Lab)


@functools.cache
def _disk(h: int, w: int, radius: int) -> np.ndarray:
    """The search disk of a unit's size (read-only: one per unit size and radius, made once)."""
    disk = np.zeros((h, w), np.uint8)
    cv2.circle(disk, (w // 2, h // 2), radius, 1, -1)
    disk.setflags(write=False)
    return disk


def _background(lab: np.ndarray) -> np.ndarray:
    b = BORDER_PX
    ring = np.concatenate(
        [lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[b:-b, :b].reshape(-1, 3), lab[b:-b, -b:].reshape(-1, 3)]
    )
    background: np.ndarray = np.median(ring, axis=0).astype(np.float32)
    return background


def measure(
    unit: np.ndarray, *, segment_delta_e: float, search_radius_px: float | None = None, min_area_px: float = 0.0
) -> Measurement:
    """Find and measure the tablet in one unit (see the module); an outline under ``min_area_px`` is none."""
    small = cv2.resize(unit, (unit.shape[1] // SCALE, unit.shape[0] // SCALE), interpolation=cv2.INTER_AREA)
    lab = lab_image(small)
    background = _background(lab)
    diff = lab - background
    dist2 = np.einsum("ijk,ijk->ij", diff, diff)
    mask = (dist2 > np.float32(segment_delta_e**2)).astype(np.uint8)
    if search_radius_px is not None:
        mask &= _disk(mask.shape[0], mask.shape[1], round(search_radius_px / SCALE))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _OPEN)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return Measurement(found=False)
    # The convex hull: a specular highlight on the tablet, as bright as the foil, must not bite a
    # notch out of its outline (the tablets a line meets are convex: round, oval, capsule, oblong).
    outline = cv2.convexHull(max(contours, key=cv2.contourArea))
    area = float(cv2.contourArea(outline)) * SCALE * SCALE
    if area < min_area_px:
        return Measurement(found=False)
    (_, _), (rw, rh), _ = cv2.minAreaRect(outline)
    perimeter = float(cv2.arcLength(outline, True)) * SCALE
    roundness = 4.0 * math.pi * area / (perimeter * perimeter) if perimeter > 0 else 0.0
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, [outline], -1, 1, thickness=cv2.FILLED)
    face = cv2.erode(filled, _FACE)
    mean = cv2.mean(lab, mask=face if face.any() else filled)  # a sliver has no face: its whole outline
    return Measurement(
        found=True,
        area_px=area,
        length_px=float(max(rw, rh)) * SCALE,
        width_px=float(min(rw, rh)) * SCALE,
        roundness=roundness,
        lab=(float(mean[0]), float(mean[1]), float(mean[2])),
        background_l=float(background[0]),
    )


def delta_e(a: Sequence[float], b: Sequence[float]) -> float:
    """CIE76 colour distance of two L*a*b* colours."""
    return float(math.dist(a, b))


def chroma_distance(lab: Sequence[float], nominal: Sequence[float]) -> float:
    """Distance in the (a*, b*) plane: hue and chroma together, lightness left out."""
    return float(math.hypot(lab[1] - nominal[1], lab[2] - nominal[2]))


def corrected_lightness(m: Measurement, slope: float, background_l: float) -> float:
    """The face's L* as it would be under the reference lighting: the background tells how bright it is."""
    return m.lab[0] - slope * (m.background_l - background_l)


CARD_MEASURES = ("lightness", "chroma", "area", "length", "width")


def card_deviations(
    measured: Sequence[Measurement], spec: IdentitySpec, min_tablets: int
) -> list[dict[str, float] | None]:
    """Each unit's deviation from the median of the card's tablets (``None``: no tablet found there,
    or fewer than ``min_tablets`` on the card, when a median says nothing): lighting-corrected L*,
    distance in (a*, b*), and area, length and width as fractions of the median's."""
    found = [m for m in measured if m.found]
    if len(found) < min_tablets:
        return [None] * len(measured)

    def row(m: Measurement) -> list[float]:
        lightness = corrected_lightness(m, spec.lightness_slope, spec.background_l)
        return [lightness, m.lab[1], m.lab[2], m.area_px, m.length_px, m.width_px]

    med = np.median(np.asarray([row(m) for m in found]), axis=0)
    out: list[dict[str, float] | None] = []
    for m in measured:
        if not m.found:
            out.append(None)
            continue
        v = row(m)
        out.append(
            {
                "lightness": abs(v[0] - float(med[0])),
                "chroma": math.hypot(v[1] - float(med[1]), v[2] - float(med[2])),
                "area": abs(v[3] / float(med[3]) - 1.0),
                "length": abs(v[4] / float(med[4]) - 1.0),
                "width": abs(v[5] / float(med[5]) - 1.0),
            }
        )
    return out


def check(m: Measurement, spec: IdentitySpec, card: dict[str, float] | None = None) -> Checked:
    """``m`` against ``spec``, and its deviations from its card's median (``card``) against the spec's
    card tolerances: every tolerance it breaks, in words (empty: the product's tablet)."""
    if not m.found:
        return Checked(m, ("no tablet found",), None)
    failures: list[str] = []
    values = {
        "lightness": corrected_lightness(m, spec.lightness_slope, spec.background_l),
        "chroma": chroma_distance(m.lab, spec.lab),
        "area_px": m.area_px,
        "length_px": m.length_px,
        "width_px": m.width_px,
        "roundness": m.roundness,
    }
    for name, value in values.items():
        tol = getattr(spec, name)
        nominal = 0.0 if name == "chroma" else tol.mean
        if abs(value - nominal) > tol.tolerance:
            unit = " px" if name.endswith("_px") else ""
            failures.append(
                f"{name.removesuffix('_px')} {value:.4g}{unit} (nominal {nominal:.4g}, tolerance {tol.tolerance:.3g})"
            )
    if card is not None and spec.card is not None:
        for name in CARD_MEASURES:
            tol = float(getattr(spec.card, name))
            if card[name] > tol:
                failures.append(f"{name} {card[name]:.3g} from the card's median (card tolerance {tol:.3g})")
    corrected = (values["lightness"], m.lab[1], m.lab[2])
    return Checked(m, tuple(failures), delta_e(corrected, spec.lab), card)


def failure_reason(product: Product, checked: Checked) -> DefectCode:
    """The critical reason a failed check rejects with."""
    if product is Product.BLISTER:
        return DefectCode.EMPTY_POCKET if not checked.measurement.found else DefectCode.FOREIGN_TABLET
    if product is Product.TABLET:
        return DefectCode.WRONG_TABLET
    raise ValueError(f"no identity check for {product.value}")


def measure_as(unit: np.ndarray, spec: IdentitySpec) -> Measurement:
    """:func:`measure` with the specification's segmentation."""
    return measure(
        unit,
        segment_delta_e=spec.segment_delta_e,
        search_radius_px=spec.search_radius_px,
        min_area_px=MIN_AREA_SHARE * spec.area_px.mean,
    )


def check_units(units: np.ndarray, spec: IdentitySpec) -> list[Checked]:
    """Every unit of one item (``units [U, H, W, 3]``), in unit order; on a card with ``card``
    tolerances, each tablet against its card's median as well."""
    measured = [measure_as(u, spec) for u in units]
    if spec.card is None or len(measured) < 2:
        return [check(m, spec) for m in measured]
    deviations = card_deviations(measured, spec, spec.card.min_tablets)
    return [check(m, spec, d) for m, d in zip(measured, deviations, strict=True)]


def unit_reasons(product: Product, checks: Sequence[Checked]) -> tuple[DefectCode | None, ...]:
    """Per unit: the critical reason its failed check rejects with, or ``None`` where it passed."""
    return tuple(None if c.ok else failure_reason(product, c) for c in checks)


def specify(
    measured: Sequence[Measurement],
    *,
    sigmas: float,
    margin: float = 1.25,
    segment_delta_e: float,
    search_radius_px: float | None,
    floors: dict[str, float] | None = None,
    note: str = "",
    cards: Sequence[Sequence[Measurement]] | None = None,
    card_min_tablets: int = 5,
) -> IdentitySpec:
    """The specification from good tablets' measurements: each tolerance ``sigmas`` standard deviations
    (chroma: of the distance from the mean colour, above its mean), and at least ``margin`` times the
    largest deviation a good tablet showed (the tails of good product are heavier than a normal
    distribution's) and its ``floors`` value.

    With ``cards`` (the same tablets grouped by blister card) the spec also gets ``card`` tolerances:
    each at least ``margin`` times the largest deviation of a good tablet from its card's median, and
    ``sigmas`` times the deviations' root mean square (per axis for the colour)."""
    from inspector.config.identity import Tolerated

    found = [m for m in measured if m.found]
    if len(found) < 30:
        raise ValueError(f"only {len(found)} good tablets found: measure at least 30")
    floors = floors or {}
    arr = np.asarray(
        [[m.lab[0], m.lab[1], m.lab[2], m.area_px, m.length_px, m.width_px, m.roundness, m.background_l] for m in found]
    )
    mean = arr.mean(axis=0)
    # How the face's L* follows the background's (the lighting): least squares, never negative.
    bg = arr[:, 7] - mean[7]
    slope = max(0.0, float(np.dot(bg, arr[:, 0] - mean[0]) / max(float(np.dot(bg, bg)), 1e-9)))
    arr[:, 0] -= slope * bg
    sd = arr.std(axis=0, ddof=1)
    lab = (float(mean[0]), float(mean[1]), float(mean[2]))
    chroma = np.hypot(arr[:, 1] - mean[1], arr[:, 2] - mean[2])

    def tol(name: str, m: float, s: float, spread: float, worst: float) -> Tolerated:
        limit = max(spread, margin * worst, floors.get(name, 0.0))
        return Tolerated(mean=round(m, 4), sd=round(s, 4), tolerance=round(limit, 4))

    def col(i: int) -> Tolerated:
        name = ("lightness", "", "", "area_px", "length_px", "width_px", "roundness")[i]
        worst = float(np.abs(arr[:, i] - mean[i]).max())
        return tol(name, float(mean[i]), float(sd[i]), sigmas * float(sd[i]), worst)

    c_mean, c_sd = float(chroma.mean()), float(chroma.std(ddof=1))
    spec = IdentitySpec(
        lab=(round(lab[0], 4), round(lab[1], 4), round(lab[2], 4)),
        lightness=col(0),
        chroma=tol("chroma", c_mean, c_sd, c_mean + sigmas * c_sd, float(chroma.max())),
        area_px=col(3),
        length_px=col(4),
        width_px=col(5),
        roundness=col(6),
        background_l=round(float(mean[7]), 4),
        lightness_slope=round(min(slope, 3.0), 4),
        segment_delta_e=segment_delta_e,
        search_radius_px=search_radius_px,
        measured=note,
    )
    _refuse_wild_outlines(
        "from each other",
        {
            k: t.tolerance / t.mean
            for k, t in (("area", spec.area_px), ("length", spec.length_px), ("width", spec.width_px))
        },
        segment_delta_e,
    )
    if cards is None:
        return spec
    return spec.model_copy(update={"card": _card_tolerances(cards, spec, sigmas, margin, card_min_tablets)})


def _refuse_wild_outlines(against: str, shares: dict[str, float], segment_delta_e: float) -> None:
    """Refuse a reference whose good tablets vary in size by half a tablet: the segmentation failed."""
    wild = [f"{k} {v:.0%}" for k, v in shares.items() if v >= WILD_SHARE]
    if wild:
        raise ValueError(
            f"good tablets differ {against} by {WILD_SHARE:.0%} of a tablet or more ({', '.join(wild)}): the "
            f"outline found is not the tablet's. Its colour lies too near the background's at segment_delta_e "
            f"{segment_delta_e:g}; measure again with another --segment-delta-e (lower for a tablet close "
            "to its foil, nest or belt in colour)"
        )


def _card_tolerances(
    cards: Sequence[Sequence[Measurement]], spec: IdentitySpec, sigmas: float, margin: float, min_tablets: int
) -> CardTolerances:
    devs = [d for card in cards for d in card_deviations(card, spec, min_tablets) if d is not None]
    if len(devs) < 30:
        raise ValueError(f"only {len(devs)} tablets on cards with {min_tablets} or more found: measure more cards")
    arr = np.asarray([[d[k] for k in CARD_MEASURES] for d in devs])
    rms = np.sqrt((arr**2).mean(axis=0))
    rms[1] /= math.sqrt(2.0)  # the colour's distance spans two axes: its per-axis spread
    limits = np.maximum(sigmas * rms, margin * arr.max(axis=0))
    _refuse_wild_outlines(
        "from their own card's median",
        {k: float(v) for k, v in zip(CARD_MEASURES, limits, strict=True) if k in ("area", "length", "width")},
        spec.segment_delta_e,
    )
    return CardTolerances(
        **{k: round(float(v), 4) for k, v in zip(CARD_MEASURES, limits, strict=True)}, min_tablets=min_tablets
    )
