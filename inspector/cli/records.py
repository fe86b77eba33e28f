"""``inspector records verify | export``: tamper-evidence and copies of a batch's records (ALCOA+).

Exit status: 0 verified (or written), 1 a batch does not verify, 2 refused.

    inspector records verify --batch vial-20261206T040000Z-1a2b3c
    inspector records export --batch vial-20261206T040000Z-1a2b3c --format json --out batch.json --as quinn
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from inspector.cli.common import CliError, Subparsers, add_credentials, add_database_argument, database, gxp_errors


def cmd_verify(args: argparse.Namespace) -> int:
    from inspector.records import RecordStore
    from inspector.records.chain import verify_batch

    results = []
    with RecordStore(database(args)) as store:
        try:
            batches = store.batch_ids() if args.all else [args.batch]
            results = [verify_batch(store, b) for b in batches]
        except gxp_errors() as exc:
            raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps([r.as_dict() for r in results]))
    bad = [r for r in results if not r.ok]
    for r in results:
        line = f"batch {r.batch_id}: {r.items} items " + ("verified" if r.ok else f"FAILED: {r.problem}")
        print(line, file=sys.stderr)
    return 1 if bad else 0


def batch_copy(store: Any, batch_id: str) -> dict[str, Any]:
    """The batch record, every item row and every alarm of a batch, as stored (for exports)."""
    from dataclasses import asdict

    from inspector.records.chain import verify_batch

    batch = store.batch(batch_id)
    cols = [d[0] for d in store.execute("SELECT * FROM items LIMIT 0").description]
    items = [dict(zip(cols, r, strict=True)) for r in store.execute(
        "SELECT * FROM items WHERE batch_id = ? ORDER BY id", (batch_id,))]  # fmt: skip
    return {
        "kind": "batch_record",
        "release_status": batch["release_status"],
        "batch": batch,
        "verification": verify_batch(store, batch_id).as_dict(),
        "items": items,
        "alarms": [asdict(a) for a in store.alarms(batch_id)],
    }


def cmd_export(args: argparse.Namespace) -> int:
    from inspector.cli.users import acting
    from inspector.records import RecordStore, audit
    from inspector.records.users import require
    from inspector.roles import Action

    with RecordStore(database(args)) as store:
        try:
            who = acting(args, store)
            require(who, Action.EXPORT_RECORDS)
            doc = batch_copy(store, args.batch)
            audit.append(
                store, who, "records.export", object_type="batch", object_id=args.batch,
                new={"out": str(args.out), "format": args.format, "items": len(doc["items"])},
                reason=args.reason or "copy of the batch record",
            )  # fmt: skip
        except gxp_errors() as exc:
            raise CliError(str(exc)) from None
    if args.format == "json":
        text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    else:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow([f"# batch {args.batch}", doc["release_status"],
                    f"verified {'ok' if doc['verification']['ok'] else 'FAILED'}"])  # fmt: skip
        if doc["items"]:
            w.writerow(list(doc["items"][0]))
            for row in doc["items"]:
                w.writerow(["" if v is None else v for v in row.values()])
        text = out.getvalue()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"batch {args.batch} written to {args.out} ({args.format}, {doc['release_status']})", file=sys.stderr)
    return 0


def register(sub: Subparsers) -> None:
    r = sub.add_parser("records", help="verify a batch's item records (hash links), or export a copy")
    rsub = r.add_subparsers(dest="records_command", required=True, metavar="ACTION")
    v = rsub.add_parser("verify", help="recompute a batch's item chain; exit 1 naming the first bad item")
    target = v.add_mutually_exclusive_group(required=True)
    target.add_argument("--batch", help="batch id")
    target.add_argument("--all", action="store_true", help="every batch of the database")
    v.add_argument("--json", action="store_true", help="the results as JSON on stdout")
    add_database_argument(v)
    v.set_defaults(func=cmd_verify)
    e = rsub.add_parser("export", help="the batch record, its items and alarms as JSON or CSV (items)")
    e.add_argument("--batch", required=True)
    e.add_argument("--format", choices=["csv", "json"], required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--reason", default="", help="why the copy is made (recorded)")
    add_database_argument(e)
    add_credentials(e, who="the QA or admin user exporting")
    e.set_defaults(func=cmd_export)
