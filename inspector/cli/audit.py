"""``inspector audit verify | export``: the audit trail's hash chain, and copies of it (21 CFR 11.10(b), (e)).

Exit status: 0 verified (or written), 1 the chain does not verify (the first bad entry is
named), 2 refused.

    inspector audit verify --db var/inspector.sqlite
    inspector audit export --format csv --out audit.csv --as quinn
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inspector.cli.common import (
    CliError,
    Subparsers,
    add_command,
    add_credentials,
    add_database_argument,
    add_json_option,
    database,
    emit_json,
    gxp_errors,
)


def cmd_verify(args: argparse.Namespace) -> int:
    from inspector.records import RecordStore, audit

    with RecordStore(database(args)) as store:
        result = audit.verify(store)
    emit_json(args, result.as_dict())
    if result.ok:
        print(
            f"audit trail verified: {result.entries} entries, head {result.head_seq} {result.head_hash}",
            file=sys.stderr,
        )
        return 0
    print(f"audit trail FAILED verification at entry {result.first_bad_seq}: {result.problem}", file=sys.stderr)
    return 1


def cmd_export(args: argparse.Namespace) -> int:
    from inspector.cli.users import acting
    from inspector.records import RecordStore, audit
    from inspector.records.users import require
    from inspector.roles import Action

    with RecordStore(database(args)) as store:
        try:
            who = acting(args, store)
            require(who, Action.EXPORT_RECORDS)
            text = audit.export(store, args.format)
            head = audit.head(store)
            audit.append(
                store, who, "records.export", object_type="audit_trail", object_id=args.format,
                new={"out": str(args.out), "head_seq": head[0], "head_hash": head[1]},
                reason=args.reason or "copy of the audit trail",
            )  # fmt: skip
        except gxp_errors() as exc:
            raise CliError(str(exc)) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"audit trail written to {args.out} ({args.format})", file=sys.stderr)
    return 0


def register(sub: Subparsers) -> None:
    a = add_command(
        sub,
        "audit",
        help="verify the audit trail's hash chain, or export a copy (CSV or JSON)",
        example="inspector audit export --format csv --out audit.csv --as quinn",
    )
    asub = a.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    v = add_command(
        asub,
        "verify",
        help="recompute the chain; exit 1 naming the first bad entry",
        example="inspector audit verify --db var/inspector.sqlite --json",
    )
    add_json_option(v, "the verification")
    add_database_argument(v)
    v.set_defaults(func=cmd_verify)
    e = add_command(
        asub,
        "export",
        help="a human- and machine-readable copy of the whole trail, with its verification",
        example="inspector audit export --format csv --out audit.csv --reason 'annual review' --as quinn",
    )
    e.add_argument("--format", choices=["csv", "json"], required=True, help="csv (one row per entry) or json")
    e.add_argument("--out", type=Path, required=True, help="file to write")
    e.add_argument("--reason", default="", help="why the copy is made (recorded)")
    add_database_argument(e)
    add_credentials(e, who="the QA or admin user exporting")
    e.set_defaults(func=cmd_export)
