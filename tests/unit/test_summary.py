"""Run summary scoring against ground truth: escapes by class and critical escapes."""

from __future__ import annotations

from inspector.events import GroundTruth, ItemDecision, StageTimes
from inspector.pipeline.summary import RunSummary
from inspector.taxonomy import OK, DefectCode, Product


def _decision(item: int, accept: bool, truth: str) -> ItemDecision:
    return ItemDecision(
        item_id=item,
        frame_id=item,
        accept=accept,
        reason=OK if accept else DefectCode.CRACK,
        times=StageTimes(0.0, 0.0, 0.0, 0.001, 0.001),
        deadline_met=True,
        camera_serial="sim",
        truth=GroundTruth(truth),
    )


def test_escapes_are_counted_by_class_and_criticality() -> None:
    s = RunSummary(Product.TABLET, accept_minor=frozenset())
    s.add(_decision(1, True, "ok"))
    s.add(_decision(2, True, "discoloration"))  # major, accepted: an escape
    s.add(_decision(3, True, "foreign_spot"))  # critical, accepted: a critical escape
    s.add(_decision(4, False, "crack"))
    s.add(_decision(5, False, "ok"))  # a false reject
    d = s.as_dict()
    assert d["escapes"] == 2 and d["critical_escapes"] == 1
    assert d["escapes_by_class"] == {"discoloration": 1, "foreign_spot": 1}
    assert d["false_rejects"] == 1 and d["reconciled"] is True


def test_unscored_runs_report_no_escape_figures() -> None:
    s = RunSummary(Product.TABLET, accept_minor=frozenset())
    d = s.as_dict()
    assert d["escapes"] is None and d["escapes_by_class"] is None and d["critical_escapes"] is None
