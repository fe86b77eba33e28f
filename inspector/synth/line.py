"""A line's presentation on top of a rendered item: where it lands, and how the camera sees it.

The renderer's own jitter is what the models were trained on. A real line does more: a card
arrives a few pixels off and turned by degrees, a vial wobbles in its star wheel, the lamp
ages (gain), the camera's response drifts (gamma), the lens vignettes and the focus slips.
:func:`present_on_line` draws one such presentation, uniformly inside the given ranges, from
its own generator (the item's seed and presentation), so the same arguments give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_LINE_TAG = 0x11_4E_0F  # keeps the line's stream apart from every other derived seed


@dataclass(frozen=True)
class LinePresentation:
    """The largest line variation to draw from (0 switches a kind off).

    ``shift_px``: each of dx, dy; ``turn_deg``: about the frame's centre; ``gain``: relative
    brightness change; ``gamma``: relative change of the exponent; ``vignette``: darkening of the
    corners; ``defocus``: Gaussian blur sigma in pixels.
    """

    shift_px: float = 0.0
    turn_deg: float = 0.0
    gain: float = 0.0
    gamma: float = 0.0
    vignette: float = 0.0
    defocus: float = 0.0

    def __post_init__(self) -> None:
        limits = {"shift_px": 64.0, "turn_deg": 45.0, "gain": 0.5, "gamma": 0.5, "vignette": 0.8, "defocus": 5.0}
        for name, high in limits.items():
            value = getattr(self, name)
            if not 0.0 <= value <= high:
                raise ValueError(f"line presentation {name} must be in 0..{high:g}, got {value}")

    @property
    def active(self) -> bool:
        return any((self.shift_px, self.turn_deg, self.gain, self.gamma, self.vignette, self.defocus))


def present_on_line(
    image: np.ndarray, spec: LinePresentation, seed: int, presentation: int | None = None
) -> tuple[np.ndarray, dict[str, float]]:
    """The image as the line presents it, and what was drawn (``dx, dy, turn_deg, gain, gamma, vignette, defocus``)."""
    rng = np.random.default_rng([int(seed), _LINE_TAG, 0 if presentation is None else int(presentation) + 1])
    dx, dy = (float(v) for v in rng.uniform(-1.0, 1.0, 2) * spec.shift_px)
    turn = float(rng.uniform(-1.0, 1.0) * spec.turn_deg)
    gain = float(1.0 + rng.uniform(-1.0, 1.0) * spec.gain)
    gamma = float(1.0 + rng.uniform(-1.0, 1.0) * spec.gamma)
    vignette = float(rng.uniform(0.0, 1.0) * spec.vignette)
    defocus = float(rng.uniform(0.0, 1.0) * spec.defocus)
    h, w = image.shape[:2]
    out = image
    if dx or dy or turn:
        # getRotationMatrix2D turns counter-clockwise on screen for a positive angle; the pose
        # convention (y down) counts clockwise as positive, hence the minus.
        mat = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -turn, 1.0)
        mat[:, 2] += np.array([dx, dy])
        out = cv2.warpAffine(out, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if defocus > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), defocus)
    if gain != 1.0 or gamma != 1.0 or vignette > 0.0:
        f = out.astype(np.float32) / 255.0
        if gamma != 1.0:
            f = np.power(f, gamma)
        f *= gain
        if vignette > 0.0:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
            fall = 1.0 - vignette * r2
            f *= fall[..., None] if f.ndim == 3 else fall
        out = np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8)
    drawn = {"dx": dx, "dy": dy, "turn_deg": turn, "gain": gain, "gamma": gamma, "vignette": vignette}
    drawn["defocus"] = defocus
    return out, {k: round(v, 4) for k, v in drawn.items()}
