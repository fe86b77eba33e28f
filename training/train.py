"""Train one product's model: classifier, anomaly head (ok only), thresholds from validation.

Deterministic: fixed seeds, training until validation converges or for a fixed number of
epochs (never a time budget, which would make the result depend on the machine's speed; see
:mod:`training.stopping`), two CPU threads and torch's deterministic algorithms. The checkpoint
carries everything the exporter needs to write the record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import pickle
import platform
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

import inspector
from inspector.config.registration import RegistrationSpec
from inspector.evaluation import ItemOutcome, summarize
from inspector.inference.units import unit_shape
from inspector.taxonomy import OK, Product
from training.data import (
    ItemSet,
    NuisanceAugment,
    SyntheticAnomaly,
    check_disjoint,
    load_sets,
    model_classes,
    recipe_registration,
)
from training.nets import InspectorNet, NetConfig, float_to_uint8, uint8_to_float
from training.prefetch import BatchRecipe, batches
from training.results import RESULTS_PNG, ResultsLog, write_curves
from training.stopping import VAL_WATCH_PER_CLASS, Convergence, ConvergenceRule, balanced_loss, balanced_subset
from training.thresholds import ANOMALY_FRR, check_anomaly_frr, select_thresholds
from training.verdict import format_verdict, judge

#: ``progress(phase, step, steps, loss)``: after every optimiser step of a phase.
Progress = Callable[[str, int, int, float], None]

THREADS = 2
SYNTHETIC_SHARE = 0.5  # of ok units per batch that get a synthetic change for the anomaly map
SEG_POS_WEIGHT = 5.0  # changed cells are rare; weigh them up in the map's loss
AD_NORM_QUANTILE = 0.999  # each anomaly part over this ok-train quantile: equal tails before the max
CHECKPOINT = "checkpoint.pt"


DEFAULT_CONVERGENCE = ConvergenceRule()


@dataclass(frozen=True)
class ProductPlan:
    """Per-product defaults: what to withhold, the network and the training length."""

    withheld: tuple[str, ...]
    width_mult: float
    unshuffle: int
    tap: int
    ae_down: int
    epochs: int
    batch_size: int
    lr: float
    max_shift_px: float
    max_rot_deg: float
    ae_steps: int = 1500  # autoencoder-only steps after the classifier
    ok_share: float = 1.0  # share of the ok training units used per epoch
    # How the reconstruction part is scored (see training.nets): chosen per product on the
    # development sets (vial: contrast; tablet: contrast over the channel max, for colour
    # defects; blister: contrast, with the three-stage autoencoder below).
    ae_contrast: bool = True
    ae_channel_max: bool = False
    # Error map windows: 1 = overlapping (every position), 0 = tiled (see NetConfig.ae_pool_stride).
    # On the development sets: vial overlapping (crimp_defect 94 -> 100 % at the same false
    # reject rate), blister overlapping (foil_damage 99.1 -> 100 %, false rejects at nuisance 2.0
    # 2.1 -> 1.3 %), tablet tiled (overlapping raised false rejects there, nothing gained).
    ae_pool_stride: int = 1
    # Autoencoder stride-2 stages (see training.nets.AutoEncoder): 4 down to 1/16, 3 to 1/8.
    ae_stages: int = 4
    # Ok-train quantile each anomaly part is divided by (equal tails before the max). The global
    # part's tail grows fastest with nuisance: on blister ok training units its 0.9999 quantile is
    # 1.96 times its 0.999 quantile, against 1.06 for the reconstruction and segmentation parts,
    # so at 0.999 it alone sets the false rejects of noisy frames. Equal tails further out
    # (0.9999) weigh it by its own far tail.
    ad_norm_quantile: float = AD_NORM_QUANTILE
    # Contrast score: floor the unit's mean error at this ok-train quantile of it (None: no floor).
    # Blister: the ok validation cards that set the anomaly threshold were the most blurred ones,
    # whose mean error is a quarter below the median; the median floor stops that inflation.
    ae_contrast_floor_quantile: float | None = None
    # Share of good validation items the anomaly check alone may reject (sets its threshold).
    anomaly_frr: float = ANOMALY_FRR
    # Share of the classifier's last steps whose weights are averaged into the final network
    # (0: the last step's weights). See WeightAverage.
    average_last: float = 0.0
    # Defect classes whose training units appear this many times per classifier epoch (rare or
    # small defects the network would otherwise learn last).
    repeat: tuple[tuple[str, int], ...] = ()
    # Without --epochs: train until validation converges (training.stopping). With --epochs N the
    # classifier runs N epochs of one one-cycle schedule, as every shipped package was trained.
    convergence: ConvergenceRule = DEFAULT_CONVERGENCE


PLANS: dict[Product, ProductPlan] = {
    # crimp_defect changes the cap silhouette, a shape no ok item shows: the reconstruction
    # part of the anomaly side catches it although nothing was ever labelled crimp_defect.
    # 3000 autoencoder steps (loss 0.0027 after 2000, 0.0019 after 3000): crimp_defect at nuisance
    # 2.5 rejected 83 -> 95 % on the development sets, for a few more good vials rejected there.
    Product.VIAL: ProductPlan(("crimp_defect",), 0.5, 2, 3, 4, 7, 64, 3e-3, 4.0, 1.5, ae_steps=3000),
    Product.TABLET: ProductPlan(
        ("discoloration",), 0.5, 2, 3, 4, 7, 64, 3e-3, 4.0, 10.0, ae_steps=2000, ae_channel_max=True, ae_pool_stride=0
    ),
    # Blister, chosen on the development sets (foil_damage missed mostly as creases lying against
    # the tablet's edge, where the 1/16 latent map restores the ok outline only blurred): three
    # autoencoder stages, contrast floored at the median, part scales at the 0.9999 quantile and
    # 12000 autoencoder steps (final loss 0.0021 after 2000 steps, 0.0013 after 6000, 0.0011
    # after 12000; 12000 halved the good cards rejected at nuisance 2.0 and 2.5, 713 s in all).
    Product.BLISTER: ProductPlan(
        ("foil_damage",),
        *(0.5, 2, 3, 2, 14, 64, 3e-3, 3.0, 2.0),
        ae_steps=12000,
        ok_share=0.3,
        ae_stages=3,
        ad_norm_quantile=0.9999,
        ae_contrast_floor_quantile=0.5,
    ),
}

# Fixed before any test run (draft Annex 22): the exporter copies them into the record.
ACCEPTANCE_CRITERIA: dict[Product, dict[str, Any]] = {
    p: {
        "critical_escapes_max": 0,
        "critical_recall_min": 0.999,
        "rejectable_recall_min": 0.99,
        "false_reject_rate_max": 0.005,
        "anomaly_auroc_withheld_min": 0.98,
        "infer_ms_p50_max": 10.0 if p is Product.BLISTER else 2.0,
        "test_set": "freshly rendered, seeds disjoint from training, nominal nuisance; inspector evaluate",
    }
    for p in Product
}


def cpu_model() -> str:
    """The processor's model name (Linux /proc/cpuinfo; else what the platform reports)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or "unknown"


