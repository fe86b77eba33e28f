"""Electronic signatures (21 CFR 11.50, 11.70, 11.200): bound to what was signed, re-authenticated, four eyes.

A signature records the signer (user id, user name, full name, role), the UTC time, its
meaning (authored, reviewed, approved, released, rejected), a reason, and the SHA-256 of the
signed object's canonical content. It is valid only while the object still has that hash:
:func:`status` says ``INVALID`` as soon as the object changed, wherever the signature is shown.
Signing asks for the password again even when the signer is logged in. The author of an
object cannot review, approve, release or reject it. Each signature writes an audit entry in
the same transaction; the schema refuses to change or delete a signature.
"""

from __future__ import annotations

from dataclasses import dataclass

from inspector.events import utc_now
from inspector.records import audit
from inspector.records.audit import Actor
from inspector.records.store import RecordConstraintError, RecordError, RecordStore
from inspector.records.users import authenticate, require
from inspector.roles import Action, Meaning


class FourEyesError(RecordError):
    """The author of an object may not review, approve, release or reject it."""


@dataclass(frozen=True)
class Signature:
    id: int
    object_type: str
    object_id: str
    object_sha256: str
    meaning: Meaning
    user_id: int
    username: str
    full_name: str
    role: str
    signed_utc: str
    reason: str
    audit_seq: int

    def manifestation(self) -> str:
        """What every human-readable view shows of it (11.50): name, time, meaning."""
        return f"{self.full_name} ({self.username}), {self.signed_utc}, {self.meaning.value}"


def signing_action(meaning: Meaning, object_type: str) -> Action:
    """The action a signature of this meaning on this kind of object needs."""
    if object_type == "batch_report":  # the operator who ran it signs authored, QA the rest
        return Action.RUN_BATCH if meaning is Meaning.AUTHORED else Action.SIGN_REPORT
    if object_type in ("report", "qualification"):
        return Action.SIGN_REPORT  # QA signs reports, reviewed and approved alike
    if meaning is Meaning.AUTHORED:
        return {"recipe": Action.AUTHOR_RECIPE, "suite": Action.AUTHOR_SUITE}.get(object_type, Action.AUTHOR_MODEL)
    if meaning is Meaning.REVIEWED:
        return Action.REVIEW_RELEASE
    return Action.APPROVE_RELEASE


_COLUMNS = (
    "id, object_type, object_id, object_sha256, meaning, user_id, username, full_name, role, signed_utc, reason,"
    " audit_seq"
)


def _signature(row: tuple[object, ...]) -> Signature:
    values = list(row)
    values[4] = Meaning(str(values[4]))
    return Signature(*values)  # type: ignore[arg-type]


def signatures(store: RecordStore, object_type: str, object_id: str) -> list[Signature]:
    cur = store.execute(
        f"SELECT {_COLUMNS} FROM signatures WHERE object_type = ? AND object_id = ? ORDER BY id",
        (object_type, object_id),
    )
    return [_signature(tuple(r)) for r in cur]


def status(signature: Signature, current_sha256: str) -> str:
    """``valid`` while the object is unchanged, else ``INVALID (object changed since it was signed)``."""
    return "valid" if signature.object_sha256 == current_sha256 else "INVALID (object changed since it was signed)"


def sign(
    store: RecordStore,
    *,
    username: str,
    password: str,
    object_type: str,
    object_id: str,
    object_sha256: str,
    meaning: Meaning | str,
    reason: str,
) -> Signature:
    """Re-authenticate ``username``, check role and four eyes, and store the signature with its audit entry.

    The re-authentication commits on its own, before anything else: a wrong password counts
    toward the lockout (and is audited) even though the signature is refused.
    """
    if store.in_transaction:
        raise RecordConstraintError("sign() re-authenticates first; call it outside a transaction")
    actor = authenticate(store, username, password, purpose="reauthenticate")
    return sign_as(
        store, actor, object_type=object_type, object_id=object_id, object_sha256=object_sha256,
        meaning=meaning, reason=reason,
    )  # fmt: skip


def sign_as(
    store: RecordStore,
    actor: Actor,
    *,
    object_type: str,
    object_id: str,
    object_sha256: str,
    meaning: Meaning | str,
    reason: str,
) -> Signature:
    """Store a signature for an actor re-authenticated just now (:func:`sign` or the lifecycle does that)."""
    meaning = Meaning(meaning)
    if len(object_sha256) != 64:
        raise RecordConstraintError(f"{object_type} {object_id}: a signature binds a SHA-256 (64 hex digits)")
    require(actor, signing_action(meaning, object_type))
    if meaning is not Meaning.AUTHORED:
        authors = {
            s.username
            for s in signatures(store, object_type, object_id)
            if s.meaning is Meaning.AUTHORED and s.object_sha256 == object_sha256
        }
        if actor.username in authors:
            raise FourEyesError(f"{actor.username} authored {object_type} {object_id}: another person must {meaning}")
    with store.transaction():
        entry = audit.append(
            store,
            actor,
            f"sign.{meaning.value}",
            object_type=object_type,
            object_id=object_id,
            new={"sha256": object_sha256, "meaning": meaning.value, "full_name": actor.full_name},
            reason=reason,
        )
        cur = store.execute(
            "INSERT INTO signatures (object_type, object_id, object_sha256, meaning, user_id, username, full_name,"
            " role, signed_utc, reason, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                object_type,
                object_id,
                object_sha256,
                meaning.value,
                actor.user_id,
                actor.username,
                actor.full_name,
                actor.role,
                entry.at_utc or utc_now(),
                entry.reason,
                entry.seq,
            ),
        )
        sig_id = cur.lastrowid
    row = store.execute(f"SELECT {_COLUMNS} FROM signatures WHERE id = ?", (sig_id,)).fetchone()
    return _signature(tuple(row))
