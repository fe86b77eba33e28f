"""Release lifecycle of models and recipes, bound to their content hash (draft Annex 22; GAMP 5).

A model package or a recipe file on disk is immutable: a new version is a new object. Its
lifecycle lives here, keyed by object id (``model_id@version``, ``recipe_id@version``) AND
content hash: draft (an engineer registers it, signing "authored") -> reviewed (another
person signs "reviewed") -> approved (QA signs "approved": released for production) ->
retired; a draft or reviewed object may be rejected instead. Every step is a signed (retire:
re-authenticated), audited action by the allowed role, and four eyes hold: its author cannot
review or approve it. A file whose hash differs from the approved one is not approved.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from inspector.records import audit
from inspector.records.signatures import Signature, sign_as, signing_action
from inspector.records.store import RecordError, RecordStore
from inspector.records.users import authenticate, require
from inspector.roles import Action, Meaning

OBJECT_TYPES = ("model", "recipe", "suite")


class ReleaseState(enum.StrEnum):
    DRAFT = "draft"
    REVIEWED = "reviewed"
    APPROVED = "approved"
    RETIRED = "retired"
    REJECTED = "rejected"


class LifecycleError(RecordError):
    """The step is not allowed from the object's current state."""


@dataclass(frozen=True)
class Release:
    object_type: str
    object_id: str
    sha256: str
    state: ReleaseState
    at_utc: str
    username: str
    signature_id: int | None


_COLUMNS = "object_type, object_id, sha256, state, at_utc, username, signature_id"


def _release(row: tuple[object, ...]) -> Release:
    values = list(row)
    values[3] = ReleaseState(str(values[3]))
    return Release(*values)  # type: ignore[arg-type]


def current(store: RecordStore, object_type: str, object_id: str, sha256: str) -> Release | None:
    """The latest step of this object with this content hash, ``None`` if never registered."""
    row = store.execute(
        f"SELECT {_COLUMNS} FROM lifecycle WHERE object_type = ? AND object_id = ? AND sha256 = ? ORDER BY id DESC"
        " LIMIT 1",
        (object_type, object_id, sha256),
    ).fetchone()
    return None if row is None else _release(tuple(row))


def releases(store: RecordStore, object_type: str | None = None) -> list[Release]:
    """The current state of every registered object (and content hash), oldest first."""
    where = "WHERE object_type = ?" if object_type else ""
    cur = store.execute(
        f"SELECT {_COLUMNS} FROM lifecycle WHERE id IN (SELECT max(id) FROM lifecycle {where}"
        " GROUP BY object_type, object_id, sha256) ORDER BY id",
        (object_type,) if object_type else (),
    )
    return [_release(tuple(r)) for r in cur]


def history(store: RecordStore, object_type: str, object_id: str) -> list[Release]:
    cur = store.execute(
        f"SELECT {_COLUMNS} FROM lifecycle WHERE object_type = ? AND object_id = ? ORDER BY id",
        (object_type, object_id),
    )
    return [_release(tuple(r)) for r in cur]


def _step(store: RecordStore, object_type: str, object_id: str, sha256: str, state: ReleaseState,
          username: str, signature: Signature | None, audit_seq: int) -> Release:  # fmt: skip
    store.execute(
        "INSERT INTO lifecycle (object_type, object_id, sha256, state, at_utc, username, signature_id, audit_seq)"
        " VALUES (?, ?, ?, ?, (SELECT at_utc FROM audit_trail WHERE seq = ?), ?, ?, ?)",
        (object_type, object_id, sha256, state.value, audit_seq, username, signature.id if signature else None,
         audit_seq),
    )  # fmt: skip
    found = current(store, object_type, object_id, sha256)
    assert found is not None
    return found


_FROM: dict[Meaning, tuple[frozenset[ReleaseState | None], ReleaseState]] = {
    Meaning.AUTHORED: (frozenset({None}), ReleaseState.DRAFT),
    Meaning.REVIEWED: (frozenset({ReleaseState.DRAFT}), ReleaseState.REVIEWED),
    Meaning.APPROVED: (frozenset({ReleaseState.REVIEWED}), ReleaseState.APPROVED),
    Meaning.REJECTED: (frozenset({ReleaseState.DRAFT, ReleaseState.REVIEWED}), ReleaseState.REJECTED),
}


