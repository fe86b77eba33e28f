"""Labelled sets -> model units, hash-based splits and nuisance augmentation.

Units are what the model sees: the whole item (vial, tablet) or one crop per blister pocket,
located and cut with :func:`inspector.inference.registration.register` (the recipe's
registration, as the station runs it) so training and the station see the same pixels; an item
the pose guard refuses is left out, as the station would not inspect it. Every item lands in
train, val or test by its image sha256 alone, so the same image always lands in the same split
whatever folder it comes from (draft Annex 22 §6).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torchvision.transforms import v2

from inspector.config.recipe import load_recipe
from inspector.config.registration import RegistrationSpec
from inspector.config.roi import DEFAULT_BLISTER_GRID, Roi
from inspector.inference.registration import register
from inspector.inference.units import to_units, unit_shape
from inspector.manifest import MANIFEST_NAME, ManifestEntry, read_manifest, sha256_bytes, sha256_file
from inspector.taxonomy import IMAGE_SPECS, OK, Product, labels

SPLITS = ("train", "val", "test")
# Share of items per split, by the first 64 bits of the image sha256.
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


class SplitLeakError(RuntimeError):
    """An image sits in more than one split: training, validation and test are not independent."""


def unit_rois(product: Product) -> list[Roi] | None:
    """Pocket ROIs of the station's recipe for blisters, ``None`` (whole frame) otherwise."""
    return DEFAULT_BLISTER_GRID.rois() if product is Product.BLISTER else None


def recipe_registration(product: Product, recipe: str | None = None) -> RegistrationSpec | None:
    """The registration of the station's recipe: training cuts its units as the station does.

    ``recipe``: a recipe name or file (a line of another product look has its own, its reference
    measured on its own good items by ``inspector registration-reference``); default: the
    product's shipped recipe.
    """
    loaded = load_recipe(recipe or product.value).recipe
    if loaded.product is not product:
        raise ValueError(f"recipe {recipe!r} is for {loaded.product.value}, not {product.value}")
    return loaded.registration


def split_of(sha256: str) -> str:
    """The split an image belongs to, from its content hash only."""
    u = int(sha256[:16], 16) / float(1 << 64)
    edge = 0.0
    for name in SPLITS:
        edge += SPLIT_FRACTIONS[name]
        if u < edge:
            return name
    return SPLITS[-1]


def split_hash(shas: Sequence[str]) -> str:
    """Fingerprint of a split: sha256 of its sorted image hashes, one per line."""
    return hashlib.sha256("\n".join(sorted(shas)).encode("ascii")).hexdigest()


def check_disjoint(split_shas: dict[str, Sequence[str]]) -> dict[str, Any]:
    """Prove that no image is in two splits; raise :class:`SplitLeakError` if one is."""
    sets = {name: set(shas) for name, shas in split_shas.items()}
    names = sorted(sets)
    overlaps: dict[str, int] = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sets[a] & sets[b]
            if common:
                overlaps[f"{a}&{b}"] = len(common)
    if overlaps:
        raise SplitLeakError(f"splits overlap (image counts): {overlaps}; test data is not independent")
    for name in names:
        wrong = [s for s in sets[name] if split_of(s) != name]
        if wrong:
            raise SplitLeakError(f"{len(wrong)} images in split {name!r} do not hash to it")
    return {
        "disjoint": True,
        "counts": {n: len(sets[n]) for n in names},
        "hashes": {n: split_hash(list(sets[n])) for n in names},
    }


