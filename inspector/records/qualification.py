"""Qualification runs in the station database: a forward-only state machine with a signed result.

created -> running -> completed (or aborted) -> reviewed -> approved. A run is *formal* when its
suite was approved (signed) before the run started: criteria fixed before testing. Its result
and the SHA-256 of its report are stored once, at completion; reviewing and approving are
e-signatures on that report hash (a changed report shows them INVALID), and the person who ran
it cannot approve it. A model or recipe is approved for production only with a passing,
approved, formal run of that exact model and recipe (:func:`qualified`, enforced by the release
lifecycle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from inspector.events import utc_now
from inspector.records import audit, lifecycle
from inspector.records.audit import Actor
from inspector.records.signatures import Signature, sign_as
from inspector.records.store import RecordConstraintError, RecordError, RecordStore
from inspector.records.users import authenticate
from inspector.roles import Meaning

OBJECT_TYPE = "qualification"


class QualificationStateError(RecordError):
    """The run is not in a state that allows this step."""


@dataclass(frozen=True)
class QualificationRun:
    run_id: str
    suite_id: str
    suite_sha256: str
    recipe_id: str
    recipe_sha256: str
    model_id: str
    model_digest: str
    formal: bool
    state: str
    created_utc: str
    created_by: str
    ended_utc: str | None
    passed: bool | None
    report_sha256: str | None
    result: dict[str, Any] | None


_COLUMNS = (
    "run_id, suite_id, suite_sha256, recipe_id, recipe_sha256, model_id, model_digest, formal, state, created_utc,"
    " created_by, ended_utc, passed, report_sha256, result"
)


def _run(row: tuple[Any, ...]) -> QualificationRun:
    v = list(row)
    v[7] = bool(v[7])
    v[12] = None if v[12] is None else bool(v[12])
    v[14] = None if v[14] is None else json.loads(v[14])
    return QualificationRun(*v)


def get(store: RecordStore, run_id: str) -> QualificationRun:
    row = store.execute(f"SELECT {_COLUMNS} FROM qualification_runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise RecordError(f"no qualification run {run_id!r}")
    return _run(tuple(row))


def runs(store: RecordStore) -> list[QualificationRun]:
    return [_run(tuple(r)) for r in store.execute(f"SELECT {_COLUMNS} FROM qualification_runs ORDER BY rowid")]


def create(
    store: RecordStore,
    actor: Actor,
    *,
    run_id: str,
    suite_id: str,
    suite_sha256: str,
    recipe_id: str,
    recipe_sha256: str,
    model_id: str,
    model_digest: str,
) -> QualificationRun:
    """Register a run before it starts; formal when the suite with this hash is approved now."""
    with store.transaction():
        suite_state = lifecycle.current(store, "suite", suite_id, suite_sha256)
        formal = suite_state is not None and suite_state.state is lifecycle.ReleaseState.APPROVED
        store.execute(
            f"INSERT INTO qualification_runs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'created', ?, ?,"
            " NULL, NULL, NULL, NULL)",
            (run_id, suite_id, suite_sha256, recipe_id, recipe_sha256, model_id, model_digest, int(formal),
             utc_now(), actor.username),
        )  # fmt: skip
        audit.append(
            store, actor, "qualification.create", object_type=OBJECT_TYPE, object_id=run_id,
            new={"suite": suite_id, "suite_sha256": suite_sha256, "recipe": recipe_id, "recipe_sha256": recipe_sha256,
                 "model": model_id, "model_digest": model_digest, "formal": formal},
            reason="qualification run" if formal else "informal run: the suite is not approved",
        )  # fmt: skip
    return get(store, run_id)


def _move(store: RecordStore, actor: Actor, run_id: str, state: str, reason: str, **sets: Any) -> QualificationRun:
    with store.transaction():
        before = get(store, run_id)
        columns = ", ".join(["state = ?", *(f"{k} = ?" for k in sets)])
        try:
            store.execute(f"UPDATE qualification_runs SET {columns} WHERE run_id = ?", (state, *sets.values(), run_id))
        except Exception as exc:
            raise QualificationStateError(f"run {run_id} is {before.state}: it cannot become {state} ({exc})") from None
        audit.append(
            store, actor, f"qualification.{state}", object_type=OBJECT_TYPE, object_id=run_id,
            old=before.state, new={"state": state, **{k: v for k, v in sets.items() if k != "result"}},
            reason=reason,
        )  # fmt: skip
    return get(store, run_id)


def start(store: RecordStore, actor: Actor, run_id: str) -> QualificationRun:
    return _move(store, actor, run_id, "running", "the challenge sets go through the station")


def complete(
    store: RecordStore, actor: Actor, run_id: str, *, passed: bool, report_sha256: str, result: dict[str, Any]
) -> QualificationRun:
    text = json.dumps(result, sort_keys=True, allow_nan=False)
    return _move(
        store, actor, run_id, "completed", "every presentation judged",
        ended_utc=utc_now(), passed=int(passed), report_sha256=report_sha256, result=text,
    )  # fmt: skip


def abort(store: RecordStore, actor: Actor, run_id: str, reason: str) -> QualificationRun:
    if not reason.strip():
        raise RecordConstraintError("aborting a qualification run needs a reason")
    return _move(store, actor, run_id, "aborted", reason, ended_utc=utc_now())


def sign(
    store: RecordStore, *, username: str, password: str, run_id: str, meaning: Meaning | str, reason: str
) -> Signature:
    """Review (from completed) or approve (from reviewed) a run's report: an e-signature on its hash."""
    meaning = Meaning(meaning)
    transitions = {Meaning.REVIEWED: ("completed", "reviewed"), Meaning.APPROVED: ("reviewed", "approved")}
    if meaning not in transitions:
        raise RecordConstraintError(f"a qualification report is reviewed or approved, not {meaning.value}")
    actor = authenticate(store, username, password, purpose="reauthenticate")
    with store.transaction():
        run = get(store, run_id)
        need, to = transitions[meaning]
        if run.state != need or run.report_sha256 is None:
            raise QualificationStateError(f"run {run_id} is {run.state}; {meaning.value} needs {need}")
        if meaning is Meaning.APPROVED and actor.username == run.created_by:
            from inspector.records.signatures import FourEyesError

            raise FourEyesError(f"{actor.username} ran qualification {run_id}: another person must approve it")
        signature = sign_as(
            store, actor, object_type=OBJECT_TYPE, object_id=run_id, object_sha256=run.report_sha256,
            meaning=meaning, reason=reason,
        )  # fmt: skip
        _move(store, actor, run_id, to, reason)
    return signature