def cpu_provenance() -> dict[str, str]:
    """What a bit-for-bit retrain needs besides code, data and seed: the CPU and the kernels torch used.

    torch picks its float kernels by the CPU's instruction set (``cpu_capability``), so the same
    command, data and seed may give other weights on another kind of CPU: blister 1.7.0's command,
    rerun on an AVX2 machine, ended its first epoch at a loss of 0.978 instead of the recorded 0.970.
    """
    return {"cpu": cpu_model(), "cpu_capability": str(torch.backends.cpu.get_cpu_capability())}


def code_version() -> str:
    """Content hash of the training code and the runtime pieces it depends on (no VCS needed)."""
    root = Path(__file__).resolve().parents[1]
    files = [
        *sorted((root / "training").glob("*.py")),
        root / "inspector" / "evaluation.py",
        root / "inspector" / "pipeline" / "decision.py",
        root / "inspector" / "inference" / "units.py",
    ]
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return f"inspector-{inspector.__version__}+train.{h.hexdigest()[:12]}"


def set_determinism(seed: int) -> None:
    torch.set_num_threads(THREADS)
    # Denormal floats (tiny late-training gradients) slow x86 CPUs several-fold; flushing them is deterministic.
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.use_deterministic_algorithms(True)


@torch.no_grad()
def predict(net: InspectorNet, units: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``[U, K]`` and anomaly ``[U]`` in eval mode, as the exported graph computes them."""
    net.eval()
    scores, anomaly = [], []
    for i in range(0, len(units), batch_size):
        x = uint8_to_float(torch.from_numpy(units[i : i + batch_size]))
        s, a, _ = net.outputs_float(x)
        scores.append(s.numpy())
        anomaly.append(a.numpy())
    k = net.cfg.n_classes
    return (
        np.concatenate(scores) if scores else np.zeros((0, k), np.float32),
        np.concatenate(anomaly) if anomaly else np.zeros(0, np.float32),
    )


@torch.no_grad()
def fit_anomaly(
    net: InspectorNet,
    ok_units: np.ndarray,
    batch_size: int = 256,
    shrink: float = 0.01,
    norm_quantile: float = AD_NORM_QUANTILE,
    contrast_floor_quantile: float | None = None,
) -> dict[str, Any]:
    """Fit the pooled-feature Gaussian and every part's scale on ok units only (no augmentation).

    Each part is divided by its ``norm_quantile`` over the ok units, so that all parts have
    equal tails there before the max. With ``contrast_floor_quantile`` (contrast score only)
    the floor of the unit's mean error is first set to that quantile of the ok units' mean
    error; without it the network keeps the floor it has.
    """
    net.eval()
    if contrast_floor_quantile is not None and net.cfg.ae_contrast:
        means = torch.cat(
            [
                net.ae_error_map(uint8_to_float(torch.from_numpy(ok_units[i : i + batch_size]))).mean(dim=(1, 2))
                for i in range(0, len(ok_units), batch_size)
            ]
        ).double()
        net.cfg = replace(net.cfg, ae_contrast_floor=float(torch.quantile(means, contrast_floor_quantile).item()))
    pooled, rec_max, seg_max = [], [], []
    for i in range(0, len(ok_units), batch_size):
        x = uint8_to_float(torch.from_numpy(ok_units[i : i + batch_size]))
        _, tap, p = net.trunk(x)
        pooled.append(p.double())
        rec_max.append(torch.amax(net.rec_score_map(net.ae_error_map(x)), dim=(1, 2)).double())
        seg_max.append(torch.amax(torch.sigmoid(net.seg_logits(tap)), dim=(1, 2)).double())
    pool = torch.cat(pooled)  # [N, D]
    g_mean = pool.mean(dim=0)
    gr = pool - g_mean
    net.ad_global_mean.copy_(g_mean.float())
    net.ad_global_whiten.copy_(_whitening(gr.T @ gr / gr.shape[0], shrink).float())
    glob = net.global_score(pool.float()).double()
    norms = [torch.quantile(v, norm_quantile).item() for v in (torch.cat(rec_max), torch.cat(seg_max), glob)]
    net.ad_norm.copy_(torch.tensor(norms, dtype=torch.float32).clamp_min(1e-6))
    return {
        "ok_units": len(ok_units),
        "parts": [reconstruction_part_name(net.cfg), "segmentation", "global"],
        "norm_quantile": norm_quantile,
        "contrast_floor": net.cfg.ae_contrast_floor if net.cfg.ae_contrast else None,
        "norms": norms,
        "map_size": list(net.map_size),
        "shrinkage": shrink,
    }


def train_autoencoder(
    net: InspectorNet,
    ok_units: np.ndarray,
    plan: ProductPlan,
    seed: int,
    log: Callable[[str], None],
    progress: Progress | None = None,
    results: ResultsLog | None = None,
) -> dict[str, Any]:
    """Second phase: the denoising autoencoder alone, on ok units at its own (downsampled) resolution.

    Input: an augmented ok unit, half of them with a synthetic change; target: the clean
    augmented unit. Working at the small size makes each step cheap, so the autoencoder
    gets many more steps than it could inside the classifier's loop.
    """
    d = net.cfg.ae_down
    augment = NuisanceAugment(max_shift_px=plan.max_shift_px / d, max_rot_deg=plan.max_rot_deg, p_blur=0.0)
    synthetic = SyntheticAnomaly(min_change=12)
    rng = np.random.Generator(np.random.PCG64([seed, 0xAE]))
    gen = torch.Generator().manual_seed(seed + 1)
    ae = net.autoencoder
    ae.train()
    opt = torch.optim.AdamW(ae.parameters(), lr=plan.lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=plan.lr, total_steps=plan.ae_steps, pct_start=0.1)
    t0 = time.perf_counter()
    # Downsample once (kept as uint8: a 1/255 step is far below what the error map resolves).
    with torch.no_grad():
        small = torch.cat(
            [
                float_to_uint8(net.ae_input(uint8_to_float(torch.from_numpy(ok_units[i : i + 512]))))
                for i in range(0, len(ok_units), 512)
            ]
        )
    loss_sum, loss_n = 0.0, 0
    for step in range(plan.ae_steps):
        idx = torch.randint(0, len(small), (plan.batch_size,), generator=gen)
        with torch.no_grad():
            clean = augment(uint8_to_float(small[idx]))
            fake = np.flatnonzero(rng.random(len(idx)) < SYNTHETIC_SHARE)
            x = clean
            if len(fake):
                corrupted, _ = synthetic(float_to_uint8(clean[torch.from_numpy(fake)]).numpy(), rng)
                x = clean.clone()
                x[torch.from_numpy(fake)] = uint8_to_float(torch.from_numpy(corrupted))
        loss = F.mse_loss(ae(x), clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += float(loss.detach())
        loss_n += 1
        if progress is not None:
            progress("autoencoder", step + 1, plan.ae_steps, loss_sum / loss_n)
        if (step + 1) % 500 == 0 or step + 1 == plan.ae_steps:
            seconds = round(time.perf_counter() - t0, 1)
            mean = round(loss_sum / loss_n, 6)
            log(json.dumps({"ae_step": step + 1, "loss": mean, "seconds": seconds}))
            if results is not None:
                results.add("autoencoder", step=step + 1, loss=mean, seconds=seconds)
            loss_sum, loss_n = 0.0, 0
    ae.eval()
    return {"steps": plan.ae_steps, "batch_size": plan.batch_size, "seconds": round(time.perf_counter() - t0, 1)}


class WeightAverage:
    """Running mean of a network's floating-point state over training steps (weight averaging).

    The last steps of a one-cycle schedule wander between nearby solutions, and which one the
    last step lands on depends on the seed; their mean lies nearer the middle of that region.
    BatchNorm running statistics are averaged with the weights. Integer buffers (the batch
    counters) keep their last value. Exact and deterministic: a plain running mean.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.mean: list[torch.Tensor] = []
        self.count = 0

    @torch.no_grad()
    def add(self, net: torch.nn.Module) -> None:
        state = net.state_dict()
        if self.count == 0:
            self.names = [k for k, v in state.items() if v.is_floating_point()]
            self.mean = [state[k].detach().clone() for k in self.names]
        else:
            w = 1.0 / (self.count + 1)
            for m, k in zip(self.mean, self.names, strict=True):
                m.lerp_(state[k], w)
        self.count += 1

    @torch.no_grad()
    def load_into(self, net: torch.nn.Module) -> None:
        if self.count == 0:
            raise ValueError("no weights were averaged")
        state = net.state_dict()
        for m, k in zip(self.mean, self.names, strict=True):
            state[k].copy_(m)


def repeat_units(
    units: np.ndarray, y: np.ndarray, class_index: Mapping[str, int], repeat: Sequence[tuple[str, int]]
) -> np.ndarray:
    """``units`` with those of each named class appearing ``n`` times in all (a clear error otherwise)."""
    extra = [units]
    for name, n in repeat:
        if name not in class_index or name == OK:
            raise ValueError(f"cannot repeat {name!r}: not a defect class the classifier is trained on")
        if not 1 <= int(n) <= 20:
            raise ValueError(f"repeat for {name!r} must be 1..20, got {n}")
        extra += [units[y[units] == class_index[name]]] * (int(n) - 1)
    return np.concatenate(extra)


def _check_share(value: float) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"share of steps to average must be in 0..1 (1 excluded), got {value}")
    return float(value)


