"""``inspector site init | status | verify | report | push | resume | ack``: the site database that many
stations forward to.

The URL names a PostgreSQL database (``postgresql://USER@HOST:PORT/DB``); a password is best kept
out of it (and out of the process list): libpq reads ``PGPASSWORD`` or ``~/.pgpass``.
"""

from __future__ import annotations

import argparse
import os
import time
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
    say,
)


def _engine(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from inspector.site.db import SiteError, connect

    url = args.url or os.environ.get("INSPECTOR_SITE_URL")
    if not url:
        raise CliError("name the site database: --url postgresql://USER@HOST:PORT/DB (or INSPECTOR_SITE_URL)")
    try:
        return connect(url)
    except SiteError as exc:
        raise CliError(str(exc)) from None


def _site_errors() -> tuple[type[BaseException], ...]:
    from sqlalchemy.exc import OperationalError

    from inspector.site.db import SiteError

    return (SiteError, OperationalError)


def _query(args: argparse.Namespace, query: Any, **kwargs: Any) -> Any:
    """``query(engine, **kwargs)`` on the site database named by ``args``; its errors as one line."""
    engine = _engine(args)
    try:
        return query(engine, **kwargs)
    except _site_errors() as exc:
        raise CliError(f"site database: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()


def cmd_init(args: argparse.Namespace) -> int:
    from inspector.site.db import upgrade

    engine = _engine(args)
    try:
        before, now = upgrade(engine)
    except _site_errors() as exc:
        raise CliError(f"site database: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    say(f"site database at schema revision {now}" + (" (unchanged)" if before == now else f" (was {before})"))
    emit_json(args, {"revision_before": before, "revision": now})
    return 0


def site_status(engine: Any) -> dict[str, Any]:
    """Every station's forwarding as the site sees it, and the site's open alarms."""
    from sqlalchemy import func, select

    from inspector.site import schema as S
    from inspector.site.db import require_current

    require_current(engine)
    now = time.time()
    with engine.connect() as c:
        rows = c.execute(select(S.stations).order_by(S.stations.c.station_id)).mappings().all()
        counts = {}
        for t in ("batches", "items", "alarms", "audit_trail", "qualification_runs"):
            col = S.metadata.tables[t].c.station_id
            counts[t] = dict(c.execute(select(col, func.count()).group_by(col)).all())
        open_alarms = [
            dict(r)
            for r in c.execute(
                select(S.site_alarms).where(S.site_alarms.c.acknowledged_utc.is_(None)).order_by(S.site_alarms.c.id)
            ).mappings()
        ]
    stations = []
    for r in rows:
        pending = r["oldest_pending_at"]
        stations.append(
            {
                "station_id": r["station_id"],
                "cursor": r["cursor"],
                "rows_behind": max(0, r["local_head"] - r["cursor"]),  # as of its last push
                "seconds_behind": 0.0 if pending is None else round(max(0.0, now - pending), 3),
                "last_push_s_ago": None if r["pushed_at"] is None else round(now - r["pushed_at"], 3),
                "halted": r["halted"],
                **{t: counts[t].get(r["station_id"], 0) for t in counts},
            }
        )
    from inspector.site.actions import trail

    return {"stations": stations, "open_site_alarms": open_alarms, "site_actions": trail(engine, limit=5)}


def cmd_status(args: argparse.Namespace) -> int:
    status = _query(args, site_status)
    for s in status["stations"]:
        last = "never" if s["last_push_s_ago"] is None else f"{s['last_push_s_ago']:.1f} s ago"
        say(
            f"{s['station_id']}: {s['items']} items, {s['batches']} batches, {s['audit_trail']} audit entries,"
            f" {s['qualification_runs']} qualification runs;"
            f" {s['rows_behind']} rows / {s['seconds_behind']:.1f} s behind, last push {last}"
            + (f"; HALTED: {s['halted']}" if s["halted"] else "")
        )
    for a in status["open_site_alarms"]:
        say(f"site alarm {a['id']} {a['code']} ({a['raised_utc']}): {a['message']}")
    for e in status["site_actions"]:
        who = f"{e['action']} of {e['station_id']} by {e['username']}"
        say(f"site action {e['seq']} {who} ({e['at_utc']}): {e['reason']}")
    if not status["stations"]:
        say("no station has forwarded to this site yet")
    emit_json(args, status)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from inspector.site.actions import verify_trail
    from inspector.site.db import require_current
    from inspector.site.verify import verify_site

    engine = _engine(args)
    try:
        require_current(engine)
        results = verify_site(engine, raise_alarms=not args.no_alarms)
        site_trail = verify_trail(engine)
    except _site_errors() as exc:
        raise CliError(f"site database: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    for r in results:
        verdict = "verified" if r.ok else "BROKEN"
        say(f"{r.station_id}: {verdict} ({r.audit_entries} audit entries, {r.batches} batches, {r.items} items)")
        for p in r.problems:
            say(f"  {p}")
    verdict = "verified" if site_trail.ok else f"BROKEN: {site_trail.problem}"
    say(f"site audit trail: {verdict} ({site_trail.entries} entries)")
    ok = all(r.ok for r in results) and site_trail.ok
    emit_json(args, {"ok": ok, "stations": [r.as_dict() for r in results], "site_audit": site_trail.as_dict()})
    return 0 if ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    import tempfile

    from inspector.records import RecordStore
    from inspector.reports import batch as batch_report
    from inspector.site.db import require_current
    from inspector.site.mirror import MirrorError, copy_station

    refused: tuple[type[BaseException], ...] = (
        *_site_errors(),
        MirrorError,
        LookupError,
        batch_report.BatchReportError,
    )
    engine = _engine(args)
    out = Path(args.out) if args.out else Path.cwd() / "reports" / args.station_id / args.batch
    try:
        require_current(engine)
        with tempfile.TemporaryDirectory(prefix="inspector-site-report-") as tmp:
            path = copy_station(engine, args.station_id, Path(tmp) / "station.sqlite")
            with RecordStore(path) as store:
                json_path, pdf_path, report = batch_report.write(store, args.batch, out)
    except refused as exc:
        raise CliError(str(exc).splitlines()[0].strip('"')) from None
    finally:
        engine.dispose()
    say(f"batch report {args.batch} of station {args.station_id} from the site: {json_path} and {pdf_path}"
        f" (content sha256 {report['content_sha256'][:12]})")  # fmt: skip
    emit_json(args, {"json": str(json_path), "pdf": str(pdf_path), "content_sha256": report["content_sha256"]})
    return 0


def cmd_qualifications(args: argparse.Namespace) -> int:
    from inspector.site.qualifications import runs

    found = _query(args, runs, station_id=args.station_id, model_digest=args.model_digest, qualifying=args.qualifying)
    for r in found:
        verdict = "-" if r["passed"] is None else "passed" if r["passed"] else "FAILED"
        kind = "formal" if r["formal"] else "informal"
        say(
            f"{r['station_id']} {r['run_id']}: {r['state']}, {verdict}, {kind}; suite {r['suite']['id']}, recipe"
            f" {r['recipe']['id']} ({r['recipe']['sha256'][:12]}), model {r['model']['id']}"
            f" ({r['model']['digest'][:12]})" + ("; QUALIFIES" if r["qualifies"] else "")
        )
        for g in r["signatures"]:
            held = "" if g["holds"] else " (NOT the report's hash)"
            say(f"  {g['meaning']} by {g['full_name']} ({g['username']}, {g['role']}) {g['signed_utc']}{held}")
    if not found:
        say("no qualification run at the site matches")
    emit_json(args, found)
    return 0


def cmd_releases(args: argparse.Namespace) -> int:
    from inspector.site.releases import releases

    found = _query(args, releases, station_id=args.station_id, object_type=args.type)
    for r in found:
        runs = f"; qualified by {', '.join(r['qualified_by'])}" if r["qualified_by"] else ""
        say(
            f"{r['station_id']} {r['object_type']} {r['object_id']} ({r['sha256'][:12]}): {r['state']} since"
            f" {r['since_utc']} by {r['by']} ({r['steps']} steps){runs}"
        )
    if not found:
        say("no released object at the site matches")
    emit_json(args, found)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from inspector.site.forwarder import ChainBreak, Forwarder, Halted

    refused: tuple[type[BaseException], ...] = (*_site_errors(), FileNotFoundError)
    engine = _engine(args)
    db = database(args)
    fwd = Forwarder(db, "", args.station_id, engine=engine, max_rows=args.max_rows)
    total = 0
    try:
        while True:
            n = fwd.push_once()
            total += n
            if n < args.max_rows:
                break
    except (ChainBreak, Halted) as exc:
        say(f"station {args.station_id}: forwarding halted: {exc}")
        emit_json(args, {"pushed": total, "halted": str(exc)})
        return 1
    except refused as exc:
        raise CliError(f"{str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    status = fwd.status()
    say(f"station {args.station_id}: pushed {total} rows; {status.rows_behind} behind")
    emit_json(args, {"pushed": total, **status.as_dict()})
    return 0


def _site_user(args: argparse.Namespace, doing: str):  # type: ignore[no-untyped-def]
    """The person acting, authenticated by a station's accounts and holding the site right."""
    from inspector.config.errors import ConfigError
    from inspector.config.recipe import find_project_root
    from inspector.config.station import load_station_config
    from inspector.records import RecordStore
    from inspector.records.users import authenticate, require, user
    from inspector.roles import Action
    from inspector.site.actions import site_user

    if not args.as_user:
        raise CliError(f"{doing} needs the person acting: --as USER (the password is asked for)")
    account_station = args.account_station
    if account_station is None:
        if args.db:
            raise CliError("with --db, name the station whose accounts those are: --account-station ID")
        try:
            account_station = load_station_config(args.station, find_project_root()).station_id
        except ConfigError as exc:
            raise CliError(str(exc)) from None
    password = read_password(args, f"password of {args.as_user} ({doing}): ")
    try:
        with RecordStore(database(args)) as store:
            actor = authenticate(store, args.as_user, password, purpose="reauthenticate")
            require(actor, Action.SITE_INTERVENE)
            account = user(store, args.as_user)
            return site_user(actor, account.full_name, account_station, account.created_utc)
    except gxp_errors() as exc:
        raise CliError(str(exc)) from None


def _site_action(args: argparse.Namespace, doing: str, act: Any) -> dict[str, Any]:
    """Authenticate the person, then ``act(engine, who)`` on a current site database: its audit entry."""
    from inspector.site.db import require_current

    who = _site_user(args, doing)
    engine = _engine(args)
    try:
        require_current(engine)
        entry: dict[str, Any] = act(engine, who)
    except _site_errors() as exc:
        raise CliError(str(exc).splitlines()[0]) from None
    finally:
        engine.dispose()
    emit_json(args, entry)
    return entry


def cmd_resume(args: argparse.Namespace) -> int:
    from inspector.site.actions import resume

    entry = _site_action(args, f"resuming the forwarding of {args.station_id}",
                         lambda engine, who: resume(engine, who, args.station_id, reason=args.reason))  # fmt: skip
    say(f"station {args.station_id}: forwarding resumed by {entry['username']} (site audit entry {entry['seq']});"
        " its next push checks its rows again")  # fmt: skip
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    from inspector.site.actions import acknowledge

    entry = _site_action(args, f"acknowledging site alarm {args.alarm}",
                         lambda engine, who: acknowledge(engine, who, args.alarm, reason=args.reason))  # fmt: skip
    say(f"site alarm {args.alarm} acknowledged by {entry['username']} (site audit entry {entry['seq']})")
    return 0


def _acting(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", required=True, help="what was found and fixed (kept in the site audit trail)")
    add_credentials(p, who="the QA person acting, an account of the station whose database is named")
    add_database_argument(p)
    p.add_argument(
        "--account-station", default=None, help="the id of the station whose accounts --db holds (default: its file's)"
    )


def _url(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url", default=None, help="site database, postgresql://USER@HOST:PORT/DB (default: INSPECTOR_SITE_URL)"
    )


def register(sub: Subparsers) -> None:
    s = add_command(
        sub,
        "site",
        help="the site database (PostgreSQL) that stations forward their records to",
        example="inspector site status --url postgresql://inspector@qa-db:5432/site",
    )
    ssub = s.add_subparsers(dest="site_command", required=True, metavar="ACTION")
    i = add_command(ssub, "init", help="create or upgrade the site schema (Alembic)",
                    example="inspector site init --url postgresql://inspector@qa-db:5432/site")  # fmt: skip
    _url(i)
    add_json_option(i, "the schema revision")
    i.set_defaults(func=cmd_init)
    st = add_command(ssub, "status", help="each station's forwarding lag, its counts and the site's open alarms",
                     example="inspector site status --url postgresql://inspector@qa-db:5432/site --json")  # fmt: skip
    _url(st)
    add_json_option(st, "the status")
    st.set_defaults(func=cmd_status)
    v = add_command(ssub, "verify", help="recompute every station's audit and item chains; exit 1 on a break",
                    example="inspector site verify --url postgresql://inspector@qa-db:5432/site")  # fmt: skip
    _url(v)
    v.add_argument("--no-alarms", action="store_true", help="report breaks without raising site alarms")
    add_json_option(v, "the verification")
    v.set_defaults(func=cmd_verify)
    r = add_command(ssub, "report", help="a batch report built from the site database, as the station builds it",
                    example="inspector site report --url postgresql://inspector@qa-db:5432/site --station-id line1"
                            " --batch vial-20261206T040000Z-1a2b3c")  # fmt: skip
    _url(r)
    r.add_argument("--station-id", required=True, help="the station the batch ran on")
    r.add_argument("--batch", required=True, help="batch id")
    r.add_argument("--out", default=None, help="folder (default: reports/STATION/BATCH here)")
    add_json_option(r, "where it was written")
    r.set_defaults(func=cmd_report)
    qu = add_command(ssub, "qualifications", help="every station's qualification runs and their report signatures",
                     example="inspector site qualifications --url postgresql://inspector@qa-db:5432/site"
                             " --qualifying")  # fmt: skip
    _url(qu)
    qu.add_argument("--station-id", default=None, help="one station's runs (default: every station's)")
    qu.add_argument("--model-digest", default=None, help="the runs of one model package (its digest)")
    qu.add_argument("--qualifying", action="store_true", help="only runs that qualify: formal, passed, approved")
    add_json_option(qu, "the runs")
    qu.set_defaults(func=cmd_qualifications)
    rl = add_command(ssub, "releases", help="every station's models, recipes and suites: state and qualification",
                     example="inspector site releases --url postgresql://inspector@qa-db:5432/site"
                             " --type model")  # fmt: skip
    _url(rl)
    rl.add_argument("--station-id", default=None, help="one station's objects (default: every station's)")
    rl.add_argument("--type", choices=("model", "recipe", "suite"), default=None, help="one kind of object")
    add_json_option(rl, "the objects")
    rl.set_defaults(func=cmd_releases)
    pu = add_command(ssub, "push", help="push a station database's rows the site does not have yet, now",
                     example="inspector site push --url postgresql://inspector@qa-db:5432/site"
                             " --db var/inspector.sqlite --station-id line1")  # fmt: skip
    _url(pu)
    pu.add_argument("--station-id", required=True, help="the station's id (its station file's station_id)")
    pu.add_argument("--max-rows", type=bounded(int, low=1, high=100_000), default=5000, help="rows per transaction")
    add_database_argument(pu)
    add_json_option(pu, "what was pushed")
    pu.set_defaults(func=cmd_push)
    re_ = add_command(ssub, "resume", help="resume a station's forwarding after its chain break was looked into",
                      example="inspector site resume --url postgresql://inspector@qa-db:5432/site --station-id line1"
                              " --as qa1 --reason 'station file pointed at a restored copy; corrected'")  # fmt: skip
    _url(re_)
    re_.add_argument("--station-id", required=True, help="the halted station")
    _acting(re_)
    add_json_option(re_, "the site audit entry")
    re_.set_defaults(func=cmd_resume)
    ak = add_command(ssub, "ack", help="acknowledge a site alarm (once), with a reason",
                     example="inspector site ack --url postgresql://inspector@qa-db:5432/site --alarm 3 --as qa1"
                             " --reason 'investigated under deviation DEV-0421'")  # fmt: skip
    _url(ak)
    ak.add_argument("--alarm", required=True, type=bounded(int, low=1, high=2**62), help="the site alarm's id")
    _acting(ak)
    add_json_option(ak, "the site audit entry")
    ak.set_defaults(func=cmd_ack)
