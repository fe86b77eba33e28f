"""``inspector qualify``: run a qualification suite through the production station, sign its report.

    inspector qualify --suite qualification/vial.yaml --out reports/vial-oq --as erin
    inspector qualify sign --run QUAL-... --report reports/vial-oq --meaning reviewed --as quinn
    inspector qualify list

A run is formal when the suite file (by its hash) was approved before it started (``inspector
suites register | review | approve``). Exit status: 0 passed, 1 done and a criterion failed, 2
refused. ``DIR/report.json`` is what is signed; ``DIR/report.pdf`` is written again after each
signature with the signature block filled in.
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
    bounded,
    emit_json,
    gxp_errors,
    read_password,
    station_config,
    station_errors,
)


def _progress(name: str, done: int, total: int) -> None:
    end = "\n" if done >= total else ""
    width = 30
    filled = int(width * done / max(total, 1))
    print(
        f"\r[{name}] [{'#' * filled}{'.' * (width - filled)}] {done}/{total}   ", end=end, file=sys.stderr, flush=True
    )


def cmd_run(args: argparse.Namespace) -> int:
    from inspector.config.errors import ConfigError
    from inspector.config.recipe import load_recipe
    from inspector.config.suite import load_suite
    from inspector.inference.package import ModelIntegrityError, load_package
    from inspector.qualification.report import write_pdf
    from inspector.qualification.runner import QualificationError, run_suite
    from inspector.records import RecordStore, qualification
    from inspector.records.audit import Actor
    from inspector.records.users import authenticate, require
    from inspector.roles import Action
    from inspector.station.session import prepare_records

    args.recipe = None
    config, root = station_config(args)
    if config.records is None:
        raise CliError("a qualification is recorded: the station needs a record database")
    db = Path(config.records.database)
    db = db if db.is_absolute() else root / db
    suite_path = Path(args.suite)
    if not suite_path.is_absolute() and not suite_path.exists():
        suite_path = root / suite_path
    cache = Path(args.cache) if Path(args.cache).is_absolute() else root / args.cache
    try:
        loaded = load_suite(suite_path)
        recipe = load_recipe(loaded.suite.recipe, root)
        model = recipe.recipe.model.path
        package = load_package(Path(model) if Path(model).is_absolute() else root / model, recipe.recipe.model.sha256)
        prepare_records(db, config.mode)
    except (ConfigError, ModelIntegrityError, ValueError) as exc:
        raise CliError(str(exc)) from None
    import time
    import uuid

    run_id = f"QUAL-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    with RecordStore(db) as store:
        try:
            if args.as_user:
                actor = authenticate(store, args.as_user, read_password(args, f"password of {args.as_user}: "))
                require(actor, Action.RUN_QUALIFICATION)
            elif config.mode == "production":
                raise CliError("a production station runs a qualification for a logged-in user: --as USER")
            else:
                actor = Actor("demo", "demo", "Demo station (nobody logged in)")
            run = qualification.create(
                store, actor, run_id=run_id, suite_id=loaded.object_id, suite_sha256=loaded.sha256,
                recipe_id=f"{recipe.recipe.recipe_id}@{recipe.recipe.version}", recipe_sha256=recipe.sha256,
                model_id=package.object_id, model_digest=package.digest,
            )  # fmt: skip
            qualification.start(store, actor, run_id)
        except gxp_errors() as exc:
            raise CliError(str(exc)) from None
    if not run.formal:
        print(f"note: suite {loaded.object_id} is not approved with this hash: an informal run", file=sys.stderr)
    out = Path(args.out)
    refused: tuple[type[BaseException], ...] = (QualificationError, *station_errors())
    try:
        # A demo station without --as runs as itself (informal); the recorded run names "demo".
        report = run_suite(loaded, config, root=root, out=out, cache=cache, actor=actor if args.as_user else None,
                           run_id=run_id, progress=None if args.quiet else _progress, workers=args.workers)  # fmt: skip
    except refused as exc:
        with RecordStore(db) as store:
            qualification.abort(store, actor, run_id, f"refused: {exc}")
        raise CliError(str(exc)) from None
    except BaseException as exc:
        with RecordStore(db) as store:
            qualification.abort(store, actor, run_id, f"aborted: {type(exc).__name__}: {exc}")
        raise
    report["formal"] = run.formal
    with RecordStore(db) as store:
        summary = {k: report["result"][k] for k in ("presentations", "items", "critical_escapes", "checks", "passed")}
        qualification.complete(store, actor, run_id, passed=bool(report["passed"]),
                               report_sha256=report["report_sha256"], result=summary)  # fmt: skip
    write_pdf(report, out / "report.pdf")
    line = {
        "run_id": run_id,
        "formal": run.formal,
        "passed": report["passed"],
        "items_per_s": report["performance"]["items_per_s"],
        "latency_ms_p99": report["performance"]["latency_ms_p99_worst_batch"],
        "report": str(out / "report.pdf"),
    }
    for c in report["result"]["checks"]:
        print(f"  {'pass' if c['passed'] else 'FAIL'}  {c['criterion']}: {c['value']} ({c['limit']})", file=sys.stderr)
    print(f"qualification {run_id}: {'PASSED' if report['passed'] else 'FAILED'}", file=sys.stderr)
    emit_json(args, line)
    return 0 if report["passed"] else 1


def cmd_sign(args: argparse.Namespace) -> int:
    from inspector.cli.common import database
    from inspector.qualification.signing import ReportMismatchError, report_of, sign_report
    from inspector.records import RecordStore

    folder = Path(args.report)
    try:
        report_of(folder)
    except ReportMismatchError as exc:
        raise CliError(str(exc)) from None
    if not args.as_user:
        raise CliError("name the QA user signing with --as USER")
    password = read_password(args, f"password of {args.as_user} (signing {args.meaning} of {args.run}): ")
    refused: tuple[type[BaseException], ...] = (*gxp_errors(), ReportMismatchError)
    with RecordStore(database(args)) as store:
        try:
            sign_report(store, folder, run_id=args.run, meaning=args.meaning, username=args.as_user,
                        password=password, reason=args.reason)  # fmt: skip
        except refused as exc:
            raise CliError(str(exc)) from None
    print(f"qualification {args.run}: signed {args.meaning}; {folder / 'report.pdf'} written", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from inspector.cli.common import database
    from inspector.records import RecordStore, qualification

    with RecordStore(database(args)) as store:
        runs = qualification.runs(store)
    if args.json is not None:
        emit_json(args, [{k: v for k, v in r.__dict__.items() if k != "result"} for r in runs])
        return 0
    for r in runs:
        verdict = "-" if r.passed is None else "passed" if r.passed else "FAILED"
        kind = "formal" if r.formal else "informal"
        print(f"{r.run_id:32} {r.state:10} {verdict:7} {kind:8} {r.suite_id} {r.model_id}", file=sys.stderr)
    return 0


def register(sub: Subparsers) -> None:
    q = add_command(
        sub,
        "qualify",
        help="run a qualification suite through the production station; sign its report",
        example="inspector qualify --suite qualification/vial.yaml --out reports/vial-oq --as erin",
    )
    qs = q.add_subparsers(dest="qualify_command", metavar="ACTION")
    q.add_argument("--suite", default=None, help="suite file (qualification/NAME.yaml)")
    q.add_argument("--out", default=None, help="folder for report.json and report.pdf")
    q.add_argument("--cache", default="var/qualification-sets", help="where rendered challenge sets are kept")
    q.add_argument(
        "--workers",
        type=bounded(int, low=1, high=256),
        default=None,
        help="processes rendering the sets (default: all cores)",
    )
    add_json_option(q, "the outcome")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--db", default=None, help="station record database (default: the station file's)")
    q.add_argument("--station", default=None, help="station file (default: the demo); its camera is replaced")
    add_credentials(q, who="the engineer or QA user running it (production: required)")

    def run_or_help(args: argparse.Namespace) -> int:
        if not args.suite or not args.out:
            raise CliError("give --suite FILE and --out DIR (or an action: sign, list)")
        return cmd_run(args)

    q.set_defaults(func=run_or_help)
    sign = add_command(
        qs,
        "sign",
        help="QA signs a completed run's report: reviewed, then approved (another person)",
        example="inspector qualify sign --run QUAL-20261206T040000Z-1a2b3c --report reports/vial-oq "
        "--meaning reviewed --reason 'report reviewed' --as quinn",
    )
    sign.add_argument("--run", required=True, help="the run id (inspector qualify list)")
    sign.add_argument("--report", required=True, help="the folder with the run's report.json")
    sign.add_argument("--meaning", required=True, choices=["reviewed", "approved"], help="what the signature means")
    sign.add_argument("--reason", required=True, help="recorded with the signature")
    add_database_argument(sign)
    add_credentials(sign, who="the QA user signing")
    sign.set_defaults(func=cmd_sign)
    ls = add_command(
        qs, "list", help="every qualification run with its state and verdict", example="inspector qualify list --json"
    )
    add_json_option(ls, "the runs")
    add_database_argument(ls)
    ls.set_defaults(func=cmd_list)
