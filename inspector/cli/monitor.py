"""``inspector input-reference``: input drift limits for a recipe, from reference sets."""

from __future__ import annotations

import argparse
import json

from inspector.cli.common import Subparsers, add_command, add_json_option, bounded, emit_json, say

WINDOW_MIN, WINDOW_MAX = 10, 100_000  # as the recipe's input_monitor block allows
Z_MAX = 10.0


def cmd_input_reference(args: argparse.Namespace) -> int:
    from inspector.pipeline.monitor import build_reference

    limits, info = build_reference(args.images, window=args.window, z=args.z)
    result = {"input_monitor": limits.model_dump(mode="json"), **info}
    say("input_monitor block for the recipe (YAML accepts this JSON):", json.dumps(result["input_monitor"]))
    emit_json(args, result)
    return 0


def register(sub: Subparsers) -> None:
    ir = add_command(
        sub,
        "input-reference",
        help="input drift limits for a recipe's input_monitor block, from reference sets",
        example="inspector input-reference --images /tmp/tv/vial_seed2000_n0.5 /tmp/tv/vial_seed2001_n1.0 --window 200",
    )
    ir.add_argument("--images", nargs="+", required=True, help="manifest folders, each one line condition")
    ir.add_argument(
        "--window", type=bounded(int, low=WINDOW_MIN, high=WINDOW_MAX), default=200, help="frames in the rolling mean"
    )
    ir.add_argument(
        "--z",
        type=bounded(float, above=0, high=Z_MAX),
        default=4.0,
        help="standard errors of the rolling mean the limits allow",
    )
    add_json_option(ir, "the block with each folder's means")
    ir.set_defaults(func=cmd_input_reference, value_errors_are_user_errors=True)
