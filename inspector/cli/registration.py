"""``inspector registration-reference``: where the nominal item lies, for a recipe's registration block."""

from __future__ import annotations

import argparse
import json

import numpy as np

from inspector.cli.common import Subparsers, add_command, add_json_option, bounded, emit_json, good_images, say
from inspector.taxonomy import Product

IMAGES_MAX = 100_000


def cmd_registration_reference(args: argparse.Namespace) -> int:
    from inspector.inference.registration import locate, reference_of

    images: list[np.ndarray] = []
    products: set[Product] = set()
    for e, image in good_images(args.images, args.limit):
        images.append(image)
        products.add(e.product)
    if not images:
        raise ValueError("the sets hold no good (ok) items: the reference is measured on good product")
    if len(products) != 1:
        raise ValueError(f"the sets mix products {sorted(p.value for p in products)}; give one product's sets")
    product = products.pop()
    found = [f for f in (locate(product, img) for img in images) if f is not None]
    ref = reference_of(found)
    spread = {}
    for key, attr, ref_value in (("dx", "x", ref.x), ("dy", "y", ref.y), ("angle_deg", "angle_deg", ref.angle_deg)):
        v = np.asarray([getattr(f, attr) - ref_value for f in found])
        spread[key] = {"p1": round(float(np.percentile(v, 1)), 3), "p99": round(float(np.percentile(v, 99)), 3)}
    result = {
        "product": product.value,
        "reference": ref.model_dump(mode="json"),
        "images": len(images),
        "not_located": len(images) - len(found),
        "spread": spread,
        "sets": [str(f) for f in args.images],
    }
    say(
        f"{len(images)} good {product.value} images, {result['not_located']} not located;"
        f" spread around the reference (p1..p99): "
        + ", ".join(f"{k} {v['p1']:+.2f}..{v['p99']:+.2f}" for k, v in spread.items())
    )
    say("registration.reference block for the recipe (YAML accepts this JSON):", json.dumps(result["reference"]))
    emit_json(args, result)
    return 0


def register(sub: Subparsers) -> None:
    rr = add_command(
        sub,
        "registration-reference",
        help="where the nominal item lies (median over good items), for a recipe's registration block",
        example="inspector registration-reference --images /tmp/tv/blister_seed4000_n0.5",
    )
    rr.add_argument("--images", nargs="+", required=True, help="manifest folders; their good (ok) items are measured")
    rr.add_argument(
        "--limit", type=bounded(int, low=1, high=IMAGES_MAX), default=2000, help="good images measured at most"
    )
    add_json_option(rr, "the reference with the spread of the measured poses")
    rr.set_defaults(func=cmd_registration_reference, value_errors_are_user_errors=True)