def _whitening(cov: torch.Tensor, shrink: float) -> torch.Tensor:
    """``cov^(-1/2)`` with shrinkage towards the mean variance (stable with few samples)."""
    c = cov.shape[0]
    cov = (1 - shrink) * cov + shrink * torch.trace(cov) / c * torch.eye(c, dtype=cov.dtype)
    vals, vecs = torch.linalg.eigh(cov)
    return (vecs * vals.clamp_min(1e-9).rsqrt()) @ vecs.T


def outcomes_for(data: ItemSet, scores: np.ndarray, anomaly: np.ndarray, unit_idx: np.ndarray) -> list[ItemOutcome]:
    """Group unit outputs back into items (only items whose units are all in ``unit_idx``)."""
    by_item: dict[int, list[int]] = {}
    for pos, u in enumerate(unit_idx):
        by_item.setdefault(int(data.unit_item[u]), []).append(pos)
    out = []
    for item, rows in sorted(by_item.items()):
        unit_labels = [data.unit_labels[int(unit_idx[r])] for r in rows]
        pockets = tuple(unit_labels) if data.product is Product.BLISTER else None
        # Items of merged folders are named by image hash (the manifests hold it, file names can repeat).
        name = f"sha256:{data.item_sha[item][:16]}"
        out.append(ItemOutcome(data.item_label[item], scores[rows], anomaly[rows], pockets, file=name))
    return out


