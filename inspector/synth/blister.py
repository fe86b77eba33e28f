"""Procedural renderer of a blister card seen from the tablet side (BGR8, 640 x 480).

The card is a silver aluminium lidding foil (brushed, with a diamond heat-seal knurl and a
faint print) under clear thermoformed PVC pockets, lying on a dark nest. Every pocket is a
round dome with a bright rim, a dark fold line where it meets the flat web and a window
reflection; the nominal content is one light orange, film-coated, scored round tablet of
about 56 px that casts a soft shadow on the pocket floor.

Everything that never changes (nest, card, foil texture, print, dome optics) is built once
per grid and print registration and cached; a render copies that background and only
shades the pocket contents, so it stays cheap.

Randomness: one generator from :func:`base.make_rng` draws, in a fixed order, the pocket
choice of :func:`render` (also burnt by :func:`render_card`, so both agree), the print
registration, the dome reflection, one seed per pocket, the pose jitter and the camera
effects. Each pocket draws its nominal spread first and its defect second from its own
seeded generator, so a card rendered with seed ``s`` differs from the all-``ok`` card with
seed ``s`` only inside the defective pockets.

Truth coordinates are in pixels with pixel centres at integers: the dome of grid pocket
``(cx, cy)`` is centred on ``(cx - 0.5, cy - 0.5)``, the centre of its even-sized ROI.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from inspector.config.roi import DEFAULT_BLISTER_GRID, PocketGrid
from inspector.synth.base import Rendered, camera_effects, jitter_pose, make_rng
from inspector.synth.foreign import ForeignTablet
from inspector.taxonomy import IMAGE_SPECS, OK, Product, criticality, labels, worst

PRODUCT = Product.BLISTER
LABELS = labels(PRODUCT)
MAX_NUISANCE = 3.0

# Pose jitter of the whole card at nuisance 1. Above that the spread is clamped (see
# _Scene.pose_cap) so that every pocket, its tablet and any foil damage next to it stay in
# the station's fixed pocket ROI at every nuisance.
MAX_SHIFT_PX = 5.0
MAX_ROT_DEG = 1.0
# Damage and tilted double tablets reach this far beyond the dome radius (canonical pose).
_REACH_PX = 3.0
# How often render() puts its defect into two pockets instead of one.
_TWO_POCKETS_P = 0.15

_TABLET_TO_POCKET = 56.0 / 76.0  # nominal tablet diameter / pocket diameter
_TABLET_BGR = np.array([104.0, 175.0, 244.0], np.float32)  # light orange film coat
_CORE_BGR = np.array([206.0, 220.0, 229.0], np.float32)  # pale tablet core seen at a break
_HOLE_BGR = (30.0, 32.0, 36.0)  # the dark nest seen through a hole in the foil
_FOIL_BGR = np.array([176.0, 177.0, 175.0], np.float32)
_NEST_BGR = np.array([34.0, 33.0, 31.0], np.float32)
_INK_BGR = np.array([0.80, 0.86, 0.90], np.float32)  # blue-grey print ink (multiplies the foil)
# Accepted spread of the nominal tablet (nuisance 1 sd, hard limit at any nuisance).
_TABLET_SHIFT_SD, _TABLET_SHIFT_MAX = 1.3, 5.0
_TABLET_SIZE_SD, _TABLET_SIZE_MAX = 0.008, 0.025
_TABLET_GAIN_SD, _TABLET_GAIN_MAX = 0.03, 0.07
_TABLET_TINT_SD, _TABLET_TINT_MAX = 0.012, 0.035

_LIGHT = np.array([-0.45, -0.6, 1.0]) / np.linalg.norm([-0.45, -0.6, 1.0])
_HALF = (_LIGHT + np.array([0.0, 0.0, 1.0])) / np.linalg.norm(_LIGHT + np.array([0.0, 0.0, 1.0]))
_SHADOW_OFFSET = (2, 3)  # px (x, y) away from the light
_SHADOW_SIGMA = 2.2
_SHADOW_STRENGTH = 0.45
_PRINT_REGISTRATIONS = ((0, 0), (37, 19), (-52, 33), (81, -24))  # print offset vs. the pockets
_TEXTURE_SEED = 0xB115_7E2  # fixed: the card's material texture is a constant asset
_SUBPX_SHIFT = 4
_SUBPX = float(1 << _SUBPX_SHIFT)
_SPRITE_PAD = math.ceil(_TABLET_SHIFT_MAX) + 1  # integer shifts of a cached tablet sprite


@dataclass(frozen=True)
class BlisterLook:
    """How one line presents its blister cards: the tablet, the lidding foil and print, the nest.

    The default is the renderer's own look (``nominal``), byte for byte as before looks existed.
    """

    name: str = "nominal"
    tablet_bgr: tuple[float, float, float] = (104.0, 175.0, 244.0)
    core_bgr: tuple[float, float, float] = (206.0, 220.0, 229.0)
    foil_bgr: tuple[float, float, float] = (176.0, 177.0, 175.0)
    nest_bgr: tuple[float, float, float] = (34.0, 33.0, 31.0)
    ink_bgr: tuple[float, float, float] = (0.80, 0.86, 0.90)
    # The foreign round tablet of the same size: white, unless the product is itself white.
    foreign_round_bgr: tuple[float, float, float] = (228.0, 232.0, 232.0)
    foreign_oblong_bgr: tuple[float, float, float] = (226.0, 230.0, 231.0)


NOMINAL_LOOK = BlisterLook()

FOREIGN_KINDS = ("white_round", "blue_round", "small_orange", "white_oblong", "capsule")
DAMAGE_KINDS = ("tear", "puncture", "wrinkle")


@dataclass(frozen=True)
class _Scene:
    """Everything about a grid that does not change from card to card."""

    radius: float  # dome radius
    tablet_radius: float
    half: int  # pocket patch half size (patch is 2*half square around the pocket centre)
    xs: np.ndarray  # patch pixel x coordinates relative to the pocket centre, (1, 2*half)
    ys: np.ndarray  # patch pixel y coordinates relative to the pocket centre, (2*half, 1)
    dome_mul: np.ndarray  # (2*half, 2*half, 1) float32: PVC wall darkening and fold line
    dome_add: np.ndarray  # (2*half, 2*half, 1) float32: rim highlights
    reflection: np.ndarray  # (2*half + 8, 2*half + 8) float32: window reflection, shifted per card
    pose_cap: float  # largest nuisance the pose jitter may use
    center: tuple[float, float]  # rotation centre of the card


@dataclass
class _Layer:
    """One thing lying in a pocket, in patch coordinates."""

    rgb: np.ndarray  # (h, w, 3) float32
    alpha: np.ndarray  # (h, w) float32 in 0..1
    shadow_mul: np.ndarray | None = None  # (h, w, 1) its shadow on what lies below; None: from alpha
    # Fast path for cached tablets: patch = patch * keep + cover (shadow and alpha folded in).
    keep: np.ndarray | None = None  # (h, w, 1)
    cover: np.ndarray | None = None  # (h, w, 3)


@dataclass(frozen=True)
class _Sprite:
    """The nominal tablet, shaded once for a size and sub-pixel phase, with a margin for shifts."""

    shade: np.ndarray  # unit-colour diffuse shading
    spec: np.ndarray  # specular highlight, grey levels
    alpha: np.ndarray
    shadow_mul: np.ndarray  # (.., .., 1)
    keep: np.ndarray  # (.., .., 1) shadow_mul * (1 - alpha)
    shade_alpha: np.ndarray  # shade * alpha
    spec_alpha: np.ndarray  # (.., .., 1) spec * alpha


@dataclass
class _Content:
    layers: list[_Layer]
    mask: np.ndarray | None  # patch-sized bool mask of the defect, None for a nominal pocket
    tablet_xy: tuple[float, float] | None  # main tablet centre in patch coordinates
    description: str


# --------------------------------------------------------------------------- public API


def render(
    label: str,
    seed: int,
    nuisance: float = 1.0,
    *,
    foreign: ForeignTablet | None = None,
    look: BlisterLook = NOMINAL_LOOK,
) -> Rendered:
    """Render a card whose worst pocket is ``label`` (one pocket, sometimes two; others ok).

    ``foreign`` (label ``foreign_tablet`` only): this tablet in the foreign pockets instead of one of
    the renderer's own foreign tablets (:mod:`inspector.synth.foreign`, evaluation sets only).
    """
    _check_label(label)
    if foreign is not None and label != "foreign_tablet":
        raise ValueError("a foreign tablet is drawn for the label foreign_tablet only")
    rng = make_rng(seed)
    count, order = _draw_pocket_choice(rng, DEFAULT_BLISTER_GRID.count)
    pockets = [OK] * DEFAULT_BLISTER_GRID.count
    if label != OK:
        for idx in order[:count]:
            pockets[int(idx)] = label
    return _render_card(tuple(pockets), rng, int(seed), float(nuisance), DEFAULT_BLISTER_GRID, foreign, look)


def render_card(
    pockets: Sequence[str], seed: int, nuisance: float = 1.0, grid: PocketGrid = DEFAULT_BLISTER_GRID
) -> Rendered:
    """Render a card with an explicit label per pocket (row-major).

    ``render_card(render(label, s).pockets, s)`` reproduces ``render(label, s)`` exactly.
    """
    if isinstance(pockets, str):
        raise ValueError("pockets must be a sequence of pocket labels, not a single string")
    pockets = tuple(pockets)
    if len(pockets) != grid.count:
        raise ValueError(f"expected {grid.count} pocket labels for a {grid.rows}x{grid.cols} grid, got {len(pockets)}")
    for i, lab in enumerate(pockets):
        if lab not in LABELS:
            raise ValueError(f"pocket {i}: unknown blister label {lab!r}; known: {', '.join(LABELS)}")
    spec = IMAGE_SPECS[PRODUCT]
    if tuple(grid.image_size) != (spec.width, spec.height):
        raise ValueError(f"grid image_size {grid.image_size} does not match the camera ({spec.width}, {spec.height})")
    rng = make_rng(seed)
    _draw_pocket_choice(rng, grid.count)  # burnt so that render_card and render agree
    return _render_card(pockets, rng, int(seed), float(nuisance), grid)


# --------------------------------------------------------------------------- card


def _check_label(label: str) -> None:
    if label not in LABELS:
        raise ValueError(f"unknown blister label {label!r}; known: {', '.join(LABELS)}")


def _draw_pocket_choice(rng: np.random.Generator, count: int) -> tuple[int, np.ndarray]:
    two = rng.random() < _TWO_POCKETS_P
    return (2 if two and count > 1 else 1), rng.permutation(count)


def _render_card(
    pockets: tuple[str, ...],
    rng: np.random.Generator,
    seed: int,
    nuisance: float,
    grid: PocketGrid,
    foreign: ForeignTablet | None = None,
    look: BlisterLook = NOMINAL_LOOK,
) -> Rendered:
    if not 0.0 <= nuisance <= MAX_NUISANCE:
        raise ValueError(f"nuisance must be in 0..{MAX_NUISANCE}, got {nuisance}")
    scene = _scene(grid)
    height, width = grid.image_size[1], grid.image_size[0]

    registration = int(rng.integers(len(_PRINT_REGISTRATIONS)))
    canvas = _background(grid, registration if nuisance > 0 else 0, look).copy()
    # Window reflection on the domes: brightness and position drift with the lamp/card.
    refl_gain = float(np.clip(1.0 + rng.normal(0.0, 0.25) * nuisance, 0.4, 1.7))
    refl_dx, refl_dy = np.clip(np.round(rng.normal(0.0, 1.3, 2) * nuisance), -4, 4).astype(int)
    pocket_seeds = rng.integers(0, 2**63, size=grid.count)

    size = 2 * scene.half
    refl = scene.reflection[4 + refl_dy : 4 + refl_dy + size, 4 + refl_dx : 4 + refl_dx + size]
    dome_add = scene.dome_add + (refl_gain * refl)[:, :, None]

    defect_masks: list[np.ndarray] = []
    defect_index: list[int] = []
    descriptions: list[str] = []
    tablet_points: list[tuple[float, float] | None] = []
    for i, ((cx, cy), label, pseed) in enumerate(zip(grid.centers(), pockets, pocket_seeds, strict=True)):
        prng = np.random.Generator(np.random.PCG64(int(pseed)))
        full_mask = np.zeros((height, width), np.uint8) if label != OK else None
        content = _pocket_content(label, prng, nuisance, scene, foreign, look)
        if label == "foil_damage":
            assert full_mask is not None
            tablet_alpha = content.layers[-1].alpha if content.layers else None
            kind = _draw_foil_damage(canvas, full_mask, (cx, cy), prng, scene, tablet_alpha)
            content.description = f"foil_damage:{kind}"
        _composite_pocket(canvas, cx, cy, content.layers, scene, dome_add)
        h = scene.half
        window = (slice(cy - h, cy + h), slice(cx - h, cx + h))
        if full_mask is not None:
            local = full_mask[window]
            if content.mask is not None:
                local[content.mask] = 255
            if label == "foil_damage" and content.layers:
                # The tablet hides damage under it.
                local[content.layers[-1].alpha > 0.5] = 0
            defect_masks.append(full_mask)
            defect_index.append(i)
        descriptions.append(content.description)
        tp = content.tablet_xy
        tablet_points.append(None if tp is None else (cx - h + tp[0], cy - h + tp[1]))

    image, moved_masks, mat = jitter_pose(
        canvas,
        defect_masks,
        rng,
        min(nuisance, scene.pose_cap),
        max_shift=MAX_SHIFT_PX,
        max_rot_deg=MAX_ROT_DEG,
        center=scene.center,
    )
    image = camera_effects(image, rng, nuisance)

    pocket_masks = [np.zeros((height, width), np.uint8) for _ in pockets]
    for i, m in zip(defect_index, moved_masks, strict=True):
        pocket_masks[i] = m
    union = np.zeros((height, width), np.uint8)
    for m in moved_masks:
        np.bitwise_or(union, m, out=union)

    def moved(p: tuple[float, float]) -> tuple[float, float]:
        return (
            float(mat[0, 0] * p[0] + mat[0, 1] * p[1] + mat[0, 2]),
            float(mat[1, 0] * p[0] + mat[1, 1] * p[1] + mat[1, 2]),
        )

    card_label, worst_idx = worst(PRODUCT, pockets)
    truth: dict[str, Any] = {
        "pocket_rois": [tuple(roi) for roi in grid.rois()],
        "pocket_centers": [moved((x - 0.5, y - 0.5)) for x, y in grid.centers()],
        "grid": grid.model_dump(),
        "tablet_centers": [None if p is None else moved(p) for p in tablet_points],
        "pocket_contents": descriptions,
        "worst_pocket": worst_idx,
        "pose": _pose_truth(mat, scene.center),
        "pocket_radius": scene.radius,
        "tablet_radius": scene.tablet_radius,
    }
    return Rendered(
        product=PRODUCT,
        label=card_label,
        criticality=criticality(PRODUCT, card_label),
        seed=seed,
        image=image,
        mask=union,
        pockets=pockets,
        pocket_masks=tuple(pocket_masks),
        truth=truth,
    )


def _pose_truth(mat: np.ndarray, center: tuple[float, float]) -> dict[str, Any]:
    """Rotation and shift of the card, taken from the affine matrix jitter_pose used."""
    rotation = mat[:, :2]
    shift = mat[:, 2] - (np.eye(2) - rotation) @ np.asarray(center)
    return {
        "angle_deg": float(math.degrees(math.atan2(-mat[0, 1], mat[0, 0]))),
        "shift_px": (float(shift[0]), float(shift[1])),
        "center": center,
        "matrix": mat.tolist(),
    }


def _composite_pocket(
    canvas: np.ndarray, cx: int, cy: int, layers: list[_Layer], scene: _Scene, dome_add: np.ndarray
) -> None:
    """Shadow and blend the pocket's contents, then lay the PVC dome over them."""
    h = scene.half
    view = canvas[cy - h : cy + h, cx - h : cx + h]
    patch = view.astype(np.float32)
    for layer in layers:
        if layer.keep is not None and layer.cover is not None:
            patch *= layer.keep
            patch += layer.cover
        else:
            patch *= layer.shadow_mul if layer.shadow_mul is not None else _shadow_mul(layer.alpha)
            patch += (layer.rgb - patch) * layer.alpha[:, :, None]
    patch *= scene.dome_mul
    patch += dome_add
    # Every term is non-negative: convertScaleAbs rounds and saturates to uint8 in one pass.
    view[...] = cv2.convertScaleAbs(patch)


