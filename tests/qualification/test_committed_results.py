"""The committed qualification results are of the shipped suites, recipes and models, as the README says."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from inspector.config.recipe import load_recipe
from inspector.taxonomy import Product

ROOT = Path(__file__).resolve().parents[2]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("product", list(Product))
def test_the_committed_result_is_of_the_shipped_suite_recipe_and_model(product: Product) -> None:
    folder = ROOT / "qualification" / "results" / product.value
    report = json.loads((folder / "report.json").read_text())
    loaded = load_recipe(product.value)
    assert report["suite"]["sha256"] == _sha(ROOT / "qualification" / f"{product.value}.yaml"), "suite changed since"
    assert report["recipe"]["sha256"] == loaded.sha256, "the recipe changed since its qualification: run it again"
    assert report["recipe"]["id"] == f"{loaded.recipe.recipe_id}@{loaded.recipe.version}"
    assert report["model"]["onnx_sha256"] == loaded.recipe.model.sha256
    assert "+local-changes" not in report["software"]["git_commit"], "run from a committed tree"
    performance = report["performance"]
    assert performance["seconds"] < 120, "500 items x 10 presentations in under two minutes"
    # The PDF is the same run's, and says its verdict.
    text = "".join(page.extract_text() for page in PdfReader(str(folder / "report.pdf")).pages)
    verdict = "PASSED" if report["passed"] else "FAILED"
    assert report["run_id"] in text and verdict in text
    # The README states each verdict as the record has it.
    readme = (ROOT / "README.md").read_text()
    assert f"| {product.value} | {report['run_id']} | {verdict}" in readme