def train(
    product: Product | str,
    folders: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    withheld: Sequence[str] | None = None,
    epochs: int | None = None,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    width_mult: float | None = None,
    ae_steps: int | None = None,
    threshold_nuisance_max: float | None = None,
    anomaly_frr: float | None = None,
    average_last: float | None = None,
    repeat: Mapping[str, int] | None = None,
    ae_contrast: bool | None = None,
    ae_channel_max: bool | None = None,
    ae_pool_stride: int | None = None,
    norm_quantile: float | None = None,
    prep_workers: int = 0,
    recipe: str | None = None,
    command: str | None = None,
    log: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> Path:
    """Train, fit the anomaly head, pick thresholds on validation; write ``out_dir/checkpoint.pt``.

    Beside it: ``results.csv`` (a row per epoch, written as training goes) and ``results.png``
    (:mod:`training.results`). ``progress(phase, step, steps, loss)`` is called after every
    optimiser step (phases ``classifier`` and ``autoencoder``); ``log`` gets a JSON line per
    epoch and the run's milestones.
    """
    prod = Product(product)
    plan = PLANS[prod]
    withheld = tuple(plan.withheld if withheld is None else withheld)
    # No epoch count given: until validation converges (at most max_epochs); else that many, one-cycle.
    if epochs is not None and max_epochs is not None:
        raise ValueError("give either a fixed number of epochs or the most the convergence rule may run, not both")
    converge: Convergence | None = None
    if epochs is None:
        rule = plan.convergence if max_epochs is None else replace(plan.convergence, max_epochs=max_epochs)
        converge = Convergence(rule)
        epochs = rule.max_epochs
    batch_size = plan.batch_size if batch_size is None else batch_size
    width_mult = plan.width_mult if width_mult is None else width_mult
    ae_contrast = plan.ae_contrast if ae_contrast is None else ae_contrast
    ae_channel_max = plan.ae_channel_max if ae_channel_max is None else ae_channel_max
    ae_pool_stride = plan.ae_pool_stride if ae_pool_stride is None else ae_pool_stride
    if norm_quantile is not None:
        plan = replace(plan, ad_norm_quantile=_check_quantile(norm_quantile))
    if ae_steps is not None:
        plan = replace(plan, ae_steps=ae_steps)
    if anomaly_frr is not None:
        plan = replace(plan, anomaly_frr=check_anomaly_frr(anomaly_frr))
    if average_last is not None:
        plan = replace(plan, average_last=_check_share(average_last))
    if repeat is not None:
        plan = replace(plan, repeat=tuple(sorted(repeat.items())))
    if epochs < 1 or batch_size < 2:
        raise ValueError("epochs must be >= 1 and batch size >= 2")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = ResultsLog(out)
    criteria = dict(ACCEPTANCE_CRITERIA[prod], fixed_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    set_determinism(seed)
    version = code_version()  # of the code as it is when training starts
    t_start = time.perf_counter()
    cpu_start = time.process_time()

    registration = recipe_registration(prod, recipe)
    data = load_sets(prod, folders, workers=THREADS, registration=registration)
    if data.pose_refused:
        log(f"{len(data.pose_refused)} items refused by the recipe's pose guard, left out: {data.pose_refused[:3]} ...")
    splits = check_disjoint(data.split_shas())
    classes = model_classes(prod, withheld)
    log(f"{prod.value}: {len(data.item_sha)} items, {len(data.units)} units, splits {splits['counts']}")
    unit_split = data.unit_split()
    is_withheld = np.array([lab in withheld for lab in data.unit_labels])
    # Withheld classes appear in no training and no threshold choice: they stand for unknown defects.
    train_idx = np.flatnonzero((unit_split == "train") & ~is_withheld)
    val_idx = np.flatnonzero((unit_split == "val") & ~is_withheld)
    test_idx = np.flatnonzero(unit_split == "test")
    # Items with a withheld unit (blister cards) drop out of validation entirely.
    val_items_bad = {int(data.unit_item[u]) for u in np.flatnonzero((unit_split == "val") & is_withheld)}
    val_idx = np.array([u for u in val_idx if int(data.unit_item[u]) not in val_items_bad], np.int64)
    class_index = {c: i for i, c in enumerate(classes)}
    y_all = np.array([class_index.get(lab, -1) for lab in data.unit_labels], np.int64)
    if len(train_idx) < batch_size or len(val_idx) == 0:
        raise ValueError(f"too little data: {len(train_idx)} training and {len(val_idx)} validation units")

    h, w, c = unit_shape(prod)
    cfg = NetConfig(
        h,
        w,
        c,
        len(classes),
        width_mult=width_mult,
        unshuffle=plan.unshuffle,
        tap=plan.tap,
        ae_down=plan.ae_down,
        ae_contrast=ae_contrast,
        ae_channel_max=ae_channel_max,
        ae_pool_stride=ae_pool_stride,
        ae_stages=plan.ae_stages,
    )
    net = InspectorNet(cfg).to(memory_format=torch.channels_last)
    augment = NuisanceAugment(max_shift_px=plan.max_shift_px, max_rot_deg=plan.max_rot_deg)
    gen = torch.Generator().manual_seed(seed)
    ok_train_all = train_idx[y_all[train_idx] == 0]
    defect_train = train_idx[y_all[train_idx] != 0]
    defect_train = repeat_units(defect_train, y_all, class_index, plan.repeat)
    # Blisters hold ~10 ok pockets per defective one: each epoch takes a fresh share of them.
    n_ok_epoch = max(1, round(len(ok_train_all) * plan.ok_share))
    steps_per_epoch = (len(defect_train) + n_ok_epoch) // batch_size
    total_steps = steps_per_epoch * epochs
    opt = torch.optim.AdamW(net.parameters(), lr=plan.lr, weight_decay=1e-4)
    sched: torch.optim.lr_scheduler.LRScheduler
    if converge is None:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=plan.lr, total_steps=total_steps, pct_start=0.15)
    else:
        # Linear warm-up to the peak, then the peak times the rule's current scale (see training.stopping).
        warm, rule_state = max(1, converge.rule.warmup_steps), converge
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm) * rule_state.lr_scale)
    # Steps after this one are averaged (none when the share is 0).
    if converge is not None and plan.average_last > 0:
        raise ValueError("weight averaging over the last steps needs a fixed number of epochs (--epochs)")
    average_from = total_steps - round(total_steps * plan.average_last)
    averaged = WeightAverage()
    val_log = val_idx[:: max(1, len(val_idx) // 1000)]
    val_watch = balanced_subset(val_idx, y_all, per_class=VAL_WATCH_PER_CLASS, seed=seed)
    best_state: dict[str, torch.Tensor] | None = None

    def val_accuracy() -> float:
        """On a fixed val subset: keeps the per-epoch log cheap (thresholds use all of val)."""
        vs, _ = predict(net, data.units[val_log])
        return float((vs.argmax(1) == y_all[val_log]).mean())

    def val_balanced_loss() -> float:
        """Each class's mean cross-entropy on its validation units, averaged over the classes."""
        vs, _ = predict(net, data.units[val_watch])
        return balanced_loss(vs, y_all[val_watch])

    # Every epoch's batches, drawn up front (the same draws, in the same order, as epoch by epoch).
    jobs = []
    for _ in range(epochs):
        ok_pick = torch.from_numpy(ok_train_all)[torch.randperm(len(ok_train_all), generator=gen)[:n_ok_epoch]]
        pool = torch.cat([torch.from_numpy(defect_train), ok_pick])
        perm = pool[torch.randperm(len(pool), generator=gen)]
        jobs += [perm[s * batch_size : (s + 1) * batch_size].numpy() for s in range(steps_per_epoch)]
    recipe = BatchRecipe(augment, SyntheticAnomaly(), SYNTHETIC_SHARE, net.seg_size)
    if prep_workers:
        # The worker keeps one core busy; a second training thread would only contend with it.
        torch.set_num_threads(max(1, THREADS - prep_workers))
    batch_iter = batches(data.units, y_all, jobs, recipe, seed, workers=prep_workers)

    history = []
    t_train = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        loss_sum = correct = seen = 0.0
        t_prep = t_step = 0.0
        for s in range(steps_per_epoch):
            t0 = time.perf_counter()
            b = next(batch_iter)
            x, y, fake, seg_target = b.x, b.y, b.fake, b.seg_target
            ok_pos = np.flatnonzero(y.numpy() == 0)
            t1 = time.perf_counter()
            logits, tap, _ = net.trunk(x)
            real = torch.ones(len(y), dtype=torch.bool)
            real[torch.from_numpy(fake)] = False
            loss = F.cross_entropy(logits[real], y[real])
            if len(ok_pos):
                rows = torch.from_numpy(ok_pos)
                seg = net.seg_logits(tap[rows])
                loss = loss + F.binary_cross_entropy_with_logits(
                    seg, seg_target[rows], pos_weight=torch.tensor(SEG_POS_WEIGHT)
                )
            logits, y = logits[real], y[real]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if epoch * steps_per_epoch + s + 1 > average_from:
                averaged.add(net)
            t_prep += t1 - t0
            t_step += time.perf_counter() - t1
            loss_sum += float(loss.detach()) * len(y)
            correct += float((logits.argmax(1) == y).sum())
            seen += len(y)
            if progress is not None:
                progress("classifier", epoch * steps_per_epoch + s + 1, total_steps, loss_sum / max(seen, 1))
        val_acc = val_accuracy()
        history.append(
            {
                "epoch": epoch + 1,
                "loss": round(loss_sum / max(seen, 1), 5),
                "train_acc": round(correct / max(seen, 1), 5),
                "val_acc": round(val_acc, 5),
                "seconds": round(time.perf_counter() - t_train, 1),
                "prep_s": round(t_prep, 1),
                "step_s": round(t_step, 1),
            }
        )
        if converge is not None:
            if converge.after_epoch(val_balanced_loss()):
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            history[-1].update(val_loss=converge.log[-1]["val_loss"], event=converge.log[-1]["event"])
        log(json.dumps(history[-1]))
        row = history[-1]
        results.add(
            "classifier",
            epoch=row["epoch"],
            step=(epoch + 1) * steps_per_epoch,
            loss=row["loss"],
            train_acc=row["train_acc"],
            val_acc=row["val_acc"],
            seconds=row["seconds"],
        )
        if converge is not None and converge.done:
            break
    batch_iter.close()  # stops the worker, if any
    if converge is not None:
        assert best_state is not None  # the first epoch is always the best so far
        net.load_state_dict(best_state)
        epochs, total_steps = converge.epochs, converge.epochs * steps_per_epoch
        log(
            f"classifier {converge.stopped}; epoch {converge.best_epoch} of {converge.epochs} kept "
            f"(balanced validation loss {converge.best:.4f})"
        )
    torch.set_num_threads(THREADS)
    if averaged.count:
        averaged.load_into(net)
        averaged_acc = round(val_accuracy(), 5)
        log(json.dumps({"averaged_steps": averaged.count, "val_acc": averaged_acc}))
        results.add("averaged", epoch=epochs, step=total_steps, val_acc=averaged_acc)
    ae_info = train_autoencoder(net, data.units[ok_train_all], plan, seed, log, progress, results)
    ad_info = fit_anomaly(
        net,
        data.units[ok_train_all],
        norm_quantile=plan.ad_norm_quantile,
        contrast_floor_quantile=plan.ae_contrast_floor_quantile,
    )
    cfg = net.cfg  # with the contrast floor fitted
    ad_info["autoencoder"] = ae_info
    log(f"anomaly head fitted on {ad_info['ok_units']} ok units, map {ad_info['map_size']}")

    val_idx = in_operating_range(data, val_idx, threshold_nuisance_max)
    val_scores, val_anomaly = predict(net, data.units[val_idx])
    val_out = outcomes_for(data, val_scores, val_anomaly, val_idx)
    thresholds = select_thresholds(prod, classes, val_out, anomaly_frr=plan.anomaly_frr)
    thresholds["nuisance_max"] = threshold_nuisance_max
    conf, anom = thresholds["confidence"], thresholds["anomaly"]
    log(f"thresholds: confidence {conf}, anomaly {anom:.4f}, criteria met on val: {thresholds['criteria_met_on_val']}")
    val_metrics = summarize(prod, classes, val_out, confidence_threshold=conf, anomaly_threshold=anom)
    log(format_verdict(judge(prod, val_metrics, criteria)))
    train_seconds = time.perf_counter() - t_start
    cpu_seconds = time.process_time() - cpu_start

    # The internal test split is scored only now, with everything above frozen.
    test_scores, test_anomaly = predict(net, data.units[test_idx])
    test_out = outcomes_for(data, test_scores, test_anomaly, test_idx)
    test_metrics = summarize(
        prod, classes, test_out, confidence_threshold=conf, anomaly_threshold=anom, withheld=withheld
    )
    log(
        f"internal test: n={test_metrics['n']} FRR {test_metrics['false_reject_rate']:.4f} "
        f"critical escapes {test_metrics['critical_escapes']} AUROC withheld {test_metrics['anomaly_auroc_withheld']}"
    )
    ckpt = {
        "format": 1,
        "product": prod.value,
        "classes": classes,
        "net_config": cfg.to_dict(),
        "state_dict": net.state_dict(),
        "thresholds": thresholds,
        "withheld_classes": list(withheld),
        "splits": splits,
        "test_units": test_idx.size,
        "datasets": data.datasets,
        # The station's registration the units were cut with (the recipe's); None: fixed cuts.
        "registration": registration.model_dump(mode="json") if registration is not None else None,
        "pose_refused": len(data.pose_refused),
        "acceptance_criteria": criteria,
        "metrics": {"val": val_metrics, "test_internal": test_metrics, "history": history, "anomaly": ad_info},
        "training": {
            "command": command or " ".join(sys.argv),
            "seed": seed,
            "code_version": version,
            "from_scratch": True,
            "pretrained_weights": None,
            "architecture": (
                f"torchvision mobilenet_v3_small(weights=None, width_mult={width_mult}), space-to-depth stem "
                f"x{plan.unshuffle}; anomaly: denoising autoencoder ({autoencoder_words(cfg)}) "
                "+ synthetic-change segmentation head + pooled-feature "
                "Gaussian, all from ok units only"
            ),
            "withheld_classes": list(withheld),
            "epochs": epochs,
            "batch_size": batch_size,
            "optimizer": (
                f"AdamW lr {plan.lr} one-cycle, weight decay 1e-4"
                if converge is None
                else f"AdamW lr {plan.lr}, weight decay 1e-4, {converge.rule.words()}"
            )
            + (f"; weights averaged over the last {averaged.count} of {total_steps} steps" if averaged.count else ""),
            "convergence": None if converge is None else converge.summary(),
            "averaged_steps": averaged.count,
            "augmentations": augment.describe(),
            "train_seconds": round(train_seconds, 1),
            # CPU time of this process over its threads: unlike wall time, not inflated by other load.
            "train_cpu_seconds": round(cpu_seconds, 1),
            "ae_steps": plan.ae_steps,
            "repeat_per_epoch": dict(plan.repeat),
            "threads": THREADS,
            # 1: classifier batches prepared in a worker process, the network trained on THREADS - 1.
            "prep_workers": prep_workers,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "python": platform.python_version(),
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            **cpu_provenance(),
            "datasets": data.datasets,
            "registration": registration.model_dump(mode="json") if registration is not None else None,
            "pose_refused": len(data.pose_refused),
            "units": {"train": int(train_idx.size), "val": int(val_idx.size), "test": int(test_idx.size)},
            "steps": total_steps,
            "seconds_per_step": round((time.perf_counter() - t_train) / max(total_steps, 1), 4),
        },
        "test_sample_units": data.units[test_idx[: min(64, test_idx.size)]].copy(),
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path = out / CHECKPOINT
    torch.save(ckpt, path)
    curves = write_curves(
        results.rows,
        out / RESULTS_PNG,
        f"{prod.value}, seed {seed}: {epochs} classifier epochs, then {plan.ae_steps} autoencoder steps",
    )
    log(f"train seconds {train_seconds:.1f}; checkpoint {path}; {results.path.name} and {curves.name} beside it")
    return path


def in_operating_range(data: ItemSet, idx: np.ndarray, nuisance_max: float | None) -> np.ndarray:
    """The units of ``idx`` whose item lies in the validated operating range.

    Rendered items carry their nuisance scale; an item without one (a real image, a labelled
    reject) is always in range. ``None`` keeps every unit.
    """
    if nuisance_max is None:
        return idx
    keep = [u for u in idx if (n := data.item_nuisance[int(data.unit_item[u])]) is None or n <= nuisance_max]
    if not keep:
        raise ValueError(f"no validation units within nuisance <= {nuisance_max}")
    return np.array(keep, np.int64)


def reconstruction_part_name(cfg: NetConfig) -> str:
    """How the reconstruction part is scored, in words (record and report)."""
    if cfg.channels == 1:
        channels = "one channel"
    else:
        channels = "max over channels" if cfg.ae_channel_max else "mean over channels"
    how = "error over its mean per unit" if cfg.ae_contrast else "absolute error"
    if cfg.ae_contrast and cfg.ae_contrast_floor > 0:
        how += f" (mean at least {cfg.ae_contrast_floor:.4g})"
    windows = ""
    if cfg.ae_pool > 1 and 0 < cfg.ae_pool_stride < cfg.ae_pool:
        windows = f", overlapping {cfg.ae_pool}x{cfg.ae_pool} windows"
    return f"reconstruction {how}, {channels}{windows}"


def _check_quantile(q: float) -> float:
    if not 0.5 <= float(q) <= 1.0:
        raise ValueError(f"part scale quantile must be in 0.5..1, got {q}")
    return float(q)


def autoencoder_words(cfg: NetConfig) -> str:
    """The autoencoder's input, depth and scoring, in words (record architecture line)."""
    return f"input /{cfg.ae_down}, {cfg.ae_stages} stages; {reconstruction_part_name(cfg)}"


def rescore_reconstruction(ckpt: dict[str, Any], net: InspectorNet, **scoring: bool | int) -> InspectorNet:
    """The same network with the reconstruction part scored another way (weights copied)."""
    cfg = replace(NetConfig(**ckpt["net_config"]), **scoring)
    new = InspectorNet(cfg)
    new.load_state_dict(net.state_dict())
    new.eval()
    return new


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], InspectorNet]:
    """A training checkpoint and its network; a missing or unreadable file is a ValueError naming it."""
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such checkpoint")
    try:
        ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
        net = InspectorNet(NetConfig(**ckpt["net_config"]))
        net.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, EOFError, pickle.UnpicklingError, KeyError, TypeError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{path}: not a readable training checkpoint ({reason})") from None
    net.eval()
    if ckpt["classes"][0] != OK:
        raise ValueError(f"{path}: classes must start with ok")
    return ckpt, net


def reselect_thresholds(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    nuisance_max: float | None = None,
    anomaly_frr: float | None = None,
    ae_contrast: bool | None = None,
    ae_channel_max: bool | None = None,
    ae_pool_stride: int | None = None,
    norm_quantile: float | None = None,
    command: str | None = None,
) -> Path:
    """Re-run the threshold choice of a checkpoint on its validation split (same data, current rule).

    Validation outputs are recomputed from the data sets the checkpoint names; the test split
    is scored again only after the new thresholds are fixed. The old choice is kept in the
    checkpoint's history.

    ``ae_contrast`` (absolute error or error over its mean per unit), ``ae_channel_max``
    (channel mean or max) and ``ae_pool_stride`` (error map windows tiled or overlapping)
    switch how the reconstruction part is scored without touching a weight: the part scales
    are refitted on the ok training units (:func:`fit_anomaly`, as training does) before the
    thresholds are chosen. So does ``norm_quantile``, the ok-train quantile every part is
    divided by. ``anomaly_frr`` is the share of good validation items the anomaly check alone
    may reject; without it the checkpoint's own share is kept.
    """
    t_start = time.perf_counter()
    if norm_quantile is not None:
        _check_quantile(norm_quantile)  # before the data sets are read
    if anomaly_frr is not None:
        check_anomaly_frr(anomaly_frr)
    ckpt, net = load_checkpoint(checkpoint)
    if anomaly_frr is None:
        anomaly_frr = float(ckpt["thresholds"].get("rule", {}).get("anomaly_frr", ANOMALY_FRR))
    set_determinism(int(ckpt["training"]["seed"]))
    prod = Product(ckpt["product"])
    classes = list(ckpt["classes"])
    withheld = list(ckpt["withheld_classes"])
    # The registration the checkpoint was trained with (None: fixed cuts, before registration existed).
    registered = ckpt.get("registration")
    registration = RegistrationSpec.model_validate(registered) if registered is not None else None
    data = load_sets(prod, [d["folder"] for d in ckpt["datasets"]], workers=THREADS, registration=registration)
    splits = check_disjoint(data.split_shas())
    if splits["hashes"] != ckpt["splits"]["hashes"]:
        raise ValueError("the data sets no longer give the checkpoint's splits")
    unit_split = data.unit_split()
    is_withheld = np.array([lab in withheld for lab in data.unit_labels])
    val_items_bad = {int(data.unit_item[u]) for u in np.flatnonzero((unit_split == "val") & is_withheld)}
    val_idx = np.array(
        [
            u
            for u in np.flatnonzero((unit_split == "val") & ~is_withheld)
            if int(data.unit_item[u]) not in val_items_bad
        ],
        np.int64,
    )
    test_idx = np.flatnonzero(unit_split == "test")
    rescored: dict[str, Any] | None = None
    wanted = {"ae_contrast": ae_contrast, "ae_channel_max": ae_channel_max, "ae_pool_stride": ae_pool_stride}
    scoring = {k: v for k, v in wanted.items() if v is not None and v != getattr(net.cfg, k)}
    # The quantile the checkpoint's scales were fitted at (0.999 for those made before it was recorded).
    fitted_at = float(ckpt["metrics"]["anomaly"].get("norm_quantile", AD_NORM_QUANTILE))
    quantile = fitted_at if norm_quantile is None else norm_quantile  # checked above
    scoring_words: dict[str, Any] = {**scoring, "norm_quantile": quantile} if quantile != fitted_at else dict(scoring)
    if scoring_words:
        if scoring:
            net = rescore_reconstruction(ckpt, net, **scoring)
        ok_train = np.flatnonzero((unit_split == "train") & np.array([lab == OK for lab in data.unit_labels]))
        ad_info = fit_anomaly(net, data.units[ok_train], norm_quantile=quantile)
        ad_info["autoencoder"] = ckpt["metrics"]["anomaly"].get("autoencoder")
        rescored = {"scoring": scoring_words, "anomaly": ad_info}
    val_idx = in_operating_range(data, val_idx, nuisance_max)
    val_scores, val_anomaly = predict(net, data.units[val_idx])
    val_out = outcomes_for(data, val_scores, val_anomaly, val_idx)
    thresholds = select_thresholds(prod, classes, val_out, anomaly_frr=anomaly_frr)
    thresholds["nuisance_max"] = nuisance_max
    conf, anom = thresholds["confidence"], thresholds["anomaly"]
    test_scores, test_anomaly = predict(net, data.units[test_idx])
    test_out = outcomes_for(data, test_scores, test_anomaly, test_idx)
    history = [*ckpt.get("threshold_history", []), ckpt["thresholds"]]
    ckpt.update(
        thresholds=thresholds,
        threshold_history=history,
        metrics={
            **ckpt["metrics"],
            "val": summarize(prod, classes, val_out, confidence_threshold=conf, anomaly_threshold=anom),
            "test_internal": summarize(
                prod, classes, test_out, confidence_threshold=conf, anomaly_threshold=anom, withheld=withheld
            ),
        },
    )
    ckpt["training"] = {
        **ckpt["training"],
        "thresholds_reselected": True,
        "thresholds_command": command or " ".join(sys.argv),
    }
    if rescored is not None:
        ckpt["net_config"] = net.cfg.to_dict()
        ckpt["state_dict"] = net.state_dict()  # same weights; new anomaly buffers (Gaussian, part scales)
        ckpt["metrics"]["anomaly"] = rescored["anomaly"]
        arch = str(ckpt["training"]["architecture"])
        ckpt["training"]["architecture"] = re.sub(
            r"\(input /\d+[^)]*\)", f"({autoencoder_words(net.cfg)})", arch, count=1
        )
        ckpt["training"]["reconstruction_rescored"] = {
            **rescored["scoring"],
            "reconstruction": reconstruction_part_name(net.cfg),
            "weights_unchanged": True,
            "seconds": round(time.perf_counter() - t_start, 1),
        }
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path
