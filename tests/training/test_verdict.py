"""The per-class verdict that ``train`` and ``thresholds`` end with, and that ``export`` refuses on:
a checkpoint that learned the large classes but not the thin ones (as a customer's first retraining
did) is named class by class, with what the model took them for and what to collect."""

from __future__ import annotations

from typing import Any

import pytest

from inspector.taxonomy import Product
from training.verdict import format_verdict, judge

_ROWS = ["ok", "broken", "chip", "crack", "foreign_spot", "wrong_tablet"]
_COLUMNS = ["ok", "broken", "chip", "crack", "foreign_spot", "wrong_tablet", "anomaly"]
# The tablet record's criteria (training.train.ACCEPTANCE_CRITERIA), written out: this test needs no torch.
CRITERIA = {
    "critical_escapes_max": 0,
    "critical_recall_min": 0.999,
    "rejectable_recall_min": 0.99,
    "false_reject_rate_max": 0.005,
    "anomaly_auroc_withheld_min": 0.98,
    "infer_ms_p50_max": 2.0,
}


def _metrics(counts: list[list[int]]) -> dict[str, Any]:
    n = {lab: sum(row) for lab, row in zip(_ROWS, counts, strict=True)}
    recall, reason = {}, {}
    for lab, row in zip(_ROWS, counts, strict=True):
        own = row[_COLUMNS.index(lab)]
        recall[lab] = own / n[lab] if lab == "ok" else 1 - row[0] / n[lab]
        reason[lab] = own / n[lab]
    return {
        "n_per_class": n,
        "per_class_recall": recall,
        "per_class_reason_recall": reason,
        "false_reject_rate": 1 - recall["ok"],
        "critical_escapes": counts[4][0] + counts[5][0],
        "confusion_matrix": {"rows": _ROWS, "columns": _COLUMNS, "counts": counts},
    }


def test_a_checkpoint_that_missed_thin_classes_is_named_class_by_class() -> None:
    metrics = _metrics([
        [996, 0, 1, 0, 0, 0, 3],  # ok: 0.4 % rejected
        [0, 100, 0, 0, 0, 0, 0],  # broken: all, right reason
        [50, 0, 33, 10, 0, 0, 7],  # chip: 50 % accepted as good
        [80, 0, 20, 0, 0, 0, 0],  # crack: 80 % accepted, the rest as chip
        [40, 0, 0, 0, 60, 0, 0],  # foreign_spot (critical): 40 % accepted
        [0, 0, 0, 0, 0, 998, 2],  # wrong_tablet: all rejected, 2 by the anomaly check
    ])  # fmt: skip
    v = judge(Product.TABLET, metrics, CRITERIA)
    assert not v.met and v.missed_classes == ["chip", "crack", "foreign_spot"]
    rows = {r.label: r for r in v.rows}
    assert (
        rows["crack"].recall == pytest.approx(0.2) and rows["crack"].right_reason == 0.0 and rows["crack"].limit == 0.99
    )
    assert rows["crack"].confused_with == [("ok", 80), ("chip", 20)]
    assert rows["foreign_spot"].kind == "critical" and rows["foreign_spot"].limit == 0.999
    assert rows["ok"].met and rows["broken"].met and rows["wrong_tablet"].met
    assert rows["wrong_tablet"].right_reason == 0.998 and rows["wrong_tablet"].confused_with == []
    assert set(v.missed_checks) == {"critical_escapes_max", "critical_recall_min", "rejectable_recall_min"}
    assert v.suggestions[1].startswith("collect more labelled 'crack' images, especially like those taken for 'ok'")
    text = format_verdict(v)
    assert "crack" in text and "MISSED" in text and "taken for 'ok': 80" in text
    assert "NOT met on validation: chip, crack, foreign_spot; export refuses" in text


def test_a_checkpoint_that_meets_every_criterion_says_so() -> None:
    learned = [[0] * len(_COLUMNS) for _ in _ROWS[1:]]
    for row, lab in zip(learned, _ROWS[1:], strict=True):
        row[_COLUMNS.index(lab)] = 500
    v = judge(Product.TABLET, _metrics([[998, 0, 0, 0, 0, 0, 2], *learned]), CRITERIA)
    assert v.met and v.missed_classes == [] and v.suggestions == []
    assert format_verdict(v).endswith("acceptance criteria met on validation")
    worse = _metrics([[990, 0, 0, 0, 0, 0, 10], *learned])  # 1 % of good items rejected
    v = judge(Product.TABLET, worse, CRITERIA)
    assert v.missed_classes == ["ok"] and v.rows[0].confused_with == [("anomaly", 10)]
    assert v.suggestions == ["collect more good items of the conditions rejected as 'anomaly' (10):"
                             " validation has 1000 good items"]  # fmt: skip
