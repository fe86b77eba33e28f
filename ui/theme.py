"""Colours, fonts and the style sheet of the HMI.

Sized to be read from two metres on a 1920x1080 line monitor: large type, high contrast,
and every colour paired with a word so that state never depends on colour alone.
"""

from __future__ import annotations

from PyQt6.QtGui import QColor, QFont

ACCEPT = "#1b9e3e"
REJECT = "#d32f2f"
NOT_INSPECTED = "#f5a300"
IDLE = "#607080"
INFO = "#1e6fd9"
BACKGROUND = "#12161c"
PANEL = "#1c222b"
PANEL_LIGHT = "#263040"
TEXT = "#eef2f6"
TEXT_DIM = "#9aa8b8"

STATE_COLOURS = {
    "idle": IDLE,
    "starting": INFO,
    "running": ACCEPT,
    "stopping": INFO,
    "fault": REJECT,
}

BASE_POINT_SIZE = 13


def decision_colour(accept: bool | None, reason: str | None) -> str:
    """Green accept, red defect reject, amber not inspected, grey while undecided."""
    if accept is None:
        return IDLE
    if accept:
        return ACCEPT
    return NOT_INSPECTED if reason == "not_inspected" else REJECT


def qcolor(hex_colour: str, alpha: int = 255) -> QColor:
    c = QColor(hex_colour)
    c.setAlpha(alpha)
    return c


def font(point_size: int, *, bold: bool = False) -> QFont:
    f = QFont()
    f.setPointSize(point_size)
    f.setBold(bold)
    return f


STYLE_SHEET = f"""
QWidget {{ background: {BACKGROUND}; color: {TEXT}; }}
QMainWindow::separator {{ background: {PANEL_LIGHT}; }}
QFrame#panel {{ background: {PANEL}; border-radius: 8px; }}
QLabel#dim {{ color: {TEXT_DIM}; background: transparent; }}
QLabel {{ background: transparent; }}
QLabel#badge {{ border-radius: 6px; padding: 4px 12px; font-weight: bold; color: white; }}
QPushButton {{
    background: {PANEL_LIGHT}; border: 1px solid #3a4656; border-radius: 6px; padding: 6px 16px;
    font-weight: bold;
}}
QPushButton:hover {{ background: #32405a; }}
QPushButton:disabled {{ color: #5d6b7c; background: #1a2029; border-color: #2a323e; }}
QPushButton#start {{ background: {ACCEPT}; color: white; border: none; }}
QPushButton#start:disabled {{ background: #1d3a28; color: #6f8f7a; }}
QPushButton#stop {{ background: {REJECT}; color: white; border: none; }}
QPushButton#stop:disabled {{ background: #3d2222; color: #8f6f6f; }}
QLineEdit, QComboBox, QSpinBox {{
    background: #0d1117; border: 1px solid #3a4656; border-radius: 4px; padding: 4px 8px;
}}
QLineEdit:disabled, QComboBox:disabled {{ color: #6d7b8c; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ background: {PANEL}; padding: 8px 22px; margin-right: 2px; font-weight: bold; }}
QTabBar::tab:selected {{ background: {PANEL_LIGHT}; border-bottom: 3px solid {INFO}; }}
QListWidget, QTableWidget {{ background: {PANEL}; border: none; }}
QHeaderView::section {{ background: {PANEL_LIGHT}; border: none; padding: 4px; font-weight: bold; }}
QMenuBar {{ background: {PANEL}; }}
QMenuBar::item:selected, QMenu::item:selected {{ background: {PANEL_LIGHT}; }}
QMenu {{ background: {PANEL}; border: 1px solid #3a4656; }}
QMenu::item:disabled {{ color: #6d7b8c; }}
QToolTip {{ background: #fffbe6; color: black; border: 1px solid #333; }}
"""