@dataclass
class ItemSet:
    """Items (frames) of one product and their units, all in memory as uint8."""

    product: Product
    units: np.ndarray  # uint8 [U, H, W, C]
    unit_labels: list[str]
    unit_item: np.ndarray  # int64 [U]: index of the item each unit belongs to
    item_sha: list[str]
    item_label: list[str]
    item_split: list[str]
    item_nuisance: list[float | None]
    datasets: list[dict[str, Any]] = field(default_factory=list)
    pose_refused: list[str] = field(default_factory=list)  # files the pose guard refused (left out)

    def unit_split(self) -> np.ndarray:
        return np.array([self.item_split[i] for i in self.unit_item])

    def split_shas(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {s: [] for s in SPLITS}
        for sha, split in zip(self.item_sha, self.item_split, strict=True):
            out[split].append(sha)
        return out


def _decode(path: Path, want_sha: str, shape: tuple[int, ...]) -> np.ndarray:
    data = path.read_bytes()
    if sha256_bytes(data) != want_sha:
        raise ValueError(f"{path}: sha256 does not match the manifest; the image was changed")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.shape != shape or img.dtype != np.uint8:
        got = None if img is None else (img.dtype, img.shape)
        raise ValueError(f"{path}: expected a uint8 image of shape {shape}, got {got}")
    return img


def load_sets(
    product: Product | str,
    folders: Sequence[str | os.PathLike[str]],
    *,
    workers: int = 2,
    registration: RegistrationSpec | None = None,
) -> ItemSet:
    """Read one or more manifest folders of ``product`` into units; duplicates (same sha256) count once.

    ``registration``: locate each item and cut its units in its own frame (the station's path); an
    item the pose guard refuses is left out and listed in ``pose_refused``. None: fixed cuts.
    """
    prod = Product(product)
    if not folders:
        raise ValueError("no data folders given")
    frame_shape = IMAGE_SPECS[prod].shape
    rois = unit_rois(prod)
    todo: list[tuple[Path, ManifestEntry]] = []
    seen: dict[str, ManifestEntry] = {}
    datasets: list[dict[str, Any]] = []
    for folder in folders:
        root = Path(folder)
        entries = read_manifest(root)
        if any(e.foreign is not None for e in entries):
            raise ValueError(
                f"{root}: holds random foreign tablets (samples generate --foreign): evaluation only, never trained on"
            )
        wrong = {e.product.value for e in entries if e.product is not prod}
        if wrong:
            raise ValueError(f"{root}: holds {sorted(wrong)} items, expected only {prod.value}")
        counts: dict[str, int] = {}
        for e in entries:
            counts[e.label] = counts.get(e.label, 0) + 1
            prev = seen.get(e.sha256)
            if prev is not None:
                if (prev.label, prev.pockets) != (e.label, e.pockets):
                    raise ValueError(f"{root / e.file}: same image as {prev.file} but labelled differently")
                continue
            seen[e.sha256] = e
            todo.append((root, e))
        nuisances = sorted({e.nuisance for e in entries if e.nuisance is not None})
        datasets.append(
            {
                "folder": str(root),
                "manifest_sha256": sha256_file(root / MANIFEST_NAME),
                "items": len(entries),
                "labels": dict(sorted(counts.items())),
                "sources": sorted({e.source for e in entries}),
                "nuisance": nuisances,
                # The renderer's looks (inspector.synth.looks) of a rendered set; camera sets have none.
                "looks": sorted({e.look or "nominal" for e in entries if e.source == "synth"}),
            }
        )
    per_item = len(rois) if rois else 1
    # Units go straight into one preallocated array: whole frames are never all held at once
    # (10,000 blister frames would be 9 GB; their pocket crops are a third of that).
    units = np.empty((len(todo) * per_item, *unit_shape(prod)), np.uint8)
    unit_labels: list[str] = []
    for _, e in todo:
        pocket_labels = e.pockets if rois else [e.label]
        if pocket_labels is None or len(pocket_labels) != per_item:
            raise ValueError(f"{e.file}: {per_item} units but pocket labels {pocket_labels}")
        unit_labels.extend(pocket_labels)

    refused: set[int] = set()

    def fill(i: int) -> None:
        root, e = todo[i]
        image = _decode(root / e.file, e.sha256, frame_shape)
        if registration is None:
            units[i * per_item : (i + 1) * per_item] = to_units(image, rois)
            return
        reg = register(prod, image, registration, rois)
        if reg.units is None:
            refused.add(i)
        else:
            units[i * per_item : (i + 1) * per_item] = reg.units

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(fill, range(len(todo))))
    refused_files = [str(todo[i][0] / todo[i][1].file) for i in sorted(refused)]
    if refused:
        # Compact in place (a copy of a blister set would need gigabytes more): refused items leave no units.
        kept = [i for i in range(len(todo)) if i not in refused]
        for new, old_i in enumerate(kept):
            if new != old_i:
                units[new * per_item : (new + 1) * per_item] = units[old_i * per_item : (old_i + 1) * per_item]
        units = units[: len(kept) * per_item]
        unit_labels = [lab for i in kept for lab in unit_labels[i * per_item : (i + 1) * per_item]]
        todo = [todo[i] for i in kept]
    unit_item = np.repeat(np.arange(len(todo), dtype=np.int64), per_item)
    return ItemSet(
        product=prod,
        units=units,
        unit_labels=unit_labels,
        unit_item=unit_item,
        item_sha=[e.sha256 for _, e in todo],
        item_label=[e.label for _, e in todo],
        item_split=[split_of(e.sha256) for _, e in todo],
        item_nuisance=[e.nuisance for _, e in todo],
        datasets=datasets,
        pose_refused=refused_files,
    )


