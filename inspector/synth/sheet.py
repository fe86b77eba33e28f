"""Contact sheets: every class of a labelled set side by side, for people to look at."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from inspector.manifest import ManifestEntry, read_manifest
from inspector.taxonomy import labels

CELL_H = 240
ZOOM = 112
PAD = 8
LABEL_W = 215
BG = (40, 40, 40)
TEXT = (235, 235, 235)
OUTLINE = (0, 0, 255)


def _bgr(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img


def _cell(img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The image scaled to CELL_H, plus a zoom on the defect with its outline."""
    bgr = _bgr(img)
    h, w = bgr.shape[:2]
    scale = CELL_H / h
    full = cv2.resize(bgr, (round(w * scale), CELL_H), interpolation=cv2.INTER_AREA)
    zoom = np.full((CELL_H, ZOOM, 3), BG, np.uint8)
    if mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        cx, cy = int(xs.mean()), int(ys.mean())
        half = max(24, int(max(np.ptp(xs), np.ptp(ys)) * 0.6) + 8)
        x0, y0 = max(0, cx - half), max(0, cy - half)
        x1, y1 = min(w, cx + half), min(h, cy + half)
        crop = bgr[y0:y1, x0:x1].copy()
        contours, _ = cv2.findContours(
            (mask[y0:y1, x0:x1] > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        side = ZOOM
        crop = cv2.resize(crop, (side, round(side * crop.shape[0] / crop.shape[1])), interpolation=cv2.INTER_NEAREST)
        k = side / (x1 - x0)
        crop_outlined = crop.copy()
        for c in contours:
            cv2.polylines(crop_outlined, [np.round(c * k).astype(np.int32)], True, OUTLINE, 1, cv2.LINE_AA)
        ch = min(crop.shape[0], CELL_H // 2 - 2)
        zoom[:ch] = crop[:ch]
        zoom[CELL_H // 2 : CELL_H // 2 + ch] = crop_outlined[:ch]
        # Outline the defect on the overview too, so the eye finds it.
        for c in contours:
            c = c + np.array([[x0, y0]])
            cv2.polylines(full, [np.round(c * scale).astype(np.int32)], True, OUTLINE, 1, cv2.LINE_AA)
    return np.hstack([full, zoom])


def contact_sheet(folder: str | os.PathLike[str], per_class: int = 3) -> np.ndarray:
    """One row per class (in taxonomy order), ``per_class`` examples each."""
    root = Path(folder)
    entries = read_manifest(root)
    if not entries:
        raise ValueError(f"{root}: the manifest lists no images")
    product = entries[0].product
    by_label: dict[str, list[ManifestEntry]] = {}
    for e in entries:
        by_label.setdefault(e.label, []).append(e)
    rows = []
    for lab in labels(product):
        chosen = by_label.get(lab, [])[:per_class]
        if not chosen:
            continue
        cells = []
        for e in chosen:
            img = cv2.imread(str(root / e.file), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ValueError(f"{root / e.file}: cannot be read as an image")
            mask = cv2.imread(str(root / e.mask), cv2.IMREAD_GRAYSCALE) if e.mask else None
            cells.append(_cell(img, mask))
        width = max(c.shape[1] for c in cells)
        row = np.full((CELL_H + 2 * PAD, LABEL_W + per_class * (width + PAD) + PAD, 3), BG, np.uint8)
        crit = chosen[0].criticality.value if chosen[0].criticality else "accept"
        cv2.putText(row, lab, (10, PAD + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.7, TEXT, 2, cv2.LINE_AA)
        cv2.putText(row, crit, (10, PAD + 60), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (150, 200, 255), 1, cv2.LINE_AA)
        for i, c in enumerate(cells):
            x = LABEL_W + i * (width + PAD)
            row[PAD : PAD + CELL_H, x : x + c.shape[1]] = c
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=BG[0]) for r in rows]
    title = np.full((44, width, 3), BG, np.uint8)
    cv2.putText(
        title,
        f"{product.value}: every class (overview with defect outlined | zoom, raw above, outlined below)",
        (10, 30),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.7,
        TEXT,
        1,
        cv2.LINE_AA,
    )
    return np.vstack([title, *rows])