# --------------------------------------------------------------------------- pocket contents


def _pocket_content(
    label: str,
    prng: np.random.Generator,
    nuisance: float,
    scene: _Scene,
    foreign: ForeignTablet | None = None,
    look: BlisterLook = NOMINAL_LOOK,
) -> _Content:
    """What lies in one pocket. The nominal spread is drawn first, for every label alike."""
    n = nuisance
    draws = prng.standard_normal(7)
    shift = draws[:2] * (_TABLET_SHIFT_SD * n)
    norm = math.hypot(shift[0], shift[1])
    if norm > _TABLET_SHIFT_MAX:
        shift *= _TABLET_SHIFT_MAX / norm
    size = 1.0 + _clamp(draws[2] * _TABLET_SIZE_SD * n, _TABLET_SIZE_MAX)
    gain = 1.0 + _clamp(draws[3] * _TABLET_GAIN_SD * n, _TABLET_GAIN_MAX)
    tint = [1.0 + _clamp(d * _TABLET_TINT_SD * n, _TABLET_TINT_MAX) for d in draws[4:7]]
    score_angle = float(prng.uniform(-1.0, 1.0)) * math.pi / 2 * min(n, 1.0)

    h = scene.half
    # Position on a 1/2 px and size on a 1/4 px lattice, so that the shaded tablet can be cached.
    qx, qy = np.round(shift * 2.0) / 2.0
    ix, iy = math.floor(qx), math.floor(qy)
    phase_x, phase_y = round((qx - ix) * 2), round((qy - iy) * 2)
    tx, ty = h - 0.5 + float(qx), h - 0.5 + float(qy)
    radius_q = round(scene.tablet_radius * size * 4.0)
    radius = radius_q / 4.0
    product_bgr = _TABLET_BGR if look is NOMINAL_LOOK else np.array(look.tablet_bgr, np.float32)
    colour = (product_bgr * gain * np.array(tint)).astype(np.float32)
    sprite = _tablet_sprite(h, radius_q, phase_x, phase_y)
    rows = slice(_SPRITE_PAD - iy, _SPRITE_PAD - iy + 2 * h)
    cols = slice(_SPRITE_PAD - ix, _SPRITE_PAD - ix + 2 * h)

    def nominal() -> _Layer:
        score = _score_factor(2 * h, tx, ty, score_angle, radius)
        if label in (OK, "foil_damage"):  # as is: the premultiplied fast path
            cover = (sprite.shade_alpha[rows, cols] * score)[:, :, None] * colour + sprite.spec_alpha[rows, cols]
            return _Layer(cover, sprite.alpha[rows, cols], keep=sprite.keep[rows, cols], cover=cover)
        rgb = (sprite.shade[rows, cols] * score)[:, :, None] * colour + sprite.spec[rows, cols, None]
        return _Layer(rgb, sprite.alpha[rows, cols], sprite.shadow_mul[rows, cols])

    if label == OK:
        return _Content([nominal()], None, (tx, ty), "nominal")
    if label == "empty_pocket":
        sdf = _sdf_ellipse(scene, tx, ty, radius, radius, 0.0)
        return _Content([], sdf < 0.0, None, "empty")
    if label == "broken_tablet":
        core = _CORE_BGR if look is NOMINAL_LOOK else np.array(look.core_bgr, np.float32)
        return _broken_tablet(prng, scene, nominal(), (tx, ty), radius, colour, core)
    if label == "foreign_tablet" and foreign is not None:
        return _random_foreign(prng, scene, (tx, ty), radius, foreign)
    if label == "foreign_tablet":
        return _foreign_tablet(prng, scene, (tx, ty), radius, look)
    if label == "double_tablet":
        return _double_tablet(prng, scene, radius, colour, score_angle)
    if label == "foil_damage":
        return _Content([nominal()], None, (tx, ty), "foil_damage")
    raise ValueError(f"unknown blister label {label!r}")


