"""E-signatures and the release lifecycle: re-authentication, meaning, four eyes, bound to the content hash."""

from __future__ import annotations

import sqlite3

import pytest

from inspector.records import audit
from inspector.records.lifecycle import LifecycleError, ReleaseState, current, history, retire, signed_step
from inspector.records.signatures import FourEyesError, signatures, status
from inspector.records.users import AuthenticationError, PermissionDenied, user
from inspector.roles import Meaning
from tests.gxp.conftest import PASSWORDS, Station, qualify

SHA = "ab" * 32
OTHER = "cd" * 32


def _step(station: Station, meaning: str, who: str, sha: str = SHA, password: str | None = None) -> ReleaseState:
    release = signed_step(
        station.store, meaning, username=who, password=password or PASSWORDS[who], object_type="model",
        object_id="vial-cnn@2.0.0", sha256=sha, reason=f"{meaning} per SOP QA-7",
    )  # fmt: skip
    return release.state


def test_the_lifecycle_goes_draft_reviewed_approved_retired(station: Station) -> None:
    assert _step(station, "authored", "eng1") is ReleaseState.DRAFT
    qualify(station.db, model_digest=SHA, recipe_sha256=OTHER)
    with pytest.raises(LifecycleError, match="needs reviewed"):
        _step(station, "approved", "qa1")
    assert _step(station, "reviewed", "eng2") is ReleaseState.REVIEWED
    assert _step(station, "approved", "qa1") is ReleaseState.APPROVED
    with pytest.raises(PermissionDenied):
        retire(station.store, username="eng1", password=PASSWORDS["eng1"], object_type="model",
               object_id="vial-cnn@2.0.0", sha256=SHA, reason="superseded")  # fmt: skip
    retire(station.store, username="qa2", password=PASSWORDS["qa2"], object_type="model",
           object_id="vial-cnn@2.0.0", sha256=SHA, reason="superseded by 2.1.0")  # fmt: skip
    assert [r.state.value for r in history(station.store, "model", "vial-cnn@2.0.0")] == [
        "draft", "reviewed", "approved", "retired",
    ]  # fmt: skip
    sigs = signatures(station.store, "model", "vial-cnn@2.0.0")
    assert [(s.meaning, s.username) for s in sigs] == [
        (Meaning.AUTHORED, "eng1"), (Meaning.REVIEWED, "eng2"), (Meaning.APPROVED, "qa1"),
    ]  # fmt: skip
    approved = sigs[2]
    assert approved.full_name == "Qa1 Person" and approved.signed_utc.endswith("+00:00")
    assert approved.manifestation() == f"Qa1 Person (qa1), {approved.signed_utc}, approved"
    entry = next(e for e in audit.entries(station.store) if e.seq == approved.audit_seq)
    assert entry.action == "sign.approved" and entry.new_value["sha256"] == SHA


def test_signing_reauthenticates_and_a_wrong_password_counts(station: Station) -> None:
    _step(station, "authored", "eng1")
    with pytest.raises(AuthenticationError):
        _step(station, "reviewed", "qa1", password="not-my-password")
    assert user(station.store, "qa1").failed_logins == 1
    assert current(station.store, "model", "vial-cnn@2.0.0", SHA).state is ReleaseState.DRAFT


def test_four_eyes_the_author_cannot_review_or_approve(station: Station) -> None:
    _step(station, "authored", "eng1")
    with pytest.raises(FourEyesError, match="another person"):
        _step(station, "reviewed", "eng1")
    _step(station, "reviewed", "eng2")
    qualify(station.db, model_digest=SHA, recipe_sha256=OTHER)
    qualify(station.db, model_digest=OTHER, recipe_sha256=OTHER)
    assert _step(station, "approved", "qa1") is ReleaseState.APPROVED
    # A QA user who authored an object cannot approve it either.
    _step(station, "authored", "eng2", sha=OTHER)
    from inspector.records.users import change_role

    change_role(station.store, station.actor("admin1"), "eng2", "qa", reason="moved to QA")
    _step(station, "reviewed", "eng1", sha=OTHER)
    with pytest.raises(FourEyesError):
        _step(station, "approved", "eng2", sha=OTHER)


