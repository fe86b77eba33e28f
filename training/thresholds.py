"""Operating thresholds from VALIDATION outputs only (never test), checked against decide().

- Anomaly threshold: the (1 - ``anomaly_frr``) quantile of the ok items' anomaly score, so
  the anomaly check alone rejects about that share of good items and catches as much of
  the unknown as the false-reject budget allows.
- Confidence threshold: the highest value on a grid that keeps the total false reject rate
  within ``frr_target`` (low-confidence items are rejected as 'undecided', so higher is
  safer) with zero critical escapes. If none does: the lowest false reject rate among the
  values with zero critical escapes (or with the fewest), flagged as not meeting the target.
The search is vectorised; the chosen pair is then re-scored with the station's own
:func:`~inspector.pipeline.decision.decide`, and the two must agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from inspector.evaluation import ItemOutcome, summarize
from inspector.taxonomy import OK, Criticality, Product, criticality, defect

ANOMALY_FRR = 0.002  # default share of good validation items the anomaly check alone may reject
ANOMALY_FRR_MAX = 0.05


def check_anomaly_frr(value: float) -> float:
    """The anomaly check's false-reject share, refused outside (0, ANOMALY_FRR_MAX]."""
    if not 0.0 < float(value) <= ANOMALY_FRR_MAX:
        raise ValueError(f"anomaly false reject share must be above 0 and at most {ANOMALY_FRR_MAX}, got {value}")
    return float(value)


CONFIDENCE_GRID = (0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)


def _item_accept(outcomes: Sequence[ItemOutcome], conf: float, anom: float) -> np.ndarray:
    """Vectorised equivalent of decide() with no minor accepted: every unit ok, confident and normal."""
    out = np.empty(len(outcomes), bool)
    for i, o in enumerate(outcomes):
        top = o.scores.argmax(axis=1)
        p = o.scores.max(axis=1)
        out[i] = bool(np.all((top == 0) & (p >= conf) & (o.anomaly <= anom)))
    return out


def select_thresholds(
    product: Product,
    classes: Sequence[str],
    val: Sequence[ItemOutcome],
    *,
    frr_target: float = 0.004,
    anomaly_frr: float = ANOMALY_FRR,
) -> dict[str, Any]:
    """Choose (confidence, anomaly) on validation outcomes; returns them with the evidence."""
    check_anomaly_frr(anomaly_frr)
    if classes[0] != OK:
        raise ValueError("classes must start with ok")
    is_ok = np.array([o.label == OK for o in val])
    if is_ok.sum() < 50:
        raise ValueError(f"validation holds only {int(is_ok.sum())} ok items; too few to set thresholds")
    is_crit = np.array([o.label != OK and criticality(product, o.label) is Criticality.CRITICAL for o in val])
    must = np.array([o.label != OK and defect(product, o.label).must_reject for o in val])
    ok_anomaly = np.array([float(o.anomaly.max()) for o, k in zip(val, is_ok, strict=True) if k])
    anomaly_threshold = float(np.quantile(ok_anomaly, 1.0 - anomaly_frr, method="higher"))
    table = []
    for conf in CONFIDENCE_GRID:
        acc = _item_accept(val, conf, anomaly_threshold)
        table.append(
            {
                "confidence": conf,
                "frr": float((~acc[is_ok]).mean()),
                "critical_escapes": int((acc & is_crit).sum()),
                "must_reject_escapes": int((acc & must).sum()),
            }
        )
    feasible = [r for r in table if r["frr"] <= frr_target and r["critical_escapes"] == 0]
    if feasible:
        chosen = max(feasible, key=lambda r: r["confidence"])
        met = True
    else:
        # No value meets the false-reject target: keep zero critical escapes if any value has
        # them and take the lowest false reject rate among those (a higher confidence there
        # buys few escapes at the price of many good items); else the fewest critical escapes.
        zero_critical = [r for r in table if r["critical_escapes"] == 0]
        pool = zero_critical or table
        chosen = min(pool, key=lambda r: (r["critical_escapes"], r["frr"], -r["confidence"]))
        met = False
    conf = float(chosen["confidence"])
    check = summarize(product, classes, val, confidence_threshold=conf, anomaly_threshold=anomaly_threshold)
    n_ok = int(is_ok.sum())
    if check["false_reject_rate"] is not None and round(check["false_reject_rate"] * n_ok) != round(
        chosen["frr"] * n_ok
    ):
        raise AssertionError("threshold search and decide() disagree on the false reject rate")
    if check["critical_escapes"] != chosen["critical_escapes"]:
        raise AssertionError("threshold search and decide() disagree on critical escapes")
    return {
        "confidence": conf,
        "anomaly": anomaly_threshold,
        "criteria_met_on_val": met,
        "rule": {
            "frr_target": frr_target,
            "anomaly_frr": anomaly_frr,
            "anomaly": "quantile 1 - anomaly_frr of ok validation items' max unit anomaly",
            "confidence": "highest grid value with val FRR <= frr_target and 0 critical escapes; else the lowest"
            " FRR among values with the fewest critical escapes",
        },
        "val_items": len(val),
        "val_ok_items": n_ok,
        "table": table,
    }
