"""HMI test fixtures: a throwaway project with test models, and windows that are always closed."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PyQt6.QtWidgets import QApplication

from tests.ui.support import make_project
from ui.app import create_app
from ui.main_window import MainWindow

OPERATOR = "Demo Operator"  # the demo station's operator account, logged in at start


@pytest.fixture(scope="session")
def ui_project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("hmi-template"), budget_ms=500)


@pytest.fixture
def ui_project(ui_project_template: Path, tmp_path: Path) -> Path:
    """A private copy per test, so records and review sets never mix between tests."""
    root = tmp_path / "project"
    shutil.copytree(ui_project_template, root)
    return root


@pytest.fixture(autouse=True)
def _no_leaked_windows(qapp: QApplication) -> Iterator[None]:
    yield
    qapp.processEvents()
    left = [w.objectName() or type(w).__name__ for w in QApplication.topLevelWidgets() if w.isVisible()]
    assert not left, f"test left windows open: {left}"


@pytest.fixture
def make_hmi(qtbot: Any, ui_project: Path) -> Iterator[Callable[..., MainWindow]]:
    windows: list[MainWindow] = []

    def make(product: str = "tablet", **kw: Any) -> MainWindow:
        kw.setdefault("db", ui_project / "var" / "inspector.sqlite")
        kw.setdefault("size", (1600, 960))
        window = create_app(product, root=ui_project, exec_app=False, **kw)
        windows.append(window)
        return window

    yield make
    for w in windows:
        w.close()
