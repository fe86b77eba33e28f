"""The shipped recipes and model packages: they verify, load, and run a batch from a clean checkout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.config.recipe import load_recipe
from inspector.inference.package import load_package
from inspector.station import open_station
from inspector.taxonomy import Criticality, Product, defects
from tests.support.stations import station_config

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))


def test_every_product_has_a_shipped_recipe() -> None:
    products = {load_recipe(name, ROOT).recipe.product for name in RECIPES}
    assert products == set(Product)


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_package_matches_its_recipe_and_evaluation(name: str) -> None:
    rec = load_recipe(name, ROOT).recipe
    folder = ROOT / rec.model.path
    package = load_package(folder, expected_sha256=rec.model.sha256)  # sha256 + ONNX metadata verified
    record = package.record
    assert record.product is rec.product and record.status == "draft"
    assert len(package.onnx_bytes) < 8_000_000, "a shipped model stays small"
    assert record.training["from_scratch"] is True and record.training["seed"] is not None
    assert record.training["train_seconds"] <= 15 * 60, "each shipped model trains within 15 minutes"
    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert evaluation["model"]["sha256"] == record.sha256
    assert evaluation["n"] == 5000 and evaluation["critical_escapes"] == 0


@pytest.mark.parametrize("name", RECIPES)
def test_reperformance_evidence_belongs_to_its_package(name: str) -> None:
    folder = ROOT / load_recipe(name, ROOT).recipe.model.path
    record = load_package(folder).record
    files = sorted(folder.glob("reperformance-*.json"))
    assert files, f"{folder}: no re-performance record (python -m training compare)"
    for path in files:
        doc = json.loads(path.read_text())
        compare = doc["compare"]
        assert compare["model"] == {"product": record.product.value, "version": record.version, "sha256": record.sha256}
        # "identical" is the conjunction of the checks, never set on its own.
        assert compare["identical"] is all(compare["checks"].values())
        assert compare["identical"] is True, f"{path.name}: the rerun did not reproduce the package"
        assert compare["weights"]["differing"] == 0 and compare["weights"]["max_abs_diff"] == 0.0
        assert compare["thresholds"]["checkpoint"] == compare["thresholds"]["package"]
        wall = sum(doc["wall_clock_seconds"].values())
        assert doc["train_seconds"] <= wall <= doc["budget_seconds"] == 15 * 60


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipe_runs_a_sim_batch(name: str) -> None:
    config = station_config(name, items=24, line_rate=600, seed=11, defect_rate=0.0)
    session = open_station(config, root=ROOT)
    try:
        result = session.run()
    finally:
        session.close()
    assert result.items == 24 and result.reconciled is True
    # Speed is a benchmark's business: on a loaded machine an item may miss its budget, and is then
    # rejected as late (fail safe), never as a defect and never because the model failed.
    assert set(result.not_inspected_by_cause) <= {"late"}, result.not_inspected_by_cause
    assert result.not_inspected <= 6, "most items of a paced 10/s batch are inspected in time"
    # Only good items were rendered: every one inspected is accepted by the shipped model at nominal nuisance.
    assert result.accepted == 24 - result.not_inspected, result.rejected_by_reason


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipe_passes_its_start_up_challenge(name: str) -> None:
    config = station_config(name, items=4)
    session = open_station(config, root=ROOT)
    try:
        challenge = session.run_startup_challenge()
    finally:
        session.close()
    assert challenge.passed, [it for it in challenge.items if not it["right"]]
    critical = {it["label"] for it in challenge.items if it["expected"] == "reject"}
    product = Product(name)
    assert critical == {d.code.value for d in defects(product) if d.criticality is Criticality.CRITICAL}
