"""User accounts, authentication, lockout and station settings, in the station database.

Accounts are unique and never deleted: they are deactivated, and a deactivated account stays
so (its name is never reused). Passwords are hashed with Argon2id (argon2-cffi, a memory-hard
KDF); a password is never stored, logged or taken from a command-line argument. After
``lockout_after`` failed logins in a row an account is locked until an admin unlocks it.
Every change to an account, every login, logout, failed login and lockout writes an audit
entry in the same transaction as the change. What each role may do: :mod:`inspector.roles`.

The first account of a station is its admin, added without anyone logged in
(``inspector users add --role admin NAME``); after that only an admin adds accounts. A demo
database (never a production one) is seeded with documented demo accounts.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from inspector.events import utc_now
from inspector.records import audit
from inspector.records.audit import Actor
from inspector.records.store import RecordConstraintError, RecordError, RecordStore
from inspector.roles import Action, Role, allowed

MIN_PASSWORD_LENGTH = 10
SETTINGS = {"lockout_after": (1, 20), "idle_logout_s": (30, 86_400)}
MODE_KEY = "station_mode"

_HASHER = PasswordHasher()  # Argon2id, 64 MiB, t=3, p=4 (the library's defaults)

#: Demo database only (README): user name, full name, role, password.
DEMO_ACCOUNTS = (
    ("operator", "Demo Operator", Role.OPERATOR, "operator-demo"),
    ("engineer", "Demo Engineer", Role.ENGINEER, "engineer-demo"),
    ("qa", "Demo QA", Role.QA, "qa-demo-pass"),
    ("admin", "Demo Admin", Role.ADMIN, "admin-demo"),
)


class AuthenticationError(RecordError):
    """Wrong user name or password, or an account that may not log in (locked, deactivated)."""


class PermissionDenied(RecordError):
    """The user's role does not allow the action (least privilege)."""


class StationModeError(RecordError):
    """The database belongs to a station of another mode (demo data never enters a production database)."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    full_name: str
    role: Role
    active: bool
    locked: bool
    failed_logins: int
    demo: bool
    created_utc: str

    def actor(self) -> Actor:
        return Actor(self.username, self.role.value, self.full_name, self.id)


def require(actor: Actor, action: Action) -> None:
    """Refuse unless ``actor``'s role allows ``action``."""
    if actor.role not in Role.__members__.values() or not allowed(actor.role, action):
        raise PermissionDenied(f"{actor.username} ({actor.role}) may not {action.value.replace('_', ' ')}")


def _user(row: tuple[object, ...]) -> User:
    uid, username, full_name, role, active, locked, failed, demo, created = row
    return User(
        int(uid),  # type: ignore[call-overload]
        str(username),
        str(full_name),
        Role(str(role)),
        bool(active),
        bool(locked),
        int(failed),  # type: ignore[call-overload]
        bool(demo),
        str(created),
    )


_USER_COLUMNS = "id, username, full_name, role, active, locked, failed_logins, demo, created_utc"


def users(store: RecordStore) -> list[User]:
    return [_user(tuple(r)) for r in store.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY id")]


def user(store: RecordStore, username: str) -> User:
    row = store.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,)).fetchone()
    if row is None:
        raise RecordError(f"no user {username!r}")
    return _user(tuple(row))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RecordConstraintError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def _public(u: User) -> dict[str, object]:
    """What the audit trail keeps of an account (never the password hash)."""
    return {
        "username": u.username,
        "full_name": u.full_name,
        "role": u.role.value,
        "active": u.active,
        "locked": u.locked,
    }


