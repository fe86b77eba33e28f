"""Alarm banner (open alarms, acknowledge) and the alarm log with who acknowledged what, when."""

from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QColor, QShowEvent
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.events import AlarmSeverity
from ui import theme
from ui.controller import StationController

LOG_ROWS = 500


def _hhmmss(utc: str | None) -> str:
    return "" if not utc else utc[11:19]


class AlarmBanner(QFrame):
    """Shown while any warning or fault is unacknowledged; red for faults, amber for warnings."""

    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        lay = QHBoxLayout(self)
        lay.setContentsMargins(16, 8, 12, 8)
        lay.setSpacing(16)
        self.icon = QLabel("ALARM")
        self.icon.setFont(theme.font(20, bold=True))
        self.text = QLabel("")
        self.text.setFont(theme.font(17, bold=True))
        self.text.setWordWrap(True)
        self.more = QLabel("")
        self.more.setFont(theme.font(14))
        self.ack = QPushButton("ACKNOWLEDGE")
        self.ack.setFont(theme.font(15, bold=True))
        self.ack.setMinimumHeight(48)
        self.ack.clicked.connect(self.acknowledge)
        lay.addWidget(self.icon)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.more)
        lay.addWidget(self.ack)
        controller.alarms_changed.connect(self.refresh)
        self.refresh()

    def acknowledge(self) -> None:
        self.controller.acknowledge_alarms()

    def refresh(self) -> None:
        open_ = self.controller.alarms.unacknowledged()
        if not open_:
            self.hide()
            return
        fault = any(e.alarm.severity is AlarmSeverity.FAULT for e in open_)
        newest = open_[-1].alarm
        colour = theme.REJECT if fault else theme.NOT_INSPECTED
        self.setStyleSheet(f"AlarmBanner {{ background: {colour}; border-radius: 8px; }} QLabel {{ color: white; }}")
        self.icon.setText("FAULT" if fault else "WARNING")
        self.text.setText(f"{newest.code} · {newest.message}  ({_hhmmss(newest.t_utc)} UTC)")
        self.more.setText(f"{len(open_)} open" if len(open_) > 1 else "")
        who = self.controller.operator
        self.ack.setToolTip(
            f"Acknowledge as {who} (recorded with the time, in the audit trail too)"
            if who
            else "Log in first: acknowledgements are recorded for the logged-in user"
        )
        self.show()


class AlarmLog(QWidget):
    """Every alarm of this session, newest first, with its acknowledgement (UTC time and name)."""

    HEADERS = ("Raised (UTC)", "Severity", "Source", "Code", "Message", "Acknowledged (UTC)", "By")

    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        lay = QVBoxLayout(self)
        note = QLabel(
            "Acknowledgements are stored in the record database with the UTC time and the logged-in user's "
            "name, and written to the audit trail."
        )
        note.setObjectName("dim")
        note.setWordWrap(True)
        self.table = QTableWidget(0, len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(self.HEADERS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)  # type: ignore[union-attr]
        header = self.table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        lay.addWidget(note)
        lay.addWidget(self.table)
        self._dirty = True
        # Alarm storms (a gap per item) must not rebuild the table per alarm: coalesce, and only when seen.
        self.timer = QTimer(self)
        self.timer.setInterval(500)
        self.timer.timeout.connect(self._maybe_refresh)
        self.timer.start()
        controller.alarms_changed.connect(self._mark)

    def _mark(self) -> None:
        self._dirty = True

    def _maybe_refresh(self) -> None:
        if self._dirty and self.isVisible():
            self.refresh()

    def showEvent(self, event: QShowEvent | None) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        self._dirty = False
        entries = list(reversed(self.controller.alarms.entries))[:LOG_ROWS]
        self.table.setRowCount(len(entries))
        for row, e in enumerate(entries):
            a = e.alarm
            values = (
                a.t_utc[:23].replace("T", " "),
                a.severity.value,
                a.source,
                a.code,
                a.message,
                (e.acknowledged_utc or "")[:23].replace("T", " ") if e.acknowledged_utc else "",
                e.acknowledged_by or ("" if not e.needs_ack else "open"),
            )
            for col, v in enumerate(values):
                item = QTableWidgetItem(v)
                if col == 1 and a.severity is AlarmSeverity.FAULT:
                    item.setForeground(QColor(theme.REJECT))
                elif col == 1 and a.severity is AlarmSeverity.WARNING:
                    item.setForeground(QColor(theme.NOT_INSPECTED))
                if col == 6 and e.needs_ack:
                    item.setForeground(QColor(theme.NOT_INSPECTED))
                item.setTextAlignment(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft)
                self.table.setItem(row, col, item)
