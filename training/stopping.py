"""Train until validation converges, not for a fixed number of epochs.

A fixed epoch count fits the data it was tuned on: on another line's images the documented four
epochs left a tablet classifier at 0.78 train accuracy and still rising. The rule here watches
the classifier's *balanced* validation loss (each class's mean cross-entropy, averaged over the
classes, so a rare thin defect counts as much as the good items) after every epoch:

- the learning rate stays at its peak while the loss improves by at least ``min_delta``
  (relative) within ``patience`` epochs;
- when it stops improving, the rate drops by ``factor``; after ``drops`` drops without a
  further improvement training stops, and the weights of the best epoch are kept;
- ``max_epochs`` bounds the run whatever happens.

Deterministic: the decision depends only on the validation scores, never on the clock, so the
same data and seed give the same weights on any machine (a time budget would not).
This module holds only the decision; :mod:`training.train` applies it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ConvergenceRule:
    max_epochs: int = 16
    patience: int = 1  # epochs without improvement before the rate drops (or training stops)
    drops: int = 2  # rate drops before training may stop
    factor: float = 0.25  # the rate is multiplied by this at each drop
    min_delta: float = 0.02  # relative improvement of the balanced validation loss that counts
    warmup_steps: int = 100  # linear warm-up to the peak rate

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.patience < 1 or self.drops < 0 or self.warmup_steps < 0:
            raise ValueError(f"invalid convergence rule {self}")
        if not 0.0 < self.factor < 1.0 or not 0.0 <= self.min_delta < 1.0:
            raise ValueError(f"invalid convergence rule {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def words(self) -> str:
        return (
            f"until the balanced validation loss stops improving by {self.min_delta:.0%} for {self.patience} "
            f"epoch(s), the rate then x{self.factor:g}, stopping after {self.drops} drops; at most "
            f"{self.max_epochs} epochs; the best epoch's weights kept"
        )


@dataclass
class Convergence:
    """The rule's state over one run: call :meth:`after_epoch` with each epoch's validation loss."""

    rule: ConvergenceRule
    lr_scale: float = 1.0
    best: float = math.inf
    best_epoch: int = 0
    epochs: int = 0
    drops_done: int = 0
    since_best: int = 0
    stopped: str = ""
    log: list[dict[str, Any]] = field(default_factory=list)

    def after_epoch(self, loss: float) -> bool:
        """Record one epoch; True when the current weights are the best so far (keep a copy)."""
        if not math.isfinite(loss):
            raise ValueError(f"validation loss is {loss}: training diverged")
        self.epochs += 1
        improved = loss < self.best * (1.0 - self.rule.min_delta)
        if loss < self.best:
            self.best, self.best_epoch = loss, self.epochs
        if improved:
            self.since_best = 0
        else:
            self.since_best += 1
        event = "improved" if improved else "no gain"
        if self.since_best >= self.rule.patience:
            if self.drops_done >= self.rule.drops:
                self.stopped = f"converged: no gain of {self.rule.min_delta:.0%} after {self.rule.drops} rate drops"
            else:
                self.drops_done += 1
                self.lr_scale *= self.rule.factor
                self.since_best = 0
                event = f"rate x{self.lr_scale:g}"
        if not self.stopped and self.epochs >= self.rule.max_epochs:
            self.stopped = f"reached the limit of {self.rule.max_epochs} epochs"
        self.log.append({"epoch": self.epochs, "val_loss": round(loss, 5), "event": event, "lr_scale": self.lr_scale})
        return loss <= self.best

    @property
    def done(self) -> bool:
        return bool(self.stopped)

    def summary(self) -> dict[str, Any]:
        return {
            "rule": self.rule.to_dict(),
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_val_loss": round(self.best, 5),
            "stopped": self.stopped,
            "log": self.log,
        }


VAL_WATCH_PER_CLASS = 300  # validation units per class the convergence rule scores each epoch


def balanced_subset(idx: np.ndarray, y: np.ndarray, *, per_class: int, seed: int) -> np.ndarray:
    """Up to ``per_class`` of ``idx`` from each class (a fixed draw per seed), in index order."""
    rng = np.random.default_rng([seed, 0x5A1])
    picked = []
    for c in np.unique(y[idx]):
        members = idx[y[idx] == c]
        picked.append(members if len(members) <= per_class else rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(picked)) if picked else idx[:0]


def balanced_loss(scores: np.ndarray, y: np.ndarray) -> float:
    """Mean over the classes present of each class's mean cross-entropy (``scores``: softmax rows)."""
    p = np.clip(scores[np.arange(len(y)), y], 1e-7, 1.0)
    ce = -np.log(p)
    return float(np.mean([ce[y == c].mean() for c in np.unique(y)]))
