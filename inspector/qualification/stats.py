"""Qualification statistics: the Knapp method, detection rates with intervals, pass or fail by the suite.

Knapp (Knapp & Kushner; USP <1790>): each item is presented n times; its probability of
rejection is P = rejections / n. Items with P >= 0.7 are in the reject zone, P <= 0.3 in the
accept zone, between them in the grey zone. Its quality factor is FQ = 10 P (the rejections it
would get in ten inspections). Over the items the manual inspection puts in its reject zone,
the reject-zone number RZN is the sum of their FQ; the station's reject-zone efficiency is its
RZN over the manual RZN on the same items: 1.0 means it rejects those items as surely as people
do, above 1.0 more surely.

Per class the detection rate is the share of presentations of that class's items that were
rejected (with a 95 % Wilson interval); the false reject rate the share of presentations of good
items that were rejected, for any reason (``not_inspected`` included: the line loses the item
either way). A critical escape is an accepted presentation of an item with a critical defect.
Whether the suite passes is decided by its approved criteria alone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from inspector.config.suite import Criteria
from inspector.evaluation import wilson_interval
from inspector.taxonomy import OK, Criticality, Product, criticality, defect

REJECT_ZONE = 0.7
ACCEPT_ZONE = 0.3


@dataclass(frozen=True)
class Presentation:
    """One presentation of one item as the station judged it."""

    item_key: str
    presentation: int
    label: str  # ground truth (a blister card's worst pocket)
    accepted: bool
    reason: str  # the station's reason: ok, a defect class, not_inspected, undecided, anomaly
    file: str
    item_id: int  # the station's item id in its batch
    batch_id: str


@dataclass(frozen=True)
class ItemStat:
    """One item over all its presentations."""

    item_key: str
    label: str
    criticality: str | None
    must_reject: bool
    presentations: int
    rejects: int
    p_manual: float | None
    reasons: dict[str, int]

    @property
    def p_reject(self) -> float:
        return self.rejects / self.presentations

    @property
    def fq(self) -> float:
        """Knapp's quality factor: the rejections in ten inspections."""
        return 10 * self.p_reject

    @property
    def zone(self) -> str:
        return zone(self.p_reject)

    @property
    def misjudged(self) -> bool:
        return self.rejects < self.presentations if self.must_reject else self.rejects > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "p_reject": round(self.p_reject, 4),
            "fq": round(self.fq, 3),
            "zone": self.zone,
        }


def zone(p: float) -> str:
    return "reject" if p >= REJECT_ZONE else "accept" if p <= ACCEPT_ZONE else "grey"


def _rate(k: int, n: int) -> dict[str, Any]:
    return {"k": k, "n": n, "rate": None if n == 0 else k / n, "interval95": wilson_interval(k, n)}


