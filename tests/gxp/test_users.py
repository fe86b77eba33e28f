"""Users and roles: unique accounts, least privilege (every cell of the role matrix), lockout, no deletes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from inspector.records import RecordStore, audit
from inspector.records.store import RecordConstraintError
from inspector.records.users import (
    AuthenticationError,
    PermissionDenied,
    StationModeError,
    add_user,
    authenticate,
    change_role,
    claim_mode,
    deactivate,
    reset_password,
    seed_demo_accounts,
    set_setting,
    setting,
    unlock,
    user,
    users,
)
from inspector.roles import GMP_DECISIONS, PERMISSIONS, Action, Role, allowed
from tests.gxp.conftest import PASSWORDS, Station

# The matrix as the requirements state it, written out independently of the code's table.
EXPECTED = {
    Role.OPERATOR: {"run_batch", "ack_alarm", "review_reject"},
    Role.ENGINEER: {"run_batch", "ack_alarm", "review_reject", "author_model", "author_recipe", "label_images",
                    "review_release", "author_suite", "run_qualification"},
    Role.QA: {"run_batch", "ack_alarm", "review_reject", "review_release", "approve_release", "retire_release",
              "sign_report", "read_audit", "export_records", "author_suite", "run_qualification",
              "site_intervene"},
    Role.ADMIN: {"manage_users", "change_settings", "read_audit", "export_records"},
}  # fmt: skip


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_every_cell_of_the_role_matrix(role: Role, action: Action) -> None:
    assert allowed(role, action) is (action.value in EXPECTED[role])


def test_admin_makes_no_gmp_decision() -> None:
    assert not PERMISSIONS[Role.ADMIN] & GMP_DECISIONS
    assert PERMISSIONS[Role.QA] | PERMISSIONS[Role.ENGINEER] | PERMISSIONS[Role.OPERATOR] >= GMP_DECISIONS


def test_the_first_account_is_an_admin_with_its_own_password(tmp_path: Path) -> None:
    with RecordStore(tmp_path / "s.sqlite") as store:
        assert users(store) == [], "no default account, no default password"
        # Nobody can sign into a station without accounts: the answer says what to do (and is audited).
        with pytest.raises(AuthenticationError, match=r"no user accounts yet: add its first, an admin"):
            authenticate(store, "qa", "qa-demo-pass", purpose="reauthenticate")
        (entry,) = audit.entries(store, object_id="qa")
        assert entry.action == "login_failed" and entry.new_value["why"] == "no accounts"
        with pytest.raises(PermissionDenied, match="first account"):
            add_user(store, None, "op", "An Operator", "operator", "long-enough-pw", reason="x")
        admin = add_user(store, None, "boss", "The Admin", "admin", "long-enough-pw", reason="commissioning")
        with pytest.raises(PermissionDenied, match="only an admin"):
            add_user(store, None, "boss2", "Other Admin", "admin", "long-enough-pw", reason="x")
        with pytest.raises(RecordConstraintError, match="at least"):
            add_user(store, admin.actor(), "op", "An Operator", "operator", "short", reason="x")
        with pytest.raises(RecordConstraintError, match="exists"):
            add_user(store, admin.actor(), "boss", "Again", "operator", "long-enough-pw", reason="x")
        stored = store.execute("SELECT password_hash FROM users WHERE username = 'boss'").fetchone()[0]
        assert stored.startswith("$argon2id$") and "long-enough-pw" not in stored
        assert "long-enough-pw" not in audit.export(store, "json")


def test_only_an_admin_manages_accounts(station: Station) -> None:
    for name in ("op1", "eng1", "qa1"):
        who = station.actor(name)
        with pytest.raises(PermissionDenied):
            add_user(station.store, who, "x1", "X", "operator", "long-enough-pw", reason="r")
        with pytest.raises(PermissionDenied):
            deactivate(station.store, who, "op1", reason="r")
        with pytest.raises(PermissionDenied):
            unlock(station.store, who, "op1", reason="r")
        with pytest.raises(PermissionDenied):
            reset_password(station.store, who, "op1", "long-enough-pw", reason="r")
        with pytest.raises(PermissionDenied):
            set_setting(station.store, who, "lockout_after", 3, reason="r")


def test_accounts_are_deactivated_never_deleted_nor_reactivated(station: Station) -> None:
    admin = station.actor("admin1")
    with pytest.raises(RecordConstraintError, match="reason"):
        deactivate(station.store, admin, "op1", reason=" ")
    deactivate(station.store, admin, "op1", reason="left the company")
    with pytest.raises(AuthenticationError, match="deactivated"):
        authenticate(station.store, "op1", PASSWORDS["op1"])
    with sqlite3.connect(station.db) as raw:
        with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
            raw.execute("DELETE FROM users WHERE username = 'op1'")
        with pytest.raises(sqlite3.IntegrityError, match="never reactivated"):
            raw.execute("UPDATE users SET active = 1 WHERE username = 'op1'")
        with pytest.raises(sqlite3.IntegrityError, match="keeps its name"):
            raw.execute("UPDATE users SET username = 'op9' WHERE username = 'eng1'")
    entry = audit.entries(station.store, action="user.deactivate")[-1]
    assert (entry.username, entry.role, entry.object_id, entry.reason) == ("admin1", "admin", "op1", "left the company")
    assert entry.old_value["active"] is True and entry.new_value["active"] is False


def test_lockout_after_n_failed_logins_and_unlock_by_admin_only(station: Station) -> None:
    assert setting(station.store, "lockout_after") == 5
    admin = station.actor("admin1")
    set_setting(station.store, admin, "lockout_after", 3, reason="site SOP 12 section 4")
    for _ in range(3):
        with pytest.raises(AuthenticationError, match="wrong user name or password"):
            authenticate(station.store, "op1", "not-the-password")
    assert user(station.store, "op1").locked
    with pytest.raises(AuthenticationError, match="locked"):
        authenticate(station.store, "op1", PASSWORDS["op1"])  # even the right password
    with pytest.raises(PermissionDenied):
        unlock(station.store, station.actor("qa1"), "op1", reason="r")
    unlock(station.store, admin, "op1", reason="identity checked at the desk")
    assert authenticate(station.store, "op1", PASSWORDS["op1"]).role == "operator"
    actions = [e.action for e in audit.entries(station.store, object_id="op1")]
    assert actions.count("login_failed") == 4 and actions.count("lockout") == 1
    assert actions[-2:] == ["user.unlock", "login"]
    with pytest.raises(RecordConstraintError, match="outside"):
        set_setting(station.store, admin, "lockout_after", 0, reason="r")


def test_an_unknown_user_gets_the_same_answer_and_is_audited(station: Station) -> None:
    with pytest.raises(AuthenticationError, match="wrong user name or password"):
        authenticate(station.store, "mallory", "whatever-it-is")
    (entry,) = audit.entries(station.store, object_id="mallory")
    assert entry.action == "login_failed" and entry.new_value["why"] == "unknown user"


def test_role_changes_are_audited_and_not_self_service(station: Station) -> None:
    admin = station.actor("admin1")
    with pytest.raises(PermissionDenied, match="own role"):
        change_role(station.store, admin, "admin1", "qa", reason="r")
    change_role(station.store, admin, "eng2", "qa", reason="moved to QA")
    assert station.actor("eng2").role == "qa"
    entry = audit.entries(station.store, action="user.role")[-1]
    assert (entry.old_value["role"], entry.new_value["role"]) == ("engineer", "qa")


def test_demo_accounts_only_in_a_demo_database(tmp_path: Path, station: Station) -> None:
    with pytest.raises(StationModeError):
        seed_demo_accounts(station.store)
    with pytest.raises(StationModeError, match="own database"):
        claim_mode(station.store, "demo")
    with RecordStore(tmp_path / "demo.sqlite") as store:
        claim_mode(store, "demo")
        seeded = seed_demo_accounts(store)
        assert [u.role.value for u in seeded] == ["operator", "engineer", "qa", "admin"] and all(u.demo for u in seeded)
        assert seed_demo_accounts(store) == [], "seeded once"
        with pytest.raises(StationModeError, match="own database"):
            claim_mode(store, "production")