def test_roles_decide_who_may_sign_what(station: Station) -> None:
    with pytest.raises(PermissionDenied):
        _step(station, "authored", "op1")
    _step(station, "authored", "eng1")
    for who in ("op1", "admin1"):
        with pytest.raises(PermissionDenied):
            _step(station, "reviewed", who)
    _step(station, "reviewed", "qa2")
    for who in ("op1", "eng2", "admin1"):
        with pytest.raises(PermissionDenied):
            _step(station, "approved", who)


def test_a_signature_on_a_changed_object_shows_invalid(station: Station) -> None:
    _step(station, "authored", "eng1")
    sig = signatures(station.store, "model", "vial-cnn@2.0.0")[0]
    assert status(sig, SHA) == "valid"
    assert status(sig, OTHER).startswith("INVALID")
    assert current(station.store, "model", "vial-cnn@2.0.0", OTHER) is None, "another hash is another object"


def test_signatures_and_lifecycle_steps_cannot_be_changed(station: Station) -> None:
    _step(station, "authored", "eng1")
    with sqlite3.connect(station.db) as raw:
        for table in ("signatures", "lifecycle"):
            with pytest.raises(sqlite3.IntegrityError, match="cannot be changed"):
                raw.execute(f"UPDATE {table} SET username = 'qa1'")
            with pytest.raises(sqlite3.IntegrityError, match="cannot be deleted"):
                raw.execute(f"DELETE FROM {table}")


def test_approval_for_production_needs_a_passing_signed_formal_qualification(station: Station) -> None:
    from inspector.records import qualification
    from inspector.records.signatures import FourEyesError

    _step(station, "authored", "eng1")
    _step(station, "reviewed", "eng2")
    with pytest.raises(LifecycleError, match="no passing, approved, formal qualification"):
        _step(station, "approved", "qa1")
    # An informal run (its suite was not approved before it) does not count, even passed and signed.
    actor = station.actor("eng1")
    qualification.create(station.store, actor, run_id="Q-informal", suite_id="x@1", suite_sha256="f" * 64,
                         recipe_id="r", recipe_sha256=OTHER, model_id="m", model_digest=SHA)  # fmt: skip
    assert qualification.get(station.store, "Q-informal").formal is False
    qualification.start(station.store, actor, "Q-informal")
    qualification.complete(station.store, actor, "Q-informal", passed=True, report_sha256="e" * 64, result={})
    with pytest.raises(qualification.QualificationStateError, match="needs reviewed"):
        qualification.sign(station.store, username="qa1", password=PASSWORDS["qa1"], run_id="Q-informal",
                           meaning="approved", reason="too early")  # fmt: skip
    qualification.sign(station.store, username="qa1", password=PASSWORDS["qa1"], run_id="Q-informal",
                       meaning="reviewed", reason="read")  # fmt: skip
    with pytest.raises(FourEyesError, match="another person"):
        qualification.sign(station.store, username="eng1", password=PASSWORDS["eng1"], run_id="Q-informal",
                           meaning="approved", reason="mine")  # fmt: skip
    qualification.sign(station.store, username="qa2", password=PASSWORDS["qa2"], run_id="Q-informal",
                       meaning="approved", reason="criteria met")  # fmt: skip
    assert qualification.get(station.store, "Q-informal").state == "approved"
    with pytest.raises(LifecycleError, match="formal"):
        _step(station, "approved", "qa1")
    qualify(station.db, model_digest=SHA, recipe_sha256=OTHER)
    assert _step(station, "approved", "qa1") is ReleaseState.APPROVED
    import sqlite3

    with sqlite3.connect(station.db) as raw:
        for sql in ("UPDATE qualification_runs SET passed = 0", "UPDATE qualification_runs SET state = 'running'",
                    "DELETE FROM qualification_runs"):  # fmt: skip
            with pytest.raises(sqlite3.IntegrityError):
                raw.execute(sql)