def summarize(
    product: Product,
    presentations: Sequence[Presentation],
    *,
    manual: Mapping[str, float] | None,
    criteria: Criteria,
    accept_minor: Iterable[str] = (),
    expected_presentations: int | None = None,
) -> dict[str, Any]:
    """Every figure of the report, and pass or fail per criterion (JSON-ready)."""
    accepted_by_recipe = frozenset(accept_minor)

    def must_reject(label: str) -> bool:
        return label != OK and (defect(product, label).must_reject or label not in accepted_by_recipe)

    by_item: dict[str, list[Presentation]] = defaultdict(list)
    for pr in presentations:
        by_item[pr.item_key].append(pr)
    items: list[ItemStat] = []
    for key, prs in sorted(by_item.items()):
        labels_seen = {p.label for p in prs}
        if len(labels_seen) != 1:
            raise ValueError(f"item {key}: its presentations carry different labels {sorted(labels_seen)}")
        label = prs[0].label
        crit = criticality(product, label)
        items.append(
            ItemStat(
                item_key=key,
                label=label,
                criticality=crit.value if crit else None,
                must_reject=must_reject(label),
                presentations=len(prs),
                rejects=sum(not p.accepted for p in prs),
                p_manual=None if manual is None else manual.get(key),
                reasons=dict(Counter(p.reason for p in prs)),
            )
        )
    short = [i.item_key for i in items if expected_presentations and i.presentations != expected_presentations]

    classes: dict[str, dict[str, Any]] = {}
    for label in sorted({i.label for i in items if i.label != OK}):
        prs = [p for p in presentations if p.label == label]
        its = [i for i in items if i.label == label]
        classes[label] = {
            "criticality": defect(product, label).criticality.value,
            "must_reject": must_reject(label),
            "items": len(its),
            "items_in_reject_zone": sum(i.zone == "reject" for i in its),
            "detection": _rate(sum(not p.accepted for p in prs), len(prs)),
        }
    good = [p for p in presentations if p.label == OK]
    good_items = [i for i in items if i.label == OK]
    false_reject = _rate(sum(not p.accepted for p in good), len(good))
    critical = [
        p for p in presentations if p.label != OK and defect(product, p.label).criticality is Criticality.CRITICAL
    ]
    critical_escapes = [p for p in critical if p.accepted]
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in presentations:
        confusion[p.label]["accept" if p.accepted else p.reason] += 1

    knapp: dict[str, Any] = {"reject_zone": REJECT_ZONE, "accept_zone": ACCEPT_ZONE}
    if manual is not None:
        known = [(i, i.p_manual) for i in items if i.p_manual is not None]
        zone_items = [i for i, pm in known if pm >= REJECT_ZONE]
        rzn_manual = sum(10 * pm for _i, pm in known if pm >= REJECT_ZONE)
        rzn_station = sum(i.fq for i in zone_items)
        knapp.update(
            {
                "items_with_manual_baseline": len(known),
                "items_without_manual_baseline": [i.item_key for i in items if i.p_manual is None],
                "manual_reject_zone_items": len(zone_items),
                "rzn_manual": round(rzn_manual, 3),
                "rzn_station": round(rzn_station, 3),
                "reject_zone_efficiency": None if rzn_manual == 0 else round(rzn_station / rzn_manual, 4),
                "manual_reject_zone_not_rejected_by_station": [i.item_key for i in zone_items if i.zone != "reject"],
            }
        )
    misjudged = [
        {
            "item_key": i.item_key,
            "label": i.label,
            "criticality": i.criticality,
            "rejects": i.rejects,
            "presentations": i.presentations,
            "reasons": i.reasons,
            "files": sorted(p.file for p in by_item[i.item_key] if (not p.accepted) != i.must_reject),
        }
        for i in items
        if i.misjudged
    ]
    misjudged.sort(key=lambda m: (m["criticality"] != "critical", m["label"] == OK, m["item_key"]))

    checks = []
    for label, c in classes.items():
        if not c["must_reject"]:
            continue
        limit = criteria.detection_rate_min_by_class.get(label, criteria.detection_rate_min)
        value = c["detection"]["rate"]
        checks.append(
            {
                "criterion": f"detection rate {label}",
                "value": value,
                "limit": f">= {limit}",
                "passed": value is not None and value >= limit,
            }
        )
    fr = false_reject["rate"]
    checks.append(
        {
            "criterion": "false reject rate",
            "value": fr,
            "limit": f"<= {criteria.false_reject_rate_max}",
            "passed": fr is not None and fr <= criteria.false_reject_rate_max,
        }
    )
    checks.append(
        {
            "criterion": "critical escapes",
            "value": len(critical_escapes),
            "limit": f"<= {criteria.critical_escapes_max}",
            "passed": len(critical_escapes) <= criteria.critical_escapes_max,
        }
    )
    if criteria.reject_zone_efficiency_min is not None:
        rze = knapp.get("reject_zone_efficiency")
        checks.append(
            {
                "criterion": "reject-zone efficiency vs manual",
                "value": rze,
                "limit": f">= {criteria.reject_zone_efficiency_min}",
                "passed": rze is not None and rze >= criteria.reject_zone_efficiency_min,
            }
        )
    if short:
        checks.append(
            {
                "criterion": "every item presented as often as the suite says",
                "value": len(short),
                "limit": "0 items short",
                "passed": False,
            }
        )
    return {
        "presentations": len(presentations),
        "items": len(items),
        "good_items": len(good_items),
        "classes": classes,
        "false_reject": false_reject,
        "good_items_not_in_accept_zone": [i.item_key for i in good_items if i.zone != "accept"],
        "critical_escapes": len(critical_escapes),
        "critical_escape_items": sorted({p.item_key for p in critical_escapes}),
        "knapp": knapp,
        "zones": dict(Counter(f"{'defect' if i.must_reject else 'good'}:{i.zone}" for i in items)),
        "confusion": {k: dict(v) for k, v in confusion.items()},
        "not_inspected": sum(p.reason == "not_inspected" for p in presentations),
        "misjudged": misjudged,
        "items_short_of_presentations": short,
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
        "per_item": [i.as_dict() for i in items],
    }
