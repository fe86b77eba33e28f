"""The small committed reference set: every class of every product, with contact sheets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2

from inspector.synth.generate import generate
from inspector.synth.sheet import contact_sheet
from inspector.taxonomy import Product, labels


def build_reference_sets(out: Path, *, per_class: int = 3, seed: int = 20261123) -> dict[str, Any]:
    """Write ``out/<product>/`` (images, masks, manifest) and ``out/<product>_contact_sheet.png``."""
    if per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {per_class}")
    result: dict[str, Any] = {}
    for i, product in enumerate(Product):
        wanted = [lab for lab in labels(product) for _ in range(per_class)]
        folder = out / product.value
        entries = generate(product.value, len(wanted), seed + i, folder, labels=wanted, workers=1)
        sheet_path = out / f"{product.value}_contact_sheet.png"
        if not cv2.imwrite(str(sheet_path), contact_sheet(folder, per_class=per_class)):
            raise ValueError(f"cannot write {sheet_path}")
        result[product.value] = {"images": len(entries), "folder": str(folder), "sheet": str(sheet_path)}
    return result
