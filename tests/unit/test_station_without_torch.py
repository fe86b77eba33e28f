"""The station runs and is tested without the training extra.

Every test that needs torch is marked; the training commands that need it say in one line how to install it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from training.cli import main as train_main

ROOT = Path(__file__).resolve().parents[2]
TORCH_MODULES = ("torch", "torchvision", "training.train", "training.export", "training.compare", "training.nets")


def _imports_torch(path: Path) -> bool:
    """At module level or in a function, or through ``pytest.importorskip("torch")``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip" and node.args:
            arg = node.args[0]
            names = [arg.value] if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else []
        if any(n == m or n.startswith(m + ".") for n in names for m in TORCH_MODULES):
            return True
    return False


def test_every_test_module_that_needs_torch_is_marked() -> None:
    unmarked = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "tests").rglob("test_*.py"))
        if _imports_torch(p) and "pytest.mark.torch" not in p.read_text(encoding="utf-8")
    ]
    assert unmarked == [], "mark them with pytest.mark.torch (and importorskip with NEEDS_TRAINING_EXTRA)"


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
