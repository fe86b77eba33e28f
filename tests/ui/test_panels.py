"""The station screen fits the operator panels it runs on: 1366x768, 1600x900 and 1920x1080.

A window manager's title bar takes about 28 px of the height, so the window itself must fit
1366x740; at each size nothing the operator reads or presses may be clipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from PyQt6.QtCore import QRect
from PyQt6.QtWidgets import QAbstractButton, QApplication, QLabel, QWidget

from ui.controller import Phase
from ui.main_window import MainWindow
from ui.widgets.common import ElidedLabel

START_TIMEOUT_MS = 60_000
TITLE_BAR = 28
PANELS = [(1366, 768), (1600, 900), (1920, 1080)]


def running(make_hmi: Callable[..., MainWindow], qtbot: Any, size: tuple[int, int], **kw: Any) -> MainWindow:
    w = make_hmi("vial", size=size, **kw)
    qtbot.waitUntil(lambda: w.controller.phase == Phase.RUNNING, timeout=START_TIMEOUT_MS)
    qtbot.waitUntil(lambda: w.controller.tally.snapshot().inspected >= 3, timeout=START_TIMEOUT_MS)
    QApplication.processEvents()
    return w


def fits(w: MainWindow) -> None:
    for size in (w.minimumSizeHint(), w.minimumSize()):
        assert size.width() <= 1366 and size.height() <= 768 - TITLE_BAR, (size.width(), size.height())


def inside_central(w: MainWindow, widget: QWidget) -> QRect:
    central = w.centralWidget()
    assert central is not None
    rect = QRect(widget.mapTo(central, widget.rect().topLeft()), widget.size())
    assert not rect.isEmpty(), f"{widget!r} has no size"
    assert central.rect().contains(rect), f"{widget!r} at {rect} is outside {central.rect()}"
    return rect


def test_the_window_fits_a_1366x768_panel_with_and_without_an_alarm(
    make_hmi: Callable[..., MainWindow], qtbot: Any
) -> None:
    w = running(make_hmi, qtbot, (1366, 768 - TITLE_BAR))
    fits(w)
    w.banner.show()  # an open alarm adds the banner above the batch bar
    assert w.banner.isVisible()
    fits(w)


@pytest.mark.parametrize(("width", "height"), PANELS, ids=[f"{w}x{h}" for w, h in PANELS])
def test_nothing_the_operator_reads_or_presses_is_clipped(
    make_hmi: Callable[..., MainWindow], qtbot: Any, width: int, height: int
) -> None:
    w = running(make_hmi, qtbot, (width, height - TITLE_BAR))
    assert (w.width(), w.height()) == (width, height - TITLE_BAR), "the window grew past the panel"
    key = [w.header, w.batch, w.batch.start, w.batch.stop, w.tabs, w.live, w.last_reject, w.strip, w.counters]
    key += [w.counters.inspected, w.counters.rejected, w.counters.not_inspected, w.counters.spark]
    for widget in key:
        assert widget.isVisible(), widget
        inside_central(w, widget)
    bar = w.tabs.tabBar()
    assert bar is not None
    for i in range(w.tabs.count()):
        assert bar.rect().contains(bar.tabRect(i)), f"tab {w.tabs.tabText(i)!r} is cut off"
    central = w.centralWidget()
    assert central is not None
    for widget in central.findChildren(QWidget):
        if not widget.isVisible() or isinstance(widget, ElidedLabel):
            continue
        if isinstance(widget, QLabel | QAbstractButton) and not (isinstance(widget, QLabel) and widget.wordWrap()):
            need = widget.minimumSizeHint()
            assert widget.width() >= need.width() and widget.height() >= need.height(), (
                f"{type(widget).__name__} {widget.text()!r} is {widget.width()}x{widget.height()}, needs {need}"
            )
    # The values an operator reads from two metres stay large.
    for tile in (w.counters.inspected, w.counters.rejected, w.counters.yield_pct):
        assert tile.value.font().pointSize() >= 20
    for name, count in w.counters.reason_labels:
        assert name.font().pointSize() >= 11 and count.font().pointSize() >= 11