def _broken_tablet(
    prng: np.random.Generator,
    scene: _Scene,
    layer: _Layer,
    centre: tuple[float, float],
    radius: float,
    colour: np.ndarray,
    core_bgr: np.ndarray = _CORE_BGR,
) -> _Content:
    """A tablet with 25-50 % broken off along a jagged line, sometimes with a loose fragment."""
    sdf = _sdf_ellipse(scene, *centre, radius, radius, 0.0)
    size = 2 * scene.half
    # Chord at distance c from the centre: c/r in 0..0.38 removes 50 %..25 % of the face.
    direction = prng.uniform(0.0, 2 * math.pi)
    c = prng.uniform(0.0, 0.38) * radius
    nx, ny = math.cos(direction), math.sin(direction)  # towards the removed side
    ux, uy = -ny, nx
    ts = np.linspace(-radius - 4, radius + 4, 9)
    jag = prng.uniform(-2.5, 2.5, ts.size)
    line = [
        (centre[0] + nx * (c + j) + ux * t, centre[1] + ny * (c + j) + uy * t) for t, j in zip(ts, jag, strict=True)
    ]
    far = radius + 12
    poly = [*line, (line[-1][0] + nx * far, line[-1][1] + ny * far), (line[0][0] + nx * far, line[0][1] + ny * far)]
    removed = _fill_alpha(size, [poly])
    inside = sdf < 0.0
    alpha = layer.alpha * (1.0 - removed)
    # The broken face shows the pale core in a band along the break.
    keep = (removed < 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(keep, cv2.DIST_L2, 3)
    band = np.clip(4.0 - dist, 0.0, 1.0) * (alpha > 0.0)
    grain = 1.0 + prng.normal(0.0, 0.05, band.shape).astype(np.float32)
    core = core_bgr * (0.78 + 0.14 * np.clip(dist / 3.0, 0.0, 1.0))[:, :, None] * grain[:, :, None]
    rgb = layer.rgb + (core - layer.rgb) * band[:, :, None]
    layers = [_Layer(rgb.astype(np.float32), alpha.astype(np.float32))]
    defect = (inside & (removed > 0.5)) | ((band > 0.3) & (alpha > 0.5))
    description = "broken"
    if prng.random() < 0.6:
        # A loose fragment lying in the part of the pocket the break left free.
        segment = (inside & (removed > 0.5)).astype(np.uint8)
        m = cv2.moments(segment, binaryImage=True)
        if m["m00"] > 0:
            fx = m["m10"] / m["m00"] + prng.uniform(-1.5, 1.5)
            fy = m["m01"] / m["m00"] + prng.uniform(-1.5, 1.5)
            frag_r = prng.uniform(5.0, 7.5)
            k = int(prng.integers(5, 8))
            angles = np.sort(prng.uniform(0.0, 2 * math.pi, k))
            radii = frag_r * prng.uniform(0.65, 1.1, k)
            pts = [(fx + rr * math.cos(a), fy + rr * math.sin(a)) for a, rr in zip(angles, radii, strict=True)]
            frag_alpha = _fill_alpha(size, [pts])
            frag_keep = (frag_alpha > 0.5).astype(np.uint8)
            frag_dist = cv2.distanceTransform(frag_keep, cv2.DIST_L2, 3)
            edge = np.clip(2.2 - frag_dist, 0.0, 1.0)[:, :, None]
            frag_rgb = colour * 0.93 * (1.0 - edge) + core_bgr * 0.85 * edge
            layers.append(_Layer(frag_rgb.astype(np.float32), frag_alpha))
            defect |= frag_alpha > 0.5
            description = "broken+fragment"
    return _Content(layers, defect, centre, description)


def _foreign_tablet(
    prng: np.random.Generator,
    scene: _Scene,
    centre: tuple[float, float],
    radius: float,
    look: BlisterLook = NOMINAL_LOOK,
) -> _Content:
    """A tablet of another product: other colour, shape or size."""
    kind = FOREIGN_KINDS[int(prng.integers(len(FOREIGN_KINDS)))]
    nominal_sdf = _sdf_ellipse(scene, *centre, radius, radius, 0.0)
    angle = prng.uniform(0.0, math.pi)
    base_r = scene.tablet_radius
    if kind == "white_round":
        r = base_r * prng.uniform(0.9, 1.07)
        sdf = _sdf_ellipse(scene, *centre, r, r, angle)
        layer = _shade_tablet(sdf, np.array(look.foreign_round_bgr, np.float32), r, score=(*centre, angle))
    elif kind == "blue_round":
        r = base_r * prng.uniform(0.82, 1.03)
        sdf = _sdf_ellipse(scene, *centre, r, r, angle)
        layer = _shade_tablet(sdf, np.array([196.0, 118.0, 52.0], np.float32), r, score=None)
    elif kind == "small_orange":
        # Same coating, but a lower strength: visibly smaller (<= 71 % of the diameter).
        r = base_r * prng.uniform(0.6, 0.71)
        sdf = _sdf_ellipse(scene, *centre, r, r, angle)
        own = _TABLET_BGR.copy() if look is NOMINAL_LOOK else np.array(look.tablet_bgr, np.float32)
        layer = _shade_tablet(sdf, own, r, score=(*centre, angle))
    elif kind == "white_oblong":
        length = scene.radius * prng.uniform(1.6, 1.8)
        wid = base_r * prng.uniform(0.95, 1.1)
        sdf = _sdf_stadium(scene, *centre, length / 2, wid / 2, angle)
        white = np.array(look.foreign_oblong_bgr, np.float32)
        layer = _shade_tablet(sdf, white, wid / 2, score=(*centre, angle + math.pi / 2))
    else:  # capsule: hard gelatine, two colours
        length = scene.radius * prng.uniform(1.5, 1.7)
        wid = base_r * prng.uniform(0.8, 0.92)
        sdf = _sdf_stadium(scene, *centre, length / 2, wid / 2, angle)
        cap = np.array([170.0, 96.0, 38.0] if prng.random() < 0.5 else [70.0, 140.0, 52.0], np.float32)
        layer = _shade_capsule(sdf, scene, centre, angle, wid / 2, cap, np.array([226.0, 228.0, 228.0], np.float32))
    defect = (nominal_sdf < 0.0) | (layer.alpha > 0.5)
    return _Content([layer], defect, centre, f"foreign:{kind}")


def _double_tablet(
    prng: np.random.Generator,
    scene: _Scene,
    radius: float,
    colour: np.ndarray,
    score_angle: float,
) -> _Content:
    """Two tablets: one on the floor, one leaning on it (tilted, seen as an ellipse)."""
    h = scene.half
    direction = prng.uniform(0.0, 2 * math.pi)
    dx, dy = math.cos(direction), math.sin(direction)
    sep = prng.uniform(15.0, 18.0)
    tilt = math.radians(prng.uniform(6.0, 20.0))
    # The pair fills the pocket (and presses on the dome): its midpoint is the pocket centre.
    mx, my = h - 0.5, h - 0.5
    lx, ly = mx - dx * sep / 2, my - dy * sep / 2
    ux, uy = mx + dx * sep / 2, my + dy * sep / 2
    lower_sdf = _sdf_ellipse(scene, lx, ly, radius, radius, score_angle)
    lower = _shade_tablet(lower_sdf, colour, radius, score=(lx, ly, score_angle))
    r_up = radius * 1.03  # closer to the camera
    squash = math.cos(tilt)
    # Its side wall shows as a darker crescent on the side it leans down to.
    side_sdf = _sdf_ellipse(scene, ux + dx * 2.0, uy + dy * 2.0, r_up * squash, r_up, direction)
    side = _Layer(np.broadcast_to(colour * 0.62, (2 * h, 2 * h, 3)).astype(np.float32), np.clip(0.5 - side_sdf, 0, 1))
    upper_sdf = _sdf_ellipse(scene, ux, uy, r_up * squash, r_up, direction)
    face_gain = 1.0 + 0.35 * math.sin(tilt) * (-(dx * _LIGHT[0] + dy * _LIGHT[1]))
    upper = _shade_tablet(upper_sdf, (colour * face_gain).astype(np.float32), r_up * squash, score=None)
    defect = (lower.alpha > 0.5) | (upper.alpha > 0.5) | (side.alpha > 0.5)
    return _Content([lower, side, upper], defect, (lx, ly), "double")


# --------------------------------------------------------------------------- foil damage


@dataclass
class _Damage:
    """Foil damage drawn as primitives, in pixels relative to the pocket centre."""

    kind: str
    holes: list[list[tuple[float, float]]]  # dark: the nest seen through the foil
    flaps: list[list[tuple[float, float]]]  # bright: torn foil bent up to the light
    creases: list[tuple[list[tuple[float, float]], tuple[float, float, float]]]  # 1 px polylines


_TORN_BGR = (240.0, 242.0, 244.0)
_CREASE_DARK_BGR = (62.0, 64.0, 66.0)
_MIN_VISIBLE_DAMAGE_PX = 45


def _draw_foil_damage(
    canvas: np.ndarray,
    mask: np.ndarray,
    centre: tuple[int, int],
    prng: np.random.Generator,
    scene: _Scene,
    tablet_alpha: np.ndarray | None,
) -> str:
    """Draw a tear, puncture or crease+split in the foil at the pocket's rim (canvas and mask).

    The tablet lies over the foil, so a damage it would mostly hide is drawn again
    elsewhere around the rim: every instance stays clearly visible.
    """
    h = scene.half
    cx, cy = centre
    window = (slice(cy - h, cy + h), slice(cx - h, cx + h))
    hidden = tablet_alpha > 0.5 if tablet_alpha is not None else np.zeros((2 * h, 2 * h), bool)
    for _attempt in range(12):
        damage = _damage_geometry(prng, scene)
        mask[window] = 0
        _draw_damage(mask, None, damage, centre)
        visible = int(np.count_nonzero(mask[window][~hidden]))
        if visible >= _MIN_VISIBLE_DAMAGE_PX and visible >= 0.6 * np.count_nonzero(mask[window]):
            break
    _draw_damage(canvas, canvas, damage, centre)
    return damage.kind


def _damage_geometry(prng: np.random.Generator, scene: _Scene) -> _Damage:
    kind = DAMAGE_KINDS[int(prng.integers(len(DAMAGE_KINDS)))]
    limit = scene.radius + 1.0  # stays in the ROI box whatever the pose
    # Half of the damages sit towards the ROI corners, where the seal is widest.
    if prng.random() < 0.5:
        phi = math.pi / 4 + math.pi / 2 * int(prng.integers(4)) + prng.uniform(-0.4, 0.4)
    else:
        phi = prng.uniform(0.0, 2 * math.pi)
    holes: list[list[tuple[float, float]]] = []
    flaps: list[list[tuple[float, float]]] = []
    creases: list[tuple[list[tuple[float, float]], tuple[float, float, float]]] = []
    if kind in ("tear", "wrinkle"):
        if kind == "tear":
            length, width = prng.uniform(16.0, 26.0), prng.uniform(3.5, 7.0)
        else:
            length, width = prng.uniform(12.0, 17.0), prng.uniform(3.0, 4.5)
        rho = prng.uniform(scene.radius, scene.radius + 6.0)
        turn = prng.uniform(-0.7, 0.7)  # from tangential (0) towards radial
        ax, ay = math.cos(phi + math.pi / 2 + turn), math.sin(phi + math.pi / 2 + turn)
        px, py = rho * math.cos(phi), rho * math.sin(phi)
        ts = np.linspace(-length / 2, length / 2, 8)
        env = np.sin(np.linspace(0.0, math.pi, ts.size)) ** 0.6
        w1 = width / 2 * env * prng.uniform(0.5, 1.15, ts.size)
        w2 = width / 2 * env * prng.uniform(0.5, 1.15, ts.size)
        wob = prng.uniform(-1.0, 1.0, ts.size)
        side1 = [(px + ax * t - ay * (a + o), py + ay * t + ax * (a + o)) for t, a, o in zip(ts, w1, wob, strict=True)]
        side2 = [(px + ax * t + ay * (b - o), py + ay * t - ax * (b - o)) for t, b, o in zip(ts, w2, wob, strict=True)]
        holes.append(side1 + side2[::-1])
        # A curled flap of foil on one side of the tear catches the light.
        k = int(prng.integers(2, ts.size - 3))
        flap_side = side1 if prng.random() < 0.5 else side2
        a0, a1 = flap_side[k], flap_side[k + 2]
        mxp, myp = (a0[0] + a1[0]) / 2, (a0[1] + a1[1]) / 2
        out_x, out_y = mxp - px, myp - py
        nrm = math.hypot(out_x, out_y) or 1.0
        lift = prng.uniform(4.0, 6.5)
        flaps.append([a0, a1, (mxp + out_x / nrm * lift, myp + out_y / nrm * lift)])
        if kind == "wrinkle":
            # Creases around the split: sharp dark/bright ridges in the foil.
            for j in range(int(prng.integers(3, 6))):
                off = (j - 2) * prng.uniform(3.0, 4.0) + prng.uniform(-0.8, 0.8)
                ln = prng.uniform(16.0, 26.0)
                bend = prng.uniform(-2.0, 2.0)
                c0 = (px - ay * off, py + ax * off)
                pts = [
                    (c0[0] - ax * ln / 2, c0[1] - ay * ln / 2),
                    (c0[0] - ay * bend, c0[1] + ax * bend),
                    (c0[0] + ax * ln / 2, c0[1] + ay * ln / 2),
                ]
                creases.append((pts, _CREASE_DARK_BGR))
                creases.append(([(x - ay * 1.4, y + ax * 1.4) for x, y in pts], _TORN_BGR))
    else:  # puncture: a ragged round hole with bright burrs around it
        rp = prng.uniform(4.0, 7.0)
        rho = prng.uniform(scene.radius, scene.radius + 5.0)
        px, py = rho * math.cos(phi), rho * math.sin(phi)
        k = int(prng.integers(9, 13))
        angles = np.sort(prng.uniform(0.0, 2 * math.pi, k))
        radii = rp * prng.uniform(0.6, 1.15, k)
        holes.append([(px + r * math.cos(a), py + r * math.sin(a)) for a, r in zip(angles, radii, strict=True)])
        for a in prng.uniform(0.0, 2 * math.pi, int(prng.integers(4, 7))):
            spread, reach = prng.uniform(0.3, 0.6), rp + prng.uniform(2.5, 4.5)
            flaps.append(
                [
                    (px + rp * 0.7 * math.cos(a - spread), py + rp * 0.7 * math.sin(a - spread)),
                    (px + reach * math.cos(a), py + reach * math.sin(a)),
                    (px + rp * 0.7 * math.cos(a + spread), py + rp * 0.7 * math.sin(a + spread)),
                ]
            )
    # Keep everything inside the box the ROI guarantees: pull the drawing towards the pocket.
    points = [p for poly in holes + flaps for p in poly] + [p for pts, _ in creases for p in pts]
    ex = max(abs(x) for x, _ in points) + 2.5
    ey = max(abs(y) for _, y in points) + 2.5
    sx = -math.copysign(max(0.0, ex - limit), px)
    sy = -math.copysign(max(0.0, ey - limit), py)

    def moved(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x + sx, y + sy) for x, y in pts]

    return _Damage(kind, [moved(p) for p in holes], [moved(p) for p in flaps], [(moved(p), c) for p, c in creases])


