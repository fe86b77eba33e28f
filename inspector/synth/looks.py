"""Looks: how other lines present the same kinds of product (another tablet, belt, light, glass, foil).

The renderer's own look (``nominal``) is the one every shipped package was trained and tuned on.
A training recipe tuned on one look may only fit that look; a customer retrains on their own
images. The other looks stand for those customers, and they come in two kinds:

- **tuning** looks may inform any decision about the training recipe (its levers are measured on them);
- **held-out** looks are kept out of every such decision: the recipe is fixed first, then run once on
  each held-out look, and what it gives is reported as a customer would see it.

A look changes what the camera sees of a good item (and of its defects, which are drawn on the
look's product), never the defect classes or their criteria. Its name travels in each manifest line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inspector.synth.blister import NOMINAL_LOOK as BLISTER_NOMINAL
from inspector.synth.blister import BlisterLook
from inspector.synth.tablet import NOMINAL_LOOK as TABLET_NOMINAL
from inspector.synth.tablet import TabletLook, TabletStyle
from inspector.synth.vial import NOMINAL_LOOK as VIAL_NOMINAL
from inspector.synth.vial import VialLook
from inspector.taxonomy import Product

NOMINAL = "nominal"


@dataclass(frozen=True)
class Look:
    """One named look of one product."""

    product: Product
    name: str
    held_out: bool
    summary: str
    scene: Any  # the product renderer's own look type (TabletLook, VialLook, BlisterLook)

    @property
    def role(self) -> str:
        return "held-out" if self.held_out else "tuning"


def _tablet(name: str, held_out: bool, summary: str, **scene: Any) -> Look:
    return Look(Product.TABLET, name, held_out, summary, TabletLook(name=name, **scene))


_TABLET = [
    Look(Product.TABLET, NOMINAL, False, "the renderer's own: white round scored IN/5 tablet, dark rubber belt, "
         "diffuse light from the upper left", TABLET_NOMINAL),
    _tablet(
        "yellow-uncoated", False,
        "pale yellow uncoated round tablet (mottled), no score, AB/12, on a dark green belt, light from the right",
        style=TabletStyle("AB12 yellow round", "round", 138.0, 138.0, (150.0, 212.0, 226.0), "AB", "12",
                          score_line=False, coated=False),
        belt_bgr=(44.0, 58.0, 36.0), light=(0.35, -0.05, 1.0),
    ),
    _tablet(
        "oblong-white", False,
        "white oblong film-coated tablet, scored, on a dark grey belt, low light from above (strong relief)",
        style=TabletStyle("K2 white oblong", "oblong", 168.0, 74.0, (214.0, 214.0, 212.0), "K", "2"),
        belt_bgr=(40.0, 40.0, 42.0), light=(0.0, -0.55, 1.0), ambient=0.10, diffuse=0.95,
    ),
    # Held out: the customer's case that started this work, and one more shape and colour.
    _tablet(
        "woven-white", True,
        "white round scored tablet (10/K) at any rotation on a dark woven belt, dome light",
        style=TabletStyle("10K white round", "round", 142.0, 142.0, (216.0, 218.0, 214.0), "10", "K"),
        belt_bgr=(34.0, 36.0, 40.0), weave=0.22, weave_period_px=6.0, light=(0.10, 0.25, 1.0),
        ambient=0.24, diffuse=0.82,
    ),
    _tablet(
        "blue-oval", True,
        "light blue oval film-coated tablet, unscored, on a black belt, light from the lower left",
        style=TabletStyle("B7 blue oval", "oval", 160.0, 104.0, (226.0, 196.0, 160.0), "B", "7",
                          score_line=False),
        belt_bgr=(26.0, 27.0, 28.0), light=(-0.30, 0.30, 1.0),
    ),
]  # fmt: skip


def _vial(name: str, held_out: bool, summary: str, **scene: Any) -> Look:
    return Look(Product.VIAL, name, held_out, summary, VialLook(name=name, **scene))


_VIAL = [
    Look(Product.VIAL, NOMINAL, False, "the renderer's own: clear 10R vial, clear solution, dark aluminium cap, "
         "bright diffuse backlight", VIAL_NOMINAL),
    _vial("amber-6r", False, "amber glass 6R vial (smaller), clear solution, dark cap",
          scale=0.88, glass_transmission=0.62),
    _vial("dim-bright-cap", False, "clear 10R vial under a dimmer, uneven backlight; bright aluminium cap, "
          "dark stopper", background=185.0, vignette=0.5, cap_tone=150.0, stopper_tone=80.0),
    _vial("tinted-solution", True, "clear vial of a yellow (darker in mono) solution, grey cap and stopper, "
          "dimmer backlight", scale=0.94, background=200.0, liquid_transmission=0.7, cap_tone=110.0,
          stopper_tone=90.0),
    _vial("large-bright", True, "larger clear vial on a bright backlight with a darker rim, mid-grey cap",
          scale=1.06, background=235.0, vignette=0.3, cap_tone=80.0, stopper_tone=130.0),
]  # fmt: skip


def _blister(name: str, held_out: bool, summary: str, **scene: Any) -> Look:
    return Look(Product.BLISTER, name, held_out, summary, BlisterLook(name=name, **scene))


_ORANGE = (104.0, 175.0, 244.0)
_BLISTER = [
    Look(Product.BLISTER, NOMINAL, False, "the renderer's own: light orange round tablets, silver printed foil, "
         "dark nest", BLISTER_NOMINAL),
    _blister("white-tablet", False, "white round tablets under silver foil (a foreign round tablet is orange)",
             tablet_bgr=(222.0, 226.0, 226.0), core_bgr=(196.0, 200.0, 204.0), foreign_round_bgr=_ORANGE,
             foreign_oblong_bgr=(110.0, 200.0, 222.0)),
    _blister("gold-foil", False, "pink round tablets on gold-coloured foil", tablet_bgr=(184.0, 160.0, 228.0),
             foil_bgr=(120.0, 165.0, 190.0), ink_bgr=(0.70, 0.78, 0.80)),
    _blister("blue-dark-nest", True, "light blue round tablets, darker silver foil, black nest",
             tablet_bgr=(222.0, 182.0, 136.0), foil_bgr=(150.0, 152.0, 150.0), nest_bgr=(20.0, 20.0, 22.0),
             ink_bgr=(0.70, 0.75, 0.95)),
    _blister("yellow-green-nest", True, "yellow round tablets, bright foil with strong print, dark green nest",
             tablet_bgr=(110.0, 200.0, 222.0), foil_bgr=(190.0, 190.0, 188.0), nest_bgr=(30.0, 45.0, 28.0),
             ink_bgr=(0.60, 0.70, 0.80), foreign_oblong_bgr=(226.0, 230.0, 231.0)),
]  # fmt: skip

LOOKS: dict[Product, dict[str, Look]] = {
    Product.VIAL: {look.name: look for look in _VIAL},
    Product.TABLET: {look.name: look for look in _TABLET},
    Product.BLISTER: {look.name: look for look in _BLISTER},
}


def names(product: Product | str, *, held_out: bool | None = None) -> list[str]:
    """The product's look names (all, or only held-out / only tuning ones)."""
    looks = LOOKS.get(Product(product), {})
    return [n for n, look in looks.items() if held_out is None or look.held_out == held_out]


def get(product: Product | str, name: str | None) -> Look | None:
    """The product's look called ``name``; ``None`` (and ``nominal``) for the renderer's own."""
    prod = Product(product)
    if name is None or name == NOMINAL:
        return None
    look = LOOKS.get(prod, {}).get(name)
    if look is None:
        known = ", ".join(names(prod)) or NOMINAL
        raise ValueError(f"unknown {prod.value} look {name!r}; known: {known}")
    return look


def all_names() -> list[str]:
    """Every look name of every product (for a command line's choices)."""
    return sorted({n for looks in LOOKS.values() for n in looks} | {NOMINAL})
