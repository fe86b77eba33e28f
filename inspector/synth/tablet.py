"""Procedural renderer of a tablet seen from the top on a dark conveyor belt (BGR8, 256 x 256).

The nominal product is a white, round, biconvex tablet of about 150 px diameter with a
bevelled edge, a break score and debossed letters ("IN" / "5"). Shading is computed from a
height map (bevel + dome - debossing) with a Lambert model under diffuse top lighting, so
the bevel ring, the score groove and the letters all come out of one consistent surface.

Randomness: one generator from :func:`base.make_rng` draws, in a fixed order, the nuisance
parameters, one integer that seeds the defect's own generator, the pose jitter and the
camera effects. Because the defect draws live in their own stream, a defect rendered with
seed ``s`` shows exactly the same item, pose, lighting and noise as ``ok`` with seed ``s``;
the two images differ only where the defect is.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from inspector.synth.base import Rendered, camera_effects, empty_mask, jitter_pose, make_rng
from inspector.synth.foreign import ForeignTablet
from inspector.taxonomy import IMAGE_SPECS, OK, Product, criticality, labels

PRODUCT = Product.TABLET
HEIGHT, WIDTH = IMAGE_SPECS[PRODUCT].height, IMAGE_SPECS[PRODUCT].width
CENTER = (WIDTH / 2.0, HEIGHT / 2.0)

# Pose jitter: small enough that the largest wrong tablet (about 195 px) stays inside the
# frame even at nuisance 3; the belt carries round tablets at any angle, which the renderer
# covers by turning the embossing (and oblong tablets) itself.
MAX_SHIFT_PX = 9.0
MAX_ROT_DEG = 10.0
# Accepted size spread of the nominal product: +-3 % at nuisance 1, never beyond +-6 %, so
# that a clear gap stays to the >= 25 % size error of wrong_tablet.
SIZE_SD = 0.015
SIZE_LIMIT = 0.06

_SUBPX_SHIFT = 4  # cv2 drawing with 1/16 px vertex precision
_SUBPX = float(1 << _SUBPX_SHIFT)
_TEXTURE_SIZE = 512
_TEXTURE_SEED = 0x7AB1E7  # fixed: a library of surface textures; each image picks its own crop
_BELT_BGR = (50.0, 49.0, 46.0)


@dataclass(frozen=True)
class TabletStyle:
    """Geometry, colour and embossing of one tablet product."""

    name: str
    shape: str  # "round" or "oblong" (capsule)
    length_px: float  # diameter of a round tablet, long axis of an oblong one
    width_px: float  # equal to length_px for a round tablet
    color_bgr: tuple[float, float, float]
    text_a: str = "IN"  # above the score (round) or left of it (oblong)
    text_b: str = "5"
    score_line: bool = True
    coated: bool = True  # film coat: smooth; uncoated: matte, mottled surface

    @property
    def bevel_px(self) -> float:
        return 0.062 * self.width_px

    def scaled(self, factor: float) -> TabletStyle:
        return replace(self, length_px=self.length_px * factor, width_px=self.width_px * factor)


# White is set to ~210 grey levels, leaving headroom for the lighting drift before it clips.
NOMINAL = TabletStyle("IN5 white round", "round", 150.0, 150.0, (210.0, 215.0, 217.0))
_WHITE = NOMINAL.color_bgr
# Colours of other products that can end up on the line (light pastel film coats).
WRONG_COLORS: dict[str, tuple[float, float, float]] = {
    "pink": (184.0, 160.0, 228.0),
    "yellow": (110.0, 200.0, 222.0),
    "blue": (222.0, 182.0, 136.0),
    "green": (150.0, 204.0, 158.0),
}
# A wrong tablet's colour is at least this far (BGR distance) from the product's: a look whose
# own tablet is one of the colours above draws white in its place.
_WRONG_COLOR_MIN_DISTANCE = 60.0


@dataclass(frozen=True)
class TabletLook:
    """How one line presents its tablets: the product, the belt and the light.

    The default is the renderer's own look (``nominal``), byte for byte as before looks existed.
    Other looks (:mod:`inspector.synth.looks`) stand for other customers' lines.
    """

    name: str = "nominal"
    style: TabletStyle = NOMINAL
    belt_bgr: tuple[float, float, float] = _BELT_BGR
    # A woven belt: the amplitude (share of the belt's level) and period of its weave; 0 = matte rubber.
    weave: float = 0.0
    weave_period_px: float = 7.0
    light: tuple[float, float, float] = (-0.22, -0.30, 1.0)  # direction towards the lamp
    ambient: float = 0.16  # light that reaches every facet (a dome raises it, a low spot lowers it)
    diffuse: float = 0.9

    @property
    def light_unit(self) -> np.ndarray:
        v = np.array(self.light)
        unit: np.ndarray = v / np.linalg.norm(v)
        return unit


NOMINAL_LOOK = TabletLook()


@dataclass
class _Canvas:
    """The tablet's region of interest in the canonical (pre-jitter) frame."""

    x0: int
    y0: int
    xs: np.ndarray  # (1, w) float32 x coordinates of the ROI columns
    ys: np.ndarray  # (h, 1) float32 y coordinates of the ROI rows

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ys.shape[0], self.xs.shape[1])


