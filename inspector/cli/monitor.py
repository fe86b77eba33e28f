"""``inspector input-reference``: input drift limits for a recipe, from reference sets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from inspector.cli.common import Subparsers


def cmd_input_reference(args: argparse.Namespace) -> int:
    from inspector.pipeline.monitor import build_reference

    limits, info = build_reference(args.images, window=args.window, z=args.z)
    result = {"input_monitor": limits.model_dump(mode="json"), **info}
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def register(sub: Subparsers) -> None:
    ir = sub.add_parser(
        "input-reference",
        help="input drift limits for a recipe's input_monitor block, from reference sets (JSON)",
    )
    ir.add_argument("--images", nargs="+", required=True, help="manifest folders, each one line condition")
    ir.add_argument("--window", type=int, default=200, help="frames in the rolling mean")
    ir.add_argument("--z", type=float, default=4.0, help="standard errors of the rolling mean the limits allow")
    ir.add_argument("--json", default=None)
    ir.set_defaults(func=cmd_input_reference, value_errors_are_user_errors=True)
