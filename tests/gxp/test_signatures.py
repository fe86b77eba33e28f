"""E-signatures and the release lifecycle: re-authentication, meaning, four eyes, bound to the content hash."""

from __future__ import annotations

import sqlite3

import pytest

from inspector.records import audit
from inspector.records.lifecycle import LifecycleError, ReleaseState, current, history, retire, signed_step
from inspector.records.signatures import FourEyesError, signatures, status
from inspector.records.users import AuthenticationError, PermissionDenied, user
from inspector.roles import Meaning
from tests.gxp.conftest import PASSWORDS, Station

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
