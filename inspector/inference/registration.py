"""Locate the item before inspecting it, and cut the model's units in the item's own frame.

On a line no two items sit in the same place: a blister card arrives shifted and turned, a vial
wobbles in its star wheel, a tablet lands anywhere on the belt. :func:`register` finds the item
with OpenCV (outline, moments, minimum-area rectangle), compares its pose with the recipe's
reference, and warps the units (the whole item, or each blister pocket) so that the model sees
the item where it saw it in training. The station, ``inspector evaluate`` and training all call
this one function.

What is located, per product:
- blister: the card (bright foil on the dark nest), at half resolution; anchor its centre,
  angle its long side against the image's x axis;
- tablet: the tablet (bright on the dark belt); anchor the centre of its smallest enclosing
  circle, angle its long axis (a round tablet has none: its recipe aligns the shift only, by
  whole pixels, so that no interpolation softens a crack two pixels wide);
- vial: the silhouette (edges, filled); anchor the point of the axis at the vial's base, which
  stays put when a cap or stopper is missing; angle the axis against the vertical.

The match score is how well the located outline's size and fill agree with the reference
(1.0 for the nominal item); the pose guard refuses an item below the recipe's ``min_score``,
beyond ``max_shift_px`` or ``max_turn_deg``, or one where nothing was found.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from inspector.config.registration import ItemReference, RegistrationSpec, pose_matrix
from inspector.config.roi import Roi
from inspector.taxonomy import Product

# Vial silhouette: edges of the blurred frame, closed into one outline.
_VIAL_BLUR_SIGMA = 0.75
_VIAL_CANNY = (20, 60)
_VIAL_CLOSE = np.ones((3, 3), np.uint8)
# The item must cover at least this share of the frame to count as found (not a speck of dust).
_MIN_AREA_SHARE = 0.02


@dataclass(frozen=True)
class Located:
    """Where the item is in the frame: anchor, orientation and outline size (see the module doc)."""

    x: float
    y: float
    angle_deg: float
    width: float
    height: float
    fill: float  # outline area / its minimum-area rectangle's area


@dataclass(frozen=True)
class Pose:
    """The item's pose relative to the recipe's reference (stored with every item)."""

    dx: float
    dy: float
    angle_deg: float
    score: float

    @property
    def shift(self) -> float:
        return math.hypot(self.dx, self.dy)

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Registered:
    """The units in the item's frame, or why the pose guard refused the item (``units`` is then None)."""

    pose: Pose | None
    units: np.ndarray | None
    refused: str | None = None


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _largest_outline(mask: np.ndarray) -> np.ndarray | None:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea)
    if cv2.contourArea(outline) < _MIN_AREA_SHARE * mask.shape[0] * mask.shape[1]:
        return None
    # An outline that reaches the frame's edge is not an item wholly in view (or the frame is blank).
    x, y, w, h = cv2.boundingRect(outline)
    if x <= 0 or y <= 0 or x + w >= mask.shape[1] or y + h >= mask.shape[0]:
        return None
    return outline


def _long_side(outline: np.ndarray) -> tuple[float, float, float, float, float]:
    """Centre x, y, long-side angle in (-90, 90] degrees, long and short side of the minimum-area rectangle."""
    rect = cv2.minAreaRect(outline)
    pts = cv2.boxPoints(rect)
    e1, e2 = pts[1] - pts[0], pts[2] - pts[1]
    n1, n2 = float(np.hypot(*e1)), float(np.hypot(*e2))
    long, length, width = (e1, n1, n2) if n1 >= n2 else (e2, n2, n1)
    angle = math.degrees(math.atan2(float(long[1]), float(long[0])))
    return float(rect[0][0]), float(rect[0][1]), _half_turn(angle), length, width


def _half_turn(angle: float) -> float:
    """An axis angle folded into (-90, 90]."""
    while angle <= -90.0:
        angle += 180.0
    while angle > 90.0:
        angle -= 180.0
    return angle


def _fill(outline: np.ndarray, length: float, width: float) -> float:
    return float(cv2.contourArea(outline)) / max(length * width, 1.0)