# --------------------------------------------------------------------------- textures


@functools.cache
def _textures() -> dict[str, np.ndarray]:
    """Belt (BGR uint8), tablet mottling and grain (float32, unit sd), built once."""
    rng = make_rng(_TEXTURE_SEED)
    n = _TEXTURE_SIZE

    def smooth_noise(cells: int) -> np.ndarray:
        small = rng.standard_normal((cells, cells)).astype(np.float32)
        field: np.ndarray = cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC)
        normalised: np.ndarray = (field - field.mean()) / field.std()
        return normalised

    def grain(sigma: float) -> np.ndarray:
        field: np.ndarray = cv2.GaussianBlur(rng.standard_normal((n, n)).astype(np.float32), (0, 0), sigma)
        normalised: np.ndarray = (field - field.mean()) / field.std()
        return normalised

    mottle = 0.75 * smooth_noise(48) + 0.45 * smooth_noise(110)
    mottle /= mottle.std()
    tablet_grain = grain(0.7)
    # Belt: matte rubber with a faint fabric print-through (grain stretched along the belt's run,
    # not a periodic weave, which would alias into moire when the pose jitter resamples it).
    fibre = cv2.GaussianBlur(rng.standard_normal((n, n)).astype(np.float32), (0, 0), sigmaX=3.0, sigmaY=0.6)
    fibre = (fibre - fibre.mean()) / fibre.std()
    belt_lum = 1.0 + 0.035 * smooth_noise(10) + 0.045 * grain(0.9) + 0.03 * fibre
    library: dict[str, np.ndarray] = {
        "mottle": mottle.astype(np.float32),
        "grain": tablet_grain.astype(np.float32),
        "belt_lum": belt_lum,
        "belt": _colour_belt(belt_lum, _BELT_BGR),
    }
    for texture in library.values():
        texture.setflags(write=False)  # shared by every render: guard against in-place edits
    return library


def _colour_belt(lum: np.ndarray, bgr: tuple[float, float, float]) -> np.ndarray:
    belt = np.dstack([lum * c for c in bgr])
    out: np.ndarray = np.clip(belt + 0.5, 0, 255).astype(np.uint8)
    return out


@functools.cache
def _belt(look: TabletLook) -> np.ndarray:
    """The look's belt texture (BGR uint8, the library's size), built once per look."""
    tex = _textures()
    if look.belt_bgr == _BELT_BGR and look.weave == 0.0:
        return tex["belt"]
    lum = tex["belt_lum"]
    if look.weave > 0.0:
        # Plain weave: warp and weft threads crossing over and under, each thread's brightness
        # rising to its crown; slightly uneven threads (the fibre grain modulates the crowns).
        n = lum.shape[0]
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        period = np.float32(look.weave_period_px)
        u, v = xx / period, yy / period
        over = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
        crown_x = np.sin(np.pi * (u % 1.0)) ** 2
        crown_y = np.sin(np.pi * (v % 1.0)) ** 2
        thread = over * crown_y + (1.0 - over) * crown_x
        lum = lum * (1.0 - np.float32(look.weave) + np.float32(2.0 * look.weave) * thread)
    belt = _colour_belt(lum, look.belt_bgr)
    belt.setflags(write=False)
    return belt


# --------------------------------------------------------------------------- geometry


def _canvas_for(style: TabletStyle, center: tuple[float, float]) -> _Canvas:
    half = style.length_px / 2.0 + 8.0  # room for the contact shadow
    x0, y0 = max(0, int(center[0] - half)), max(0, int(center[1] - half))
    x1, y1 = min(WIDTH, math.ceil(center[0] + half)), min(HEIGHT, math.ceil(center[1] + half))
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]  # cv2 puts pixel centres at integer coords
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    return _Canvas(x0, y0, xs, ys)


