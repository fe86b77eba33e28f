"""Training cuts its units through the station's registration: what the model learns from is what it sees."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import NEEDS_TRAINING_EXTRA

pytestmark = [pytest.mark.torch]
pytest.importorskip("torch", reason=NEEDS_TRAINING_EXTRA)
pytest.importorskip("torchvision", reason=NEEDS_TRAINING_EXTRA)

from inspector.config.recipe import load_recipe  # noqa: E402
from inspector.inference.registration import register  # noqa: E402
from inspector.manifest import read_manifest  # noqa: E402
from inspector.synth.generate import generate  # noqa: E402
from inspector.synth.line import LinePresentation  # noqa: E402
from inspector.taxonomy import Product  # noqa: E402
from training.data import load_sets, recipe_registration  # noqa: E402


def test_training_units_are_the_station_s_registered_units(tmp_path: Path) -> None:
    spec = recipe_registration(Product.BLISTER)
    assert spec is not None and spec == load_recipe("blister").recipe.registration
    near, far = tmp_path / "near", tmp_path / "far"
    generate("blister", 6, 960001, near, defect_rate=0.3, masks=False, workers=1, line=LinePresentation(8.0, 5.0))
    generate("blister", 6, 961001, far, defect_rate=0.3, masks=False, workers=1, line=LinePresentation(40.0))
    data = load_sets(Product.BLISTER, [near, far], workers=1, registration=spec)
    rois = load_recipe("blister").recipe.pocket_grid.rois()  # type: ignore[union-attr]
    expected, refused = [], []
    for folder in (near, far):
        for e in read_manifest(folder):
            reg = register(Product.BLISTER, cv2.imread(str(folder / e.file), cv2.IMREAD_UNCHANGED), spec, rois)
            if reg.units is None:
                refused.append(str(folder / e.file))
            else:
                expected.append(reg.units)
    assert refused, "cards moved 40 px lie outside the recipe's pose range"
    assert sorted(data.pose_refused) == sorted(refused), "the guard's refusals are left out, as on the line"
    assert data.units.shape[0] == 10 * len(expected) == len(data.unit_labels)
    # Items come in manifest order per folder; refused ones leave no units.
    assert np.array_equal(data.units, np.concatenate(expected))
    assert len(data.item_sha) == len(expected) == 12 - len(refused)


def test_prepare_renders_a_line_s_presentation_when_asked(tmp_path: Path) -> None:
    import json

    from training.cli import main as train_main

    out = tmp_path / "sets"
    argv = ["prepare", "--product", "tablet", "--out", str(out), "--count", "6", "--seed", "5", "--nuisance", "1.0"]
    assert train_main([*argv, "--shift", "8", "--turn", "5", "--workers", "1", "--json", str(tmp_path / "m.json")]) == 0
    made = json.loads((tmp_path / "m.json").read_text())
    folder = Path(made[0]["folder"])
    assert folder.name == "tablet_seed5_n1.0_s8t5", "the set's name says how it was presented"
    entries = read_manifest(folder)
    assert len(entries) == 6 and all(e.line is not None and abs(e.line["dx"]) <= 8 for e in entries)
    assert any(abs(e.line["turn_deg"]) > 0.5 for e in entries if e.line is not None)


def test_training_refuses_a_set_of_random_foreign_tablets(tmp_path: Path) -> None:
    """Those sets test the identity check with tablets no model saw: training on them would defeat it."""
    folder = tmp_path / "foreign"
    generate("tablet", 3, 962001, folder, masks=False, workers=1, foreign_tablets=True)
    assert all(e.foreign is not None and e.label == "wrong_tablet" for e in read_manifest(folder))
    with pytest.raises(ValueError, match="evaluation only"):
        load_sets(Product.TABLET, [folder], workers=1)
