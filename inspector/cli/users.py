"""``inspector users`` and ``inspector settings``: accounts and station settings (admin), audited.

Passwords are asked for on the terminal or read from standard input (``--password-stdin``,
one per line: the acting admin's first, then the new one), never from an argument.

    inspector users add --role admin --full-name "Ada Admin" ada     (the station's first account)
    inspector users add --role qa --full-name "Quinn QA" quinn --as ada --reason "QA lead, line 1"
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

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
from inspector.roles import Role

if TYPE_CHECKING:
    from inspector.records import RecordStore
    from inspector.records.audit import Actor


def acting(args: argparse.Namespace, store: RecordStore, *, role: str = "user") -> Actor:
    """The person acting (``--as``), authenticated now with their password (audited login)."""
    from inspector.records.users import authenticate

    if not args.as_user:
        raise CliError(f"name the {role} acting with --as USER")
    return authenticate(store, args.as_user, read_password(args, f"password of {args.as_user}: "))


def cmd_add(args: argparse.Namespace) -> int:
    from inspector.records import RecordStore
    from inspector.records.users import add_user, users

    with RecordStore(database(args)) as store:
        try:
            first = not users(store)
            by = None if first and not args.as_user else acting(args, store, role="admin")
            password = read_password(args, f"new password for {args.username}: ", confirm=True)
            reason = args.reason or ("the station's first account" if by is None else "")
            u = add_user(store, by, args.username, args.full_name, args.role, password, reason=reason)
        except gxp_errors() as exc:
            raise CliError(str(exc)) from None
    print(f"user {u.username} ({u.role.value}) added", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from inspector.records import RecordStore
    from inspector.records.users import users

    with RecordStore(database(args)) as store:
        rows = users(store)
    if args.json is not None:
        emit_json(args, [{**r.__dict__, "role": r.role.value} for r in rows])
        return 0
    print(f"{'user':16} {'name':28} {'role':9} {'state':12} created", file=sys.stderr)
    for r in rows:
        state = "deactivated" if not r.active else "LOCKED" if r.locked else "active"
        state += " (demo)" if r.demo else ""
        print(f"{r.username:16} {r.full_name:28} {r.role.value:9} {state:12} {r.created_utc[:19]}", file=sys.stderr)
    return 0


def _admin_change(args: argparse.Namespace, what: str) -> int:
    from inspector.records import RecordStore
    from inspector.records import users as accounts

    with RecordStore(database(args)) as store:
        try:
            by = acting(args, store, role="admin")
            if what == "deactivate":
                accounts.deactivate(store, by, args.username, reason=args.reason)
            elif what == "unlock":
                accounts.unlock(store, by, args.username, reason=args.reason)
            elif what == "reset-password":
                password = read_password(args, f"new password for {args.username}: ", confirm=True)
                accounts.reset_password(store, by, args.username, password, reason=args.reason)
            elif what == "role":
                accounts.change_role(store, by, args.username, args.role, reason=args.reason)
        except gxp_errors() as exc:
            raise CliError(str(exc)) from None
    print(f"user {args.username}: {what} done", file=sys.stderr)
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from inspector.records import RecordStore
    from inspector.records.users import SETTINGS, set_setting, setting

    with RecordStore(database(args)) as store:
        try:
            if args.key is not None:
                if args.value is None:
                    raise CliError("give the new value after the setting's name")
                set_setting(store, acting(args, store, role="admin"), args.key, args.value, reason=args.reason)
            values = {k: setting(store, k) for k in SETTINGS}
        except gxp_errors() as exc:
            raise CliError(str(exc)) from None
    if args.json is not None:
        emit_json(args, values)
    else:
        say(*(f"{k}: {v}" for k, v in values.items()))
    return 0


def register(sub: Subparsers) -> None:
    u = add_command(
        sub,
        "users",
        help="user accounts of the station (admin): add, list, deactivate, unlock, ...",
        example="inspector users unlock olga --reason 'identity confirmed' --as ada",
    )
    us = u.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    add = add_command(
        us,
        "add",
        help="add an account; the first one of a station is its admin",
        example="inspector users add quinn --role qa --full-name 'Quinn Adler' --reason 'QA joined line 3' --as ada",
    )
    add.add_argument("username", help="lower-case letters, digits, '.', '_' or '-'")
    add.add_argument("--role", required=True, choices=[r.value for r in Role], help="what the account may do")
    add.add_argument("--full-name", required=True, help="the person's full name, shown with their signatures")
    add.add_argument("--reason", default="", help="why (mandatory except for the first account)")
    add_database_argument(add)
    add_credentials(add, who="the admin adding the account (not for the first one)")
    add.set_defaults(func=cmd_add)

    ls = add_command(
        us,
        "list",
        help="every account, active or not (accounts are never deleted)",
        example="inspector users list --json",
    )
    add_json_option(ls, "the accounts")
    add_database_argument(ls)
    ls.set_defaults(func=cmd_list)

    for name, helptext in (
        ("deactivate", "deactivate an account (for ever: accounts are never reactivated or deleted)"),
        ("unlock", "unlock an account locked after failed logins"),
        ("reset-password", "set a new password for an account"),
        ("role", "change an account's role"),
    ):
        extra = " --role engineer" if name == "role" else ""
        p = add_command(
            us,
            name,
            help=helptext,
            example=f"inspector users {name} olga{extra} --reason 'change request CR-042' --as ada",
        )
        p.add_argument("username", help="the account")
        if name == "role":
            p.add_argument("--role", required=True, choices=[r.value for r in Role], help="the new role")
        p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
        add_database_argument(p)
        add_credentials(p, who="the admin acting")
        p.set_defaults(func=lambda a, what=name: _admin_change(a, what))

    s = add_command(
        sub,
        "settings",
        help="station settings (lockout_after, idle_logout_s); changing one is audited",
        example="inspector settings idle_logout_s 600 --reason 'SOP-17 rev 3' --as ada",
    )
    s.add_argument("key", nargs="?", default=None, help="setting to change; none: print them all")
    s.add_argument("value", nargs="?", type=bounded(int, low=0), default=None, help="its new value")
    add_json_option(s, "the settings")
    s.add_argument("--reason", default="", help="why (mandatory for a change)")
    add_database_argument(s)
    add_credentials(s, who="the admin acting")
    s.set_defaults(func=cmd_settings)
