"""Time registration alone (one core) on a labelled set, as the station runs it; print JSON.

``inspector bench`` times it on the renderer's own frames (a card turned by at most about 1 deg,
cut by whole pixels); this times it on any set, for instance one rendered with the line's
presentation (turns up to 5 deg, warped upright):

    uv run inspector samples generate --product blister --count 400 --seed 940001 --no-masks \\
        --shift 8 --turn 5 --out /tmp/bl_line
    uv run python scripts/bench_registration.py --recipe blister --images /tmp/bl_line
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from inspector.camera.imagefile import read_image_file  # noqa: E402
from inspector.config.recipe import load_recipe  # noqa: E402
from inspector.inference.registration import register  # noqa: E402
from inspector.manifest import read_manifest  # noqa: E402

WARM_UP = 20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", required=True, help="recipe whose registration is timed")
    p.add_argument("--images", required=True, type=Path, help="manifest folder of that product")
    p.add_argument("--limit", type=int, default=400, help="images timed at most (default 400)")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)  # the station's inference thread: one core
    recipe = load_recipe(args.recipe).recipe
    if recipe.registration is None:
        print(f"{args.recipe}: the recipe has no registration", file=sys.stderr)
        return 2
    rois = recipe.pocket_grid.rois() if recipe.pocket_grid is not None else None
    entries = read_manifest(args.images)[: args.limit]
    images = [read_image_file(args.images / e.file, sha256=e.sha256) for e in entries]
    for image in images[:WARM_UP]:
        register(recipe.product, image, recipe.registration, rois)
    times, refused, warped = [], 0, 0
    for image in images:
        t = time.perf_counter()
        reg = register(recipe.product, image, recipe.registration, rois)
        times.append((time.perf_counter() - t) * 1e3)
        refused += reg.units is None
        warped += reg.pose is not None and abs(reg.pose.angle_deg) > recipe.registration.rotate_above_deg
    ms = np.asarray(times)
    result = {
        "recipe": recipe.recipe_id,
        "product": recipe.product.value,
        "images": len(images),
        "refused": refused,
        "warped_upright": warped if recipe.registration.align_rotation else 0,
        "registration_ms_p50": round(float(np.percentile(ms, 50)), 4),
        "registration_ms_p99": round(float(np.percentile(ms, 99)), 4),
        "registration_ms_max": round(float(ms.max()), 4),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
