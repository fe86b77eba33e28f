"""Without the training extra, the training commands that need torch say in one line how to install it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from training.cli import main as train_main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["train", "export", "compare", "thresholds", "weights"])
def test_training_commands_without_torch_say_how_to_install_it(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # find_spec answers None: as if not installed
    args = {
        "train": ["--product", "vial", "--data", str(tmp_path), "--out", str(tmp_path / "run")],
        "export": ["--checkpoint", str(tmp_path / "c.pt")],
        "compare": ["--checkpoint", str(tmp_path / "c.pt"), "--model", str(tmp_path)],
        "thresholds": ["--checkpoint", str(tmp_path / "c.pt"), "--out", str(tmp_path / "t.pt")],
        "weights": ["--checkpoint", str(tmp_path / "c.pt"), "--package", str(tmp_path)],
    }[command]
    assert train_main([command, *args]) == 2
    said = capsys.readouterr()
    lines = said.err.strip().splitlines()
    assert said.out == "" and len(lines) == 1, said.err
    assert f"inspector-train {command} needs torch" in lines[0] and "uv sync --extra training" in lines[0]
    assert not (tmp_path / "run").exists()


def test_prepare_needs_no_torch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    args = ["prepare", "--product", "tablet", "--out", str(tmp_path), "--count", "2", "--seed", "4"]
    assert train_main([*args, "--nuisance", "1.0", "--workers", "1"]) == 0
    assert len(list((tmp_path / "tablet_seed4_n1.0").glob("*.png"))) == 2