def _draw_damage(target: np.ndarray, canvas: np.ndarray | None, damage: _Damage, centre: tuple[int, int]) -> None:
    """Draw on the image (``canvas`` given, anti-aliased colours) or on a mask (255, 1 px wider)."""
    cx, cy = centre

    def px(pts: list[tuple[float, float]]) -> np.ndarray:
        arr = np.array([(cx - 0.5 + x, cy - 0.5 + y) for x, y in pts], np.float64)
        return np.round(arr * _SUBPX).astype(np.int32)

    is_mask = canvas is None
    for pts, colour in damage.creases:
        if is_mask:
            cv2.polylines(target, [px(pts)], False, 255, 2, cv2.LINE_8, _SUBPX_SHIFT)
        else:
            cv2.polylines(target, [px(pts)], False, colour, 1, cv2.LINE_AA, _SUBPX_SHIFT)
    for poly in damage.holes:
        # Torn rim first (bright), the hole over it: a ragged bright lip of about 2 px remains.
        if is_mask:
            cv2.polylines(target, [px(poly)], True, 255, 5, cv2.LINE_8, _SUBPX_SHIFT)
        else:
            cv2.polylines(target, [px(poly)], True, _TORN_BGR, 4, cv2.LINE_AA, _SUBPX_SHIFT)
    for poly in damage.flaps:
        if is_mask:
            cv2.fillPoly(target, [px(poly)], 255, cv2.LINE_8, _SUBPX_SHIFT)
            cv2.polylines(target, [px(poly)], True, 255, 2, cv2.LINE_8, _SUBPX_SHIFT)
        else:
            cv2.fillPoly(target, [px(poly)], _TORN_BGR, cv2.LINE_AA, _SUBPX_SHIFT)
    for poly in damage.holes:
        if is_mask:
            cv2.fillPoly(target, [px(poly)], 255, cv2.LINE_8, _SUBPX_SHIFT)
        else:
            cv2.fillPoly(target, [px(poly)], _HOLE_BGR, cv2.LINE_AA, _SUBPX_SHIFT)


