"""``inspector records verify | export | report | sign``: tamper-evidence, copies and the batch report (ALCOA+).

Exit status: 0 verified (or written, or signed), 1 a batch does not verify, 2 refused.

    inspector records verify --batch vial-20261206T040000Z-1a2b3c
    inspector records export --batch vial-20261206T040000Z-1a2b3c --format json --out batch.json --as quinn
    inspector records report --batch vial-20261206T040000Z-1a2b3c
    inspector records sign --batch vial-20261206T040000Z-1a2b3c --meaning authored --as otto --reason "batch run"
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from inspector.cli.common import (
    CliError,
    Subparsers,
    add_command,
    add_credentials,
    add_database_argument,
    add_json_option,
    bounded,
    database,
    emit_json,
    gxp_errors,
    read_password,
)


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
    emit_json(args, [r.as_dict() for r in results])
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


def refused() -> tuple[type[BaseException], ...]:
    return (*gxp_errors(), OSError)


def _report_folder(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else database(args).parent / "reports" / args.batch


def cmd_report(args: argparse.Namespace) -> int:
    from inspector.records import RecordStore
    from inspector.reports import batch as batch_report

    out = _report_folder(args)
    with RecordStore(database(args)) as store:
        try:
            json_path, pdf_path, report = batch_report.write(store, args.batch, out)
        except refused() as exc:
            raise CliError(str(exc)) from None
    with RecordStore(database(args)) as store:
        sigs = batch_report.signature_views(store, args.batch, report["content_sha256"])
    print(f"batch report {args.batch}: {json_path} and {pdf_path} (content sha256 {report['content_sha256'][:12]})",
          file=sys.stderr)  # fmt: skip
    emit_json(args, {"batch_id": args.batch, "json": str(json_path), "pdf": str(pdf_path),
                     "content_sha256": report["content_sha256"], "signatures": sigs})  # fmt: skip
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from inspector.records import RecordStore
    from inspector.reports import batch as batch_report

    if not args.as_user:
        raise CliError("a signature needs the signer: --as USER (the password is asked for)")
    if not args.reason.strip():
        raise CliError("a signature needs a reason: --reason TEXT")
    password = read_password(args, f"password of {args.as_user} (signing the batch report {args.meaning}): ")
    out = _report_folder(args)
    with RecordStore(database(args)) as store:
        try:
            signature = batch_report.sign(store, username=args.as_user, password=password, batch_id=args.batch,
                                          meaning=args.meaning, reason=args.reason)  # fmt: skip
            batch_report.write(store, args.batch, out)
        except refused() as exc:
            raise CliError(str(exc)) from None
    print(f"batch report {args.batch} signed: {signature.manifestation()}; report written to {out}", file=sys.stderr)
    return 0


def cmd_trend(args: argparse.Namespace) -> int:
    from inspector import plots
    from inspector.records import RecordStore
    from inspector.reports import trend

    out = Path(args.out) if args.out else database(args).parent / "reports" / f"trend-{args.recipe}"
    with RecordStore(database(args)) as store:
        try:
            report = trend.build(store, args.recipe, last=args.last)
        except refused() as exc:
            raise CliError(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "trend.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    picture = plots.save(plots.trend_figure(report), out / "trend.png")
    pdf = trend.write_pdf(report, picture, out / "trend.pdf")
    flagged = len(report["out_of_limits"])
    print(f"trend of {args.recipe}: {len(report['batches'])} batches, {flagged} rate(s) out of limits; {pdf}",
          file=sys.stderr)  # fmt: skip
    emit_json(args, {"recipe_id": args.recipe, "batches": len(report["batches"]), "out_of_limits": flagged,
                     "json": str(out / "trend.json"), "png": str(picture), "pdf": str(pdf)})  # fmt: skip
    return 0


def register(sub: Subparsers) -> None:
    r = add_command(
        sub,
        "records",
        help="batch records: verify their hash links, export, report, trend and sign",
        example="inspector records report --batch vial-20261206T040000Z-1a2b3c",
    )
    rsub = r.add_subparsers(dest="records_command", required=True, metavar="ACTION")
    v = add_command(
        rsub,
        "verify",
        help="recompute a batch's item chain; exit 1 naming the first bad item",
        example="inspector records verify --all --json",
    )
    target = v.add_mutually_exclusive_group(required=True)
    target.add_argument("--batch", help="batch id")
    target.add_argument("--all", action="store_true", help="every batch of the database")
    add_json_option(v, "the results")
    add_database_argument(v)
    v.set_defaults(func=cmd_verify)
    e = add_command(
        rsub,
        "export",
        help="the batch record, its items and alarms as JSON or CSV (items)",
        example="inspector records export --batch vial-20261206T040000Z-1a2b3c --format json --out b.json --as quinn",
    )
    e.add_argument("--batch", required=True, help="batch id")
    e.add_argument("--format", choices=["csv", "json"], required=True, help="json (everything) or csv (items)")
    e.add_argument("--out", type=Path, required=True, help="file to write")
    e.add_argument("--reason", default="", help="why the copy is made (recorded)")
    add_database_argument(e)
    add_credentials(e, who="the QA or admin user exporting")
    e.set_defaults(func=cmd_export)
    rp = add_command(
        rsub,
        "report",
        help="the batch report (JSON + PDF) from the records, with its signatures",
        example="inspector records report --batch vial-20261206T040000Z-1a2b3c",
    )
    rp.add_argument("--batch", required=True, help="batch id")
    rp.add_argument("--out", default=None, help="folder (default: reports/BATCH beside the database)")
    add_json_option(rp, "where it was written")
    add_database_argument(rp)
    rp.set_defaults(func=cmd_report)
    tr = add_command(
        rsub,
        "trend",
        help="reject rate per class across a recipe's batches, with its limits (PNG, PDF)",
        example="inspector records trend --recipe vial-10r-clear --last 30",
    )
    tr.add_argument("--recipe", required=True, help="recipe id (as in the batch records)")
    tr.add_argument("--last", type=bounded(int, low=1, high=10_000), default=30, help="the newest N batches")
    tr.add_argument("--out", default=None, help="folder (default: reports/trend-RECIPE beside the database)")
    add_json_option(tr, "where it was written")
    add_database_argument(tr)
    tr.set_defaults(func=cmd_trend)
    s = add_command(
        rsub,
        "sign",
        help="sign the batch report: the operator authored, then QA reviewed",
        example="inspector records sign --batch vial-20261206T040000Z-1a2b3c --meaning reviewed "
        "--reason 'batch record reviewed' --as quinn",
    )
    s.add_argument("--batch", required=True, help="batch id")
    s.add_argument("--meaning", choices=["authored", "reviewed"], required=True, help="what the signature means")
    s.add_argument("--reason", required=True, help="recorded with the signature")
    s.add_argument("--out", default=None, help="folder the signed report is written to (default: reports/BATCH)")
    add_database_argument(s)
    add_credentials(s, who="the signer")
    s.set_defaults(func=cmd_sign)