def _edge_distance(style: TabletStyle, canvas: _Canvas, center: tuple[float, float], angle_deg: float) -> np.ndarray:
    """Signed distance (px) from each pixel inward to the tablet outline; negative outside."""
    dx = canvas.xs - np.float32(center[0])
    dy = canvas.ys - np.float32(center[1])
    if style.shape == "round":
        return np.float32(style.length_px / 2.0) - np.sqrt(dx * dx + dy * dy)
    theta = math.radians(angle_deg)
    c, s = np.float32(math.cos(theta)), np.float32(math.sin(theta))
    along = dx * c + dy * s
    across = -dx * s + dy * c
    if style.shape == "oval":
        a, b = np.float32(style.length_px / 2.0), np.float32(style.width_px / 2.0)
        k = np.sqrt((along / a) ** 2 + (across / b) ** 2)
        grad = np.sqrt((along / (a * a)) ** 2 + (across / (b * b)) ** 2) + np.float32(1e-6)
        # First order: exact on the outline; near the centre (where it is 0/0) the depth is the short half axis.
        oval: np.ndarray = np.where(k < 0.2, b * (1.0 - k), (1.0 - k) * k / grad).astype(np.float32)
        return oval
    half_straight = np.float32((style.length_px - style.width_px) / 2.0)
    beyond = np.maximum(np.abs(along) - half_straight, 0.0)
    dist: np.ndarray = np.float32(style.width_px / 2.0) - np.sqrt(beyond * beyond + across * across)
    return dist


@functools.cache
def _emboss_template(style: TabletStyle) -> np.ndarray:
    """Deboss depth (0..1) of score and letters, canonical orientation, centred in its own square.

    Cached per product at its nominal size; the size jitter is applied when it is warped into place.
    """
    side = math.ceil(style.length_px) + 16
    canvas = np.zeros((side, side), np.uint8)
    mid = side / 2.0
    font = cv2.FONT_HERSHEY_SIMPLEX
    text_h = 0.155 * style.width_px
    scale = text_h / 22.0  # Hershey simplex capitals are ~22 px high at scale 1
    thick = max(2, round(style.width_px / 48.0))
    face_half = style.width_px / 2.0 - style.bevel_px - 5.0
    if style.shape == "round":
        # Score across, letters above and below it.
        places = [(style.text_a, mid, mid - 0.24 * style.width_px), (style.text_b, mid, mid + 0.24 * style.width_px)]
        p0, p1 = (mid - face_half, mid), (mid + face_half, mid)
    else:
        # Score across the short axis, letters on each lobe.
        off = 0.25 * style.length_px
        places = [(style.text_a, mid - off, mid), (style.text_b, mid + off, mid)]
        p0, p1 = (mid, mid - face_half), (mid, mid + face_half)
    if style.score_line:
        pts = np.round(np.array([p0, p1]) * _SUBPX).astype(np.int32)
        cv2.line(canvas, tuple(pts[0]), tuple(pts[1]), 190, thick, cv2.LINE_AA, _SUBPX_SHIFT)
    for text, cx, cy in places:
        if not text:
            continue
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        org = (round(cx - tw / 2.0), round(cy + th / 2.0))
        cv2.putText(canvas, text, org, font, scale, 190, thick, cv2.LINE_AA)
    return cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), 0.9)