# --------------------------------------------------------------------------- shading


def _random_foreign(
    prng: np.random.Generator, scene: _Scene, centre: tuple[float, float], radius: float, f: ForeignTablet
) -> _Content:
    """A random foreign tablet (:mod:`inspector.synth.foreign`) in place of the product's."""
    nominal_sdf = _sdf_ellipse(scene, *centre, radius, radius, 0.0)
    angle = prng.uniform(0.0, math.pi)
    colour = np.asarray(f.color_bgr, np.float32)
    half_w = f.width_px / 2.0
    if f.shape in ("round", "oval"):
        sdf = _sdf_ellipse(scene, *centre, f.length_px / 2.0, half_w, angle)
    else:
        sdf = _sdf_stadium(scene, *centre, f.length_px / 2.0, half_w, angle)
    if f.shape == "capsule" and f.second_bgr is not None:
        layer = _shade_capsule(sdf, scene, centre, angle, half_w, colour, np.asarray(f.second_bgr, np.float32))
    else:
        shade, spec = _tablet_shading(sdf, half_w)
        if f.marking:
            shade = shade * _score_factor(sdf.shape[0], centre[0], centre[1], angle + math.pi / 2, half_w)
        if not f.coated:  # matte pressed powder: little gloss, a mottled face
            spec = spec * np.float32(0.15)
            shade = shade * (1.0 + np.float32(0.05) * prng.standard_normal(shade.shape).astype(np.float32))
        rgb = colour[None, None, :] * shade[:, :, None] + spec[:, :, None]
        layer = _Layer(rgb.astype(np.float32), np.clip(0.5 - sdf, 0.0, 1.0).astype(np.float32))
    defect = (nominal_sdf < 0.0) | (layer.alpha > 0.5)
    return _Content([layer], defect, centre, f"foreign:random:{f.shape}")


