"""A qualification suite run through the production station: Knapp statistics, criteria, the PDF report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader

from inspector.config.station import DEMO_STATION, apply_flags
from inspector.config.suite import Criteria, load_suite
from inspector.qualification.report import write_pdf
from inspector.qualification.runner import QualificationError, prepare_sets, run_suite
from inspector.qualification.stats import Presentation, summarize
from inspector.records import RecordStore
from inspector.records.chain import verify_batch
from inspector.taxonomy import IMAGE_SPECS, Product
from tests.support.onnx_models import make_package


def _project(tmp: Path) -> Path:
    record = make_package(tmp / "models" / "tablet" / "0.0.1", Product.TABLET, defect_class="wrong_tablet",
                          dark_below=120)  # fmt: skip
    spec = IMAGE_SPECS[Product.TABLET]
    recipe = {
        "schema_version": 1, "recipe_id": "tablet-qual-test", "version": "1.0.0", "product": "tablet",
        "camera": "sim.yaml", "frame": {"width": spec.width, "height": spec.height, "channels": spec.channels},
        "model": {"path": "models/tablet/0.0.1", "sha256": record.sha256},
        "latency_budget_ms": 400, "line_rate_per_min": 3000,
    }  # fmt: skip
    (tmp / "recipes").mkdir()
    (tmp / "recipes" / "tablet.yaml").write_text(yaml.safe_dump(recipe))
    return tmp


def _suite(root: Path, *, detection: float, escapes: int, manual: dict[str, float] | None = None) -> Path:
    folder = root / "qualification"
    folder.mkdir(exist_ok=True)
    suite = {
        "schema_version": 1, "suite_id": "tablet-oq", "version": "1.0.0", "product": "tablet", "recipe": "tablet",
        "challenge_sets": [{"name": "mixed", "render": {"seed": 31, "items": 6, "defect_rate": 0.5}}],
        "presentations": 10, "line_rate_per_min": 3000, "plc": "none",
        "criteria": {"detection_rate_min": detection, "false_reject_rate_max": 0.5, "critical_escapes_max": escapes,
                     "reject_zone_efficiency_min": 1.0 if manual is not None else None},
    }  # fmt: skip
    if manual is not None:
        with open(folder / "manual.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["item_key", "p_manual"])
            w.writerows(sorted(manual.items()))
        suite["manual_baseline"] = "manual.csv"
    path = folder / f"suite-{detection}-{escapes}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_a_suite_runs_through_the_production_station_and_reports(tmp_path: Path) -> None:
    root = _project(tmp_path)
    db = tmp_path / "var" / "q.sqlite"
    station = apply_flags(DEMO_STATION, plc="none", db=str(db))
    loose = load_suite(_suite(root, detection=0.0, escapes=10_000))
    sets = prepare_sets(loose, tmp_path / "cache", workers=1)
    keys = sorted({e.item_key for e in sets[0].entries if e.item_key})
    assert len(keys) == 6 and len(sets[0].entries) == 60
    manual = {k: 0.9 for k in keys}  # people reject every item surely: the station must match that
    loaded = load_suite(_suite(root, detection=0.0, escapes=10_000, manual=manual))
    report = run_suite(loaded, station, root=root, out=tmp_path / "out", cache=tmp_path / "cache", workers=1)
    r = report["result"]
    assert r["presentations"] == 60 and r["items"] == 6 and r["not_inspected"] == 0
    assert report["suite"]["sha256"] == loaded.sha256 and report["model"]["digest"]
    assert {c["criterion"] for c in r["checks"]} >= {"false reject rate", "critical escapes",
                                                     "reject-zone efficiency vs manual"}  # fmt: skip
    assert r["knapp"]["manual_reject_zone_items"] == 6 and r["knapp"]["rzn_manual"] == pytest.approx(54.0)
    # Each item's rejections come from its 10 presentations through the pipeline, recorded in the batch.
    assert all(i["presentations"] == 10 for i in r["per_item"])
    (batch,) = report["batches"]
    with RecordStore(db) as store:
        assert verify_batch(store, batch["batch_id"]).ok
        assert store.counts(batch["batch_id"])["inspected"] == 60
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["run_id"] == report["run_id"] and saved["passed"] == report["passed"]
    pdf = write_pdf(report, tmp_path / "out" / "report.pdf")
    text = "".join(page.extract_text() for page in PdfReader(str(pdf)).pages)
    flat = "".join(text.split())  # long hashes wrap inside their table cells
    assert report["run_id"] in text and loaded.sha256 in flat and report["model"]["digest"] in flat
    assert "Not signed yet" in text and "Knapp" in text
    assert ("PASSED" if report["passed"] else "FAILED") in text


def test_pass_or_fail_is_decided_by_the_criteria() -> None:
    def pr(key: str, label: str, i: int, accepted: bool) -> Presentation:
        return Presentation(key, i, label, accepted, "ok" if accepted else label, f"{key}_{i}.png", i + 1, "B")

    prs = [pr("good-1", "ok", i, i != 0) for i in range(10)]  # one false reject in ten
    prs += [pr("crack-1", "crack", i, i < 2) for i in range(10)]  # detected 8 of 10
    prs += [pr("spot-1", "foreign_spot", i, i == 0) for i in range(10)]  # a critical escape
    manual = {"crack-1": 1.0, "spot-1": 0.8, "good-1": 0.0}
    strict = Criteria(detection_rate_min=0.9, false_reject_rate_max=0.05, critical_escapes_max=0,
                      reject_zone_efficiency_min=1.0)  # fmt: skip
    s = summarize(Product.TABLET, prs, manual=manual, criteria=strict, expected_presentations=10)
    verdicts = {c["criterion"]: c["passed"] for c in s["checks"]}
    assert verdicts == {
        "detection rate crack": False, "detection rate foreign_spot": True, "false reject rate": False,
        "critical escapes": False, "reject-zone efficiency vs manual": False,
    }  # fmt: skip
    assert s["critical_escapes"] == 1 and s["critical_escape_items"] == ["spot-1"]
    assert s["knapp"]["rzn_manual"] == pytest.approx(18.0) and s["knapp"]["rzn_station"] == pytest.approx(17.0)
    assert [m["item_key"] for m in s["misjudged"]] == ["spot-1", "crack-1", "good-1"], "critical first"
    crack = next(i for i in s["per_item"] if i["item_key"] == "crack-1")
    assert crack["p_reject"] == 0.8 and crack["zone"] == "reject" and crack["fq"] == 8.0
    loose = Criteria(detection_rate_min=0.5, false_reject_rate_max=0.2, critical_escapes_max=1,
                     reject_zone_efficiency_min=0.9)  # fmt: skip
    assert summarize(Product.TABLET, prs, manual=manual, criteria=loose)["passed"] is True
    short = summarize(Product.TABLET, prs[:-1], manual=manual, criteria=loose, expected_presentations=10)
    assert short["passed"] is False and short["items_short_of_presentations"] == ["spot-1"]


def test_a_suite_refuses_sets_without_item_identity(tmp_path: Path) -> None:
    from inspector.synth.generate import generate

    root = _project(tmp_path)
    generate("tablet", 3, 5, root / "plain", workers=1)
    path = root / "s.yaml"
    path.write_text(yaml.safe_dump({
        "schema_version": 1, "suite_id": "t", "version": "1.0.0", "product": "tablet", "recipe": "tablet",
        "challenge_sets": [{"name": "plain", "folder": "plain"}], "presentations": 10,
        "criteria": {"detection_rate_min": 0.9, "false_reject_rate_max": 0.1, "reject_zone_efficiency_min": None},
    }))  # fmt: skip
    with pytest.raises(QualificationError, match="item_key"):
        prepare_sets(load_suite(path), tmp_path / "cache")
