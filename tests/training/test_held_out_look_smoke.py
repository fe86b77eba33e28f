"""A held-out look end to end, as a customer retrains on their own line's images (a tiny smoke).

``prepare --look`` renders another line's tablets (never used to tune the recipe), ``train`` with the
product's default recipe trains until validation converges (bounded here to two epochs), and ends
with the per-class verdict. This proves the path a customer takes, not the model's quality: the
figures of full-size runs on every held-out look are in the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import NEEDS_TRAINING_EXTRA

pytestmark = [pytest.mark.torch, pytest.mark.slow]
torch = pytest.importorskip("torch", reason=NEEDS_TRAINING_EXTRA)

from inspector.manifest import read_manifest  # noqa: E402
from inspector.synth import looks  # noqa: E402
from training.cli import main as train_main  # noqa: E402
from training.train import load_checkpoint  # noqa: E402

LOOK = "woven-white"


def test_a_held_out_look_retrains_with_the_default_recipe_until_convergence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert LOOK in looks.names("tablet", held_out=True)
    made = tmp_path / "made.json"
    code = train_main(
        ["prepare", "--product", "tablet", "--look", LOOK, "--out", str(tmp_path), "--count", "440",
         "--seed", "7100", "--nuisance", "1.0", "--defect-rate", "0.25", "--workers", "2", "--json", str(made)]
    )  # fmt: skip
    assert code == 0
    folder = Path(json.loads(made.read_text())[0]["folder"])
    assert folder.name == f"tablet_{LOOK}_seed7100_n1.0"
    assert {e.look for e in read_manifest(folder)} == {LOOK}
    capsys.readouterr()

    out = tmp_path / "run"
    verdict = tmp_path / "verdict.json"
    code = train_main(
        ["train", "--product", "tablet", "--data", str(folder), "--out", str(out), "--max-epochs", "2",
         "--batch-size", "32", "--ae-steps", "4", "--json", str(verdict)]
    )  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "balanced val loss" in err and "epoch 1/2" in err
    assert "classifier reached the limit of 2 epochs" in err or "classifier converged" in err
    said = json.loads(verdict.read_text())
    assert isinstance(said["criteria_met_on_val"], bool) and isinstance(said["missed_classes"], list)

    ckpt, _ = load_checkpoint(out / "checkpoint.pt")
    conv = ckpt["training"]["convergence"]
    assert conv["rule"]["max_epochs"] == 2 and 1 <= conv["epochs"] <= 2 and 1 <= conv["best_epoch"] <= conv["epochs"]
    assert [row["epoch"] for row in conv["log"]] == list(range(1, conv["epochs"] + 1))
    assert all("val_loss" in row for row in ckpt["metrics"]["history"])
    assert ckpt["training"]["epochs"] == conv["epochs"]
    assert "until the balanced validation loss stops improving" in ckpt["training"]["optimizer"]
    assert ckpt["datasets"][0]["looks"] == [LOOK]
    # A fixed count and a convergence limit together are refused in one line.
    code = train_main(
        ["train", "--product", "tablet", "--data", str(folder), "--out", str(tmp_path / "x"), "--epochs", "2",
         "--max-epochs", "3"]
    )  # fmt: skip
    assert code == 2 and "either a fixed number of epochs" in capsys.readouterr().err
    # Units are cut by the registration of the line's own recipe; another product's is refused.
    code = train_main(
        ["train", "--product", "tablet", "--data", str(folder), "--out", str(tmp_path / "y"), "--recipe", "vial"]
    )  # fmt: skip
    assert code == 2 and "recipe 'vial' is for vial, not tablet" in capsys.readouterr().err
