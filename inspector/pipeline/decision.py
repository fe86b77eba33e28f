"""Turn model outputs into an accept/reject decision (fail-safe by construction).

Per unit (the item, or each blister pocket):
- top-class confidence below the threshold -> ``undecided`` (reject);
- a defect class -> reject with that reason code, unless it is a minor defect the recipe accepts;
- ``ok`` but anomaly score above its threshold -> ``anomaly`` (reject);
- otherwise ``ok``.
The deterministic identity check (the recipe's ``identity``) comes on top: a unit whose tablet
failed it takes the check's critical reason (``wrong_tablet``, ``foreign_tablet``,
``empty_pocket``) unless the model already named a critical defect there. It only adds rejects:
no model output turns a failed identity check into an accept.
A card takes its worst pocket, reporting which pocket. The single place that can set
``accept=True`` is :func:`decide`, and only for an all-``ok`` outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inspector.taxonomy import (
    OK,
    PLC_CODE_ANOMALY,
    PLC_CODE_NOT_INSPECTED,
    PLC_CODE_OK,
    PLC_CODE_UNDECIDED,
    Criticality,
    DefectCode,
    Product,
    Reason,
    RejectReason,
    defect,
)


@dataclass(frozen=True)
class Verdict:
    """The model's judgement of one item (before deadline checks)."""

    accept: bool
    reason: Reason  # ok, a defect class, undecided or anomaly
    label: str  # top class of the deciding unit
    confidence: float
    anomaly: float
    pocket_index: int | None
    unit_reasons: tuple[Reason, ...]
    scores: tuple[float, ...]  # class probabilities of the deciding unit


def _rank(product: Product, reason: Reason, accepted_minor: bool) -> int:
    if reason == OK or accepted_minor:
        return 0
    if reason in (RejectReason.UNDECIDED, RejectReason.ANOMALY):
        return 3  # unknown badness ranks between major and critical
    crit = defect(product, reason).criticality
    return {Criticality.MINOR: 1, Criticality.MAJOR: 2, Criticality.CRITICAL: 4}[crit]


def decide(
    product: Product,
    classes: list[str],
    scores: np.ndarray,
    anomaly: np.ndarray,
    *,
    confidence_threshold: float,
    anomaly_threshold: float,
    accept_minor: frozenset[str] = frozenset(),
    identity: Sequence[Reason | None] | None = None,
) -> Verdict:
    """Decide from ``scores [U, K]`` and ``anomaly [U]`` for U units of one item; ``identity``: per unit,
    the critical reason its failed identity check rejects with, or ``None`` where it passed."""
    if scores.ndim != 2 or scores.shape[1] != len(classes) or anomaly.shape != (scores.shape[0],):
        raise ValueError(f"scores {scores.shape} / anomaly {anomaly.shape} do not fit {len(classes)} classes")
    if identity is not None and len(identity) != scores.shape[0]:
        raise ValueError(f"identity has {len(identity)} units, the model judged {scores.shape[0]}")
    top = scores.argmax(axis=1)
    reasons: list[Reason] = []
    ranks: list[int] = []
    for u in range(scores.shape[0]):
        k = int(top[u])
        p = float(scores[u, k])
        label = classes[k]
        reason: Reason
        if p < confidence_threshold:
            reason = RejectReason.UNDECIDED
        elif label != OK:
            reason = DefectCode(label)
        elif float(anomaly[u]) > anomaly_threshold:
            reason = RejectReason.ANOMALY
        else:
            reason = OK
        rank = _rank(product, reason, reason in accept_minor)
        failed = identity[u] if identity is not None else None
        if failed is not None and rank < _rank(product, failed, False):
            reason, rank = failed, _rank(product, failed, False)  # critical: only a critical model reason stays
        reasons.append(reason)
        ranks.append(rank)
    worst = int(np.argmax(ranks))
    reason = reasons[worst]
    accept = ranks[worst] == 0
    k = int(top[worst])
    return Verdict(
        accept=accept,
        reason=OK if accept else reason,
        label=classes[k],
        confidence=float(scores[worst, k]),
        anomaly=float(anomaly[worst]),
        pocket_index=worst if product is Product.BLISTER and not accept else None,
        unit_reasons=tuple(reasons),
        scores=tuple(float(x) for x in scores[worst]),
    )


def plc_code(product: Product, reason: str) -> int:
    """Numeric reason code for the PLC."""
    if reason == OK:
        return PLC_CODE_OK
    if reason == RejectReason.NOT_INSPECTED:
        return PLC_CODE_NOT_INSPECTED
    if reason == RejectReason.UNDECIDED:
        return PLC_CODE_UNDECIDED
    if reason == RejectReason.ANOMALY:
        return PLC_CODE_ANOMALY
    return defect(product, reason).plc_code