def _emboss_layer(
    style: TabletStyle, scale: float, canvas: _Canvas, center: tuple[float, float], angle_deg: float
) -> np.ndarray:
    """The style's deboss template turned by ``angle_deg``, scaled and placed on the tablet centre."""
    # Random foreign tablets are one-offs: not cached (10,000 of them would hold gigabytes).
    template = _emboss_template.__wrapped__(style) if style.name.startswith("foreign") else _emboss_template(style)
    mid = template.shape[0] / 2.0
    mat = cv2.getRotationMatrix2D((mid, mid), -angle_deg, scale)
    mat[:, 2] += (center[0] - canvas.x0 - mid, center[1] - canvas.y0 - mid)
    h, w = canvas.shape
    return cv2.warpAffine(template, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _fill_coverage(shape: tuple[int, int], polygons: list[np.ndarray], canvas: _Canvas) -> np.ndarray:
    """Anti-aliased coverage (0..1 float32) of polygons given in frame coordinates."""
    img = np.zeros(shape, np.uint8)
    pts = [np.round((p - (canvas.x0, canvas.y0)) * _SUBPX).astype(np.int32) for p in polygons]
    cv2.fillPoly(img, pts, 255, cv2.LINE_AA, _SUBPX_SHIFT)
    return img.astype(np.float32) * np.float32(1.0 / 255.0)


def _rough_loop(
    rng: np.random.Generator,
    center: np.ndarray,
    radius_a: float,
    radius_b: float,
    angle: float,
    roughness: float,
    n: int = 40,
) -> np.ndarray:
    """Closed irregular ellipse (e.g. a chip bite) with a jagged outline."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    wobble = 1.0 + 0.12 * np.sin(t * 2 + rng.uniform(0, 6.3)) + 0.07 * np.sin(t * 3 + rng.uniform(0, 6.3))
    jag = rng.uniform(-roughness, roughness, n)
    px = (radius_a * wobble + jag) * np.cos(t)
    py = (radius_b * wobble + jag) * np.sin(t)
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([center[0] + px * c - py * s, center[1] + px * s + py * c], axis=1)


def _random_point_inside(
    rng: np.random.Generator, style: TabletStyle, center: tuple[float, float], angle_deg: float, margin: float
) -> np.ndarray:
    """Uniform point of the tablet face at least ``margin`` px from the outline (round or oblong)."""
    half_w = style.width_px / 2.0 - margin
    half_straight = (style.length_px - style.width_px) / 2.0
    theta = math.radians(angle_deg)
    for _ in range(64):
        u = rng.uniform(-half_straight - half_w, half_straight + half_w)
        v = rng.uniform(-half_w, half_w)
        if max(abs(u) - half_straight, 0.0) ** 2 + v * v <= half_w * half_w:
            break
    else:  # practically unreachable; fall back to the centre
        u = v = 0.0
    return np.array(
        [center[0] + u * math.cos(theta) - v * math.sin(theta), center[1] + u * math.sin(theta) + v * math.cos(theta)]
    )


# --------------------------------------------------------------------------- defects


@dataclass
class _Surface:
    """Per-pixel layers of the tablet in its ROI, modified by the defect painters."""

    coverage: np.ndarray  # 0..1 tablet present
    dist: np.ndarray  # inward distance to the intact outline
    shade: np.ndarray  # lighting x texture, multiplies the albedo
    lambert: np.ndarray  # lighting alone (for things lying on the surface)
    albedo_scale: list[np.ndarray | float]  # per-channel multiplier of the tablet colour
    spot_alpha: np.ndarray | None = None
    spot_bgr: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _remove_material(surface: _Surface, missing: np.ndarray, grain: np.ndarray) -> np.ndarray:
    """Cut ``missing`` (coverage 0..1) out of the tablet; shade the rough fracture face left behind.

    Returns the defect mask (bool): intact tablet that is now gone, plus the fracture band.
    """
    intact = surface.coverage
    surface.coverage = intact * (1.0 - missing)
    # Fracture face: a narrow, rough, greyer band along the new edge (no bevel there).
    near = cv2.GaussianBlur(missing, (0, 0), 1.6)
    band = np.clip(near * 2.6, 0.0, 1.0) * (1.0 - missing)
    darkening = band * (0.22 + 0.10 * grain)
    surface.shade = surface.shade * (1.0 - darkening)
    defect: np.ndarray = ((intact > 0.5) & (missing > 0.5)) | ((band > 0.35) & (surface.coverage > 0.5))
    return defect


def _paint_broken(
    surface: _Surface,
    rng: np.random.Generator,
    style: TabletStyle,
    center: tuple[float, float],
    canvas: _Canvas,
    grain: np.ndarray,
    truth: dict[str, Any],
) -> np.ndarray:
    radius = style.length_px / 2.0
    # A half or about a third missing.
    fraction = rng.uniform(0.44, 0.56) if rng.random() < 0.5 else rng.uniform(0.28, 0.38)
    # Offset of the chord whose far side holds ``fraction`` of the disc (bisection on the segment area).
    lo, hi = -1.0, 1.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        seg = (math.acos(mid) - mid * math.sqrt(1.0 - mid * mid)) / math.pi
        lo, hi = (mid, hi) if seg > fraction else (lo, mid)
    offset = 0.5 * (lo + hi) * radius
    phi = rng.uniform(0.0, 2.0 * math.pi)
    normal = np.array([math.cos(phi), math.sin(phi)])
    tangent = np.array([-normal[1], normal[0]])
    # Rough edge: a slow meander plus sharp jags, sampled every ~3 px along the chord.
    t = -radius - 12.0 + np.cumsum(rng.uniform(1.5, 5.0, int(2.0 * (radius + 12.0) / 2.0)))
    t = t[t < radius + 12.0]
    meander = np.cumsum(rng.normal(0.0, 0.9, t.size))
    meander -= np.linspace(meander[0], meander[-1], t.size)
    bow = 3.0 * np.sin(t / radius * rng.uniform(1.0, 3.0) + rng.uniform(0, 6.3))
    wiggle = meander + rng.uniform(-1.4, 1.4, t.size) + bow
    c = np.asarray(center)
    edge = c + np.outer(offset + wiggle, normal) + np.outer(t, tangent)
    far = c + (radius + 30.0) * normal
    polygon = np.vstack([edge, [far + (radius + 30.0) * tangent], [far - (radius + 30.0) * tangent]])
    missing = _fill_coverage(surface.coverage.shape, [polygon], canvas)
    truth["missing_fraction"] = round(float(fraction), 3)
    return _remove_material(surface, missing, grain)


def _edge_radius(style: TabletStyle, center: tuple[float, float], angle_deg: float, alpha: float) -> float:
    """Distance from the centre to the outline in direction ``alpha`` (radians; any shape)."""
    if style.shape == "round":
        return style.length_px / 2.0
    lo, hi = 0.0, style.length_px / 2.0 + 2.0
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        x, y = center[0] + mid * math.cos(alpha), center[1] + mid * math.sin(alpha)
        at = _Canvas(0, 0, np.array([[x]], np.float32), np.array([[y]], np.float32))
        inside = float(_edge_distance(style, at, center, angle_deg)[0, 0]) > 0.0
        lo, hi = (mid, hi) if inside else (lo, mid)
    return lo


def _paint_chip(
    surface: _Surface,
    rng: np.random.Generator,
    style: TabletStyle,
    center: tuple[float, float],
    canvas: _Canvas,
    angle_deg: float,
    grain: np.ndarray,
    truth: dict[str, Any],
) -> np.ndarray:
    alpha = rng.uniform(0.0, 2.0 * math.pi)
    radius = _edge_radius(style, center, angle_deg, alpha)
    depth = rng.uniform(8.0, 16.0)
    half_width = depth * rng.uniform(1.1, 1.7)
    radial = np.array([math.cos(alpha), math.sin(alpha)])
    # Ellipse whose inner tip sits ``depth`` px inside the outline.
    radial_semi = depth * 1.6
    bite_center = np.asarray(center) + radial * (radius - depth + radial_semi)
    bite = _rough_loop(rng, bite_center, radial_semi, half_width, alpha, roughness=1.0)
    missing = _fill_coverage(surface.coverage.shape, [bite], canvas)
    truth["chip_depth_px"] = round(float(depth), 2)
    return _remove_material(surface, missing, grain)


def _crack_path(rng: np.random.Generator, start: np.ndarray, heading: float, length: float) -> np.ndarray:
    """Jagged, roughly straight path: short segments whose direction reverts towards ``heading``."""
    steps = max(4, int(length / 3.5))
    turn = 0.0
    headings = np.empty(steps)
    for i, kick in enumerate(rng.normal(0.0, 0.32, steps)):  # a few dozen scalars, not pixels
        turn = 0.55 * turn + kick
        headings[i] = heading + turn
    seg = rng.uniform(0.6, 1.4, steps) * (length / steps)
    dxy = np.stack([np.cos(headings) * seg, np.sin(headings) * seg], axis=1)
    return np.vstack([start, start + np.cumsum(dxy, axis=0)])


def _paint_crack(
    surface: _Surface,
    rng: np.random.Generator,
    style: TabletStyle,
    center: tuple[float, float],
    canvas: _Canvas,
    angle_deg: float,
    grain: np.ndarray,
    truth: dict[str, Any],
) -> np.ndarray:
    start = _random_point_inside(rng, style, center, angle_deg, margin=0.36 * style.width_px)
    heading = rng.uniform(0.0, 2.0 * math.pi)
    arm_a = _crack_path(rng, start, heading, rng.uniform(24.0, 60.0))
    arm_b = _crack_path(rng, start, heading + math.pi, rng.uniform(24.0, 60.0))
    paths = [np.vstack([arm_a[::-1], arm_b[1:]])]
    if rng.random() < 0.35:  # a short branch, forking forwards off one arm
        arm, sign = (arm_a, 0.0) if rng.random() < 0.5 else (arm_b, math.pi)
        at = arm[rng.integers(2, arm.shape[0] - 1)]
        fork = heading + sign + rng.choice([-1.0, 1.0]) * rng.uniform(0.45, 0.9)
        paths.append(_crack_path(rng, at, fork, rng.uniform(10.0, 22.0)))
    img = np.zeros(surface.coverage.shape, np.uint8)
    pts = [np.round((p - (canvas.x0, canvas.y0)) * _SUBPX).astype(np.int32) for p in paths]
    cv2.polylines(img, pts, False, 255, 1, cv2.LINE_AA, _SUBPX_SHIFT)
    if rng.random() < 0.4:  # a gaping crack: about 2 px wide instead of a hairline
        nudge = np.round(rng.uniform(-0.7, 0.7, 2) * _SUBPX).astype(np.int32)
        cv2.polylines(img, [p + nudge for p in pts], False, 255, 1, cv2.LINE_AA, _SUBPX_SHIFT)
    # The crack ends at the tablet edge: keep it where the intact face is.
    line = img.astype(np.float32) * np.float32(1.0 / 255.0) * np.clip(surface.dist - 1.0, 0.0, 1.0)
    # Depth of the fissure varies along it; never so faint that it drops below clear contrast.
    strength = rng.uniform(0.64, 0.78) * (0.85 + 0.15 * np.clip(grain, -1.0, 1.0))
    surface.shade = surface.shade * (1.0 - strength * line)
    mask = line > 0.3
    ys, xs = np.nonzero(mask)
    truth["crack_length_px"] = round(float(math.hypot(np.ptp(xs), np.ptp(ys))), 1) if xs.size else 0.0
    return mask


def _paint_foreign_spot(
    surface: _Surface,
    rng: np.random.Generator,
    style: TabletStyle,
    center: tuple[float, float],
    canvas: _Canvas,
    angle_deg: float,
    truth: dict[str, Any],
) -> np.ndarray:
    palette = {
        "black": (26.0, 26.0, 30.0),
        "dark_brown": (28.0, 48.0, 78.0),
        "dark_grey": (66.0, 64.0, 62.0),
        "rust": (36.0, 58.0, 150.0),
        "blue": (130.0, 46.0, 22.0),
    }
    name = str(rng.choice(list(palette)))
    count = 1 if rng.random() < 0.75 else int(rng.integers(2, 4))
    img = np.zeros(surface.coverage.shape, np.uint8)
    radii = []
    for _ in range(count):
        r = float(rng.uniform(2.8, 6.5))
        radii.append(r)
        p = _random_point_inside(rng, style, center, angle_deg, margin=style.bevel_px + r + 3.0)
        minor, turn = r * rng.uniform(0.65, 1.0), rng.uniform(0, math.pi)
        blob = _rough_loop(rng, p, r, minor, turn, roughness=0.35 * r / 2.8, n=16)
        cv2.fillPoly(
            img, [np.round((blob - (canvas.x0, canvas.y0)) * _SUBPX).astype(np.int32)], 255, cv2.LINE_AA, _SUBPX_SHIFT
        )
    spot = cv2.GaussianBlur(img.astype(np.float32) * np.float32(1.0 / 255.0), (0, 0), 0.6)
    surface.spot_alpha = np.clip(spot * 1.15, 0.0, 1.0)
    surface.spot_bgr = palette[name]
    truth["spot_color"] = name
    truth["spot_radius_px"] = round(min(radii), 2)
    return surface.spot_alpha > 0.35


def _paint_discoloration(
    surface: _Surface,
    rng: np.random.Generator,
    style: TabletStyle,
    center: tuple[float, float],
    canvas: _Canvas,
    angle_deg: float,
    mottle: np.ndarray,
    truth: dict[str, Any],
) -> np.ndarray:
    tints = {"yellow": (0.50, 0.86, 0.97), "brown": (0.52, 0.68, 0.84), "ochre": (0.42, 0.76, 0.93)}
    name = str(rng.choice(list(tints)))
    radius = rng.uniform(15.0, 30.0)
    p = _random_point_inside(rng, style, center, angle_deg, margin=0.5 * radius)
    aspect = rng.uniform(0.65, 1.0)
    rot = rng.uniform(0.0, math.pi)
    dx, dy = canvas.xs - np.float32(p[0]), canvas.ys - np.float32(p[1])
    c, s = np.float32(math.cos(rot)), np.float32(math.sin(rot))
    u, v = (dx * c + dy * s) / np.float32(radius), (-dx * s + dy * c) / np.float32(radius * aspect)
    # Soft irregular blotch: radial falloff whose border is bent by the mottling field.
    level = 1.0 - np.sqrt(u * u + v * v) + 0.22 * mottle
    peak = rng.uniform(0.8, 1.0)
    sharp = np.clip(level * 2.2, 0.0, 1.0) * np.float32(peak) * np.clip(surface.dist - 0.5, 0.0, 1.0)
    alpha: np.ndarray = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    for ch in range(3):
        surface.albedo_scale[ch] = surface.albedo_scale[ch] * (1.0 - alpha * np.float32(1.0 - tints[name][ch]))
    truth["discoloration_color"] = name
    return (alpha > 0.3) & (surface.coverage > 0.5)


def _foreign_style(f: ForeignTablet) -> TabletStyle:
    """A random foreign tablet as the renderer draws tablets (a capsule as one-colour stadium)."""
    shape = {"round": "round", "oval": "oval", "capsule": "oblong", "oblong": "oblong"}[f.shape]
    return TabletStyle(
        f"foreign {f.shape}", shape, f.length_px, f.width_px, f.color_bgr,
        text_a="" if not f.marking else "AB", text_b="", score_line=f.marking, coated=f.coated,
    )  # fmt: skip


def _wrong_colors(product: TabletStyle) -> dict[str, tuple[float, float, float]]:
    """Colours a wrong tablet may have: the other products', never near the product's own."""
    if product.color_bgr == _WHITE:
        return WRONG_COLORS
    pool = {"white": _WHITE, **WRONG_COLORS}
    own = np.array(product.color_bgr)
    return {k: c for k, c in pool.items() if float(np.linalg.norm(np.array(c) - own)) >= _WRONG_COLOR_MIN_DISTANCE}


def _wrong_style(rng: np.random.Generator, nominal: TabletStyle) -> tuple[TabletStyle, str]:
    kind = str(rng.choice(["oblong", "small", "large", "colour"]))
    color = nominal.color_bgr
    colors = _wrong_colors(nominal)
    if kind == "colour" or rng.random() < 0.3:
        color = colors[str(rng.choice(list(colors)))]
    texts = [("AB", "12"), ("K", "2"), ("IN", "10"), ("", "")]
    text_a, text_b = texts[int(rng.integers(0, len(texts)))]
    if kind == "oblong" and nominal.shape != "round":
        # The product is itself elongated: the other shape is a round tablet.
        kind = "round"
        d = nominal.width_px * rng.uniform(1.3, 1.6)
        style = TabletStyle("round", "round", d, d, color, text_a, text_b)
    elif kind == "oblong":
        length = nominal.width_px * rng.uniform(1.05, 1.2)
        style = TabletStyle("oblong", "oblong", length, length * rng.uniform(0.42, 0.52), color, text_a, text_b)
    elif kind in ("small", "large"):
        # Outside +-25 % of the product, and small enough to stay in view at the widest pose jitter.
        factor = rng.uniform(0.6, 0.72) if kind == "small" else rng.uniform(1.26, 1.29)
        style = replace(nominal.scaled(factor), name=kind, color_bgr=color, text_a=text_a, text_b=text_b)
    else:
        style = replace(nominal, name="colour", color_bgr=color, score_line=bool(rng.random() < 0.5))
    return style, kind


# --------------------------------------------------------------------------- render


def render(
    label: str,
    seed: int,
    nuisance: float = 1.0,
    *,
    foreign: ForeignTablet | None = None,
    look: TabletLook = NOMINAL_LOOK,
) -> Rendered:
    """Render one tablet with ground-truth ``label`` (``ok`` or a tablet defect code).

    ``foreign`` (label ``wrong_tablet`` only): this tablet instead of one of the renderer's own wrong
    tablets (:mod:`inspector.synth.foreign`, evaluation sets only). ``look``: the line's product,
    belt and light (:mod:`inspector.synth.looks`).
    """
    if foreign is not None and label != "wrong_tablet":
        raise ValueError("a foreign tablet is drawn for the label wrong_tablet only")
    if label not in labels(PRODUCT):
        raise ValueError(f"unknown tablet label {label!r}; known: {', '.join(labels(PRODUCT))}")
    rng = make_rng(seed)
    tex = _textures()

    # 1. Nuisance draws (the same for every label with this seed).
    size_factor = 1.0 + float(np.clip(rng.normal(0.0, SIZE_SD) * nuisance, -SIZE_LIMIT, SIZE_LIMIT))
    emboss_angle = float(rng.uniform(-180.0, 180.0)) * min(nuisance, 1.0)
    tint = 1.0 + np.clip(rng.normal(0.0, 0.008, 3) * nuisance, -0.025, 0.025)
    bx, by, mx, my = (int(v) for v in rng.integers(0, _TEXTURE_SIZE - WIDTH, 4))
    mottle_amp = 0.016 * (1.0 + 0.3 * np.clip(rng.normal(), -2, 2) * min(nuisance, 2.0))
    defect_rng = make_rng(int(rng.integers(0, 2**32 - 1)))

    # 2. Which tablet: the product, or another one for wrong_tablet.
    style = look.style
    wrong_kind = ""
    if foreign is not None:
        style = _foreign_style(foreign)
        wrong_kind = f"random:{foreign.shape}"
        if style.shape != "round":
            emboss_angle = float(defect_rng.uniform(-90.0, 90.0))
    elif label == "wrong_tablet":
        style, wrong_kind = _wrong_style(defect_rng, look.style)
        if style.shape == "oblong":
            emboss_angle = float(defect_rng.uniform(-90.0, 90.0))
    base_style, style = style, style.scaled(size_factor)

    # 3. Surface: height map -> Lambert shading, textured albedo.
    canvas = _canvas_for(style, CENTER)
    h, w = canvas.shape
    dist = _edge_distance(style, canvas, CENTER, emboss_angle)
    coverage = np.clip(dist + 0.5, 0.0, 1.0)
    bevel, half = style.bevel_px, style.width_px / 2.0
    t = np.clip((dist - np.float32(bevel)) / np.float32(half - bevel), 0.0, 1.0)
    face = np.clip((dist - np.float32(bevel) - 1.0) / 3.0, 0.0, 1.0)
    deboss = _emboss_layer(base_style, size_factor, canvas, CENTER, emboss_angle)
    height_map = (
        0.95 * np.clip(dist, 0.0, bevel) + np.float32(0.11 * half) * (1.0 - (1.0 - t) ** 2) - 1.6 * deboss * face
    )
    gx = cv2.Sobel(height_map, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(height_map, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    lx, ly, lz = (np.float32(v) for v in look.light_unit)
    lambert = np.maximum((lz - gx * lx - gy * ly) / np.sqrt(1.0 + gx * gx + gy * gy), 0.0)
    lambert = look.ambient + look.diffuse * lambert
    ys, xs = slice(canvas.y0, canvas.y0 + h), slice(canvas.x0, canvas.x0 + w)
    mottle = tex["mottle"][my : my + HEIGHT, mx : mx + WIDTH][ys, xs]
    grain = tex["grain"][my : my + HEIGHT, mx : mx + WIDTH][ys, xs]
    rough = 1.0 if style.coated else 3.0  # an uncoated tablet: pressed powder, matte and mottled
    shade = lambert * (1.0 + np.float32(mottle_amp * rough) * mottle + np.float32(0.012 * rough) * grain)
    surface = _Surface(coverage, dist, shade, lambert, [1.0, 1.0, 1.0])

    # 4. The defect, drawn from its own generator.
    truth: dict[str, Any] = {}
    defect_roi: np.ndarray | None = None
    if label == "broken":
        defect_roi = _paint_broken(surface, defect_rng, style, CENTER, canvas, grain, truth)
    elif label == "chip":
        defect_roi = _paint_chip(surface, defect_rng, style, CENTER, canvas, emboss_angle, grain, truth)
    elif label == "crack":
        defect_roi = _paint_crack(surface, defect_rng, style, CENTER, canvas, emboss_angle, grain, truth)
    elif label == "foreign_spot":
        defect_roi = _paint_foreign_spot(surface, defect_rng, style, CENTER, canvas, emboss_angle, truth)
    elif label == "discoloration":
        defect_roi = _paint_discoloration(surface, defect_rng, style, CENTER, canvas, emboss_angle, mottle, truth)
    elif label == "wrong_tablet":
        defect_roi = surface.coverage > 0.5
        truth["wrong_kind"] = wrong_kind

    # 5. Composite on the belt, with a soft contact shadow around the tablet.
    image = _belt(look)[by : by + HEIGHT, bx : bx + WIDTH].copy()
    belt_roi = image[ys, xs].astype(np.float32)
    cover = surface.coverage
    shadow = 1.0 - 0.38 * cv2.GaussianBlur(cover, (0, 0), 2.2)
    channels = []
    for ch in range(3):
        tablet_ch = np.float32(style.color_bgr[ch] * tint[ch]) * surface.shade * surface.albedo_scale[ch]
        if surface.spot_alpha is not None:
            spot_ch = np.float32(surface.spot_bgr[ch]) * surface.lambert
            tablet_ch = tablet_ch + surface.spot_alpha * (spot_ch - tablet_ch)
        belt_ch = belt_roi[:, :, ch] * shadow
        channels.append(belt_ch + cover * (tablet_ch - belt_ch))
    image[ys, xs] = np.clip(cv2.merge(channels) + 0.5, 0, 255).astype(np.uint8)

    object_mask = empty_mask((HEIGHT, WIDTH))
    object_mask[ys, xs] = np.where(cover > 0.5, 255, 0).astype(np.uint8)
    mask = empty_mask((HEIGHT, WIDTH))
    if defect_roi is not None:
        mask[ys, xs] = np.where(defect_roi, 255, 0).astype(np.uint8)

    # 6. Nuisance chain shared by all products.
    image, (mask, object_mask), mat = jitter_pose(
        image, [mask, object_mask], rng, nuisance, max_shift=MAX_SHIFT_PX, max_rot_deg=MAX_ROT_DEG, center=CENTER
    )
    image = camera_effects(image, rng, nuisance)
    cx, cy = mat @ np.array([CENTER[0], CENTER[1], 1.0])
    truth.update(
        center=(round(float(cx), 2), round(float(cy), 2)),
        shape=style.shape,
        size_px=round(style.length_px, 2),
        width_px=round(style.width_px, 2),
        color_bgr=tuple(round(float(c * k), 1) for c, k in zip(style.color_bgr, tint, strict=True)),
        emboss_angle_deg=round(emboss_angle, 2),
        object_mask=object_mask,
    )
    return Rendered(
        product=PRODUCT,
        label=label,
        criticality=criticality(PRODUCT, label),
        seed=seed,
        image=image,
        mask=mask if label != OK else empty_mask((HEIGHT, WIDTH)),
        truth=truth,
    )