def _sdf_ellipse(scene: _Scene, x: float, y: float, a: float, b: float, angle: float) -> np.ndarray:
    """Signed distance (px, negative inside) to an ellipse with semi-axes a (along angle) and b."""
    h = scene.half
    dx = scene.xs + (h - 0.5 - x)
    dy = scene.ys + (h - 0.5 - y)
    if abs(a - b) < 1e-6:
        return np.sqrt(dx * dx + dy * dy) - a
    ca, sa = math.cos(angle), math.sin(angle)
    u = dx * ca + dy * sa
    v = -dx * sa + dy * ca
    k = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    grad = np.sqrt((u / (a * a)) ** 2 + (v / (b * b)) ** 2) + 1e-6
    # First-order distance: exact on the outline, which is all the edge needs.
    return ((k - 1.0) * k / grad).astype(np.float32)


def _sdf_stadium(scene: _Scene, x: float, y: float, half_len: float, r: float, angle: float) -> np.ndarray:
    """Signed distance to an oblong (stadium) of total half length half_len and radius r."""
    h = scene.half
    dx = scene.xs + (h - 0.5 - x)
    dy = scene.ys + (h - 0.5 - y)
    ca, sa = math.cos(angle), math.sin(angle)
    u = dx * ca + dy * sa
    v = -dx * sa + dy * ca
    q = np.maximum(np.abs(u) - (half_len - r), 0.0)
    return (np.sqrt(q * q + v * v) - r).astype(np.float32)