def signed_step(
    store: RecordStore,
    meaning: Meaning | str,
    *,
    username: str,
    password: str,
    object_type: str,
    object_id: str,
    sha256: str,
    reason: str,
) -> Release:
    """Register (authored), review, approve or reject an object: a signature and a lifecycle step, together."""
    meaning = Meaning(meaning)
    if object_type not in OBJECT_TYPES:
        raise LifecycleError(f"unknown object type {object_type!r}; choose {', '.join(OBJECT_TYPES)}")
    if meaning not in _FROM:
        raise LifecycleError(f"a {meaning.value} signature is not a lifecycle step")
    allowed_from, to = _FROM[meaning]
    if store.in_transaction:
        raise LifecycleError("a signed step re-authenticates first; call it outside a transaction")
    # Re-authentication commits on its own: a wrong password counts even when the step is refused.
    actor = authenticate(store, username, password, purpose="reauthenticate")
    require(actor, signing_action(meaning, object_type))  # who may, before what is missing
    if meaning is Meaning.APPROVED and object_type in ("model", "recipe") and not qualified(store, object_type, sha256):
        raise LifecycleError(
            f"{object_type} {object_id} ({sha256[:12]}) has no passing, approved, formal qualification of this exact"
            f" {'package' if object_type == 'model' else 'file'}: run its suite (inspector qualify) and have QA sign"
            " the report before approving it for production"
        )
    with store.transaction():
        now = current(store, object_type, object_id, sha256)
        state = now.state if now is not None else None
        if state not in allowed_from:
            was = "not registered" if state is None else state.value
            need = ", ".join("unregistered" if s is None else s.value for s in sorted(allowed_from, key=str))
            raise LifecycleError(f"{object_type} {object_id} ({sha256[:12]}) is {was}; {meaning.value} needs {need}")
        signature = sign_as(
            store,
            actor,
            object_type=object_type,
            object_id=object_id,
            object_sha256=sha256,
            meaning=meaning,
            reason=reason,
        )
        return _step(store, object_type, object_id, sha256, to, username, signature, signature.audit_seq)


def retire(
    store: RecordStore, *, username: str, password: str, object_type: str, object_id: str, sha256: str, reason: str
) -> Release:
    """Take an approved object out of production use (re-authenticated, audited)."""
    actor = authenticate(store, username, password, purpose="reauthenticate")
    require(actor, Action.RETIRE_RELEASE)
    with store.transaction():
        now = current(store, object_type, object_id, sha256)
        if now is None or now.state is not ReleaseState.APPROVED:
            raise LifecycleError(f"{object_type} {object_id} is {now.state.value if now else 'not registered'}; "
                                 "only an approved one can be retired")  # fmt: skip
        entry = audit.append(
            store, actor, "lifecycle.retire", object_type=object_type, object_id=object_id,
            old=ReleaseState.APPROVED.value, new=ReleaseState.RETIRED.value, reason=reason,
        )  # fmt: skip
        return _step(store, object_type, object_id, sha256, ReleaseState.RETIRED, username, None, entry.seq)


def qualified(store: RecordStore, object_type: str, sha256: str) -> list[str]:
    """Runs that qualify this model (package digest) or recipe (file hash): formal, passing, approved.

    The release gate's own query of the qualification records (:mod:`inspector.records.qualification`
    writes them and depends on this module for a suite's release state, never the other way)."""
    column = {"model": "model_digest", "recipe": "recipe_sha256"}[object_type]
    rows = store.execute(
        f"SELECT run_id FROM qualification_runs WHERE {column} = ? AND formal = 1 AND passed = 1"
        " AND state = 'approved' ORDER BY rowid",
        (sha256,),
    )
    return [str(r[0]) for r in rows]
