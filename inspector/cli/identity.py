"""``inspector identity-reference``: what the product's tablet measures like, for a recipe's identity block."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from inspector.cli.common import Subparsers, add_command, add_json_option, bounded, emit_json, good_images, say

IMAGES_MAX = 100_000


def cmd_identity_reference(args: argparse.Namespace) -> int:
    from inspector.config.errors import ConfigError
    from inspector.config.recipe import load_recipe
    from inspector.inference.identity import Measurement, measure, specify
    from inspector.inference.registration import register
    from inspector.inference.units import to_units
    from inspector.taxonomy import Product

    try:
        loaded = load_recipe(args.recipe)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    rec = loaded.recipe
    if rec.product not in (Product.TABLET, Product.BLISTER):
        raise ValueError(
            f"recipe {rec.recipe_id}: the identity check is for tablets and blister cards, not {rec.product.value}"
        )
    grid = rec.pocket_grid
    rois = grid.rois() if grid is not None else None
    radius = args.search_radius
    if radius is None and grid is not None:
        radius = grid.pocket_diameter / 2 - 4  # inside the pocket's wall
    cards: list[list[Measurement]] = []  # per image: a blister card's pockets, or the one tablet
    images = refused = 0
    for e, image in good_images(args.images, args.limit):
        if e.product is not rec.product:
            raise ValueError(f"{e.file}: a {e.product.value} item, the recipe is for {rec.product.value}")
        images += 1
        if rec.registration is not None:
            reg = register(rec.product, image, rec.registration, rois)
            if reg.units is None:
                refused += 1
                continue
            units = reg.units
        else:
            units = to_units(image, rois)
        cards.append([measure(u, segment_delta_e=args.segment_delta_e, search_radius_px=radius) for u in units])
    measured = [m for card in cards for m in card]
    if not images:
        raise ValueError("the sets hold no good (ok) items: the reference is measured on good product")
    note = (
        f"identity-reference, {rec.recipe_id}, {images} good images ({len(measured)} tablets), "
        f"{args.sigmas:g} sd or {args.margin:g} x the largest deviation, "
        f"sets {', '.join(Path(f).name for f in args.images)}"
    )
    spec = specify(
        measured,
        sigmas=args.sigmas,
        margin=args.margin,
        segment_delta_e=args.segment_delta_e,
        search_radius_px=radius,
        note=note,
        cards=cards if grid is not None else None,  # a card's tablets against their card's median too
    )
    block = spec.model_dump(mode="json")
    result = {
        "recipe": f"{rec.recipe_id}@{rec.version}",
        "product": rec.product.value,
        "images": images,
        "tablets": len(measured),
        "not_found": len([m for m in measured if not m.found]),
        "refused_by_pose_guard": refused,
        "identity": block,
    }
    say(
        f"{images} good {rec.product.value} images, {len(measured)} tablets ({result['not_found']} not found,"
        f" {refused} images refused by the pose guard); nominal L*a*b* {tuple(round(v, 1) for v in spec.lab)},"
        f" area {spec.area_px.mean:.0f} px (sd {spec.area_px.sd:.0f}), length {spec.length_px.mean:.1f} px"
    )
    say("identity block for the recipe (YAML accepts this JSON):", json.dumps(block))
    emit_json(args, result)
    return 0


def register(sub: Subparsers) -> None:
    ir = add_command(
        sub,
        "identity-reference",
        help="what the product's tablet measures like (colour, size, shape), for a recipe's identity block",
        example="inspector identity-reference --recipe blister --images /tmp/ref_blister",
    )
    ir.add_argument("--recipe", required=True, help="recipe (name or path): its registration cuts the units")
    ir.add_argument("--images", nargs="+", required=True, help="manifest folders; their good (ok) items are measured")
    ir.add_argument(
        "--limit", type=bounded(int, low=1, high=IMAGES_MAX), default=2000, help="good images measured at most"
    )
    ir.add_argument(
        "--sigmas",
        type=bounded(float, low=2, high=20),
        default=6.0,
        help="each tolerance in standard deviations of the good tablets (default 6)",
    )
    ir.add_argument(
        "--margin",
        type=bounded(float, low=1, high=5),
        default=1.25,
        help="each tolerance at least this many times the largest deviation of a good tablet (default 1.25)",
    )
    ir.add_argument(
        "--segment-delta-e",
        type=bounded(float, above=0, high=100),
        default=18.0,
        help="colour distance from the background that makes a pixel the tablet's (default 18)",
    )
    ir.add_argument(
        "--search-radius",
        type=bounded(float, above=0, high=1000),
        default=None,
        help="pixels from the unit's centre searched (blister default: the pocket's radius less 4)",
    )
    add_json_option(ir, "the specification with its counts")
    ir.set_defaults(func=cmd_identity_reference, value_errors_are_user_errors=True)
