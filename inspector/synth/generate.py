"""Generate labelled image sets (PNG + manifest.jsonl) from the renderer, in parallel."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from inspector.manifest import MANIFEST_NAME, ManifestEntry, sha256_bytes, write_manifest
from inspector.synth import MAX_NUISANCE, derive_seed, foreign, looks, render
from inspector.synth.base import MAX_SEED
from inspector.synth.line import LinePresentation, present_on_line
from inspector.taxonomy import OK, Product, defects

FOREIGN_STREAM = 0xF0E1  # the foreign tablet's draws: their own stream of the item's seed

# Camera-like images carry sensor noise, which deflate cannot squeeze: Huffman-only coding
# after the SUB filter writes a 640x480 card ~3x faster than level 1 and a little smaller.
PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION, 1,
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB,
]  # fmt: skip
# Masks are long runs of 0 and 255: run-length coding without filtering.
MASK_PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION, 1,
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE,
]  # fmt: skip


@dataclass(frozen=True)
class Job:
    index: int
    product: str
    label: str
    seed: int
    nuisance: float
    out: str
    masks: bool
    presentation: int | None = None
    item: int | None = None
    line: LinePresentation | None = None
    foreign: bool = False  # a random foreign tablet in place of the product's (evaluation sets)
    look: str | None = None  # another line's look (inspector.synth.looks); None: the renderer's own


def choose_label(product: Product, base_seed: int, index: int, defect_rate: float) -> str:
    """Label of image ``index``: ``ok`` with probability 1 - rate, else a uniform defect class."""
    rng = np.random.default_rng([int(base_seed), int(index), 0x1ABE1])
    if rng.random() >= defect_rate:
        return OK
    codes = [d.code for d in defects(product)]
    return codes[int(rng.integers(len(codes)))]


def encode_png(image: np.ndarray, params: list[int] = PNG_PARAMS) -> bytes:
    ok, buf = cv2.imencode(".png", image, params)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _run_job(job: Job) -> str:
    tablet = None
    if job.foreign:
        tablet = foreign.draw(np.random.default_rng([job.seed, FOREIGN_STREAM]), Product(job.product))
    r = render(job.product, job.label, job.seed, job.nuisance, job.presentation, tablet, job.look)
    if job.presentation is None:
        name = f"{job.product}_{job.index:06d}.png"
    else:
        name = f"{job.product}_{job.item:06d}_p{job.presentation:02d}.png"
    image, drawn = r.image, None
    if job.line is not None and job.line.active:
        image, drawn = present_on_line(image, job.line, job.seed, job.presentation)
    data = encode_png(image)
    Path(job.out, name).write_bytes(data)
    mask_name = None
    if job.masks and drawn is not None:
        raise ValueError("masks are drawn in the renderer's frame: render a line presentation without masks")
    if job.masks:
        mask_name = f"masks/{name}"
        Path(job.out, mask_name).write_bytes(encode_png(r.mask, MASK_PNG_PARAMS))
    entry = ManifestEntry(
        file=name,
        product=r.product,
        label=r.label,
        criticality=r.criticality,
        seed=job.seed,
        sha256=sha256_bytes(data),
        pockets=list(r.pockets) if r.pockets is not None else None,
        mask=mask_name,
        source="synth",
        nuisance=job.nuisance,
        item_key=None if job.item is None else f"{job.product}-{job.seed}",
        presentation=job.presentation,
        line=drawn,
        foreign=None if tablet is None else tablet.as_dict(),
        look=job.look,
    )
    return entry.to_json()


def _init_worker() -> None:
    # One OpenCV thread per worker process: the processes already use every core.
    cv2.setNumThreads(1)


def validate_args(product: str, count: int, seed: int, defect_rate: float, nuisance: float) -> Product:
    try:
        prod = Product(product)
    except ValueError:
        raise ValueError(f"unknown product {product!r}; choose one of: {', '.join(p.value for p in Product)}") from None
    if count < 1:
        raise ValueError(f"--count must be at least 1, got {count}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must be in 0..{MAX_SEED}, got {seed}")
    if not 0.0 <= defect_rate <= 1.0:
        raise ValueError(f"--defect-rate must be in 0..1, got {defect_rate}")
    if not 0.0 <= nuisance <= MAX_NUISANCE:
        raise ValueError(f"--nuisance must be in 0..{MAX_NUISANCE}, got {nuisance}")
    return prod


def prepare_out(out: Path) -> None:
    """Refuse to write into a folder that already holds files: never overwrite a set."""
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"--out {out} exists and is not a folder")
        if any(out.iterdir()):
            raise ValueError(f"--out {out} is not empty; choose a new folder (existing sets are never overwritten)")
    out.mkdir(parents=True, exist_ok=True)


def generate(
    product: str,
    count: int,
    seed: int,
    out: str | os.PathLike[str],
    *,
    defect_rate: float = 0.5,
    nuisance: float = 1.0,
    labels: Sequence[str] | None = None,
    masks: bool = True,
    workers: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    presentations: int | None = None,
    line: LinePresentation | None = None,
    foreign_tablets: bool = False,
    look: str | None = None,
) -> list[ManifestEntry]:
    """Render ``count`` images (``count`` items x ``presentations`` with that option) into ``out``.

    ``labels`` (one per item) overrides the random label choice; it is used to build
    sets with a fixed class balance such as the committed sample set. ``presentations``:
    each item is rendered that many times, its presentation (pose jitter, lighting, blur,
    noise) changing and the item staying the same; the manifest names the item and the
    presentation of each image (qualification by the Knapp method), listed round by round.
    ``line``: a line's presentation drawn on top of each image (shift, turn, gain, gamma,
    vignetting, defocus; see :mod:`inspector.synth.line`), recorded per image in the manifest.
    ``foreign_tablets``: every item holds a random foreign tablet (tablet, blister; see
    :mod:`inspector.synth.foreign`), its margins from the product in the manifest. Evaluation only.
    ``look``: another line's product, background and light (:mod:`inspector.synth.looks`), named in
    every manifest line; ``None`` or ``nominal``: the renderer's own.
    """
    prod = validate_args(product, count, seed, defect_rate, nuisance)
    look = None if looks.get(prod, look) is None else look
    if foreign_tablets:
        if prod not in foreign.LABEL:
            raise ValueError(f"foreign tablets are drawn for tablets and blister cards, not {prod.value}")
        labels = [foreign.LABEL[prod]] * count
    if presentations is not None and not 1 <= presentations <= 1000:
        raise ValueError(f"--presentations must be in 1..1000, got {presentations}")
    if labels is not None and len(labels) != count:
        raise ValueError(f"got {len(labels)} labels for {count} images")
    if line is not None and line.active and masks:
        raise ValueError("a line presentation moves the image but not the renderer's masks: use --no-masks")
    root = Path(out)
    prepare_out(root)
    if masks:
        (root / "masks").mkdir()
    reps = [None] if presentations is None else list(range(presentations))
    # Round by round, as a Knapp test is run: every item once, then every item again. A transient
    # fault (a frame gap, a late burst) then costs single presentations of many items, never all
    # presentations of one item.
    jobs = [
        Job(
            index=k * count + i,
            product=prod.value,
            label=labels[i] if labels is not None else choose_label(prod, seed, i, defect_rate),
            seed=derive_seed(seed, i),
            nuisance=nuisance,
            out=str(root),
            masks=masks,
            presentation=p,
            item=None if p is None else i,
            line=line,
            foreign=foreign_tablets,
            look=look,
        )
        for k, p in enumerate(reps)
        for i in range(count)
    ]
    count = len(jobs)
    n_workers = max(1, min(workers or os.cpu_count() or 1, count))
    lines: list[str] = []
    start = time.perf_counter()
    tmp = root / (MANIFEST_NAME + ".partial")
    # The partial manifest grows as images land, so an interrupted run shows what it made.
    with open(tmp, "w", encoding="utf-8") as fh:
        if n_workers == 1:
            _init_worker()
            results = map(_run_job, jobs)
            lines = _collect(results, fh, count, start, progress)
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(n_workers, initializer=_init_worker) as pool:
                lines = _collect(pool.imap(_run_job, jobs, chunksize=16), fh, count, start, progress)
    entries = [ManifestEntry.model_validate_json(line) for line in lines]
    write_manifest(root, entries)
    tmp.unlink()
    return entries


def _collect(
    results: Iterable[str],
    fh: TextIO,
    count: int,
    start: float,
    progress: Callable[[int, int, float], None] | None,
) -> list[str]:
    lines: list[str] = []
    for line in results:
        lines.append(line)
        fh.write(line + "\n")
        done = len(lines)
        if progress is not None and (done % 250 == 0 or done == count):
            progress(done, count, time.perf_counter() - start)
    return lines
