"""Defect taxonomy for the products the station inspects.

Criticality follows USP <1790> practice: *critical* can harm a patient, *major* can
impair use or sterility, *minor* is cosmetic. Every defect has a stable string code
(used in manifests, records and model class lists) and a numeric PLC reason code
(what goes over the wire to the line PLC). Station-level reasons that are not defects
(``not_inspected``, ``undecided``, ``anomaly``) live in :class:`RejectReason`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

OK: Final = "ok"


class Product(enum.StrEnum):
    VIAL = "vial"
    TABLET = "tablet"
    BLISTER = "blister"


class Criticality(enum.StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"

    @property
    def rank(self) -> int:
        """Higher is worse; ``ok`` ranks 0."""
        return {Criticality.MINOR: 1, Criticality.MAJOR: 2, Criticality.CRITICAL: 3}[self]


class DefectCode(enum.StrEnum):
    """Every defect class of every product (see :data:`DEFECTS` for product, criticality and PLC code)."""

    MISSING_CAP = "missing_cap"
    MISSING_STOPPER = "missing_stopper"
    GLASS_CRACK = "glass_crack"
    PARTICLE = "particle"
    FILL_LOW = "fill_low"
    FILL_HIGH = "fill_high"
    CRIMP_DEFECT = "crimp_defect"
    COSMETIC_SCRATCH = "cosmetic_scratch"
    BROKEN = "broken"
    CHIP = "chip"
    CRACK = "crack"
    FOREIGN_SPOT = "foreign_spot"
    DISCOLORATION = "discoloration"
    WRONG_TABLET = "wrong_tablet"
    EMPTY_POCKET = "empty_pocket"
    BROKEN_TABLET = "broken_tablet"
    FOREIGN_TABLET = "foreign_tablet"
    DOUBLE_TABLET = "double_tablet"
    FOIL_DAMAGE = "foil_damage"


class RejectReason(enum.StrEnum):
    """Why the station rejected an item, beyond a named defect class.

    ``NOT_INSPECTED`` is kept apart from defect rejects: it means the item was not
    positively inspected in time by a valid model (timeout, missing frame, model error,
    full queue, lost PLC link). It is never an accept.
    """

    DEFECT = "defect"
    NOT_INSPECTED = "not_inspected"
    UNDECIDED = "undecided"
    ANOMALY = "anomaly"


# Numeric codes sent to the PLC for station-level reasons. Defects use 100+ per product.
PLC_CODE_OK = 0
PLC_CODE_NOT_INSPECTED = 1
PLC_CODE_UNDECIDED = 2
PLC_CODE_ANOMALY = 3

#: What a decision gives as its reason: ``ok`` (accepted), a defect class, or a station-level
#: reason (``not_inspected``, ``undecided``, ``anomaly``; never the category ``defect``).
Reason: TypeAlias = DefectCode | RejectReason | Literal["ok"]


def as_reason(value: str) -> Reason:
    """The typed reason for a stored or model-given code; ``ValueError`` for anything else."""
    if value == OK:
        return OK
    if value in DefectCode.__members__.values():
        return DefectCode(value)
    if value in RejectReason.__members__.values() and value != RejectReason.DEFECT:
        return RejectReason(value)
    raise ValueError(f"{value!r} is not a decision reason (ok, a defect class, not_inspected, undecided or anomaly)")


@dataclass(frozen=True)
class ImageSpec:
    """What a camera frame of this product looks like to the station."""

    width: int
    height: int
    channels: int  # 1 = mono8, 3 = BGR8

    @property
    def shape(self) -> tuple[int, ...]:
        if self.channels == 1:
            return (self.height, self.width)
        return (self.height, self.width, self.channels)


@dataclass(frozen=True)
class Defect:
    product: Product
    code: DefectCode
    plc_code: int
    criticality: Criticality
    must_reject: bool
    description: str


def _d(product: Product, code: str, plc: int, crit: Criticality, text: str) -> Defect:
    # Minor (cosmetic) defects may be accepted by recipe; everything else must be rejected.
    return Defect(product, DefectCode(code), plc, crit, crit is not Criticality.MINOR, text)


C, M, m = Criticality.CRITICAL, Criticality.MAJOR, Criticality.MINOR
V, T, B = Product.VIAL, Product.TABLET, Product.BLISTER

DEFECTS: tuple[Defect, ...] = (
    _d(V, "missing_cap", 101, C, "Aluminium crimp cap absent; container closure not assured"),
    _d(V, "missing_stopper", 102, C, "Rubber stopper absent under the cap"),
    _d(V, "glass_crack", 103, C, "Crack in the glass wall; sterility breach"),
    _d(V, "particle", 104, C, "Visible particle in the liquid"),
    _d(V, "fill_low", 105, M, "Fill level below the lower limit"),
    _d(V, "fill_high", 106, M, "Fill level above the upper limit"),
    _d(V, "crimp_defect", 107, M, "Cap crimp skirt deformed or not rolled under"),
    _d(V, "cosmetic_scratch", 108, m, "Cosmetic scratch on the glass; acceptable by recipe"),
    _d(T, "broken", 201, M, "Broken or half tablet"),
    _d(T, "chip", 202, M, "Chip missing from the edge"),
    _d(T, "crack", 203, M, "Crack across the tablet face"),
    _d(T, "foreign_spot", 204, C, "Foreign spot or contamination on the surface"),
    _d(T, "discoloration", 205, M, "Discoloured area on the tablet"),
    _d(T, "wrong_tablet", 206, C, "Wrong tablet: size, shape or colour differs from the product"),
    _d(B, "empty_pocket", 301, C, "Pocket without a tablet"),
    _d(B, "broken_tablet", 302, M, "Broken tablet in a pocket"),
    _d(B, "foreign_tablet", 303, C, "Foreign or wrong tablet in a pocket"),
    _d(B, "double_tablet", 304, M, "Two tablets in one pocket"),
    _d(B, "foil_damage", 305, M, "Lidding foil or seal damaged over a pocket"),
)
del C, M, m, V, T, B

_BY_KEY: dict[tuple[Product, str], Defect] = {(d.product, d.code): d for d in DEFECTS}

IMAGE_SPECS: dict[Product, ImageSpec] = {
    Product.VIAL: ImageSpec(width=256, height=384, channels=1),
    Product.TABLET: ImageSpec(width=256, height=256, channels=3),
    Product.BLISTER: ImageSpec(width=640, height=480, channels=3),
}


def defects(product: Product | str) -> tuple[Defect, ...]:
    p = Product(product)
    return tuple(d for d in DEFECTS if d.product is p)


def labels(product: Product | str) -> tuple[str, ...]:
    """All ground-truth labels of a product, ``ok`` first."""
    return (OK, *(d.code.value for d in defects(product)))


def defect(product: Product | str, code: str) -> Defect:
    try:
        return _BY_KEY[(Product(product), code)]
    except KeyError:
        known = ", ".join(labels(product))
        raise KeyError(f"unknown {Product(product).value} label {code!r}; known: {known}") from None


def criticality(product: Product | str, label: str) -> Criticality | None:
    """Criticality of a label, ``None`` for ``ok``."""
    if label == OK:
        return None
    return defect(product, label).criticality


def severity(product: Product | str, label: str) -> int:
    """Rank used to pick the worst of several labels (0 for ``ok``)."""
    crit = criticality(product, label)
    return 0 if crit is None else crit.rank


def worst(product: Product | str, pocket_labels: list[str] | tuple[str, ...]) -> tuple[str, int | None]:
    """The worst label among pockets and its index (first on ties); ``(ok, None)`` if all ok."""
    best_idx: int | None = None
    best_rank = 0
    for i, lab in enumerate(pocket_labels):
        r = severity(product, lab)
        if r > best_rank:
            best_rank, best_idx = r, i
    if best_idx is None:
        return OK, None
    return pocket_labels[best_idx], best_idx
