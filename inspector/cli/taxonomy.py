"""``inspector taxonomy``: the defect classes, their criticality and PLC reason codes."""

from __future__ import annotations

import argparse

from inspector.cli.common import Subparsers, add_command, add_json_option, emit_json, say


def cmd_taxonomy(args: argparse.Namespace) -> int:
    from inspector.taxonomy import DEFECTS

    rows = [
        {
            "product": d.product.value,
            "code": d.code,
            "plc_code": d.plc_code,
            "criticality": d.criticality.value,
            "must_reject": d.must_reject,
            "description": d.description,
        }
        for d in DEFECTS
    ]
    for r in rows:
        flag = "reject" if r["must_reject"] else "recipe"
        say(f"{r['product']:8} {r['code']:17} {r['plc_code']:4} {r['criticality']:9} {flag:7} {r['description']}")
    emit_json(args, rows)
    return 0


def register(sub: Subparsers) -> None:
    t = add_command(
        sub,
        "taxonomy",
        help="list the defect classes, criticality and PLC reason codes",
        example="inspector taxonomy --json",
    )
    add_json_option(t, "the classes (a list)")
    t.set_defaults(func=cmd_taxonomy)
