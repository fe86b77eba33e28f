"""``inspector evaluate``'s pictures: written beside the JSON, linked from the Markdown, and not blank."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.cli import main
from inspector.evaluation import auroc
from inspector.inference.package import write_package
from inspector.plots import area, roc_pr_points
from inspector.synth.generate import generate
from inspector.taxonomy import Product
from tests.support.onnx_models import brightness_model
from tests.unit.test_evaluation import _write_set

ROOT = Path(__file__).resolve().parents[2]


def assert_picture(path: Path, *, min_width: int = 600, min_height: int = 150) -> np.ndarray:
    """A real PNG of a sensible size with something drawn on it (not one flat colour, not all white)."""
    assert path.is_file(), path
    assert path.stat().st_size > 8_000, f"{path.name}: {path.stat().st_size} bytes"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path.name} is not a readable image"
    h, w = img.shape[:2]
    assert w >= min_width and h >= min_height, f"{path.name}: {w}x{h}"
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    inked = float((grey < 200).mean())
    assert grey.std() > 10 and inked > 0.01, f"{path.name} looks blank (std {grey.std():.1f}, inked {inked:.3f})"
    return img


@pytest.fixture()
def failing_vial_package(tmp_path: Path) -> Path:
    """The brightness test model (dark frames: missing_cap), with acceptance criteria it cannot meet."""
    folder = tmp_path / "models" / "vial" / "0.0.1"
    data, record = brightness_model(Product.VIAL, defect_class="missing_cap")
    record = record.model_copy(update={"acceptance_criteria": {"critical_escapes_max": 0}})
    write_package(folder, data, record)
    return folder


@pytest.fixture()
def vial_set(tmp_path: Path) -> Path:
    folder = tmp_path / "set"
    # Particles look bright (accepted: critical escapes); two dark good vials are rejected.
    items = [("ok", 200)] * 10 + [("missing_cap", 10)] * 5 + [("particle", 200)] * 3 + [("ok", 10)] * 2
    _write_set(folder, Product.VIAL, items)
    return folder


def test_evaluate_writes_every_picture_beside_the_json_and_exits_1_on_failed_criteria(
    tmp_path: Path, failing_vial_package: Path, vial_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report" / "vial.json"
    md = tmp_path / "md" / "vial.md"
    argv = ["evaluate", "--model", str(failing_vial_package), "--images", str(vial_set), "--json", str(out)]
    argv.append("--no-registration")  # flat frames stand in for vials: nothing to locate
    code = main([*argv, "--markdown", str(md)])
    said = capsys.readouterr()
    assert code == 1, "done, and a criterion failed"
    assert said.out == "" and "acceptance criteria: FAIL" in said.err and "pictures (" in said.err
    result = json.loads(out.read_text())
    kinds = {"confusion", "scores", "roc_pr", "misjudged"}
    assert set(result["pictures"]) == kinds
    for kind in kinds:
        path = out.parent / f"vial.{kind}.png"
        assert result["pictures"][kind] == str(path)
        assert_picture(path)
        assert f"![{kind}](../report/vial.{kind}.png)" in md.read_text(), "the Markdown links each picture"
    # The montage holds every misjudged item: 3 critical escapes and 2 good vials rejected, in one row.
    assert result["misjudged"]["accepted_defects_total"] == 3 and result["misjudged"]["rejected_good_total"] == 2
    montage = assert_picture(out.parent / "vial.misjudged.png")
    assert montage.shape[0] < 400 and montage.shape[1] >= 5 * 130
    red = (montage[:, :, 2] > 180) & (montage[:, :, 1] < 60) & (montage[:, :, 0] < 60)
    assert red[:, : montage.shape[1] // 2].sum() > red[:, montage.shape[1] // 2 :].sum(), "critical escapes first"


def test_pictures_only_where_a_file_is_written_or_a_folder_named(
    tmp_path: Path, failing_vial_package: Path, vial_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", "--model", str(failing_vial_package), "--images", str(vial_set), "--quiet", "--no-registration"]
    assert main([*argv, "--json"]) == 1
    said = capsys.readouterr()
    assert json.loads(said.out)["n"] == 20 and said.err == "" and "pictures" not in json.loads(said.out)
    assert main([*argv, "--json", str(tmp_path / "a.json"), "--no-plots"]) == 1
    assert sorted(p.name for p in tmp_path.glob("a*")) == ["a.json"]
    assert main([*argv, "--plots", str(tmp_path / "pics")]) == 1
    assert sorted(p.name for p in (tmp_path / "pics").iterdir()) == [
        f"evaluation.{k}.png" for k in ("confusion", "misjudged", "roc_pr", "scores")
    ]


@pytest.mark.slow
def test_blister_pictures_of_the_shipped_model_include_the_pocket_confusion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cards = tmp_path / "cards"
    generate("blister", 24, 5150, cards, defect_rate=0.5, nuisance=1.0, masks=False, workers=1)
    out = tmp_path / "blister.json"
    model = ROOT / "models" / "blister" / "1.7.0"
    assert main(["evaluate", "--model", str(model), "--images", str(cards), "--json", str(out), "--quiet"]) in (0, 1)
    result = json.loads(out.read_text())
    assert set(result["pictures"]) == {"confusion", "scores", "roc_pr", "misjudged", "pocket_confusion"}
    for path in result["pictures"].values():
        assert_picture(Path(path), min_height=100)
    # Pocket rows: a row per pocket label seen; the scores figure a row per pocket label too.
    pockets = len(result["pocket_confusion_matrix"]["rows"])
    scores = cv2.imread(result["pictures"]["scores"])
    assert scores.shape[0] >= 90 * pockets


def test_the_roc_curve_area_is_the_reports_auroc() -> None:
    rng = np.random.default_rng(3)
    good = np.round(rng.normal(1.0, 0.3, 400), 2)  # rounded: many ties, counted half by both
    bad = np.round(rng.normal(1.6, 0.5, 90), 2)
    fpr, tpr, recall, precision = roc_pr_points(good, bad)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert area(fpr, tpr) == pytest.approx(auroc(good, bad), abs=1e-12)
    assert recall[-1] == 1 and precision[-1] == pytest.approx(90 / 490)
    assert np.all(np.diff(recall) >= 0)
