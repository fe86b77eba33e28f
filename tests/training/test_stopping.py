"""The convergence rule that ends classifier training (no torch: the decision alone)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.stopping import Convergence, ConvergenceRule, balanced_loss, balanced_subset


def run(losses: list[float], rule: ConvergenceRule) -> Convergence:
    c = Convergence(rule)
    for loss in losses:
        c.after_epoch(loss)
        if c.done:
            break
    return c


def test_a_still_improving_run_goes_on_at_the_peak_rate() -> None:
    c = run([1.0, 0.7, 0.5, 0.4, 0.33], ConvergenceRule(max_epochs=10))
    assert not c.done and c.epochs == 5 and c.lr_scale == 1.0 and c.best_epoch == 5


def test_a_plateau_drops_the_rate_then_stops_and_keeps_the_best_epoch() -> None:
    rule = ConvergenceRule(max_epochs=20, patience=1, drops=2, factor=0.25, min_delta=0.02)
    # Improves, stalls (drop to 0.25), improves at the lower rate, stalls twice more (drop, stop).
    c = run([1.0, 0.6, 0.595, 0.5, 0.499, 0.498, 0.497], rule)
    assert c.done and c.stopped.startswith("converged")
    assert [e["event"] for e in c.log] == ["improved", "improved", "rate x0.25", "improved", "rate x0.0625", "no gain"]
    assert c.epochs == 6 and c.best_epoch == 6 and c.best == pytest.approx(0.498)
    assert c.lr_scale == pytest.approx(0.0625)


def test_the_best_epoch_is_kept_when_the_last_ones_got_worse() -> None:
    rule = ConvergenceRule(max_epochs=20, patience=1, drops=1)
    c = Convergence(rule)
    keep = [c.after_epoch(x) for x in (1.0, 0.5, 0.6, 0.7)]
    assert keep == [True, True, False, False] and c.done and c.best_epoch == 2


def test_the_epoch_limit_bounds_a_run_that_never_converges() -> None:
    c = run([1.0 / (i + 1) for i in range(50)], ConvergenceRule(max_epochs=7))
    assert c.done and c.epochs == 7 and c.stopped == "reached the limit of 7 epochs"


def test_a_diverged_run_is_an_error_not_a_result() -> None:
    c = Convergence(ConvergenceRule())
    c.after_epoch(1.0)
    with pytest.raises(ValueError, match="diverged"):
        c.after_epoch(math.nan)


@pytest.mark.parametrize(
    "bad", [{"max_epochs": 0}, {"patience": 0}, {"factor": 1.0}, {"factor": 0.0}, {"min_delta": -0.1}, {"drops": -1}]
)
def test_a_nonsense_rule_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid convergence rule"):
        ConvergenceRule(**bad)  # type: ignore[arg-type]


def test_balanced_loss_weighs_every_class_alike() -> None:
    # 98 good units scored right, two cracks scored wrong: plain mean loss is small, balanced is not.
    y = np.array([0] * 98 + [1, 1])
    scores = np.zeros((100, 2))
    scores[:98, 0] = 0.99
    scores[:98, 1] = 0.01
    scores[98:, 0] = 0.9
    scores[98:, 1] = 0.1
    plain = float(np.mean(-np.log(scores[np.arange(100), y])))
    balanced = balanced_loss(scores, y)
    assert balanced == pytest.approx((-math.log(0.99) - math.log(0.1)) / 2)
    assert balanced > 10 * plain
    idx = np.arange(100)
    sub = balanced_subset(idx, y, per_class=5, seed=0)
    assert (y[sub] == 0).sum() == 5 and (y[sub] == 1).sum() == 2
    assert np.array_equal(sub, balanced_subset(idx, y, per_class=5, seed=0))
