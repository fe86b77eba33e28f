"""Runtime evaluation (inspector.evaluation): real ONNX packages, real labelled sets, decide()."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector import evaluation
from inspector.cli.evaluate import register as register_evaluate
from inspector.evaluation import (
    ItemOutcome,
    auroc,
    check_acceptance,
    evaluate,
    format_markdown,
    format_report,
    summarize,
    wilson_interval,
)
from inspector.manifest import ManifestEntry, read_manifest, sha256_bytes, write_manifest
from inspector.taxonomy import Product, criticality
from tests.support.onnx_models import make_package

REQUIRED_KEYS = {
    "n",
    "per_class_recall",
    "false_reject_rate",
    "critical_escapes",
    "anomaly_auroc",
    "infer_ms_p50",
    "infer_ms_p99",
}


def _write_set(folder: Path, product: Product, items: list[tuple[str, int]]) -> None:
    """A labelled set of flat frames: (label, grey level) per item."""
    folder.mkdir(parents=True)
    entries = []
    shape = (384, 256) if product is Product.VIAL else (256, 256, 3)
    for i, (label, level) in enumerate(items):
        ok, buf = cv2.imencode(".png", np.full(shape, level, np.uint8))
        assert ok
        data = buf.tobytes()
        name = f"img_{i:03d}.png"
        (folder / name).write_bytes(data)
        entries.append(
            ManifestEntry(
                file=name,
                product=product,
                label=label,
                criticality=criticality(product, label),
                seed=None,
                sha256=sha256_bytes(data),
                source="camera",
            )
        )
    write_manifest(folder, entries)


@pytest.fixture()
def vial_package(tmp_path: Path) -> Path:
    # Bright frames score ok, frames darker than 40 score missing_cap (a critical defect).
    folder = tmp_path / "models" / "vial" / "0.0.1"
    make_package(folder, Product.VIAL, defect_class="missing_cap")
    return folder


@pytest.fixture()
def vial_set(tmp_path: Path) -> Path:
    folder = tmp_path / "set"
    items = [("ok", 200)] * 10 + [("missing_cap", 10)] * 5 + [("particle", 200)] * 3 + [("ok", 10)] * 2
    _write_set(folder, Product.VIAL, items)
    return folder


def test_auroc_known_values() -> None:
    assert auroc([0, 1, 2], [3, 4]) == 1.0
    assert auroc([3, 4], [0, 1, 2]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    assert auroc([0, 2], [1, 3]) == pytest.approx(0.75)
    assert auroc([], [1.0]) is None


def test_wilson_interval_known_values() -> None:
    assert wilson_interval(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx([0.7225, 1.0], abs=1e-4)
    low, high = wilson_interval(0, 1000) or [None, None]
    assert low == 0.0 and high == pytest.approx(0.00383, abs=1e-5)  # no event is not a rate of zero
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(3, 2)


def test_evaluate_counts_escapes_and_false_rejects(vial_package: Path, vial_set: Path) -> None:
    result = evaluate(vial_package, vial_set)
    assert set(result) >= REQUIRED_KEYS
    assert result["n"] == 20
    # 2 of 12 ok frames are dark: rejected as missing_cap.
    assert result["false_reject_rate"] == pytest.approx(2 / 12)
    assert result["per_class_recall"]["missing_cap"] == 1.0
    # Bright particle frames look ok to this model: three critical escapes.
    assert result["per_class_recall"]["particle"] == 0.0
    assert result["critical_escapes"] == 3
    assert result["escapes_per_class"] == {"missing_cap": 0, "particle": 3}
    intervals = result["intervals_95"]
    assert intervals["false_reject_rate"] == wilson_interval(2, 12)
    assert intervals["false_reject_rate"][0] < 2 / 12 < intervals["false_reject_rate"][1]
    assert intervals["per_class_recall"]["particle"] == wilson_interval(0, 3)
    assert intervals["per_class_recall"]["ok"] == wilson_interval(10, 12)
    assert "false reject rate 16.67% (95 % 4.70-44.80%)" in format_report(result)
    cm = result["confusion_matrix"]
    row = dict(zip(cm["columns"], cm["counts"][cm["rows"].index("ok")], strict=True))
    assert row["ok"] == 10 and row["missing_cap"] == 2
    assert sum(map(sum, cm["counts"])) == 20
    # The test model's anomaly output is constant: no ranking power.
    assert result["anomaly_auroc"] == 0.5
    assert 0 < result["infer_ms_p50"] <= result["infer_ms_p99"]
    assert result["model"]["sha256"] == json.loads((vial_package / "record.json").read_text())["sha256"]
    # Every misjudged item is listed by file, so QA can open the image: critical escapes first.
    mis = result["misjudged"]
    assert mis["accepted_defects_total"] == 3 and mis["rejected_good_total"] == 2
    files = {e.file: e.label for e in read_manifest(vial_set)}
    for e in mis["accepted_defects"]:
        assert files[e["file"]] == "particle" and e["decision"] == "ok" and e["criticality"] == "critical"
    for e in mis["rejected_good"]:
        assert files[e["file"]] == "ok" and e["decision"] == "missing_cap" and "criticality" not in e
    report = format_report(result)
    assert "defects accepted: 3 (file, truth -> decision" in report
    assert f"  {mis['accepted_defects'][0]['file']}: particle -> ok" in report and "CRITICAL" in report
    assert "good items rejected: 2" in report


def test_misjudged_list_puts_critical_escapes_first_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "MISJUDGED_LISTED", 3)
    classes = ["ok", "fill_low", "particle"]
    says_ok = np.array([[0.99, 0.005, 0.005]], np.float32)
    quiet = np.zeros(1, np.float32)
    outcomes = [ItemOutcome("fill_low", says_ok, quiet, file=f"fill_{i}.png") for i in range(5)]
    outcomes.append(ItemOutcome("particle", says_ok, quiet, file="particle.png"))
    r = summarize(Product.VIAL, classes, outcomes, confidence_threshold=0.5, anomaly_threshold=1.0)
    mis = r["misjudged"]
    assert mis["accepted_defects_total"] == 6 and mis["listed_max"] == 3
    assert [e["file"] for e in mis["accepted_defects"]] == ["particle.png", "fill_0.png", "fill_1.png"]
    assert "defects accepted: 6" in format_report(r)


def test_evaluate_refuses_bad_input(tmp_path: Path, vial_package: Path, vial_set: Path) -> None:
    tablets = tmp_path / "tablets"
    _write_set(tablets, Product.TABLET, [("ok", 200)])
    with pytest.raises(ValueError, match="model is for vial"):
        evaluate(vial_package, tablets)
    with pytest.raises(ValueError, match="manifest"):
        evaluate(vial_package, tmp_path)
    with pytest.raises(ValueError, match="cannot use model package"):
        evaluate(tmp_path / "nowhere", vial_set)
    with pytest.raises(ValueError, match="not a minor"):
        evaluate(vial_package, vial_set, accept_minor=["particle"])
    (vial_set / "img_000.png").write_bytes(b"not the image")
    with pytest.raises(ValueError, match="sha256"):
        evaluate(vial_package, vial_set)


def test_tampered_model_is_refused(vial_package: Path, vial_set: Path) -> None:
    data = bytearray((vial_package / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (vial_package / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        evaluate(vial_package, vial_set)


def test_blister_summary_uses_worst_pocket_and_reports_it() -> None:
    classes = ["ok", "empty_pocket", "broken_tablet"]
    ok_scores = np.tile([0.98, 0.01, 0.01], (10, 1)).astype(np.float32)
    empty = ok_scores.copy()
    empty[3] = [0.02, 0.97, 0.01]
    normal = np.zeros(10, np.float32)
    odd = normal.copy()
    odd[7] = 5.0  # a pocket the classifier calls ok but the anomaly score flags
    pockets_empty = tuple("empty_pocket" if i == 3 else "ok" for i in range(10))
    pockets_foil = tuple("foil_damage" if i == 7 else "ok" for i in range(10))
    outcomes = [
        ItemOutcome("ok", ok_scores, normal, ("ok",) * 10, 1.0),
        ItemOutcome("empty_pocket", empty, normal, pockets_empty, 2.0),
        ItemOutcome("foil_damage", ok_scores, odd, pockets_foil, 3.0),
    ]
    r = summarize(
        Product.BLISTER, classes, outcomes, confidence_threshold=0.5, anomaly_threshold=1.0, withheld=["foil_damage"]
    )
    assert r["n"] == 3 and r["critical_escapes"] == 0 and r["false_reject_rate"] == 0.0
    assert r["per_class_reason_recall"]["empty_pocket"] == 1.0
    assert r["per_class_recall"]["foil_damage"] == 1.0
    assert r["pocket_index_correct"] == 1.0
    assert r["anomaly_auroc_withheld"] == 1.0
    pcm = r["pocket_confusion_matrix"]
    foil_row = dict(zip(pcm["columns"], pcm["counts"][pcm["rows"].index("foil_damage")], strict=True))
    assert foil_row["anomaly"] == 1
    assert r["infer_ms_p50"] == 2.0


def test_acceptance_check_flags_each_criterion() -> None:
    result = {
        "per_class_recall": {"ok": 0.996, "particle": 1.0, "fill_low": 0.98},
        "critical_escapes": 0,
        "false_reject_rate": 0.004,
        "anomaly_auroc_withheld": 0.97,
        "infer_ms_p50": 1.2,
    }
    criteria = {
        "critical_escapes_max": 0,
        "critical_recall_min": 0.999,
        "rejectable_recall_min": 0.99,
        "false_reject_rate_max": 0.005,
        "anomaly_auroc_withheld_min": 0.98,
        "infer_ms_p50_max": 2.0,
        "test_set": "a note, not a limit",
    }
    acc = check_acceptance(Product.VIAL, result, criteria)
    failed = {k for k, c in acc["checks"].items() if c["passed"] is False}
    assert failed == {"rejectable_recall_min", "anomaly_auroc_withheld_min"}
    assert acc["passed"] is False
    assert "test_set" not in acc["checks"]


def test_evaluate_command_writes_json_and_markdown(tmp_path: Path, vial_package: Path, vial_set: Path) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register_evaluate(sub)
    out = tmp_path / "report" / "evaluation.json"
    md = tmp_path / "report" / "evaluation.md"
    args = parser.parse_args(
        [
            "evaluate",
            "--model",
            str(vial_package),
            "--images",
            str(vial_set),
            "--json",
            str(out),
            "--markdown",
            str(md),
            "--no-registration",
        ]  # flat frames stand in for vials: nothing to locate
    )
    assert args.func(args) == 0
    data = json.loads(out.read_text())
    assert set(data) >= REQUIRED_KEYS and data["n"] == 20
    assert "| particle | 3 | 0.00% | 0.00-56.15% |" in md.read_text()
    escape = data["misjudged"]["accepted_defects"][0]["file"]
    assert f"| {escape} | **particle (critical)** | ok |" in md.read_text()
    assert format_markdown(data).startswith("# Evaluation")
    bad = parser.parse_args(["evaluate", "--model", str(tmp_path / "none"), "--images", str(vial_set)])
    with pytest.raises(ValueError, match="not a folder"):
        bad.func(bad)


def test_evaluate_judges_with_the_recipe_s_accepted_minor_defects(
    tmp_path: Path, vial_package: Path, vial_set: Path
) -> None:
    """The deployed path: evaluate accepts the minor defects the recipe accepts, unless told."""
    from inspector.config.recipe import load_recipe

    shipped = load_recipe("vial")
    accepting = tmp_path / "vial-accepting.yaml"
    text = shipped.path.read_text()
    assert "\naccept_minor: []" in text
    accepting.write_text(text.replace("\naccept_minor: []", "\naccept_minor: [cosmetic_scratch]"))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register_evaluate(sub)
    common = ["evaluate", "--model", str(vial_package), "--images", str(vial_set), "--no-registration", "--quiet"]
    runs = {
        "shipped": [],
        "recipe": ["--recipe", str(accepting)],
        "none": ["--recipe", str(accepting), "--accept-minor"],
    }
    results = {}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.json"
        args = parser.parse_args([*common, *extra, "--json", str(out), "--no-plots"])
        args.func(args)
        results[name] = json.loads(out.read_text())
    assert results["shipped"]["accept_minor"] == list(shipped.recipe.accept_minor) == []
    assert results["shipped"]["recipe"]["recipe_id"] == shipped.recipe.recipe_id
    assert results["recipe"]["accept_minor"] == ["cosmetic_scratch"], "the recipe's accepted minor defects"
    assert results["recipe"]["recipe"]["registration"] is False
    assert results["none"]["accept_minor"] == [], "--accept-minor with no class rejects every defect"
