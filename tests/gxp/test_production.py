"""A production station: only a logged-in user runs it, only approved, unchanged recipes and models run on it.

The release steps go through the real command line (``inspector models|recipes register | review |
approve``, passwords on standard input), the batch through the real station with the files
camera and the line simulator as the PLC.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inspector.config.station import StationConfig
from inspector.inference.package import ModelIntegrityError
from inspector.pipeline.station import StationError
from inspector.plc.sim.process import LineSimProcess
from inspector.records import RecordStore, audit
from inspector.records.chain import verify_batch
from inspector.records.users import add_user, claim_mode
from inspector.station import open_station
from inspector.station.session import ChallengeResult
from inspector.synth.generate import generate
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.support.onnx_models import challenge_set, make_package

ROOT = Path(__file__).resolve().parents[2]
PW = {"ada": "admin-password-1", "erin": "engineer-password-1", "quinn": "qa-password-number-1",
      "rosa": "qa-password-number-2", "otto": "operator-password-1"}  # fmt: skip
pytestmark = pytest.mark.slow


def _project(tmp: Path) -> Path:
    record = make_package(tmp / "models" / "tablet" / "0.0.1", Product.TABLET, dark_below=5)
    spec = IMAGE_SPECS[Product.TABLET]
    recipe = {
        "schema_version": 1,
        "recipe_id": "tablet-prod-test",
        "version": "1.0.0",
        "product": "tablet",
        "camera": "sim.yaml",
        "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
        "model": {"path": "models/tablet/0.0.1", "sha256": record.sha256},
        "latency_budget_ms": 300,
        "line_rate_per_min": 600,
        "startup_challenge": yaml.safe_load(challenge_set(tmp / "challenge", Product.TABLET, seed=77)),
    }
    (tmp / "recipes").mkdir()
    (tmp / "recipes" / "tablet.yaml").write_text(yaml.safe_dump(recipe))
    generate("tablet", 8, 4242, tmp / "images", defect_rate=0.25, masks=False, workers=1)
    with RecordStore(tmp / "var" / "station.sqlite") as store:
        claim_mode(store, "production")
        admin = add_user(store, None, "ada", "Ada Admin", "admin", PW["ada"], reason="commissioning").actor()
        for name, role in (("erin", "engineer"), ("quinn", "qa"), ("rosa", "qa"), ("otto", "operator")):
            add_user(store, admin, name, name.title(), role, PW[name], reason="line staff")
    return tmp


def _config(root: Path, plc_url: str) -> StationConfig:
    return StationConfig.model_validate(
        {
            "schema_version": 1,
            "station_id": "line9",
            "mode": "production",
            "recipe": "tablet",
            "camera": {"kind": "files", "images": str(root / "images")},
            "plc": {"link": plc_url},
            "records": {"database": "var/station.sqlite"},
        }
    )


def _cli(root: Path, *args: str, passwords: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INSPECTOR_HOME": str(root)}
    cmd = [sys.executable, "-m", "inspector", *args, "--db", str(root / "var" / "station.sqlite")]
    if passwords:
        cmd.append("--password-stdin")
    return subprocess.run(cmd, cwd=ROOT, env=env, input="".join(p + "\n" for p in passwords), capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _suite(root: Path) -> None:
    """A small suite of good tablets only: what a passing formal run needs here (the model is a test one)."""
    (root / "qualification").mkdir(exist_ok=True)
    suite = {
        "schema_version": 1, "suite_id": "tablet-pq", "version": "1.0.0", "product": "tablet", "recipe": "tablet",
        "challenge_sets": [{"name": "good", "render": {"seed": 9, "items": 3, "defect_rate": 0.0}}],
        "presentations": 10, "line_rate_per_min": 1200,
        "criteria": {"detection_rate_min": 0.9, "false_reject_rate_max": 0.05, "critical_escapes_max": 0,
                     "reject_zone_efficiency_min": None},
    }  # fmt: skip
    (root / "qualification" / "tablet.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))


def _release(root: Path) -> None:
    for kind, flag, target in (("models", "--model", "models/tablet/0.0.1"), ("recipes", "--recipe", "tablet")):
        for step, who in (("register", "erin"), ("review", "quinn"), ("approve", "rosa")):
            proc = _cli(root, kind, step, flag, target, "--as", who, "--reason", f"{step} per CC-1",
                        passwords=[PW[who]])  # fmt: skip
            assert proc.returncode == 0, proc.stderr


def test_production_runs_only_released_unchanged_objects_for_a_logged_in_user(tmp_path: Path) -> None:
    root = _project(tmp_path)
    db = root / "var" / "station.sqlite"
    sim = LineSimProcess.start("modbus", "--line-rate", "600", "--gate-delay-ms", "500")
    try:
        session = open_station(_config(root, f"modbus://127.0.0.1:{sim.port}"), root=root)
        try:
            with pytest.raises(StationError, match="log in first"):
                session.start_batch()
            with pytest.raises(StationError, match="may not run batch"):
                session.start_batch(actor=session.login("ada", PW["ada"]))
            otto = session.login("otto", PW["otto"])
            with pytest.raises(StationError, match="production refuses to start") as refused:
                session.start_batch(actor=otto)
            assert "model" in str(refused.value) and "recipe" in str(refused.value)
            assert "not registered" in str(refused.value) and "approve" in str(refused.value)

            # The author cannot approve their own model, on the command line either.
            proc = _cli(root, "models", "register", "--model", "models/tablet/0.0.1", "--as", "erin", "--reason",
                        "first package", passwords=[PW["erin"]])  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            proc = _cli(root, "models", "review", "--model", "models/tablet/0.0.1", "--as", "erin", "--reason", "x",
                        passwords=[PW["erin"]])  # fmt: skip
            assert proc.returncode == 2 and "another person" in proc.stderr, proc.stderr
            proc = _cli(root, "models", "review", "--model", "models/tablet/0.0.1", "--as", "quinn", "--reason", "x",
                        passwords=["wrong-password"])  # fmt: skip
            assert proc.returncode == 2 and "wrong user name or password" in proc.stderr
            proc = _cli(root, "models", "review", "--model", "models/tablet/0.0.1", "--as", "quinn", "--reason",
                        "CC-1", passwords=[PW["quinn"]])  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            proc = _cli(root, "models", "approve", "--model", "models/tablet/0.0.1", "--as", "rosa", "--reason",
                        "CC-1", passwords=[PW["rosa"]])  # fmt: skip
            assert proc.returncode == 2 and "qualification" in proc.stderr, "no approval without a qualification"
            # The suite's criteria are approved before the run; the run is formal; QA signs its report.
            _suite(root)
            suite = str(root / "qualification" / "tablet.yaml")  # the project's, not one beside the command
            for step, who in (("register", "erin"), ("review", "quinn"), ("approve", "rosa")):
                proc = _cli(root, "suites", step, "--suite", suite, "--as", who, "--reason",
                            "criteria fixed", passwords=[PW[who]])  # fmt: skip
                assert proc.returncode == 0, proc.stderr
            station_file = root / "station_configs" / "line9.yaml"
            station_file.parent.mkdir(exist_ok=True)
            config = _config(root, f"modbus://127.0.0.1:{sim.port}").model_dump(mode="json")
            station_file.write_text(yaml.safe_dump(config))
            out = root / "reports" / "pq"
            session.close()  # one station writes one database: during the qualification, the run is the station
            proc = _cli(root, "qualify", "--suite", suite, "--station", "line9", "--out",
                        str(out), "--as", "erin", "--json", "--quiet", passwords=[PW["erin"]])  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            outcome = json.loads(proc.stdout)
            assert outcome["formal"] is True and outcome["passed"] is True
            run = outcome["run_id"]
            for meaning, who in (("reviewed", "quinn"), ("approved", "rosa")):
                proc = _cli(root, "qualify", "sign", "--run", run, "--report", str(out), "--meaning", meaning,
                            "--as", who, "--reason", "report read", passwords=[PW[who]])  # fmt: skip
                assert proc.returncode == 0, proc.stderr
            from pypdf import PdfReader

            pdf_text = "".join(p.extract_text() for p in PdfReader(str(out / "report.pdf")).pages)
            assert "Quinn (quinn)" in pdf_text and "approved" in pdf_text and "valid" in pdf_text
            proc = _cli(root, "models", "approve", "--model", "models/tablet/0.0.1", "--as", "rosa", "--reason",
                        "CC-1", passwords=[PW["rosa"]])  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            for step, who in (("register", "erin"), ("review", "quinn"), ("approve", "rosa")):
                proc = _cli(root, "recipes", step, "--recipe", "tablet", "--as", who, "--reason", "CC-1",
                            passwords=[PW[who]])  # fmt: skip
                assert proc.returncode == 0, proc.stderr
            listing = json.loads(_cli(root, "models", "list", "--json", passwords=[]).stdout)
            (row,) = listing
            assert row["state"] == "approved" and [s["status"] for s in row["signatures"]] == ["valid"] * 3

            session = open_station(_config(root, f"modbus://127.0.0.1:{sim.port}"), root=root)
            otto = session.login("otto", PW["otto"])
            # Released, and still locked: each production batch starts with a passing start-up challenge.
            with pytest.raises(StationError, match="start-up challenge"):
                session.start_batch(actor=otto)
            this = ChallengeResult("x", True, (), session.recipe.sha256, session.package.digest, "")
            for earlier, why in ((dataclasses.replace(this, passed=False), "it failed"),
                                 (dataclasses.replace(this, recipe_sha256="0" * 64), "another recipe")):  # fmt: skip
                session.last_challenge = earlier
                with pytest.raises(StationError, match=why):
                    session.start_batch(actor=otto)
            challenge = session.run_startup_challenge(actor=otto)
            assert challenge.passed, challenge.items
            assert [it["expected"] for it in challenge.items] == ["reject", "accept", "accept"]
            result = session.run(actor=otto)
            assert result.items == 8 and result.reconciled
            with pytest.raises(StationError, match="start-up challenge"):  # one challenge, one batch
                session.start_batch(actor=otto)
        finally:
            session.close()

        with RecordStore(db) as store:
            batch = store.batch(result.batch_id or "")
            assert batch["release_status"] == "released" and batch["operator"] == "otto"
            summary = batch["summary"]
            assert summary["startup_challenge"] == {"batch_id": challenge.batch_id, "passed": True}
            stored = store.batch(challenge.batch_id)["summary"]["startup_challenge"]
            assert stored["passed"] is True and stored["model_digest"] == challenge.model_digest
            assert verify_batch(store, result.batch_id or "").ok
            assert audit.verify(store).ok
            actions = [e.action for e in audit.entries(store)]
            assert "release.refused" in actions and actions.count("batch.start") == 3  # qualification, challenge
            statuses = [store.batch(b)["release_status"] for b in store.batch_ids()]
            assert sorted(statuses) == ["qualification run", "released", "start-up challenge"]
            assert [a.code for a in store.alarms() if a.code == "RELEASE_REFUSED"] == ["RELEASE_REFUSED"]

        # A changed byte in the model's record (its intended use) is a changed package, and one more
        # line in the recipe file a changed recipe: both refused, each named.
        record = root / "models" / "tablet" / "0.0.1" / "record.json"
        data = json.loads(record.read_text())
        data["intended_use"] = {"note": "edited after approval"}
        record.write_text(json.dumps(data, indent=2) + "\n")
        recipe = root / "recipes" / "tablet.yaml"
        recipe.write_text(recipe.read_text() + "# edited after approval\n")
        session = open_station(_config(root, f"modbus://127.0.0.1:{sim.port}"), root=root)
        try:
            with pytest.raises(StationError, match="this file was changed") as changed:
                session.start_batch(actor=session.login("otto", PW["otto"]))
            assert str(changed.value).count("this file was changed") == 2
        finally:
            session.close()

        # A changed byte in the ONNX file: the station refuses to open, with an audited alarm.
        model = root / "models" / "tablet" / "0.0.1" / "model.onnx"
        raw = bytearray(model.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        model.write_bytes(bytes(raw))
        with pytest.raises(ModelIntegrityError):
            open_station(_config(root, f"modbus://127.0.0.1:{sim.port}"), root=root)
        with RecordStore(db) as store:
            assert [a.code for a in store.alarms() if a.source == "integrity"] == ["INTEGRITY_FAILURE"]
            assert audit.entries(store, action="integrity.failure")[-1].new_value["path"].endswith("0.0.1")
    finally:
        sim.stop()


def test_the_command_line_verifies_and_exports_what_the_database_holds(tmp_path: Path) -> None:
    root = _project(tmp_path)
    proc = _cli(root, "audit", "verify", "--json", passwords=[])
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"] is True
    out = tmp_path / "audit.json"
    proc = _cli(root, "audit", "export", "--format", "json", "--out", str(out), "--as", "otto", passwords=[PW["otto"]])
    assert proc.returncode == 2 and "may not export records" in proc.stderr
    proc = _cli(root, "audit", "export", "--format", "json", "--out", str(out), "--as", "quinn",
                passwords=[PW["quinn"]])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    with RecordStore(root / "var" / "station.sqlite") as store:
        in_db = store.execute("SELECT count(*) FROM audit_trail").fetchone()[0]
    assert len(doc["entries"]) == in_db - 1, "the export's own entry is written after the copy"
    import sqlite3

    with sqlite3.connect(root / "var" / "station.sqlite") as raw:
        raw.execute("DROP TRIGGER audit_no_update")
        raw.execute("UPDATE audit_trail SET reason = 'changed' WHERE seq = 3")
    proc = _cli(root, "audit", "verify", passwords=[])
    assert proc.returncode == 1 and "entry 3" in proc.stderr


def test_a_demo_batch_is_marked_not_released(tmp_path: Path) -> None:
    from tests.support.stations import station_config

    root = _project(tmp_path)
    db = tmp_path / "demo.sqlite"
    session = open_station(station_config("tablet", items=3, line_rate=1200, db=db), root=root)
    try:
        result = session.run()
    finally:
        session.close()
    with RecordStore(db) as store:
        assert store.batch(result.batch_id or "")["release_status"] == "NOT RELEASED - DEMO"
        with pytest.raises(Exception, match="own database"):
            claim_mode(store, "production")
