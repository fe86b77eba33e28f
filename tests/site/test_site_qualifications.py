"""QA asks the site which line is qualified with which model and recipe: every station's runs, the
signatures on their reports, and whether each run qualifies (formal, passed, approved)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.records import RecordStore, qualification
from inspector.records.lifecycle import signed_step
from inspector.records.users import add_user, authenticate
from inspector.site.forwarder import Forwarder
from inspector.site.qualifications import runs
from tests.support.site import Site, run_station

SUITE = "c" * 64


def _report(run_id: str) -> str:
    return hashlib.sha256(run_id.encode()).hexdigest()


def _approve_suite(store: RecordStore) -> None:
    """The suite's criteria fixed before any formal run: authored, reviewed and approved by three people."""
    admin = authenticate(store, "admin", "admin-demo")
    add_user(store, admin, "qa2", "Second QA", "qa", "qa-password-number-2", reason="a second QA signer")
    for meaning, who, password in (
        ("authored", "engineer", "engineer-demo"),
        ("reviewed", "qa", "qa-demo-pass"),
        ("approved", "qa2", "qa-password-number-2"),
    ):
        signed_step(store, meaning, username=who, password=password, object_type="suite", object_id="tablet-oq",
                    sha256=SUITE, reason="criteria fixed")  # fmt: skip


def _run(store: RecordStore, run_id: str, *, model: str, passed: bool) -> None:
    engineer = authenticate(store, "engineer", "engineer-demo")
    qualification.create(store, engineer, run_id=run_id, suite_id="tablet-oq", suite_sha256=SUITE,
                         recipe_id="tablet-round-white", recipe_sha256="a" * 64, model_id="tablet-cls",
                         model_digest=model)  # fmt: skip
    qualification.start(store, engineer, run_id)
    qualification.complete(store, engineer, run_id, passed=passed, report_sha256=_report(run_id), result={})


def test_the_site_lists_every_stations_runs_and_which_qualify(
    tmp_path: Path, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    line1, line2 = tmp_path / "line1.sqlite", tmp_path / "line2.sqlite"
    run_station(line1, items=4, sign=True)  # demo accounts
    run_station(line2, items=4, seed=2, sign=True)
    with RecordStore(line1) as store:
        _approve_suite(store)
        _run(store, "QUAL-A", model="b" * 64, passed=True)
        qualification.sign(store, username="qa", password="qa-demo-pass", run_id="QUAL-A", meaning="reviewed",
                           reason="report checked")  # fmt: skip
        qualification.sign(store, username="qa2", password="qa-password-number-2", run_id="QUAL-A", meaning="approved",
                           reason="OQ accepted")  # fmt: skip
        _run(store, "QUAL-B", model="e" * 64, passed=False)
    with RecordStore(line2) as store:
        _run(store, "QUAL-C", model="b" * 64, passed=True)  # its suite is not approved at line 2: informal
    Forwarder(line1, site.url, "line-1", engine=site.engine).push_once()
    Forwarder(line2, site.url, "line-2", engine=site.engine).push_once()

    found = runs(site.engine)
    assert [(r["station_id"], r["run_id"]) for r in found] == [
        ("line-1", "QUAL-A"),
        ("line-1", "QUAL-B"),
        ("line-2", "QUAL-C"),
    ]
    a, b, c = found
    assert a["qualifies"] and a["state"] == "approved" and a["passed"] is True and a["formal"] is True
    assert [(g["meaning"], g["username"], g["holds"]) for g in a["signatures"]] == [
        ("reviewed", "qa", True),
        ("approved", "qa2", True),
    ]
    assert a["report_sha256"] == _report("QUAL-A") and a["model"] == {"id": "tablet-cls", "digest": "b" * 64}
    assert not b["qualifies"] and b["passed"] is False and b["signatures"] == []  # failed
    assert not c["qualifies"] and c["formal"] is False  # passed, but informal and not approved
    assert [r["run_id"] for r in runs(site.engine, station_id="line-2")] == ["QUAL-C"]
    assert [r["run_id"] for r in runs(site.engine, model_digest="b" * 64)] == ["QUAL-A", "QUAL-C"]

    capsys.readouterr()
    assert main(["site", "qualifications", "--url", site.url, "--qualifying", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [r["run_id"] for r in json.loads(out)] == ["QUAL-A"]
    assert "line-1 QUAL-A: approved, passed, formal" in err and "QUALIFIES" in err
    assert "approved by Second QA (qa2, qa)" in err
    assert main(["site", "qualifications", "--url", site.url, "--station-id", "line-9"]) == 0
    assert "no qualification run at the site matches" in capsys.readouterr().err