def _outward(sdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gy, gx = np.gradient(sdf)
    norm = np.sqrt(gx * gx + gy * gy) + 1e-6
    return gx / norm, gy / norm


def _shade_tablet(
    sdf: np.ndarray,
    colour: np.ndarray,
    radius: float,
    score: tuple[float, float, float] | None,
) -> _Layer:
    """Film-coated biconvex tablet: steep bevel, shallow crown, optional break score."""
    shade, spec = _tablet_shading(sdf, radius)
    if score is not None:
        shade = shade * _score_factor(sdf.shape[0], score[0], score[1], score[2], radius)
    rgb = colour[None, None, :] * shade[:, :, None] + spec[:, :, None]
    alpha = np.clip(0.5 - sdf, 0.0, 1.0)
    return _Layer(rgb.astype(np.float32), alpha.astype(np.float32))


def _tablet_shading(sdf: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit-colour diffuse shading and specular (grey levels) of a film-coated biconvex tablet."""
    t = np.maximum(-sdf, 0.0)  # depth inside the outline
    ox, oy = _outward(sdf)
    slope = 1.8 * np.exp(-t / 1.6) + 0.4 * np.clip(1.0 - t / radius, 0.0, 1.0)
    inv = 1.0 / np.sqrt(slope * slope + 1.0)
    lambert = (slope * (ox * _LIGHT[0] + oy * _LIGHT[1]) + _LIGHT[2]) * inv
    n_dot_h = (slope * (ox * _HALF[0] + oy * _HALF[1]) + _HALF[2]) * inv
    shade = (0.42 + 0.64 * lambert) * (1.0 - 0.28 * np.exp(-t / 0.9))
    spec = np.maximum(n_dot_h, 0.0) ** 40 * (0.22 * 255.0)
    return shade.astype(np.float32), spec.astype(np.float32)


def _score_factor(size: int, x: float, y: float, angle: float, radius: float) -> np.ndarray:
    """Shading factor of the break score: a groove with a lit lip, across the tablet face."""
    reach = radius - 4.0
    ca, sa = math.cos(angle), math.sin(angle)
    groove = np.zeros((size, size), np.uint8)
    lip = np.zeros((size, size), np.uint8)
    for img, off in ((groove, 0.0), (lip, 1.3)):
        p0 = (x - ca * reach + sa * off, y - sa * reach - ca * off)
        p1 = (x + ca * reach + sa * off, y + sa * reach - ca * off)
        a = (round(p0[0] * _SUBPX), round(p0[1] * _SUBPX))
        b = (round(p1[0] * _SUBPX), round(p1[1] * _SUBPX))
        cv2.line(img, a, b, 255, 1, cv2.LINE_AA, _SUBPX_SHIFT)
    return 1.0 + (lip.astype(np.float32) * (0.06 / 255.0) - groove.astype(np.float32) * (0.2 / 255.0))


def _shadow_mul(alpha: np.ndarray) -> np.ndarray:
    """Soft shadow cast by a layer onto what lies below it, as a (h, w, 1) factor."""
    ox, oy = _SHADOW_OFFSET
    shifted = np.zeros_like(alpha)
    shifted[oy:, ox:] = alpha[:-oy, :-ox]
    shadow = cv2.GaussianBlur(shifted, (0, 0), _SHADOW_SIGMA)
    return (1.0 - _SHADOW_STRENGTH * shadow)[:, :, None]


@functools.lru_cache(maxsize=256)
def _tablet_sprite(half: int, radius_q: int, phase_x: int, phase_y: int) -> _Sprite:
    """The nominal tablet (radius radius_q / 4) centred on a pocket patch + half-pixel phase."""
    size = 2 * (half + _SPRITE_PAD)
    coords = np.arange(size, dtype=np.float32) - (half + _SPRITE_PAD - 0.5)
    radius = radius_q / 4.0
    dx = coords[None, :] - phase_x / 2.0
    dy = coords[:, None] - phase_y / 2.0
    sdf = np.sqrt(dx * dx + dy * dy) - radius
    shade, spec = _tablet_shading(sdf, radius)
    alpha = np.clip(0.5 - sdf, 0.0, 1.0).astype(np.float32)
    shadow_mul = _shadow_mul(alpha).astype(np.float32)
    keep = (shadow_mul * (1.0 - alpha)[:, :, None]).astype(np.float32)
    sprite = _Sprite(shade, spec, alpha, shadow_mul, keep, shade * alpha, (spec * alpha)[:, :, None])
    for arr in (sprite.shade, sprite.spec, sprite.alpha, sprite.shadow_mul, sprite.keep):
        arr.setflags(write=False)
    sprite.shade_alpha.setflags(write=False)
    sprite.spec_alpha.setflags(write=False)
    return sprite


def _clamp(value: float, limit: float) -> float:
    return max(-limit, min(limit, float(value)))


def _shade_capsule(
    sdf: np.ndarray,
    scene: _Scene,
    centre: tuple[float, float],
    angle: float,
    r: float,
    cap_bgr: np.ndarray,
    body_bgr: np.ndarray,
) -> _Layer:
    """Glossy two-colour hard capsule: a cylinder with round ends."""
    t = np.clip(-sdf, 0.0, r)
    ox, oy = _outward(sdf)
    rho = r - t  # distance from the axis
    slope = np.minimum(rho / np.sqrt(np.maximum(r * r - rho * rho, 1e-3)), 6.0)
    inv = 1.0 / np.sqrt(slope * slope + 1.0)
    lambert = (slope * (ox * _LIGHT[0] + oy * _LIGHT[1]) + _LIGHT[2]) * inv
    n_dot_h = (slope * (ox * _HALF[0] + oy * _HALF[1]) + _HALF[2]) * inv
    h = scene.half
    u = (scene.xs + (h - 0.5 - centre[0])) * math.cos(angle) + (scene.ys + (h - 0.5 - centre[1])) * math.sin(angle)
    is_cap = (u > -2.0).astype(np.float32)[:, :, None]
    colour = cap_bgr * is_cap + body_bgr * (1.0 - is_cap)
    seam = 1.0 - 0.35 * np.exp(-(((u + 2.0) / 0.8) ** 2))
    shade = (0.35 + 0.72 * lambert) * seam
    spec = np.maximum(n_dot_h, 0.0) ** 60 * 0.7
    rgb = colour * shade[:, :, None] + (255.0 * spec)[:, :, None]
    alpha = np.clip(0.5 - sdf, 0.0, 1.0)
    return _Layer(rgb.astype(np.float32), alpha.astype(np.float32))


def _fill_alpha(size: int, polys: list[list[tuple[float, float]]]) -> np.ndarray:
    """Anti-aliased coverage (0..1) of polygons given in patch coordinates."""
    img = np.zeros((size, size), np.uint8)
    pts = [np.round(np.asarray(p, np.float64) * _SUBPX).astype(np.int32) for p in polys]
    cv2.fillPoly(img, pts, 255, cv2.LINE_AA, _SUBPX_SHIFT)
    return img.astype(np.float32) / 255.0


# --------------------------------------------------------------------------- cached assets


@functools.lru_cache(maxsize=8)
def _scene(grid: PocketGrid) -> _Scene:
    radius = grid.pocket_diameter / 2.0
    half = math.ceil(radius + 6)
    coords = np.arange(2 * half, dtype=np.float32) - (half - 0.5)
    xs, ys = coords[None, :], coords[:, None]
    r = np.sqrt(xs * xs + ys * ys)
    inside = np.clip(radius + 0.5 - r, 0.0, 1.0)
    # Cosine between the radial direction and the direction the light comes from (upper left).
    lx, ly = -_LIGHT[0], -_LIGHT[1]
    toward_light = (xs * lx + ys * ly) / (np.hypot(lx, ly) * np.maximum(r, 1e-3))
    wall = np.clip((r - (radius - 9.0)) / 9.0, 0.0, 1.0) ** 2 * inside
    mul = 1.0 - inside * 0.03 - 0.12 * wall * (0.5 - 0.5 * toward_light)
    mul *= 1.0 - 0.32 * np.exp(-(((r - (radius + 0.8)) / 0.9) ** 2))  # fold into the flat web
    add = 58.0 * np.exp(-(((r - (radius - 2.2)) / 1.1) ** 2)) * (0.25 + 0.75 * np.maximum(toward_light, 0.0))
    add += 16.0 * np.exp(-(((r - (radius - 6.5)) / 1.6) ** 2)) * np.maximum(-toward_light, 0.0)
    add += 10.0 * np.exp(-(((r - (radius + 2.4)) / 1.0) ** 2))
    # Window reflection (a soft slanted bar) and a faint counter-reflection, on a larger
    # canvas so that each card can shift it by a few pixels.
    big = np.arange(2 * half + 8, dtype=np.float32) - (half + 3.5)
    bx, by = big[None, :], big[:, None]
    br = np.sqrt(bx * bx + by * by)
    u = (bx + 0.42 * radius) * 0.7071 + (by + 0.42 * radius) * 0.7071
    v = -(bx + 0.42 * radius) * 0.7071 + (by + 0.42 * radius) * 0.7071
    refl = 95.0 * np.exp(-((u / 3.2) ** 2) - (v / 8.0) ** 2)
    refl += 26.0 * np.exp(-(((bx - 0.36 * radius) / 5.0) ** 2) - ((by - 0.46 * radius) / 3.0) ** 2)
    refl *= np.clip(radius - 1.0 - br, 0.0, 1.0)

    centers = np.array(grid.centers(), np.float64)
    center = (float(centers[:, 0].mean()) - 0.5, float(centers[:, 1].mean()) - 0.5)
    # Largest pose spread that keeps every pocket's reach inside its ROI box.
    reach = radius + _REACH_PX
    rot = math.radians(MAX_ROT_DEG)
    caps = []
    for (px, py), roi in zip(grid.centers(), grid.rois(), strict=True):
        room_x = min(px - roi.x, roi.x + roi.w - 1 - px) - reach
        room_y = min(py - roi.y, roi.y + roi.h - 1 - py) - reach
        caps.append(room_x / (MAX_SHIFT_PX + rot * (abs(py - center[1]) + reach)))
        caps.append(room_y / (MAX_SHIFT_PX + rot * (abs(px - center[0]) + reach)))
    pose_cap = max(0.0, min(caps))
    return _Scene(
        radius=radius,
        tablet_radius=grid.pocket_diameter * _TABLET_TO_POCKET / 2.0,
        half=half,
        xs=xs,
        ys=ys,
        dome_mul=mul.astype(np.float32)[:, :, None],
        dome_add=add.astype(np.float32)[:, :, None],
        reflection=refl.astype(np.float32),
        pose_cap=pose_cap,
        center=center,
    )


@functools.lru_cache(maxsize=16)
def _background(grid: PocketGrid, registration: int, look: BlisterLook = NOMINAL_LOOK) -> np.ndarray:
    """The empty card on its nest (BGR8), read-only: copy before drawing."""
    width, height = grid.image_size
    radius = grid.pocket_diameter / 2.0
    tex = np.random.default_rng(_TEXTURE_SEED)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    # Nest: dark anodised plate with a soft light fall-off and fine grain.
    grain = cv2.GaussianBlur(tex.normal(0.0, 1.0, (height, width)).astype(np.float32), (0, 0), 1.2) * 4.0
    falloff = 1.0 - 0.18 * (((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2) * 2
    nest_bgr = _NEST_BGR if look is NOMINAL_LOOK else np.array(look.nest_bgr, np.float32)
    nest = (nest_bgr[None, None, :] * falloff[:, :, None]) + grain[:, :, None]

    # Card outline: the pockets plus a margin, with rounded corners.
    centers = np.array(grid.centers(), np.float64)
    x0 = max(6.0, centers[:, 0].min() - radius - 40.0)
    x1 = min(width - 7.0, centers[:, 0].max() + radius + 40.0)
    y0 = max(6.0, centers[:, 1].min() - radius - 36.0)
    y1 = min(height - 7.0, centers[:, 1].max() + radius + 36.0)
    corner = 14.0
    qx = np.maximum(np.abs(xx - (x0 + x1) / 2) - ((x1 - x0) / 2 - corner), 0.0)
    qy = np.maximum(np.abs(yy - (y0 + y1) / 2) - ((y1 - y0) / 2 - corner), 0.0)
    card_sdf = np.sqrt(qx * qx + qy * qy) - corner
    card = np.clip(0.5 - card_sdf, 0.0, 1.0)
    shadow = np.zeros_like(card)
    shadow[5:, 4:] = card[:-5, :-4]
    shadow = cv2.GaussianBlur(shadow, (0, 0), 4.0)
    nest *= (1.0 - 0.55 * shadow)[:, :, None]

    # Foil: brushed streaks, a broad sheen, and the diamond knurl of the heat seal.
    streaks = cv2.GaussianBlur(tex.normal(0.0, 1.0, (height, width)).astype(np.float32), (41, 1), 0) * 9.0
    sheen = 9.0 * np.cos((xx - 0.3 * yy) / width * 3.1) + 5.0 * np.sin(yy / height * 2.3 + 0.7)
    period = 5.5
    knurl = 2.6 * (np.sin((xx + yy) * (2 * math.pi / period)) + np.sin((xx - yy) * (2 * math.pi / period)))
    r_min = np.full((height, width), 1e9, np.float32)
    for px, py in grid.centers():
        np.minimum(r_min, np.sqrt((xx - (px - 0.5)) ** 2 + (yy - (py - 0.5)) ** 2), out=r_min)
    floor = np.clip(radius - 1.0 - r_min, 0.0, 1.0)  # unsealed foil under the dome: smooth, brighter
    seal_edge = np.exp(-(((r_min - (radius + 1.5)) / 1.5) ** 2))
    foil_level = streaks + sheen + knurl * (1.0 - floor) + 7.0 * floor - 8.0 * seal_edge
    foil_bgr = _FOIL_BGR if look is NOMINAL_LOOK else np.array(look.foil_bgr, np.float32)
    foil = foil_bgr[None, None, :] + foil_level[:, :, None]

    # Print: faint repeated product text, registered differently card to card, plus the
    # brand line in the top margin and the batch line in the bottom margin.
    ink = np.zeros((height, width), np.uint8)
    rx, ry = _PRINT_REGISTRATIONS[registration % len(_PRINT_REGISTRATIONS)]
    for row, y in enumerate(range(int(y0) + 40 + ry % 56, int(y1) - 30, 56)):
        for x in range(int(x0) - 200 + rx + (row % 2) * 95, int(x1), 190):
            cv2.putText(ink, "INSPECTOLAN 250", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.36, 255, 1, cv2.LINE_AA)
    faint = ink.astype(np.float32) / 255.0 * 0.11
    top = np.zeros_like(ink)
    cv2.putText(top, "INSPECTOLAN 250 mg  film-coated tablets", (int(x0) + 22, int(y0) + 17),
                cv2.FONT_HERSHEY_SIMPLEX, 0.42, 255, 1, cv2.LINE_AA)  # fmt: skip
    cv2.putText(top, "LOT 24A117   EXP 09/2027", (int(x0) + 22, int(y1) - 8),
                cv2.FONT_HERSHEY_SIMPLEX, 0.36, 255, 1, cv2.LINE_AA)  # fmt: skip
    strong = top.astype(np.float32) / 255.0 * 0.30
    printed = np.clip(faint + strong, 0.0, 1.0)[:, :, None]
    ink_bgr = _INK_BGR if look is NOMINAL_LOOK else np.array(look.ink_bgr, np.float32)
    foil *= 1.0 - printed * (1.0 - ink_bgr[None, None, :])

    # Cut edge of the card: a bright line on the lit side, a dark one on the other.
    edge = np.exp(-((card_sdf + 1.0) ** 2) / 0.8)
    lit = np.clip(-(xx - (x0 + x1) / 2) / (x1 - x0) - (yy - (y0 + y1) / 2) / (y1 - y0), -1.0, 1.0) * 0.5 + 0.5
    foil += (edge * (30.0 * lit - 20.0 * (1.0 - lit)))[:, :, None]

    img = nest * (1.0 - card)[:, :, None] + foil * card[:, :, None]
    out: np.ndarray = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out
