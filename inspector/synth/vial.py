"""Backlit side view of a stoppered, crimp-capped 10R tubular glass vial (mono8, 256 x 384).

The vial is a body of revolution, so the glass is shaded row by row from its outer and
inner radius profiles: under a diffuse backlight the walls refract light away from the
camera (dark edges) and the inner wall surface shows a thin bright line; the clear liquid
column acts as a cylindrical lens (darker towards the walls) and its concave meniscus is a
dark band pulled up at the wall. Opaque parts (rubber stopper, aluminium cap, flip-off
button) are composited as anti-aliased silhouettes with their own cylindrical shading.

Randomness: one generator from :func:`base.make_rng`. The ok item's parameters, pose and
camera effects are drawn from it in a fixed order; defect parameters come from a child
generator seeded by one draw that every label makes. So ``ok`` and a defect rendered with
the same seed are the same item, and differ only where the defect is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from inspector.synth import base
from inspector.taxonomy import Product, criticality, labels

PRODUCT = Product.VIAL
HEIGHT, WIDTH = 384, 256
CENTER_X = 128.0
POSE_CENTER = (128.0, 192.0)
MAX_SHIFT_PX = 6.0
MAX_ROT_DEG = 1.5
# Fill level: the ok jitter never leaves +-OK_FILL_MAX_PX; fill defects start FILL_DEFECT_MIN_PX away,
# which leaves a clear gap at every nuisance level.
OK_FILL_PX = 3.0
OK_FILL_MAX_PX = 8.0
FILL_DEFECT_MIN_PX = 22.0
FILL_LOW_MAX_PX = 50.0
FILL_HIGH_MAX_PX = 42.0
SUBPIXEL = 3  # cv2 ``shift``: coordinates in 1/8 px
_SCALE = float(1 << SUBPIXEL)
_AA = cv2.LINE_AA

# Static grids, built once: column distances are recomputed per item only through cx.
_XS = np.arange(WIDTH, dtype=np.float32)[None, :]
_VIGNETTE = (1.0 - 0.05 * ((np.arange(HEIGHT, dtype=np.float32) - HEIGHT / 2) / (HEIGHT / 2)) ** 2)[:, None] * (
    1.0 - 0.03 * ((np.arange(WIDTH, dtype=np.float32) - WIDTH / 2) / (WIDTH / 2)) ** 2
)[None, :]


@dataclass(frozen=True)
class Geometry:
    """Canonical vial dimensions in pixels (about 5 px per mm), rows top to bottom."""

    cx: float = CENTER_X
    y_button_top: float = 65.0
    y_cap_top: float = 78.0
    y_stopper_top: float = 81.0
    y_glass_top: float = 97.0
    y_flange_bottom: float = 117.0
    y_cap_bottom: float = 122.0
    y_neck_bottom: float = 145.0
    y_plug_bottom: float = 148.0
    y_body_top: float = 167.0
    y_inner_bottom: float = 313.0
    y_bottom: float = 320.0
    r_button: float = 46.0
    r_cap: float = 53.0
    r_curl: float = 45.0
    r_stopper: float = 49.5
    r_flange: float = 50.0
    r_neck: float = 42.0
    r_bore: float = 32.0
    r_body: float = 60.0
    wall_body: float = 5.0
    nominal_meniscus_y: float = 232.0

    def scaled(self, scale: float, wall_delta: float) -> Geometry:
        """The same vial scaled about the pose centre (tolerance spread of the glass)."""
        cy = POSE_CENTER[1]
        changes: dict[str, float] = {}
        for name, value in vars(self).items():
            if name.startswith("y_") or name == "nominal_meniscus_y":
                changes[name] = cy + (value - cy) * scale
            elif name.startswith("r_"):
                changes[name] = value * scale
        changes["wall_body"] = self.wall_body + wall_delta
        return replace(self, **changes)


@dataclass(frozen=True)
class CrimpSide:
    """How one side of the cap skirt ends: rolled under the flange (ok) or deformed."""

    mode: str = "rolled"  # rolled | unrolled | flared
    drop: float = 0.0  # extra length below the rolled position, px
    flare: float = 0.0  # outward flare at the skirt's end, px


def _pts(points: list[tuple[float, float]]) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _SCALE).astype(np.int32).reshape(-1, 1, 2)


def _cap_polygon(g: Geometry, left: CrimpSide, right: CrimpSide) -> np.ndarray:
    """Silhouette of the aluminium cap (without the flip-off button)."""

    def side(sign: float, s: CrimpSide) -> list[tuple[float, float]]:
        top = [(g.r_cap - 3.0, g.y_cap_top), (g.r_cap - 0.9, g.y_cap_top + 0.9), (g.r_cap, g.y_cap_top + 3.0)]
        if s.mode == "rolled":
            y0 = g.y_flange_bottom - 2.0
            theta = np.linspace(0.0, np.pi / 2, 7)
            curl = [
                (g.r_curl + (g.r_cap - g.r_curl) * float(np.cos(t)), y0 + (g.y_cap_bottom - y0) * float(np.sin(t)))
                for t in theta
            ]
            pts = top + curl
        elif s.mode == "unrolled":
            # The skirt hangs straight past the flange, splaying a little at its free edge.
            y_end = g.y_cap_bottom + s.drop
            pts = [*top, (g.r_cap, g.y_flange_bottom), (g.r_cap + 1.5, y_end), (g.r_cap, y_end + 0.5)]
        else:  # flared: the skirt bends outward below the flange instead of rolling in
            y_bend = g.y_flange_bottom - 3.0
            y_end = g.y_cap_bottom + s.drop
            pts = [*top, (g.r_cap, y_bend), (g.r_cap + s.flare, y_end), (g.r_cap + s.flare - 2.0, y_end + 0.5)]
        return [(g.cx + sign * x, y) for x, y in pts]

    right_pts = side(1.0, right)
    left_pts = side(-1.0, left)
    return _pts(right_pts + left_pts[::-1])


def _button_polygon(g: Geometry) -> np.ndarray:
    r, y0, y1 = g.r_button, g.y_button_top, g.y_cap_top + 2.0
    half = [(r - 4.0, y0), (r - 1.2, y0 + 1.2), (r, y0 + 4.0), (r, y1)]
    right = [(g.cx + x, y) for x, y in half]
    left = [(g.cx - x, y) for x, y in half]
    return _pts(right + left[::-1])


def _stopper_flange_polygon(g: Geometry) -> np.ndarray:
    r, y0, y1 = g.r_stopper, g.y_stopper_top, g.y_glass_top + 0.5
    half = [(r - 3.0, y0), (r - 0.9, y0 + 0.9), (r, y0 + 3.0), (r, y1)]
    right = [(g.cx + x, y) for x, y in half]
    left = [(g.cx - x, y) for x, y in half]
    return _pts(right + left[::-1])


def _plug_polygon(g: Geometry) -> np.ndarray:
    """The stopper's plug, compressed into the bore from the flange top down into the neck."""
    r, y0, y1 = g.r_bore, g.y_glass_top, g.y_plug_bottom
    theta = np.linspace(0.0, np.pi / 2, 5)
    corner = [(r - 5.0 + 5.0 * float(np.cos(t)), y1 - 5.0 + 5.0 * float(np.sin(t))) for t in theta]
    right = [(g.cx + x, y) for x, y in [(r, y0), *corner]]
    left = [(g.cx - x, y) for x, y in [(r, y0), *corner]]
    return _pts(right + left[::-1])


