"""Reject-rate trending: rolling and batch rates per class against alert and action limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inspector.config.trending import ClassLimits, TrendLimits
from inspector.pipeline.trending import ACTION, ALERT, NORMAL, RejectTrend


def _trend(window: int = 20) -> RejectTrend:
    return RejectTrend(TrendLimits(window=window, limits={"chip": ClassLimits(alert=0.1, action=0.25)}))


def test_levels_change_only_once_the_window_is_full_and_come_back_down() -> None:
    t = _trend()
    changes = [c for _ in range(19) for c in t.add("chip")]
    assert changes == [], "no judgement before the window is full"
    (full,) = t.add("ok")  # 19 chips in 20: action
    assert (full.level, full.previous, full.count, full.window) == (ACTION, NORMAL, 19, 20)
    assert full.limit == 0.25 and "above the action limit 25.00 %" in full.describe()
    levels = []
    for _ in range(20):
        levels += [(c.level, c.count) for c in t.add("ok")]
    # 19 -> 0 chips in the window: alert at 5 (25 % is not above 25 %), normal at 2 (10 % is not above 10 %).
    assert levels == [(ALERT, 5), (NORMAL, 2)]
    d = t.as_dict()["classes"]["chip"]
    assert d["batch_count"] == 19 and d["batch_rate"] == round(19 / 40, 6) and d["batch_level"] == ACTION
    assert d["max_rolling_rate"] == 0.95 and d["rolling_alarms"] == 2


def test_a_batch_shorter_than_the_window_is_judged_on_its_own_rate() -> None:
    t = _trend(window=100)
    for reason in ["chip", "ok", "ok", "ok", "ok", "ok", "ok", "ok"]:
        assert t.add(reason) == []
    d = t.as_dict()
    assert d["items"] == 8 and d["classes"]["chip"]["batch_level"] == ALERT  # 12.5 % > 10 %
    assert d["classes"]["chip"]["max_rolling_rate"] is None


def test_limits_must_be_ordered_and_name_known_classes(tmp_path: object) -> None:
    with pytest.raises(ValidationError, match="below the action limit"):
        ClassLimits(alert=0.2, action=0.2)
    with pytest.raises(ValidationError, match="greater than 0"):
        ClassLimits(alert=0, action=0.2)
    with pytest.raises(ValidationError, match="at least 1"):
        TrendLimits(window=100, limits={})
