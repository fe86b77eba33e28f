"""Small building blocks shared by the screens: panels, badges, value tiles, numpy -> QImage."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QSize, Qt
from PyQt6.QtGui import QImage, QPainter, QPaintEvent, QPixmap
from PyQt6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.render import to_bgr


def qimage(array: np.ndarray) -> QImage:
    """A QImage that owns a copy of ``array`` (mono or BGR uint8)."""
    bgr = np.ascontiguousarray(to_bgr(array))
    h, w = bgr.shape[:2]
    # The stubs know only ``bytes``; a numpy buffer works and avoids a copy before ours.
    img = QImage(bgr.data, w, h, 3 * w, QImage.Format.Format_BGR888)  # type: ignore[call-overload]
    return img.copy()  # type: ignore[no-any-return]


def qpixmap(array: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(qimage(array))


def panel(parent: QWidget | None = None) -> QFrame:
    frame = QFrame(parent)
    frame.setObjectName("panel")
    return frame


def captioned(caption: str, widget: QWidget) -> QVBoxLayout:
    """A small dim caption above a widget (the header's and batch bar's fields)."""
    col = QVBoxLayout()
    col.setSpacing(2)
    cap = QLabel(caption)
    cap.setObjectName("dim")
    cap.setFont(theme.font(11, bold=True))
    col.addWidget(cap)
    col.addWidget(widget)
    return col


def short_sha(sha: str, n: int = 12) -> str:
    return f"{sha[:n]}…" if len(sha) > n else sha


class ElidedLabel(QLabel):
    """A one-line label that may get narrower than its text: it then ends in "…", the full text in its tooltip.

    For identities (user, recipe, model) whose length the screen does not choose: the window
    keeps fitting a 1366 x 768 panel however long they are. ``text()`` stays the full text.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None, *, min_chars: int = 12) -> None:
        super().__init__(text, parent)
        self.min_chars = min_chars
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        room = self.fontMetrics().horizontalAdvance("M" * self.min_chars)
        return QSize(min(hint.width(), room), hint.height())

    def is_elided(self) -> bool:
        return self.fontMetrics().horizontalAdvance(self.text()) > self.contentsRect().width()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        if not self.is_elided():
            super().paintEvent(event)
            return
        rect = self.contentsRect()
        shown = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        p = QPainter(self)
        style = self.style()
        assert style is not None
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        style.drawItemText(p, rect, align, self.palette(), self.isEnabled(), shown, self.foregroundRole())
        p.end()


class Badge(QLabel):
    """A coloured status pill: always a word, never colour alone."""

    def __init__(self, text: str = "", parent: QWidget | None = None, *, point_size: int = 15) -> None:
        super().__init__(text, parent)
        self.setObjectName("badge")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFont(theme.font(point_size, bold=True))
        self.set("", theme.IDLE)

    def set(self, text: str, colour: str) -> None:
        if text != self.text():
            self.setText(text)
        if colour != getattr(self, "_colour", None):
            # Re-styling re-polishes the widget in C++ while holding the GIL: only when it changes.
            self._colour = colour
            self.setStyleSheet(f"background: {colour}; color: white; border-radius: 6px; padding: 4px 10px;")


class ValueTile(QFrame):
    """A big number with a caption (counters)."""

    def __init__(self, caption: str, colour: str = theme.TEXT, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panel")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 4, 12, 4)
        lay.setSpacing(0)
        self.caption = QLabel(caption.upper())
        self.caption.setObjectName("dim")
        self.caption.setFont(theme.font(11, bold=True))
        self.value = QLabel("–")
        self.value.setFont(theme.font(26, bold=True))
        self.value.setStyleSheet(f"color: {colour};")
        lay.addWidget(self.caption)
        lay.addWidget(self.value)

    def set(self, text: str) -> None:
        if text != self.value.text():
            self.value.setText(text)
