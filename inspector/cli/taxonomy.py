"""``inspector taxonomy``: the defect classes, their criticality and PLC reason codes."""

from __future__ import annotations

import argparse
import json

from inspector.cli.common import Subparsers


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
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            flag = "reject" if r["must_reject"] else "recipe"
            print(f"{r['product']:8} {r['code']:17} {r['plc_code']:4} {r['criticality']:9} {flag:7} {r['description']}")
    return 0


def register(sub: Subparsers) -> None:
    t = sub.add_parser("taxonomy", help="list the defect classes, criticality and PLC reason codes")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_taxonomy)
