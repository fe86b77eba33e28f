"""People acting at the site: resuming a halted station and acknowledging a site alarm need an
authenticated QA account and a reason, and each leaves a hash-chained, append-only site audit entry."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from inspector.cli import main
from inspector.records import RecordStore, audit, users
from inspector.site import schema as S
from inspector.site.actions import verify_trail
from inspector.site.forwarder import ChainBreak, Forwarder, Halted
from tests.support.site import Site, run_station


def _act(monkeypatch: pytest.MonkeyPatch, password: str, *argv: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main([*argv, "--password-stdin"])


def _halted(site: Site, station: str) -> str | None:
    with site.engine.connect() as c:
        halted: str | None = c.execute(select(S.stations.c.halted).where(S.stations.c.station_id == station)).scalar()
        return halted


def test_a_halted_station_resumes_only_by_qa_with_a_reason_and_the_site_audits_it(
    tmp_path: Path, site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real, stale = tmp_path / "line7.sqlite", tmp_path / "old-copy.sqlite"
    run_station(real, items=30, sign=True)  # demo accounts: qa / qa-demo-pass, operator / operator-demo
    run_station(stale, items=4, seed=3)
    Forwarder(real, site.url, "line-7", engine=site.engine).push_once()
    with pytest.raises(ChainBreak, match="restored from an older copy"):  # the station file pointed at a copy
        Forwarder(stale, site.url, "line-7", engine=site.engine).push_once()
    with pytest.raises(Halted):
        Forwarder(real, site.url, "line-7", engine=site.engine).push_once()
    assert _halted(site, "line-7") is not None

    base = ["site", "resume", "--url", site.url, "--station-id", "line-7", "--db", str(real),
            "--account-station", "line-7"]  # fmt: skip
    reason = ["--reason", "station file pointed at an old copy; corrected"]
    assert _act(monkeypatch, "operator-demo", *base, *reason, "--as", "operator") == 2
    assert "may not" in capsys.readouterr().err
    assert _act(monkeypatch, "wrong-password", *base, *reason, "--as", "qa") == 2
    assert "wrong user name or password" in capsys.readouterr().err
    assert _act(monkeypatch, "qa-demo-pass", *base, "--reason", "   ", "--as", "qa") == 2
    assert "reason is required" in capsys.readouterr().err
    assert _halted(site, "line-7") is not None, "nothing changed by a refused request"
    with RecordStore(real) as store:  # the wrong password counted at the account's station
        assert [e.action for e in audit.entries(store)][-1] == "login_failed"

    assert _act(monkeypatch, "qa-demo-pass", *base, *reason, "--as", "qa", "--json") == 0
    entry = json.loads(capsys.readouterr().out)
    assert (entry["seq"], entry["action"], entry["username"], entry["role"], entry["account_station"]) == (
        1, "forwarding.resume", "qa", "qa", "line-7")  # fmt: skip
    assert json.loads(entry["old_value"])["halted"] and json.loads(entry["new_value"]) == {"halted": None}
    assert _halted(site, "line-7") is None
    Forwarder(real, site.url, "line-7", engine=site.engine).push_once()  # pushes again
    assert _act(monkeypatch, "qa-demo-pass", *base, *reason, "--as", "qa") == 2
    assert "not halted" in capsys.readouterr().err

    # The break's alarm: acknowledged once, with a reason, by QA.
    assert main(["site", "status", "--url", site.url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    (alarm,) = status["open_site_alarms"]
    assert status["site_actions"][0]["action"] == "forwarding.resume"
    ack = ["site", "ack", "--url", site.url, "--alarm", str(alarm["id"]), "--db", str(real),
           "--account-station", "line-7", "--reason", "deviation DEV-0421 opened", "--as", "qa"]  # fmt: skip
    assert _act(monkeypatch, "qa-demo-pass", *ack) == 0
    assert _act(monkeypatch, "qa-demo-pass", *ack) == 2
    assert "was acknowledged by qa" in capsys.readouterr().err
    assert main(["site", "status", "--url", site.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["open_site_alarms"] == []
    assert main(["site", "verify", "--url", site.url, "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["ok"] and checked["site_audit"] == {"ok": True, "entries": 2, "problem": None}


def test_the_site_audit_trail_is_append_only_chained_and_verified(
    tmp_path: Path, site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "station.sqlite"
    run_station(db, items=10, sign=True)
    Forwarder(db, site.url, "line-1", engine=site.engine).push_once()  # its accounts reach the site
    with site.engine.begin() as c:
        c.execute(text("INSERT INTO stations (station_id, registered_utc, halted) VALUES ('s1', 'now', 'a break')"))
    assert _act(monkeypatch, "qa-demo-pass", "site", "resume", "--url", site.url, "--station-id", "s1", "--db",
                str(db), "--account-station", "line-1", "--reason", "checked", "--as", "qa") == 0  # fmt: skip
    capsys.readouterr()
    for sql in (
        "UPDATE site_audit SET reason = 'nothing' WHERE seq = 1",
        "DELETE FROM site_audit",
        "TRUNCATE site_audit",
        "INSERT INTO site_audit SELECT seq + 1, at_utc, username, full_name, role, account_station, action,"
        " station_id, object_id, old_value, new_value, reason, repeat('0', 64), hash FROM site_audit",
    ):
        with pytest.raises(DBAPIError), site.engine.begin() as c:
            c.execute(text(sql))
    with site.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(S.site_audit)).scalar_one() == 1
    assert verify_trail(site.engine).ok
    with site.engine.begin() as c:  # a superuser switching the site's triggers off
        c.execute(text("SET LOCAL session_replication_role = replica"))
        c.execute(text("UPDATE site_audit SET reason = 'checked!' WHERE seq = 1"))
    result = verify_trail(site.engine)
    assert not result.ok and result.problem == "site audit entry 1 does not match its hash"
    assert main(["site", "verify", "--url", site.url, "--no-alarms"]) == 1
    assert "site audit trail: BROKEN" in capsys.readouterr().err


def test_the_person_acting_must_hold_an_account_the_station_forwarded(
    tmp_path: Path, site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The site keeps no passwords: a database made for the purpose, or another station's, holds accounts
    of the same names but not the station's own, and an account the station deactivated is refused."""
    real, other = tmp_path / "line3.sqlite", tmp_path / "made-up.sqlite"
    run_station(real, items=4, sign=True)  # demo accounts
    run_station(other, items=4, seed=5, sign=True)  # the same names, other accounts
    Forwarder(real, site.url, "line-3", engine=site.engine).push_once()
    with site.engine.begin() as c:
        c.execute(text("INSERT INTO stations (station_id, registered_utc, halted) VALUES ('s3', 'now', 'a break')"))
    base = ["site", "resume", "--url", site.url, "--station-id", "s3", "--reason", "checked", "--as", "qa"]

    assert _act(monkeypatch, "qa-demo-pass", *base, "--db", str(other), "--account-station", "line-3") == 2
    assert "holds another account qa than station line-3's at the site" in capsys.readouterr().err
    assert _act(monkeypatch, "qa-demo-pass", *base, "--db", str(real), "--account-station", "line-9") == 2
    assert "qa is no account of station line-9 at the site" in capsys.readouterr().err
    assert _halted(site, "s3") == "a break", "nothing changed by a refused request"

    stale = tmp_path / "line3-copy.sqlite"  # a copy from before the deactivation still has the account active
    with closing(sqlite3.connect(real)) as src, closing(sqlite3.connect(stale)) as dst:
        src.backup(dst)
    with RecordStore(real) as store:  # deactivated at the station and forwarded
        admin = users.authenticate(store, "admin", "admin-demo")
        users.deactivate(store, admin, "qa", reason="left the company")
    Forwarder(real, site.url, "line-3", engine=site.engine).push_once()
    assert _act(monkeypatch, "qa-demo-pass", *base, "--db", str(stale), "--account-station", "line-3") == 2
    assert "account qa of station line-3 is deactivated (as the site holds it)" in capsys.readouterr().err
    assert _halted(site, "s3") == "a break"
    with site.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(S.site_audit)).scalar_one() == 0
