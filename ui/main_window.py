"""The station screen: header, alarm banner, batch control, and the Line / Review / Alarms / Audit / Release /
Qualification tabs."""

from __future__ import annotations

from PyQt6.QtCore import QEvent, QObject
from PyQt6.QtGui import QAction, QCloseEvent
from PyQt6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from inspector.station.reconcile import Reconciliation
from ui import theme
from ui.controller import Phase, StationController
from ui.model import RejectEntry
from ui.widgets.alarms import AlarmBanner, AlarmLog
from ui.widgets.batch import BatchControl, BatchSummaryDialog
from ui.widgets.counters import CountersPanel
from ui.widgets.gallery import RejectList, ReviewPanel
from ui.widgets.header import StationHeader
from ui.widgets.live_view import DISPLAY_FPS, LastRejectView, LiveView
from ui.widgets.qualification import QualificationView
from ui.widgets.records_views import AuditView, ReleaseView

# The counters column takes a quarter of the extra width, up to this; its minimum comes from its
# contents (three tiles a row), so the window fits a 1366 x 768 panel.
COUNTERS_MAX_WIDTH = 560


class MainWindow(QMainWindow):
    def __init__(
        self, controller: StationController, parent: QWidget | None = None, *, display_fps: int = DISPLAY_FPS
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("Inspector – station")
        self.setStyleSheet(theme.STYLE_SHEET)
        self.summary_dialog: BatchSummaryDialog | None = None

        central = QWidget()
        root = QVBoxLayout(central)
        root.setContentsMargins(10, 8, 10, 8)
        root.setSpacing(8)
        self.header = StationHeader(controller)
        self.banner = AlarmBanner(controller)
        self.batch = BatchControl(controller)
        root.addWidget(self.header)
        root.addWidget(self.banner)
        root.addWidget(self.batch)

        self.tabs = QTabWidget()
        self.tabs.setFont(theme.font(14, bold=True))
        line = QWidget()
        ll = QVBoxLayout(line)
        ll.setContentsMargins(0, 6, 0, 0)
        # Views and the reject strip on the left, counters over the full height on the right.
        columns = QHBoxLayout()
        columns.setSpacing(8)
        left = QVBoxLayout()
        left.setSpacing(6)
        views = QHBoxLayout()
        views.setSpacing(8)
        self.live = LiveView(controller, fps=display_fps)
        self.last_reject = LastRejectView(controller)
        views.addWidget(self.live, 1)
        views.addWidget(self.last_reject, 1)
        left.addLayout(views, 1)
        strip_cap = QLabel("RECENT REJECTS · click one to review it")
        strip_cap.setObjectName("dim")
        strip_cap.setFont(theme.font(12, bold=True))
        self.strip = RejectList(controller, strip=True)
        self.strip.chosen.connect(self.open_review)
        left.addWidget(strip_cap)
        left.addWidget(self.strip)
        self.counters = CountersPanel(controller)
        self.counters.setMaximumWidth(COUNTERS_MAX_WIDTH)
        columns.addLayout(left, 3)
        columns.addWidget(self.counters, 1)
        ll.addLayout(columns, 1)
        self.review = ReviewPanel(controller)
        self.alarm_log = AlarmLog(controller)
        self.tabs.addTab(line, "LINE")
        self.tabs.addTab(self.review, "REJECT REVIEW")
        self.tabs.addTab(self.alarm_log, "ALARMS")
        self.audit = AuditView(controller)
        self.release = ReleaseView(controller)
        self.tabs.addTab(self.audit, "AUDIT TRAIL")
        self.tabs.addTab(self.release, "RELEASE")
        self.qualification = QualificationView(controller)
        self.tabs.addTab(self.qualification, "QUALIFICATION")
        root.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self._menus()

        controller.batch_finished.connect(self.show_summary)
        controller.phase_changed.connect(self._phase)
        # Any key or click restarts the idle-logout clock (21 CFR 11.300(d): no unattended session).
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if event is not None and event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.KeyPress):
            self.controller.touch()
        return False

    def _menus(self) -> None:
        bar = self.menuBar()
        assert bar is not None
        station = bar.addMenu("&Station")
        assert station is not None
        quit_ = QAction("&Quit", self)
        quit_.triggered.connect(self.close)
        station.addAction(quit_)
        batch = bar.addMenu("&Batch")
        assert batch is not None
        self.act_start = QAction("&Start batch", self)
        self.act_start.triggered.connect(self.batch._start)
        self.act_stop = QAction("S&top batch", self)
        self.act_stop.triggered.connect(lambda: self.controller.stop_batch())
        batch.addAction(self.act_start)
        batch.addAction(self.act_stop)
        users = bar.addMenu("&Users")
        assert users is not None
        self.users_menu = users
        login = QAction("Log &in / log out", self)
        login.triggered.connect(self.header._login_or_out)
        users.addAction(login)
        audit = QAction("&Audit trail", self)
        audit.triggered.connect(lambda: self.tabs.setCurrentWidget(self.audit))
        users.addAction(audit)
        release = QAction("&Release of model and recipe", self)
        release.triggered.connect(lambda: self.tabs.setCurrentWidget(self.release))
        users.addAction(release)
        qualify = QAction("&Qualification", self)
        qualify.triggered.connect(lambda: self.tabs.setCurrentWidget(self.qualification))
        users.addAction(qualify)
        help_ = bar.addMenu("&Help")
        assert help_ is not None
        about = QAction("&About", self)
        about.triggered.connect(self._about)
        help_.addAction(about)

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "Inspector",
            "Inspector operator HMI.\n\nEvery batch start, alarm acknowledgement and reject review is recorded "
            "for the logged-in user and written to the audit trail; releases are signed with the password.",
        )

    def _phase(self, phase: str) -> None:
        self.act_start.setEnabled(phase == Phase.READY)
        self.act_stop.setEnabled(phase == Phase.RUNNING)
        if phase == Phase.ERROR and self.controller.last_error:
            self.live.canvas.clear(self.controller.last_error)

    def open_review(self, entry: RejectEntry) -> None:
        self.tabs.setCurrentWidget(self.review)
        self.review.select(entry)

    def show_summary(self, report: Reconciliation) -> None:
        if self.summary_dialog is not None:
            self.summary_dialog.close()
        dialog = BatchSummaryDialog(report, self, self.controller)
        dialog.setStyleSheet(theme.STYLE_SHEET)
        dialog.destroyed.connect(lambda _=None: self._dialog_gone(dialog))
        self.summary_dialog = dialog
        dialog.show()

    def _dialog_gone(self, dialog: BatchSummaryDialog) -> None:
        if self.summary_dialog is dialog:
            self.summary_dialog = None

    def closeEvent(self, event: QCloseEvent | None) -> None:
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        if self.summary_dialog is not None:
            self.summary_dialog.close()
        self.qualification.shutdown()
        self.controller.shutdown()
        super().closeEvent(event)