def add_user(
    store: RecordStore,
    by: Actor | None,
    username: str,
    full_name: str,
    role: Role | str,
    password: str,
    *,
    reason: str,
    demo: bool = False,
) -> User:
    """Add an account. With no account yet, ``by`` is ``None`` and the first account must be an admin."""
    role = Role(role)
    _check_password(password)
    with store.transaction():
        first = store.execute("SELECT count(*) FROM users").fetchone()[0] == 0
        if by is None:
            if not first and not demo:
                raise PermissionDenied("only an admin adds accounts once the first one exists")
            if role is not Role.ADMIN and not demo:
                raise PermissionDenied("the first account of a station is its admin")
            by = audit.SYSTEM_ACTOR if demo else Actor(username, role.value, full_name)
        else:
            require(by, Action.MANAGE_USERS)
        if demo and store_mode(store) == "production":
            raise StationModeError("demo accounts are never added to a production database")
        try:
            cur = store.execute(
                "INSERT INTO users (username, full_name, role, password_hash, demo, created_utc)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (username, full_name.strip(), role.value, _HASHER.hash(password), int(demo), utc_now()),
            )
        except Exception as exc:
            if "UNIQUE" in str(exc):
                raise RecordConstraintError(f"user {username!r} exists (accounts are never reused)") from None
            raise RecordConstraintError(f"user {username!r}: {exc}") from None
        new = user(store, username)
        audit.append(store, by, "user.add", object_type="user", object_id=username, new=_public(new), reason=reason)
        assert cur.lastrowid is not None
    return new


def _update(
    store: RecordStore, by: Actor, username: str, action: str, sql: str, params: tuple[object, ...], reason: str
) -> User:
    require(by, Action.MANAGE_USERS)
    with store.transaction():
        old = user(store, username)
        store.execute(f"UPDATE users SET {sql} WHERE username = ?", (*params, username))
        new = user(store, username)
        audit.append(
            store, by, action, object_type="user", object_id=username, old=_public(old), new=_public(new), reason=reason
        )
    return new


def deactivate(store: RecordStore, by: Actor, username: str, *, reason: str) -> User:
    if by.username == username:
        raise PermissionDenied("an admin cannot deactivate their own account")
    return _update(store, by, username, "user.deactivate", "active = 0", (), reason)


def unlock(store: RecordStore, by: Actor, username: str, *, reason: str) -> User:
    return _update(store, by, username, "user.unlock", "locked = 0, failed_logins = 0", (), reason)


def change_role(store: RecordStore, by: Actor, username: str, role: Role | str, *, reason: str) -> User:
    if by.username == username:
        raise PermissionDenied("nobody changes their own role")
    return _update(store, by, username, "user.role", "role = ?", (Role(role).value,), reason)


def reset_password(store: RecordStore, by: Actor, username: str, password: str, *, reason: str) -> User:
    _check_password(password)
    return _update(store, by, username, "user.password_reset", "password_hash = ?", (_HASHER.hash(password),), reason)


