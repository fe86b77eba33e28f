"""Batch counters (inspected, accepted, rejected by reason, not inspected, yield) and live latency."""

from __future__ import annotations

import math

from PyQt6.QtCore import QPointF, QRectF, Qt, QTimer
from PyQt6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from PyQt6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ui import theme
from ui.controller import StationController
from ui.model import TallySnapshot
from ui.widgets.common import ValueTile, panel

REFRESH_MS = 250
REASON_ROWS = 6
TILE_COLUMNS = 3


def _set(label: QLabel, text: str, colour: str) -> None:
    """Change text and colour only when they change (re-styling re-polishes in C++ under the GIL)."""
    if label.text() != text:
        label.setText(text)
    if label.property("colour") != colour:
        label.setProperty("colour", colour)
        label.setStyleSheet(f"color: {colour};")


def _ms(x: float | None) -> str:
    return "–" if x is None else (f"{x:.1f}" if x < 100 else f"{x:.0f}")


class LatencySparkline(QWidget):
    """Recent per-item latency against the recipe's budget line (red above it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: list[float] = []
        self.budget_ms: float | None = None
        self.p99_ms: float | None = None
        self.setMinimumHeight(40)  # grows with the panel; the numbers above it carry the reading
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_data(self, values: list[float], budget_ms: float | None, p99_ms: float | None) -> None:
        values = values[-240:]
        if (values, budget_ms, p99_ms) == (self.values, self.budget_ms, self.p99_ms):
            return
        self.values, self.budget_ms, self.p99_ms = values, budget_ms, p99_ms
        self.update()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        # No antialiasing: an antialiased 240-point polyline costs ~2 ms, all of it holding the GIL.
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(62, 8, -4, -8)
        p.fillRect(r, QColor("#0d1117"))
        # Log scale: a 2 ms p99 and a 200 ms budget must both be readable on one small chart.
        seen = [v for v in self.values if v > 0]
        lo_v = min(seen) if seen else 1.0
        hi_v = max([self.budget_ms or 0.0, *seen, 1.0])
        lo = 10 ** math.floor(math.log10(max(lo_v * 0.8, 0.01)))
        hi = 10 ** math.ceil(math.log10(hi_v * 1.05))
        span = math.log10(hi) - math.log10(lo)

        def y(v: float) -> float:
            v = min(max(v, lo), hi)
            return r.bottom() - (math.log10(v) - math.log10(lo)) / span * r.height()

        small = theme.font(10)
        p.setFont(small)
        decade = lo
        while decade <= hi * 1.001:
            yd = y(decade)
            p.setPen(QPen(QColor("#2c3644"), 1))
            p.drawLine(QPointF(r.left(), yd), QPointF(r.right(), yd))
            p.setPen(QColor(theme.TEXT_DIM))
            label = f"{decade:g} ms"
            p.drawText(QRectF(0, yd - 9, 58, 18), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, label)
            decade *= 10
        if self.values:
            n = len(self.values)
            dx = r.width() / max(1, n - 1)
            poly = QPolygonF([QPointF(r.left() + i * dx, y(v)) for i, v in enumerate(self.values)])
            p.setPen(QPen(QColor(theme.INFO), 0))  # cosmetic 1-px pen: the fast path (wide pens are stroked)
            p.drawPolyline(poly)
            if self.budget_ms is not None:
                p.setPen(QPen(QColor(theme.REJECT), 4))
                for i, v in enumerate(self.values):
                    if v > self.budget_ms:
                        p.drawPoint(QPointF(r.left() + i * dx, y(v)))
        p.setFont(theme.font(11, bold=True))
        if self.budget_ms is not None:
            yb = y(self.budget_ms)
            p.setPen(QPen(QColor(theme.REJECT), 2, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(r.left(), yb), QPointF(r.right(), yb))
            p.drawText(QRectF(r.left() + 4, yb + 2, r.width() - 8, 22), Qt.AlignmentFlag.AlignRight, "budget")
        if self.p99_ms is not None:
            yp = y(self.p99_ms)
            p.setPen(QPen(QColor(theme.NOT_INSPECTED), 2, Qt.PenStyle.DotLine))
            p.drawLine(QPointF(r.left(), yp), QPointF(r.right(), yp))
            p.drawText(QRectF(r.left() + 4, yp - 22, r.width() - 8, 20), Qt.AlignmentFlag.AlignLeft, "p99")
        p.end()


class CountersPanel(QWidget):
    """Refreshed from the controller's live tally at 4 Hz (cheap, and readable)."""

    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)

        # Three tiles a row, reasons in two columns: the panel fits beside the live views on a
        # 1366 x 768 panel and grows on larger ones (the sparkline takes the extra height).
        tiles = QGridLayout()
        tiles.setSpacing(8)
        self.inspected = ValueTile("Inspected")
        self.accepted = ValueTile("Accepted", theme.ACCEPT)
        self.rejected = ValueTile("Rejected", theme.REJECT)
        self.not_inspected = ValueTile("Not inspected", theme.NOT_INSPECTED)
        self.yield_pct = ValueTile("Yield")
        self.rate = ValueTile("Items / s")
        for i, tile in enumerate(
            (self.inspected, self.accepted, self.rejected, self.yield_pct, self.not_inspected, self.rate)
        ):
            tiles.addWidget(tile, i // TILE_COLUMNS, i % TILE_COLUMNS)
        lay.addLayout(tiles)

        reasons = panel(self)
        rl = QVBoxLayout(reasons)
        rl.setContentsMargins(12, 8, 12, 8)
        cap = QLabel("REJECTS BY REASON")
        cap.setObjectName("dim")
        cap.setFont(theme.font(12, bold=True))
        rl.addWidget(cap)
        self.reason_grid = QGridLayout()
        self.reason_grid.setHorizontalSpacing(12)
        self.reason_grid.setVerticalSpacing(2)
        rows = (REASON_ROWS + 1) // 2
        self.reason_labels: list[tuple[QLabel, QLabel]] = []
        for row in range(REASON_ROWS):
            name, count = QLabel(""), QLabel("")
            name.setFont(theme.font(14))
            count.setFont(theme.font(14, bold=True))
            count.setAlignment(Qt.AlignmentFlag.AlignRight)
            # Down the first column, then the second; a gap column between the two.
            col = 3 * (row // rows)
            self.reason_grid.addWidget(name, row % rows, col)
            self.reason_grid.addWidget(count, row % rows, col + 1)
            self.reason_labels.append((name, count))
        self.reason_grid.setColumnMinimumWidth(2, 8)
        self.reason_grid.setColumnStretch(0, 1)
        self.reason_grid.setColumnStretch(3, 1)
        rl.addLayout(self.reason_grid)
        lay.addWidget(reasons)

        lat = panel(self)
        ll = QVBoxLayout(lat)
        ll.setContentsMargins(12, 8, 12, 8)
        cap2 = QLabel("LATENCY · LAST 600 ITEMS · LOG SCALE")
        cap2.setObjectName("dim")
        cap2.setFont(theme.font(12, bold=True))
        self.latency = QLabel("p50 –  ·  p99 –")
        self.latency.setFont(theme.font(18, bold=True))
        self.budget = QLabel("budget –")
        self.budget.setFont(theme.font(13))
        self.spark = LatencySparkline()
        ll.addWidget(cap2)
        ll.addWidget(self.latency)
        ll.addWidget(self.budget)
        ll.addWidget(self.spark, 1)
        lay.addWidget(lat, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        controller.counters_changed.connect(self.refresh)
        self.refresh()  # first call pays numpy's lazy imports now, not mid-batch

    def refresh(self) -> None:
        snap: TallySnapshot = self.controller.tally.snapshot()
        self.inspected.set(f"{snap.inspected:,}")
        self.accepted.set(f"{snap.accepted:,}")
        self.rejected.set(f"{snap.rejected:,}")
        self.not_inspected.set(f"{snap.not_inspected:,}")
        self.yield_pct.set("–" if snap.yield_pct is None else f"{snap.yield_pct:.1f} %")
        running = self.controller.phase == "running"
        self.rate.set("–" if snap.items_per_s is None or not running else f"{snap.items_per_s:.0f}")
        reasons = list(snap.by_reason.items())
        for i, (name, count) in enumerate(self.reason_labels):
            if i < len(reasons) and (i < REASON_ROWS - 1 or len(reasons) == REASON_ROWS):
                reason, n = reasons[i]
                colour = theme.NOT_INSPECTED if reason == "not_inspected" else theme.TEXT
                _set(name, reason.replace("_", " "), colour)
                _set(count, f"{n:,}", colour)
            elif i == REASON_ROWS - 1 and len(reasons) > REASON_ROWS:
                rest = sum(n for _, n in reasons[REASON_ROWS - 1 :])
                _set(name, f"{len(reasons) - REASON_ROWS + 1} other reasons", theme.TEXT)
                _set(count, f"{rest:,}", theme.TEXT)
            else:
                _set(name, "" if i else "none", theme.TEXT_DIM)
                _set(count, "", theme.TEXT_DIM)
        client = self.controller.client
        budget = client.info.latency_budget_ms if client is not None else None
        over = snap.p99_ms is not None and budget is not None and snap.p99_ms > budget
        self.latency.setText(f"p50 {_ms(snap.p50_ms)} ms  ·  p99 {_ms(snap.p99_ms)} ms")
        colour = theme.REJECT if over else theme.TEXT
        if colour != getattr(self, "_latency_colour", None):
            self._latency_colour = colour
            self.latency.setStyleSheet(f"color: {colour};")
        share = f" (p99 = {100 * snap.p99_ms / budget:.0f} % of it)" if budget and snap.p99_ms is not None else ""
        self.budget.setText(f"budget {_ms(budget)} ms{share}")
        self.spark.set_data(snap.latencies_ms, budget, snap.p99_ms)