def _locate_card(image: np.ndarray) -> Located | None:
    small = cv2.resize(_grey(image), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    _, mask = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    outline = _largest_outline(mask)
    if outline is None:
        return None
    cx, cy, angle, length, width = _long_side(outline)
    # A half-resolution pixel i covers full-resolution pixels 2i and 2i + 1: its centre is 2i + 0.5.
    return Located(2 * cx + 0.5, 2 * cy + 0.5, angle, 2 * length, 2 * width, _fill(outline, length, width))


def _locate_tablet(image: np.ndarray) -> Located | None:
    _, mask = cv2.threshold(_grey(image), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    outline = _largest_outline(mask)
    if outline is None:
        return None
    # The anchor is the centre of the smallest enclosing circle: the tablet's centre for a whole
    # round or oblong tablet, and still the whole tablet's centre for a half broken across it
    # (the break is then the circle's diameter), where the centroid would move by a third of the radius.
    (cx, cy), _ = cv2.minEnclosingCircle(outline)
    _, _, angle, length, width = _long_side(outline)
    return Located(float(cx), float(cy), angle, length, width, _fill(outline, length, width))


def _locate_vial(image: np.ndarray) -> Located | None:
    # At half resolution, as the card: a quarter of the pixels to blur and trace.
    small = cv2.resize(_grey(image), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    grey = cv2.GaussianBlur(small, (0, 0), _VIAL_BLUR_SIGMA)
    edges = cv2.dilate(cv2.Canny(grey, *_VIAL_CANNY), _VIAL_CLOSE)
    found = _largest_outline(edges)
    if found is None:
        return None
    outline = found * 2 + 1  # half-resolution pixel i is full-resolution pixels 2i, 2i + 1 (their middle: 2i + 0.5)
    m = cv2.moments(outline)
    if m["m00"] <= 0:
        return None
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    # The principal axis from the central moments; the vial stands upright, so the axis points down.
    axis = 0.5 * math.atan2(2 * m["mu11"], m["mu20"] - m["mu02"])
    ux, uy = math.cos(axis), math.sin(axis)
    if uy < 0:
        ux, uy = -ux, -uy
    pts = outline.reshape(-1, 2).astype(np.float64)
    reach = float(((pts[:, 0] - cx) * ux + (pts[:, 1] - cy) * uy).max())
    _, _, _, length, width = _long_side(outline)
    tilt = _half_turn(math.degrees(math.atan2(uy, ux)) - 90.0)
    return Located(cx + reach * ux, cy + reach * uy, tilt, width, length, _fill(outline, length, width))


_LOCATORS = {Product.BLISTER: _locate_card, Product.TABLET: _locate_tablet, Product.VIAL: _locate_vial}


def locate(product: Product, image: np.ndarray) -> Located | None:
    """Find the item in ``image``; None when there is none wholly in view."""
    return _LOCATORS[product](image)


def match_score(found: Located, ref: ItemReference) -> float:
    """1.0 for an outline of the reference's size, filled like a rectangle; less as size or fill differ."""

    def agree(a: float, b: float) -> float:
        return min(a, b) / max(a, b)

    return agree(found.width, ref.width) * agree(found.height, ref.height) * min(found.fill, 1.0)


def _boxes(image: np.ndarray, rois: Sequence[Roi] | None) -> list[Roi]:
    h, w = image.shape[:2]
    return list(rois) if rois else [Roi(0, 0, w, h)]


def _stack(units: list[np.ndarray]) -> np.ndarray:
    """uint8 ``[U, H, W, C]``, a mono frame given its channel axis."""
    stacked = np.stack(units)
    return stacked[..., None] if stacked.ndim == 3 else stacked


def warp_units(image: np.ndarray, matrix: np.ndarray, rois: Sequence[Roi] | None) -> np.ndarray:
    """uint8 ``[U, H, W, C]``: each ROI (or the whole frame) warped upright into the reference frame."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    out = []
    for r in _boxes(image, rois):
        m = matrix.copy()
        m[:, 2] += matrix[:, :2] @ np.array([r.x, r.y], dtype=np.float64)
        out.append(cv2.warpAffine(image, m, (r.w, r.h), flags=flags, borderMode=cv2.BORDER_REPLICATE))
    return _stack(out)


def cut_units(image: np.ndarray, matrix: np.ndarray, rois: Sequence[Roi] | None) -> np.ndarray:
    """uint8 ``[U, H, W, C]``: each ROI (or the whole frame) cut unturned, by whole pixels, at its placed centre."""
    h, w = image.shape[:2]
    out = []
    for r in _boxes(image, rois):
        centre = np.array([r.x + r.w / 2, r.y + r.h / 2])
        ox, oy = (round(float(v)) for v in matrix[:, :2] @ centre + matrix[:, 2] - centre)
        x, y = r.x + ox, r.y + oy
        if x >= 0 and y >= 0 and x + r.w <= w and y + r.h <= h:
            out.append(image[y : y + r.h, x : x + r.w])
        else:  # reaching past the frame's edge: the edge pixels repeat, as in a warp
            shift = np.array([[1.0, 0.0, float(x)], [0.0, 1.0, float(y)]])
            flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
            out.append(cv2.warpAffine(image, shift, (r.w, r.h), flags=flags, borderMode=cv2.BORDER_REPLICATE))
    return _stack(out)


def register(
    product: Product, image: np.ndarray, spec: RegistrationSpec, rois: Sequence[Roi] | None = None
) -> Registered:
    """Locate the item, guard its pose and cut the units in its frame (see the module doc)."""
    found = locate(product, image)
    if found is None:
        return Registered(None, None, "registration found no item wholly in view")
    ref = spec.reference
    turn = _half_turn(found.angle_deg - ref.angle_deg)
    pose = Pose(found.x - ref.x, found.y - ref.y, turn, match_score(found, ref))
    if pose.score < spec.min_score:
        return Registered(pose, None, f"match score {pose.score:.2f} below {spec.min_score:g}")
    if pose.shift > spec.max_shift_px:
        return Registered(pose, None, f"shifted {pose.shift:.1f} px, more than {spec.max_shift_px:g} px")
    if spec.align_rotation and abs(turn) > spec.max_turn_deg:
        return Registered(pose, None, f"turned {turn:+.1f} deg, more than {spec.max_turn_deg:g} deg")
    matrix = pose_matrix(ref, pose.dx, pose.dy, turn if spec.align_rotation else 0.0)
    if spec.align_rotation and abs(turn) > spec.rotate_above_deg:
        return Registered(pose, warp_units(image, matrix, rois))
    # A small turn is left in (the models were trained on it): each unit is cut by whole pixels
    # around where its centre lies, which copies the pixels as they are, thin cracks included.
    return Registered(pose, cut_units(image, matrix, rois))


def measure_reference(product: Product, images: Sequence[np.ndarray]) -> ItemReference:
    """The median located pose and size over images of nominal items."""
    return reference_of([f for f in (locate(product, img) for img in images) if f is not None])


def reference_of(found: Sequence[Located]) -> ItemReference:
    """The median of located nominal items (``inspector registration-reference``)."""
    if not found:
        raise ValueError("registration found no item in any reference image")
    med = {k: float(np.median([getattr(f, k) for f in found])) for k in ("x", "y", "angle_deg", "width", "height")}
    return ItemReference(**{k: round(v, 2) for k, v in med.items()})