def model_classes(product: Product, withheld: Sequence[str]) -> list[str]:
    """The classifier's classes: ``ok`` first, every defect of the product except the withheld ones."""
    known = labels(product)
    bad = [w for w in withheld if w not in known or w == OK]
    if bad:
        raise ValueError(f"cannot withhold {bad}: not {product.value} defect classes")
    return [c for c in known if c not in withheld]


class NuisanceAugment:
    """Nuisance variation on float NCHW batches in [0, 1]: shift, rotation, lighting, blur, noise.

    Torchvision v2 draws one parameter set per call, so a batch is augmented in chunks to
    vary the parameters within a batch. The rendered training sets already span the nuisance
    range (0.5-3 for the shipped models), so the costly geometric and blur steps run only on a
    share of the chunks (CPU budget).
    """

    def __init__(
        self,
        *,
        max_shift_px: float,
        max_rot_deg: float,
        chunk: int = 8,
        p_affine: float = 0.3,
        p_blur: float = 0.15,
        p_noise: float = 0.5,
    ) -> None:
        self.chunk = chunk
        self.max_shift_px = max_shift_px
        self.max_rot_deg = max_rot_deg
        self.p_affine = p_affine
        self.p_blur = p_blur
        self.p_noise = p_noise
        self.light = v2.ColorJitter(brightness=0.12, contrast=0.12)
        self.blur = v2.GaussianBlur(kernel_size=5, sigma=(0.2, 1.0))
        self.noise = v2.GaussianNoise(mean=0.0, sigma=0.01, clip=True)

    def describe(self) -> str:
        """What the training record states: the parameters this object applies, never a copy of them."""
        (b0, b1), (c0, c1) = self.light.brightness, self.light.contrast
        jitter = f"ColorJitter(brightness {b0:g}-{b1:g}, contrast {c0:g}-{c1:g})"
        return (
            f"torchvision.transforms.v2, per chunk of {self.chunk}: RandomAffine (shift {self.max_shift_px:g} px, "
            f"rotation {self.max_rot_deg:g} deg) p={self.p_affine:g}, {jitter}, GaussianBlur("
            f"{self.blur.kernel_size[0]}, {self.blur.sigma[0]:g}-{self.blur.sigma[1]:g}) p={self.p_blur:g}, "
            f"GaussianNoise({self.noise.sigma:g}) p={self.p_noise:g}"
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        translate = (self.max_shift_px / w, self.max_shift_px / h)
        parts = []
        for part in x.split(self.chunk):
            if float(torch.rand(())) < self.p_affine:
                # Fill uncovered borders with the chunk's own border level, not black: a black
                # edge is not a nuisance the station ever sees.
                border = torch.cat([part[..., 0, :], part[..., -1, :]], dim=-1)
                fill = [float(v) for v in border.mean(dim=(0, 2))]
                part = v2.RandomAffine(degrees=self.max_rot_deg, translate=translate, fill=fill)(part)
            part = self.light(part)
            if float(torch.rand(())) < self.p_blur:
                part = self.blur(part)
            if float(torch.rand(())) < self.p_noise:
                # Contiguous first: random fills on channels-last tensors are several times slower.
                part = self.noise(part.contiguous())
            parts.append(part)
        out = torch.empty_like(x, memory_format=torch.channels_last)
        start = 0
        for part in parts:
            out[start : start + len(part)].copy_(part)
            start += len(part)
        # Re-quantise to 8 bits: the deployed model only ever sees uint8 pixels (in place: the
        # same arithmetic as round(x * 255) / 255 without two more batch-sized tensors).
        return out.mul_(255.0).round_().div_(255.0)


class SyntheticAnomaly:
    """Corrupt ok units with generic local changes; the anomaly head learns to find them.

    No real defect is used (CutPaste / DRAEM / NSA practice). Kinds: irregular polygons of a
    tone taken from near the spot (a dark part spreading over a bright one and vice versa),
    soft regions of shifted tone or colour, patches cut and pasted elsewhere, and local warps
    that bulge or dent an outline. Most changes sit on the item's edges, where a structural
    change is most easily confused with the normal silhouette. Returns the corrupted units
    and a 0/1 change mask per unit.
    """

    def __init__(
        self, *, min_radius: float = 0.015, max_radius: float = 0.08, min_change: int = 12, edge_share: float = 0.7
    ) -> None:
        self.min_radius = min_radius
        self.max_radius = max_radius
        self.min_change = min_change
        self.edge_share = edge_share

    def __call__(self, units: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        out = units.copy()
        masks = np.zeros(units.shape[:3], np.float32)
        for i in range(len(units)):
            img = out[i]
            edges = self._edge_points(img)
            for _ in range(int(rng.integers(1, 3))):
                center = self._center(img, edges, rng)
                kind = int(rng.integers(0, 4))
                if kind == 0:
                    self._polygon(img, center, rng)
                elif kind == 1:
                    self._tone_region(img, center, rng)
                elif kind == 2:
                    self._cut_paste(img, center, rng)
                else:
                    self._warp(img, center, rng)
            masks[i] = (_channel_max(cv2.absdiff(img, units[i]).reshape(img.shape)) >= self.min_change).astype(
                np.float32
            )
        return out, masks

    @staticmethod
    def _edge_points(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grey = _channel_mean(img)
        mag = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        ys, xs = np.nonzero(mag >= np.partition(mag.ravel(), int(mag.size * 0.97))[int(mag.size * 0.97)])
        return xs, ys

    def _center(
        self, img: np.ndarray, edges: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
    ) -> tuple[float, float]:
        h, w = img.shape[:2]
        xs, ys = edges
        if len(xs) and rng.random() < self.edge_share:
            k = int(rng.integers(len(xs)))
            return float(xs[k]), float(ys[k])
        return float(rng.uniform(0.08, 0.92) * w), float(rng.uniform(0.08, 0.92) * h)

    def _radius(self, img: np.ndarray, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.min_radius, self.max_radius) * min(img.shape[:2]))

    def _shape_mask(
        self, img: np.ndarray, center: tuple[float, float], rng: np.random.Generator, soft: bool
    ) -> np.ndarray:
        h, w = img.shape[:2]
        cx, cy = center
        radius = self._radius(img, rng)
        n = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = radius * rng.uniform(0.35, 1.0, n)
        # Elongate sometimes: edges, skirts and streaks are rarely round.
        stretch = rng.uniform(1.0, 3.0)
        rot = rng.uniform(0, np.pi)
        px = rad * np.cos(ang) * stretch
        py = rad * np.sin(ang)
        pts = np.stack([cx + px * np.cos(rot) - py * np.sin(rot), cy + px * np.sin(rot) + py * np.cos(rot)], axis=1)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
        m = mask.astype(np.float32) / 255.0
        if soft:
            m = cv2.GaussianBlur(m, (0, 0), sigmaX=float(rng.uniform(1.0, 3.0)))
        return m[:, :, None]

    def _polygon(self, img: np.ndarray, center: tuple[float, float], rng: np.random.Generator) -> None:
        m = self._shape_mask(img, center, rng, soft=False) * rng.uniform(0.6, 1.0)
        h, w = img.shape[:2]
        if rng.random() < 0.7:
            # A tone from near the spot: one side of an edge spreads over the other.
            reach = 2.0 * self._radius(img, rng)
            x = int(np.clip(center[0] + rng.uniform(-reach, reach), 0, w - 1))
            y = int(np.clip(center[1] + rng.uniform(-reach, reach), 0, h - 1))
            tone = img[y, x].astype(np.float32)
        else:
            tone = np.full(img.shape[2], rng.uniform(0, 255), np.float32)
        img[:] = np.clip(img * (1 - m) + tone * m + 0.5, 0, 255).astype(np.uint8)

    def _tone_region(self, img: np.ndarray, center: tuple[float, float], rng: np.random.Generator) -> None:
        m = self._shape_mask(img, center, rng, soft=True)
        gain = rng.uniform(0.6, 0.85, img.shape[2]) if rng.random() < 0.5 else rng.uniform(1.15, 1.5, img.shape[2])
        factor = 1.0 + m * (gain.astype(np.float32) - 1.0)
        img[:] = np.clip(img * factor + 0.5, 0, 255).astype(np.uint8)

    def _cut_paste(self, img: np.ndarray, center: tuple[float, float], rng: np.random.Generator) -> None:
        h, w = img.shape[:2]
        ph = min(int(2 * self._radius(img, rng)) + 2, h)
        pw = min(int(2 * self._radius(img, rng)) + 2, w)
        sy = int(np.clip(center[1] - ph / 2, 0, h - ph))
        sx = int(np.clip(center[0] - pw / 2, 0, w - pw))
        dy = int(np.clip(sy + rng.integers(-2 * ph, 2 * ph + 1), 0, h - ph))
        dx = int(np.clip(sx + rng.integers(-2 * pw, 2 * pw + 1), 0, w - pw))
        patch = img[sy : sy + ph, sx : sx + pw].copy()
        if rng.random() < 0.5:
            patch = patch[::-1] if rng.random() < 0.5 else patch[:, ::-1]
        img[dy : dy + ph, dx : dx + pw] = patch

    def _warp(self, img: np.ndarray, center: tuple[float, float], rng: np.random.Generator) -> None:
        """Bulge or dent: pixels near ``center`` move by up to ``shift`` px, fading out smoothly."""
        h, w = img.shape[:2]
        radius = self._radius(img, rng) * 1.5
        shift = rng.uniform(0.3, 0.8) * radius
        ang = rng.uniform(0, 2 * np.pi)
        x0, x1 = int(max(center[0] - 2 * radius, 0)), int(min(center[0] + 2 * radius + 1, w))
        y0, y1 = int(max(center[1] - 2 * radius, 0)), int(min(center[1] + 2 * radius + 1, h))
        if x1 - x0 < 3 or y1 - y0 < 3:
            return
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        bump = np.exp(-((gx - center[0]) ** 2 + (gy - center[1]) ** 2) / (2 * (radius / 1.5) ** 2))
        map_x = (gx - shift * np.cos(ang) * bump).astype(np.float32)
        map_y = (gy - shift * np.sin(ang) * bump).astype(np.float32)
        crop = np.ascontiguousarray(img)
        warped = cv2.remap(crop, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img[y0:y1, x0:x1] = warped.reshape(y1 - y0, x1 - x0, -1)


def _channel_mean(img: np.ndarray) -> np.ndarray:
    """Float32 mean over the channels of a uint8 HxWxC image.

    Equal bit for bit to ``img.mean(axis=2).astype(np.float32)`` (the channel sum is exact in
    float32 and a sum over 3 never falls on a float32 rounding tie), in about an eighth of the time.
    """
    acc = img[..., 0].astype(np.float32)
    for ch in range(1, img.shape[2]):
        acc += img[..., ch]
    return acc / np.float32(img.shape[2])


def _channel_max(img: np.ndarray) -> np.ndarray:
    """Maximum over the channels of an HxWxC image, as ``img.max(axis=2)`` but without numpy's slow
    reduction over a short last axis."""
    out = img[..., 0].copy()
    for ch in range(1, img.shape[2]):
        np.maximum(out, img[..., ch], out=out)
    return out


def mask_to_map(masks: np.ndarray, size: tuple[int, int], gain: float = 4.0) -> np.ndarray:
    """Per-cell targets for the anomaly map: changed share of each cell, x ``gain``, clipped to 1."""
    h, w = size
    out = (
        np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) for m in masks])
        if len(masks)
        else (np.zeros((0, h, w), np.float32))
    )
    return np.clip(out * gain, 0.0, 1.0).astype(np.float32)