def _profiles(g: Geometry, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outer radius, inner radius and extra row darkening of the glass for the given rows."""
    heel = 8.0
    t = np.linspace(0.0, 1.0, 9)
    shoulder_y = g.y_neck_bottom + (g.y_body_top - g.y_neck_bottom) * t
    shoulder_r = g.r_neck + (g.r_body - g.r_neck) * (0.5 - 0.5 * np.cos(np.pi * t))
    a = np.linspace(0.0, np.pi / 2, 6)[1:]
    heel_y = g.y_bottom - heel + heel * np.sin(a)
    heel_r = g.r_body - heel + heel * np.cos(a)
    outer_y = np.concatenate(
        [
            [g.y_glass_top - 0.5, g.y_glass_top + 1.5, g.y_glass_top + 3.0],
            [g.y_flange_bottom - 4.0, g.y_flange_bottom + 2.0],
            shoulder_y,
            [g.y_bottom - heel],
            heel_y,
        ]
    )
    outer_r = np.concatenate(
        [[g.r_flange - 4.0, g.r_flange - 0.8, g.r_flange], [g.r_flange, g.r_neck], shoulder_r, [g.r_body], heel_r]
    )
    r_inner_body = g.r_body - g.wall_body
    inner_t = g.y_neck_bottom + 4.0 + (g.y_body_top + 3.0 - g.y_neck_bottom - 4.0) * t
    inner_r = g.r_bore + (r_inner_body - g.r_bore) * (0.5 - 0.5 * np.cos(np.pi * t))
    inner_y = np.concatenate([[g.y_glass_top - 0.5], inner_t, [g.y_inner_bottom - 5.0, g.y_inner_bottom]])
    inner_rr = np.concatenate([[g.r_bore], inner_r, [r_inner_body, r_inner_body - 6.0]])
    outer = np.interp(rows, outer_y, outer_r, left=0.0, right=0.0)
    inner = np.interp(rows, inner_y, inner_rr, left=0.0, right=0.0)
    # Surfaces seen edge-on (flange top and underside, shoulder, the thick base) look darker.
    dark_y = [
        g.y_glass_top - 0.5,
        g.y_glass_top + 1.0,
        g.y_glass_top + 3.0,
        g.y_flange_bottom - 5.0,
        g.y_flange_bottom - 1.0,
        g.y_flange_bottom + 3.0,
        g.y_neck_bottom,
        g.y_neck_bottom + 8.0,
        g.y_body_top,
        g.y_inner_bottom - 1.0,
        g.y_inner_bottom + 1.0,
        g.y_bottom,
    ]
    dark_v = [0.0, 0.35, 0.1, 0.05, 0.35, 0.05, 0.05, 0.18, 0.0, 0.0, 0.45, 0.55]
    row_dark = np.interp(rows, dark_y, dark_v, left=0.0, right=0.0)
    return outer.astype(np.float32), inner.astype(np.float32), row_dark.astype(np.float32)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) * (1.0 / (hi - lo)), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _composite(img: np.ndarray, alpha: np.ndarray, shade: np.ndarray, rows: slice, cols: slice) -> None:
    """Blend an opaque part (``shade``) over ``img`` in place, within ``rows`` x ``cols``."""
    a = alpha[rows, cols].astype(np.float32) * (1.0 / 255.0)
    region = img[rows, cols]
    region += a * (shade - region)


def _cylinder(dx: np.ndarray, radius: float) -> np.ndarray:
    """Cosine-like falloff across a cylinder: 1 on the axis, 0 at the silhouette."""
    u = np.clip(dx * (1.0 / radius), -1.0, 1.0)
    return np.sqrt(1.0 - u * u)


@dataclass(frozen=True)
class VialLook:
    """How one line presents its vials: the container, its contents and the backlight.

    The default is the renderer's own look (``nominal``), byte for byte as before looks existed.
    """

    name: str = "nominal"
    scale: float = 1.0  # vial size against the 10R vial (a 6R vial is smaller in the same field)
    background: float = 215.0  # backlight level seen through nothing
    glass_transmission: float = 1.0  # below 1: tinted (amber) glass darkens all seen through it
    liquid_transmission: float = 1.0  # below 1: a coloured or turbid solution darkens the column
    cap_tone: float = 54.0  # aluminium cap and flip-off button (dark anodised ... bright)
    stopper_tone: float = 112.0  # rubber stopper grey level
    vignette: float = 0.0  # extra corner darkening of a smaller or older backlight


NOMINAL_LOOK = VialLook()


@dataclass
class _Item:
    """All parameters of one rendered vial."""

    g: Geometry
    background: float
    meniscus_y: float
    meniscus_rise: float
    cap_tone: float
    stopper_tone: float
    smudges: list[tuple[float, float, float, float]]
    cap_present: bool = True
    stopper_present: bool = True
    crimp: tuple[CrimpSide, CrimpSide] = (CrimpSide(), CrimpSide())
    look: VialLook = NOMINAL_LOOK


def _draw_vial(item: _Item) -> tuple[np.ndarray, np.ndarray]:
    """Float image of the vial in its canonical pose, plus the cap silhouette (uint8, 0 if absent)."""
    g = item.g
    look = item.look
    img = _VIGNETTE * np.float32(item.background)
    if look.vignette:
        img *= _VIGNETTE ** np.float32(1.0 + 8.0 * look.vignette)
    y0 = int(g.y_glass_top) - 2
    y1 = int(np.ceil(g.y_bottom)) + 2
    x0 = int(g.cx - g.r_body) - 3
    x1 = int(np.ceil(g.cx + g.r_body)) + 4
    rows = np.arange(y0, y1, dtype=np.float32)
    outer_r, inner_r, row_dark = _profiles(g, rows)
    dx = np.abs(_XS[:, x0:x1] - np.float32(g.cx))
    R = outer_r[:, None]
    r = inner_r[:, None]
    outer = np.clip(R - dx + 0.5, 0.0, 1.0)
    inner = np.clip(r - dx + 0.5, 0.0, 1.0)
    wall = outer - inner
    depth = np.clip((R - dx) / np.maximum(R - r, 1.0), 0.0, 1.0)
    # Refraction darkens the wall, most at the outer silhouette; the inner surface glints.
    wall_tone = 0.16 + 0.42 * depth * depth
    glint = (r > 0).astype(np.float32) * 0.75 * np.exp(-2.0 * (dx - r + 1.0) ** 2)
    u = dx / np.maximum(r, 1.0)
    interior = 0.95 - 0.14 * _smoothstep(u, 0.82, 1.0)
    factor = (1.0 - outer) + wall * (wall_tone + glint) + inner * interior
    # Liquid column (rows below the meniscus) with its dark, wall-pulled meniscus band.
    r_liq = g.r_body - g.wall_body
    dxl = dx[0]
    surface = item.meniscus_y - item.meniscus_rise * (
        np.exp(-np.maximum(r_liq - dxl, 0.0) / 5.5) - np.exp(np.float32(-r_liq / 5.5))
    )
    top = max(int(item.meniscus_y - item.meniscus_rise - 8) - y0, 0)
    liq_rows = rows[top:, None]
    liquid = np.clip(liq_rows - surface[None, :] + 0.5, 0.0, 1.0)
    u_l = u[top:]
    lens = 1.03 - 0.52 * _smoothstep(u_l, 0.55, 1.0)
    band_rows = slice(0, min(26, liquid.shape[0]))
    sigma = 1.5 + 2.2 * np.exp(-np.maximum(r_liq - dxl, 0.0) / 6.0)
    band = np.exp(-(((liq_rows[band_rows] - surface[None, :]) / sigma[None, :]) ** 2))
    inner_l = inner[top:]
    if look.liquid_transmission != 1.0:
        lens = lens * np.float32(look.liquid_transmission)
    factor[top:] += inner_l * liquid * (lens - interior[top:])
    factor[top : top + band.shape[0]] *= 1.0 - 0.62 * band * inner_l[band_rows]
    factor *= 1.0 - row_dark[:, None] * outer
    if look.glass_transmission != 1.0:
        factor *= 1.0 - outer * np.float32(1.0 - look.glass_transmission)
    img[y0:y1, x0:x1] *= factor
    # The heel: the inner bottom edge seen slightly from above is a dark curve.
    dark = np.zeros((HEIGHT, WIDTH), np.uint8)
    centre = (round(g.cx * _SCALE), round((g.y_inner_bottom - 8.0) * _SCALE))
    axes = (round((r_liq - 2.0) * _SCALE), round(7.0 * _SCALE))
    cv2.ellipse(dark, centre, axes, 0.0, 0.0, 180.0, 110, 2, _AA, SUBPIXEL)
    img[y0:y1, x0:x1] *= 1.0 - dark[y0:y1, x0:x1].astype(np.float32) * (1.0 / 255.0)
    for sx, sy, sigma_px, amp in item.smudges:
        _add_blob(img, sx, sy, sigma_px, amp)
    cap_mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    plug_mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    c0 = int(g.cx - g.r_cap) - 16
    c1 = int(np.ceil(g.cx + g.r_cap)) + 17
    cols = slice(c0, c1)
    dxc = _XS[:, cols] - np.float32(g.cx)
    if item.stopper_present:
        cv2.fillPoly(plug_mask, [_plug_polygon(g)], 255, _AA, SUBPIXEL)
        rubber = item.stopper_tone * (0.62 + 0.38 * _cylinder(dxc, g.r_bore))
        _composite(img, plug_mask, rubber, slice(int(g.y_glass_top) - 1, int(g.y_plug_bottom) + 2), cols)
        if not item.cap_present:
            flange = np.zeros((HEIGHT, WIDTH), np.uint8)
            cv2.fillPoly(flange, [_stopper_flange_polygon(g)], 255, _AA, SUBPIXEL)
            rs = slice(int(g.y_stopper_top) - 1, int(g.y_glass_top) + 2)
            ramp = np.linspace(1.12, 0.9, rs.stop - rs.start, dtype=np.float32)[:, None]
            tone = item.stopper_tone * ramp * (0.6 + 0.4 * _cylinder(dxc, g.r_stopper))
            _composite(img, flange, tone, rs, cols)
    if item.cap_present:
        cv2.fillPoly(cap_mask, [_cap_polygon(g, *item.crimp)], 255, _AA, SUBPIXEL)
        rs = slice(int(g.y_cap_top) - 1, int(g.y_cap_bottom + 20))
        ys = np.arange(rs.start, rs.stop, dtype=np.float32)[:, None]
        # Anodised aluminium: dark with a soft vertical highlight; the rolled curl is darker still.
        metal = item.cap_tone * (0.55 + 0.45 * _cylinder(dxc, g.r_cap + 4.0)) + 22.0 * np.exp(
            -(((dxc + 0.3 * g.r_cap) / 7.0) ** 2)
        )
        metal = metal * (1.0 - 0.35 * _smoothstep(ys, g.y_flange_bottom - 3.0, g.y_cap_bottom))
        metal = metal * (1.0 - 0.3 * np.exp(-(((ys - g.y_cap_top - 2.5) / 1.2) ** 2)))
        _composite(img, cap_mask, metal, rs, cols)
        button = np.zeros((HEIGHT, WIDTH), np.uint8)
        cv2.fillPoly(button, [_button_polygon(g)], 255, _AA, SUBPIXEL)
        cv2.fillPoly(cap_mask, [_button_polygon(g)], 255, _AA, SUBPIXEL)
        rb = slice(int(g.y_button_top) - 1, int(g.y_cap_top) + 4)
        yb = np.arange(rb.start, rb.stop, dtype=np.float32)[:, None]
        plastic = (
            (item.cap_tone + 14.0)
            * (0.6 + 0.4 * _cylinder(dxc, g.r_button))
            * (1.0 + 0.25 * np.exp(-(((yb - g.y_button_top - 1.5) / 1.5) ** 2)))
        )
        _composite(img, button, plastic, rb, cols)
    return img, cap_mask


def _add_blob(img: np.ndarray, x: float, y: float, sigma: float, amp: float) -> None:
    """Add a soft Gaussian blob (smudge on the glass, dust on the diffuser) in place."""
    half = int(3 * sigma) + 1
    xa, xb = max(int(x) - half, 0), min(int(x) + half + 1, WIDTH)
    ya, yb = max(int(y) - half, 0), min(int(y) + half + 1, HEIGHT)
    if xa >= xb or ya >= yb:
        return
    gx = np.exp(-(((np.arange(xa, xb, dtype=np.float32) - x) / sigma) ** 2) * 0.5)
    gy = np.exp(-(((np.arange(ya, yb, dtype=np.float32) - y) / sigma) ** 2) * 0.5)
    img[ya:yb, xa:xb] += np.float32(amp) * gy[:, None] * gx[None, :]


def _ok_item(rng: np.random.Generator, nuisance: float, look: VialLook = NOMINAL_LOOK) -> _Item:
    """Draw the acceptable item: glass tolerance, lighting, fill jitter, harmless smudges."""
    scale = 1.0 + float(np.clip(rng.normal(0.0, 0.005) * nuisance, -0.015, 0.015))
    wall_delta = float(np.clip(rng.normal(0.0, 0.25) * nuisance, -0.6, 0.6))
    g = Geometry().scaled(scale * look.scale, wall_delta)
    bg = look.background
    background = float(np.clip(bg + rng.normal(0.0, 4.0) * nuisance, bg - 12.0, bg + 13.0))
    fill = float(np.clip(rng.uniform(-1.0, 1.0) * OK_FILL_PX * nuisance, -OK_FILL_MAX_PX, OK_FILL_MAX_PX))
    rise = float(7.0 + rng.uniform(-1.0, 1.0) * 0.8 * min(nuisance, 2.0))
    ct, st = look.cap_tone, look.stopper_tone
    cap_tone = float(np.clip(ct + rng.normal(0.0, 4.0) * nuisance, ct - 10.0, ct + 10.0))
    stopper_tone = float(np.clip(st + rng.normal(0.0, 5.0) * nuisance, st - 12.0, st + 12.0))
    # Faint, wide smudges (fingerprints, diffuser dust): acceptable and never sharp like a particle.
    n_smudges = int(rng.integers(0, 3))
    smudges = []
    for _ in range(n_smudges):
        sx = g.cx + float(rng.uniform(-1.0, 1.0)) * (g.r_body - 8.0)
        sy = float(rng.uniform(g.y_body_top + 5.0, g.y_inner_bottom - 10.0))
        sigma = float(rng.uniform(7.0, 13.0))
        amp = float(rng.uniform(-5.0, 3.0)) * min(nuisance, 1.5)
        smudges.append((sx, sy, sigma, amp))
    return _Item(g, background, g.nominal_meniscus_y + fill * scale, rise, cap_tone, stopper_tone, smudges, look=look)


def _line_layer(polylines: list[np.ndarray], tone: int, thickness: int) -> np.ndarray:
    layer = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.polylines(layer, [_pts(p.tolist()) for p in polylines], False, tone, thickness, _AA, SUBPIXEL)
    return layer


def _crack(rng: np.random.Generator, item: _Item) -> tuple[np.ndarray, np.ndarray]:
    """A hairline crack: long, jagged, mostly vertical, sometimes branched; dark with a glint."""
    g = item.g
    r_liq = g.r_body - g.wall_body
    length = float(rng.uniform(40.0, 90.0))
    angle = np.deg2rad(90.0 + rng.uniform(-25.0, 25.0))
    x_start = g.cx + float(rng.uniform(-0.55, 0.55)) * r_liq
    y_start = float(rng.uniform(g.y_body_top + 8.0, g.y_inner_bottom - 12.0 - length * abs(np.sin(angle))))
    n = max(int(length / 3.5), 10)
    steps = np.full(n, length / n)
    # Jagged: each short segment turns sharply, but the crack as a whole keeps its direction.
    heading = angle + np.clip(np.cumsum(rng.normal(0.0, 0.2, n)), -0.4, 0.4) + rng.normal(0.0, 0.45, n)
    xs = x_start + np.concatenate([[0.0], np.cumsum(steps * np.cos(heading))])
    ys = y_start + np.concatenate([[0.0], np.cumsum(steps * np.sin(heading))])
    xs = np.clip(xs, g.cx - 0.8 * r_liq, g.cx + 0.8 * r_liq)
    main = np.stack([xs, ys], axis=1)
    lines = [main]
    n_branches = int(rng.integers(0, 3))
    for _ in range(n_branches):
        k = int(rng.integers(2, n - 1))
        b_len = float(rng.uniform(10.0, 24.0))
        b_ang = heading[k] + float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 0.9))
        m = max(int(b_len / 4.0), 3)
        b_head = b_ang + np.cumsum(rng.normal(0.0, 0.3, m))
        bx = xs[k] + np.concatenate([[0.0], np.cumsum(b_len / m * np.cos(b_head))])
        by = ys[k] + np.concatenate([[0.0], np.cumsum(b_len / m * np.sin(b_head))])
        bx = np.clip(bx, g.cx - 0.8 * r_liq, g.cx + 0.8 * r_liq)
        lines.append(np.stack([bx, by], axis=1))
    # A hairline: about 1.5 px dark, with a bright glint on one flank where the fracture face reflects.
    tone = int(rng.uniform(190.0, 215.0))
    dark = _line_layer(lines[:1], tone, 1)
    np.maximum(dark, _line_layer([main + np.array([0.5, 0.0])], tone - 30, 1), out=dark)
    if len(lines) > 1:
        np.maximum(dark, _line_layer(lines[1:], tone - 40, 1), out=dark)
    glint = _line_layer([main + np.array([-1.8, 0.0])], 110, 1)
    return dark, glint


def _scratch(rng: np.random.Generator, item: _Item) -> np.ndarray:
    """A cosmetic scratch: short, straight, faint, roughly horizontal (star-wheel scuff)."""
    g = item.g
    r_liq = g.r_body - g.wall_body
    length = float(rng.uniform(14.0, 22.0))
    angle = np.deg2rad(rng.uniform(-28.0, 28.0))
    x_mid = g.cx + float(rng.uniform(-0.5, 0.5)) * r_liq
    # Keep it off the meniscus band so it cannot be mistaken for (or hidden by) the fill line.
    y_mid = float(rng.uniform(g.y_body_top + 10.0, g.y_inner_bottom - 14.0))
    if abs(y_mid - item.meniscus_y) < 14.0:
        y_mid = item.meniscus_y + (18.0 if y_mid >= item.meniscus_y else -18.0)
    half = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    mid = np.array([x_mid, y_mid])
    seg = np.stack([mid - half, mid + half])
    # About 2 px of light scattering, well below a crack's darkness, so it survives mild defocus.
    return _line_layer([seg], int(rng.uniform(62.0, 78.0)), 2)


def _particles(rng: np.random.Generator, item: _Item) -> np.ndarray:
    """One to three dark particles or fibres suspended in the liquid."""
    g = item.g
    r_liq = g.r_body - g.wall_body
    layer = np.zeros((HEIGHT, WIDTH), np.uint8)
    count = int(rng.choice([1, 1, 2, 3]))
    y_lo, y_hi = item.meniscus_y + 12.0, g.y_inner_bottom - 14.0
    for _ in range(count):
        px = g.cx + float(rng.uniform(-0.6, 0.6)) * r_liq
        py = float(rng.uniform(y_lo, y_hi))
        tone = int(rng.uniform(150.0, 200.0))
        if rng.uniform() < 0.3:
            # Fibre: a thin, gently curved strand.
            length = float(rng.uniform(14.0, 28.0))
            a0 = float(rng.uniform(0.0, np.pi))
            m = 6
            head = a0 + np.cumsum(rng.normal(0.0, 0.25, m))
            xs = px + np.concatenate([[0.0], np.cumsum(length / m * np.cos(head))])
            ys = py + np.concatenate([[0.0], np.cumsum(length / m * np.sin(head))])
            ys = np.clip(ys, y_lo, y_hi + 6.0)
            pts = np.stack([xs, ys], axis=1)
            cv2.polylines(layer, [_pts(pts.tolist())], False, tone, 2, _AA, SUBPIXEL)
        else:
            radius = float(rng.uniform(2.8, 5.0))
            k = 9
            ang = np.sort(rng.uniform(0.0, 2 * np.pi, k))
            rad = radius * rng.uniform(0.7, 1.25, k)
            poly = np.stack([px + rad * np.cos(ang), py + rad * np.sin(ang)], axis=1)
            cv2.fillPoly(layer, [_pts(poly.tolist())], tone, _AA, SUBPIXEL)
    return layer


def _crimp_sides(rng: np.random.Generator) -> tuple[CrimpSide, CrimpSide]:
    """A deformed skirt: not rolled under, flared on one or both sides, or hanging asymmetrically."""
    mode = str(rng.choice(["unrolled", "flared_one", "flared_both", "asymmetric"]))
    ok = CrimpSide()
    if mode == "unrolled":
        drop = float(rng.uniform(8.0, 12.0))
        sides = (CrimpSide("unrolled", drop), CrimpSide("unrolled", drop + float(rng.uniform(-1.5, 1.5))))
    elif mode == "flared_one":
        bad = CrimpSide("flared", float(rng.uniform(4.0, 8.0)), float(rng.uniform(7.0, 12.0)))
        sides = (bad, ok)
    elif mode == "flared_both":
        sides = (
            CrimpSide("flared", float(rng.uniform(4.0, 7.0)), float(rng.uniform(6.0, 10.0))),
            CrimpSide("flared", float(rng.uniform(4.0, 7.0)), float(rng.uniform(6.0, 10.0))),
        )
    else:
        sides = (CrimpSide("unrolled", float(rng.uniform(10.0, 16.0))), ok)
    if rng.uniform() < 0.5:
        sides = (sides[1], sides[0])
    return sides


def render(label: str, seed: int, nuisance: float = 1.0, *, look: VialLook = NOMINAL_LOOK) -> base.Rendered:
    """Render one vial with ground truth ``label`` (``ok`` or a vial defect code) in ``look``."""
    if label not in labels(PRODUCT):
        raise ValueError(f"unknown vial label {label!r}; known: {', '.join(labels(PRODUCT))}")
    rng = base.make_rng(seed)
    item = _ok_item(rng, nuisance, look)
    # Every label draws this seed, so pose and camera effects match the ok item of the same seed.
    defect_rng = np.random.Generator(np.random.PCG64(int(rng.integers(0, 2**63 - 1))))
    g = item.g
    nominal_y = g.nominal_meniscus_y
    truth_extra: dict[str, Any] = {}
    if label == "fill_low":
        item.meniscus_y = nominal_y + float(defect_rng.uniform(FILL_DEFECT_MIN_PX, FILL_LOW_MAX_PX))
    elif label == "fill_high":
        item.meniscus_y = nominal_y - float(defect_rng.uniform(FILL_DEFECT_MIN_PX, FILL_HIGH_MAX_PX))
    elif label == "missing_cap":
        item.cap_present = False
    elif label == "missing_stopper":
        item.stopper_present = False
    elif label == "crimp_defect":
        item.crimp = _crimp_sides(defect_rng)
        truth_extra["crimp_modes"] = [item.crimp[0].mode, item.crimp[1].mode]

    img, cap_mask = _draw_vial(item)
    mask: np.ndarray = np.zeros((HEIGHT, WIDTH), np.uint8)
    if label in ("glass_crack", "particle", "cosmetic_scratch"):
        glint = None
        if label == "glass_crack":
            dark, glint = _crack(defect_rng, item)
        elif label == "particle":
            dark = _particles(defect_rng, item)
        else:
            dark = _scratch(defect_rng, item)
        img *= 1.0 - dark.astype(np.float32) * (1.0 / 255.0)
        if glint is not None:
            img += glint.astype(np.float32) * (60.0 / 255.0)
        mask = cv2.dilate((dark > 24).astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
    elif label == "missing_cap":
        ok_cap = np.zeros((HEIGHT, WIDTH), np.uint8)
        cv2.fillPoly(ok_cap, [_cap_polygon(g, CrimpSide(), CrimpSide()), _button_polygon(g)], 255, _AA, SUBPIXEL)
        mask = ((ok_cap > 127) * 255).astype(np.uint8)
    elif label == "missing_stopper":
        plug = np.zeros((HEIGHT, WIDTH), np.uint8)
        cv2.fillPoly(plug, [_plug_polygon(g)], 255, _AA, SUBPIXEL)
        mask = (((plug > 127) & (cap_mask < 128)) * 255).astype(np.uint8)
    elif label == "crimp_defect":
        ok_cap = np.zeros((HEIGHT, WIDTH), np.uint8)
        cv2.fillPoly(ok_cap, [_cap_polygon(g, CrimpSide(), CrimpSide()), _button_polygon(g)], 255, _AA, SUBPIXEL)
        mask = (((ok_cap > 127) != (cap_mask > 127)) * 255).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    elif label in ("fill_low", "fill_high"):
        r_liq = g.r_body - g.wall_body
        top, bottom = sorted((nominal_y, item.meniscus_y))
        cv2.rectangle(
            mask,
            (round((g.cx - r_liq + 1.0) * _SCALE), round(top * _SCALE)),
            (round((g.cx + r_liq - 1.0) * _SCALE), round(bottom * _SCALE)),
            255,
            -1,
            cv2.LINE_8,
            SUBPIXEL,
        )

    canvas = np.clip(img, 0.0, 255.0).astype(np.uint8)
    moved, (mask,), mat = base.jitter_pose(
        canvas, [mask], rng, nuisance, max_shift=MAX_SHIFT_PX, max_rot_deg=MAX_ROT_DEG, center=POSE_CENTER
    )
    image = base.camera_effects(moved, rng, nuisance)

    def to_image(x: float, y: float) -> tuple[float, float]:
        px, py = mat @ np.array([x, y, 1.0])
        return float(px), float(py)

    center_x, meniscus_y = to_image(g.cx, item.meniscus_y)
    _, nominal_img_y = to_image(g.cx, nominal_y)
    truth: dict[str, Any] = {
        "meniscus_y": round(meniscus_y, 2),
        "nominal_meniscus_y": round(nominal_img_y, 2),
        "center_x": round(center_x, 2),
        "cap_present": item.cap_present,
        "stopper_present": item.stopper_present,
        "rotation_deg": round(float(np.degrees(np.arctan2(mat[1, 0], mat[0, 0]))), 3),
        **truth_extra,
    }
    return base.Rendered(
        product=PRODUCT,
        label=label,
        criticality=criticality(PRODUCT, label),
        seed=int(seed),
        image=image,
        mask=mask,
        truth=truth,
    )
