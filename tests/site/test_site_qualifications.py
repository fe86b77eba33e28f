"""QA asks the site which line is qualified with which model and recipe: every station's runs, the
signatures on their reports, whether each run qualifies (formal, passed, approved), and what each
station released, in which state, qualified by which run."""

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
from inspector.site.releases import releases
from tests.support.site import Site, run_station

SUITE = "c" * 64
RELEASE = (  # who signs each lifecycle step: an engineer authors, two QA people review and approve
    ("authored", "engineer", "engineer-demo"),
    ("reviewed", "qa", "qa-demo-pass"),
    ("approved", "qa2", "qa-password-number-2"),
)


def _report(run_id: str) -> str:
    return hashlib.sha256(run_id.encode()).hexdigest()


def _approve_suite(store: RecordStore) -> None:
    """The suite's criteria fixed before any formal run: authored, reviewed and approved by three people."""
    admin = authenticate(store, "admin", "admin-demo")
    add_user(store, admin, "qa2", "Second QA", "qa", "qa-password-number-2", reason="a second QA signer")
    for meaning, who, password in RELEASE:
        signed_step(store, meaning, username=who, password=password, object_type="suite", object_id="tablet-oq",
                    sha256=SUITE, reason="criteria fixed")  # fmt: skip


def _run(store: RecordStore, run_id: str, *, model: str, passed: bool) -> None:
    engineer = authenticate(store, "engineer", "engineer-demo")
    qualification.create(store, engineer, run_id=run_id, suite_id="tablet-oq", suite_sha256=SUITE,
                         recipe_id="tablet-round-white", recipe_sha256="a" * 64, model_id="tablet-cls",
                         model_digest=model)  # fmt: skip
    qualification.start(store, engineer, run_id)
    qualification.complete(store, engineer, run_id, passed=passed, report_sha256=_report(run_id), result={})


@pytest.fixture
def two_lines(tmp_path: Path, site: Site) -> Site:
    """Line 1: an approved suite, a formal passing run reviewed and approved, a failed run, and the
    model package that run qualified released (authored, reviewed, approved). Line 2: an informal run."""
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
        for meaning, who, password in RELEASE:
            signed_step(store, meaning, username=who, password=password, object_type="model", object_id="tablet-cls",
                        sha256="b" * 64, reason="release")  # fmt: skip
    with RecordStore(line2) as store:
        _run(store, "QUAL-C", model="b" * 64, passed=True)  # its suite is not approved at line 2: informal
    Forwarder(line1, site.url, "line-1", engine=site.engine).push_once()
    Forwarder(line2, site.url, "line-2", engine=site.engine).push_once()
    return site


def test_the_site_lists_every_stations_runs_and_which_qualify(
    two_lines: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site = two_lines
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


def test_the_site_shows_what_each_station_released_and_which_run_qualified_it(
    two_lines: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site = two_lines
    found = releases(site.engine)
    assert [(r["station_id"], r["object_type"], r["object_id"], r["state"], r["steps"]) for r in found] == [
        ("line-1", "suite", "tablet-oq", "approved", 3),
        ("line-1", "model", "tablet-cls", "approved", 3),
    ]
    suite, model = found
    assert model["sha256"] == "b" * 64 and model["by"] == "qa2" and model["qualified_by"] == ["QUAL-A"]
    assert suite["qualified_by"] == []  # a suite is approved by signatures, not qualified by a run
    assert [r["object_type"] for r in releases(site.engine, object_type="model")] == ["model"]
    assert releases(site.engine, station_id="line-2") == []  # line 2 ran a run; it released nothing

    capsys.readouterr()
    assert main(["site", "releases", "--url", site.url, "--type", "model", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [r["object_id"] for r in json.loads(out)] == ["tablet-cls"]
    assert f"line-1 model tablet-cls ({'b' * 12}): approved since" in err and "qualified by QUAL-A" in err
    assert main(["site", "releases", "--url", site.url, "--type", "recipe"]) == 0
    assert "no released object at the site matches" in capsys.readouterr().err