def authenticate(store: RecordStore, username: str, password: str, *, purpose: str = "login") -> Actor:
    """The actor for ``username`` if ``password`` is right; every outcome but a re-authentication is audited.

    ``purpose`` ``login`` writes a login entry; ``reauthenticate`` (signing) writes none on success
    (the signature's own entry records it). A failure counts toward the lockout either way.
    """
    if store.in_transaction:  # a failure must commit (lockout, audit) even though the caller's work is refused
        raise RecordConstraintError("authenticate() commits on its own; call it outside a transaction")
    failure: str | None = None
    with store.transaction():
        row = store.execute(
            f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE username = ?", (username,)
        ).fetchone()
        if row is None:
            # No account at all says nothing about anyone's: the answer can say what to do.
            empty = store.execute("SELECT 1 FROM users LIMIT 1").fetchone() is None
            audit.append(
                store, Actor(username or "?", "unknown"), "login_failed", object_type="user", object_id=username,
                new={"purpose": purpose, "why": "no accounts" if empty else "unknown user"},
            )  # fmt: skip
            failure = (
                "this station's records have no user accounts yet: add its first, an admin"
                " (inspector users add --role admin)"
                if empty
                else "wrong user name or password"
            )
        else:
            u, stored = _user(tuple(row)[:9]), str(row[9])
            actor = u.actor()
            if not u.active:
                failure = f"account {username!r} is deactivated"
            elif u.locked:
                failure = f"account {username!r} is locked: an admin must unlock it"
            elif not _password_ok(stored, password):
                failure = "wrong user name or password"
                limit = setting(store, "lockout_after")
                failed = u.failed_logins + 1
                lock = failed >= limit
                store.execute(
                    "UPDATE users SET failed_logins = ?, locked = ? WHERE id = ?", (failed, int(lock or u.locked), u.id)
                )
                if lock:
                    audit.append(
                        store, actor, "lockout", object_type="user", object_id=username,
                        new={"failed_logins": failed, "lockout_after": limit},
                    )  # fmt: skip
            if failure is not None:
                audit.append(
                    store, actor, "login_failed", object_type="user", object_id=username,
                    new={"purpose": purpose, "why": failure},
                )  # fmt: skip
            else:
                if u.failed_logins:
                    store.execute("UPDATE users SET failed_logins = 0 WHERE id = ?", (u.id,))
                if purpose == "login":
                    audit.append(store, actor, "login", object_type="user", object_id=username)
    if failure is not None:
        raise AuthenticationError(failure)
    return actor


def _password_ok(stored: str, password: str) -> bool:
    try:
        return bool(_HASHER.verify(stored, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def logout(store: RecordStore, actor: Actor, *, idle: bool = False) -> None:
    audit.append(store, actor, "idle_logout" if idle else "logout", object_type="user", object_id=actor.username)


# -- settings -------------------------------------------------------------------------------------


def setting(store: RecordStore, key: str) -> int:
    if key not in SETTINGS:
        raise RecordConstraintError(f"unknown station setting {key!r}; known: {', '.join(SETTINGS)}")
    row = store.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return int(row[0])


def set_setting(store: RecordStore, by: Actor, key: str, value: int, *, reason: str) -> None:
    require(by, Action.CHANGE_SETTINGS)
    lo, hi = SETTINGS.get(key, (0, -1))
    if key not in SETTINGS or not lo <= value <= hi:
        raise RecordConstraintError(f"setting {key}: {value} is outside {lo}..{hi}")
    with store.transaction():
        old = setting(store, key)
        store.execute("UPDATE settings SET value = ? WHERE key = ?", (str(value), key))
        audit.append(
            store, by, "setting.change", object_type="setting", object_id=key, old=old, new=value, reason=reason
        )


def store_mode(store: RecordStore) -> str | None:
    """The mode of the station this database belongs to (``demo`` / ``production``), once claimed."""
    row = store.execute("SELECT value FROM settings WHERE key = ?", (MODE_KEY,)).fetchone()
    return None if row is None else str(row[0])


def claim_mode(store: RecordStore, mode: str) -> None:
    """Bind the database to a station mode on first use; refuse a database of the other mode."""
    with store.transaction():
        current = store_mode(store)
        if current is None:
            store.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (MODE_KEY, mode))
            audit.append(
                store, audit.SYSTEM_ACTOR, "station.mode", object_type="station", object_id="mode", new=mode,
                reason="first use of this record database",
            )  # fmt: skip
        elif current != mode:
            raise StationModeError(
                f"this record database belongs to a {current} station; a {mode} station needs its own database"
            )


def seed_demo_accounts(store: RecordStore) -> list[User]:
    """The documented demo accounts, in a demo database with no accounts yet (else nothing)."""
    if store_mode(store) != "demo":
        raise StationModeError("demo accounts are seeded in a demo station's database only")
    if store.execute("SELECT count(*) FROM users").fetchone()[0]:
        return []
    added = []
    with store.transaction():
        for username, full_name, role, password in DEMO_ACCOUNTS:
            added.append(
                add_user(store, None, username, full_name, role, password, reason="demo accounts (README)", demo=True)
            )
    return added
