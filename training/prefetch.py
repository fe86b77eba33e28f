"""Classifier batches: prepared in the training process, or in a worker beside it.

Preparing a batch (nuisance augmentation, synthetic changes, the change map's targets) is
many small operations on one core and took about half of each classifier step on the 2-core
training machine, while the network's step gains little from a second thread (forward and
backward 0.26 s with two threads, 0.28 s with one, on a tablet batch of 64). With
``workers=1`` a forked worker prepares batch k+1 while the network trains on batch k.

Both ways are deterministic. In-process preparation draws from the training process's
generators, as every shipped package was trained. The worker has generators of its own, so
its batches (and the trained weights) differ from the in-process ones for the same seed;
the run records which way it was made and the same command reproduces it.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from training.data import NuisanceAugment, SyntheticAnomaly, mask_to_map
from training.nets import float_to_uint8, uint8_to_float


@dataclass(frozen=True)
class Batch:
    """One classifier batch: float NCHW input, labels, ok units given a synthetic change, map targets."""

    x: torch.Tensor
    y: torch.Tensor
    fake: np.ndarray
    seg_target: torch.Tensor


@dataclass(frozen=True)
class BatchRecipe:
    """Everything needed to prepare a batch from unit indices (picklable, copied to a worker by fork)."""

    augment: NuisanceAugment
    synthetic: SyntheticAnomaly
    synthetic_share: float
    seg_size: tuple[int, int]


def prepare(
    units: np.ndarray, y_all: np.ndarray, idx: np.ndarray, recipe: BatchRecipe, rng: np.random.Generator
) -> Batch:
    """Augment the units ``idx``; some ok ones get a synthetic change after augmentation.

    Changed units train only the anomaly side, never the classifier (they are no longer ok,
    and not any known defect either); the change is made after augmentation so that the
    change mask stays aligned.
    """
    y = torch.from_numpy(y_all[idx])
    clean = recipe.augment(uint8_to_float(torch.from_numpy(units[idx])))
    ok_pos = np.flatnonzero(y.numpy() == 0)
    fake = ok_pos[rng.random(len(ok_pos)) < recipe.synthetic_share]
    h, w = units.shape[1:3]
    change = np.zeros((len(idx), h, w), np.float32)
    x = clean
    if len(fake):
        corrupted_u8 = float_to_uint8(clean[torch.from_numpy(fake)]).numpy()
        corrupted_u8, change[fake] = recipe.synthetic(corrupted_u8, rng)
        x = clean.clone()
        x[torch.from_numpy(fake)] = uint8_to_float(torch.from_numpy(corrupted_u8))
    return Batch(x, y, fake, torch.from_numpy(mask_to_map(change, recipe.seg_size)))


class _WorkerBatches(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Batch k of the whole run, prepared in the worker; the pixels travel as uint8 (4x less)."""

    def __init__(
        self, units: np.ndarray, y_all: np.ndarray, jobs: Sequence[np.ndarray], recipe: BatchRecipe, seed: int
    ) -> None:
        self.units, self.y_all, self.jobs, self.recipe, self.seed = units, y_all, jobs, recipe, seed
        self.rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.rng is None:  # made in the worker: one generator, batches asked for in order
            self.rng = np.random.Generator(np.random.PCG64(self.seed))
        b = prepare(self.units, self.y_all, self.jobs[k], self.recipe, self.rng)
        # Exact: the augmentation re-quantises to 8 bits, and changed units are uint8 already.
        return float_to_uint8(b.x), b.y, torch.from_numpy(b.fake), b.seg_target


def _one_thread(_worker_id: int) -> None:
    """The worker keeps to one core (torch already does in a worker; OpenCV's pool would not)."""
    cv2.setNumThreads(1)


def batches(
    units: np.ndarray,
    y_all: np.ndarray,
    jobs: Sequence[np.ndarray],
    recipe: BatchRecipe,
    seed: int,
    *,
    workers: int,
) -> Generator[Batch, None, None]:
    """The run's batches in order; ``workers`` 0 (in this process) or 1 (a forked worker)."""
    if workers not in (0, 1):
        raise ValueError(f"prep workers must be 0 or 1, got {workers}")
    if workers == 0:
        rng = np.random.Generator(np.random.PCG64(seed))
        for idx in jobs:
            yield prepare(units, y_all, idx, recipe, rng)
        return
    loader = torch.utils.data.DataLoader(
        _WorkerBatches(units, y_all, jobs, recipe, seed),
        batch_size=None,
        shuffle=False,
        num_workers=1,
        prefetch_factor=2,
        # Fork: the worker shares the decoded units (gigabytes) instead of loading them again.
        multiprocessing_context="fork",
        # Seeds the worker's torch generator (the augmentation's draws), independent of the trainer's.
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=_one_thread,
    )
    for x_u8, y, fake, seg_target in loader:
        yield Batch(uint8_to_float(x_u8), y, fake.numpy(), seg_target)
