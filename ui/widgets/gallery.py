"""Recent rejects (thumbnail, reason, scores) and the engineer's review that feeds retraining."""

from __future__ import annotations

from PyQt6.QtCore import QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QIcon, QShowEvent
from PyQt6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from inspector.roles import Action
from inspector.taxonomy import OK, labels
from ui import theme
from ui.controller import StationController
from ui.model import RejectEntry
from ui.widgets.common import panel, qpixmap
from ui.widgets.live_view import FrameCanvas, anomaly_words

KEY_ROLE = Qt.ItemDataRole.UserRole
SYNC_MS = 300


def caption(entry: RejectEntry) -> str:
    """Two short lines under a thumbnail: item and reason, then pocket and confidence."""
    d = entry.decision
    second = []
    if d.pocket_index is not None:
        second.append(f"pocket {d.pocket_index}")
    if d.confidence is not None:
        second.append(f"{d.confidence:.2f}")
    if entry.review is not None:
        second.append("reviewed ✔")
    return f"#{d.item_id} {d.reason.replace('_', ' ')}\n{' · '.join(second)}"


class RejectList(QListWidget):
    """Thumbnails of the recent rejects, newest first; emits the chosen entry."""

    chosen = pyqtSignal(object)  # RejectEntry

    def __init__(self, controller: StationController, *, strip: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(140, 120))
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setSpacing(6)
        self.setFont(theme.font(11, bold=True))
        if strip:
            self.setFlow(QListView.Flow.LeftToRight)
            self.setWrapping(False)
            self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
            self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.setFixedHeight(192)
        self._entries: dict[tuple[str, int], RejectEntry] = {}
        self._pending: list[RejectEntry] = []
        # Rejects can come at tens per second: add them in small batches, and only while visible.
        self.timer = QTimer(self)
        self.timer.setInterval(SYNC_MS)
        self.timer.timeout.connect(self.sync)
        self.timer.start()
        controller.reject_added.connect(self._pending.append)
        controller.reject_updated.connect(self.update_entry)
        controller.batch_started.connect(lambda _b: self.forget_all())
        self.itemClicked.connect(self._clicked)

    def sync(self) -> None:
        """Show the rejects that arrived since the last sync (newest first, at most the buffer's size)."""
        if not self._pending or not self.isVisible():
            return
        limit = self.controller.rejects.maxlen if self.controller.rejects is not None else 48
        pending = self._pending[-limit:]
        self._pending.clear()  # the same list object: reject_added is connected to its append
        for entry in pending:
            self.add_entry(entry)

    def showEvent(self, event: QShowEvent | None) -> None:
        super().showEvent(event)
        self.sync()

    def forget_all(self) -> None:
        # Not ``reset``: that name is a QAbstractItemView virtual which clear() itself calls.
        self._pending.clear()
        self.clear()
        self._entries.clear()

    def add_entry(self, entry: RejectEntry) -> None:
        item = QListWidgetItem(QIcon(qpixmap(entry.thumbnail)), caption(entry))
        item.setData(KEY_ROLE, entry.key)
        item.setSizeHint(QSize(156, 180))
        colour = theme.NOT_INSPECTED if entry.decision.reason == "not_inspected" else theme.REJECT
        item.setForeground(QColor(colour))
        item.setToolTip(self._tooltip(entry))
        self.insertItem(0, item)
        self._entries[entry.key] = entry
        limit = self.controller.rejects.maxlen if self.controller.rejects is not None else 48
        while self.count() > limit:
            old = self.takeItem(self.count() - 1)
            if old is not None:
                self._entries.pop(old.data(KEY_ROLE), None)

    def update_entry(self, entry: RejectEntry) -> None:
        for i in range(self.count()):
            item = self.item(i)
            if item is not None and item.data(KEY_ROLE) == entry.key:
                item.setText(caption(entry))
                item.setToolTip(self._tooltip(entry))

    def entry_at(self, row: int) -> RejectEntry | None:
        item = self.item(row)
        return None if item is None else self._entries.get(item.data(KEY_ROLE))

    def _clicked(self, item: QListWidgetItem) -> None:
        entry = self._entries.get(item.data(KEY_ROLE))
        if entry is not None:
            self.chosen.emit(entry)

    @staticmethod
    def _tooltip(entry: RejectEntry) -> str:
        d = entry.decision
        top = sorted((d.scores or {}).items(), key=lambda kv: -kv[1])[:4]
        scores = ", ".join(f"{k} {v:.2f}" for k, v in top)
        return f"batch {entry.batch_id}, item {d.item_id}\nreason {d.reason}\nscores: {scores or '–'}"


class ReviewPanel(QWidget):
    """An engineer confirms the defect class or marks a false reject; the image is exported for training."""

    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.entry: RejectEntry | None = None
        lay = QHBoxLayout(self)
        self.list = RejectList(controller, strip=False)
        self.list.setMinimumWidth(380)
        self.list.chosen.connect(self.select)
        lay.addWidget(self.list, 2)

        right = panel(self)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(12, 10, 12, 10)
        self.canvas = FrameCanvas("Choose a reject on the left")
        rl.addWidget(self.canvas, 3)
        self.details = QLabel("")
        self.details.setFont(theme.font(14))
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        rl.addWidget(self.details)

        form = QGridLayout()
        form.setHorizontalSpacing(12)
        self.label = QComboBox()
        self.label.setFont(theme.font(15))
        self.pocket = QSpinBox()
        self.pocket.setFont(theme.font(15))
        self.pocket_caption = QLabel("Pocket with the defect")
        self.confirm = QPushButton("CONFIRM DEFECT")
        self.false_reject = QPushButton("FALSE REJECT (item is good)")
        for b in (self.confirm, self.false_reject):
            b.setFont(theme.font(15, bold=True))
            b.setMinimumHeight(48)
        self.confirm.clicked.connect(lambda: self.submit(self.label.currentText()))
        self.false_reject.clicked.connect(lambda: self.submit(OK))
        form.addWidget(QLabel("Confirmed class"), 0, 0)
        form.addWidget(self.label, 0, 1)
        form.addWidget(self.pocket_caption, 1, 0)
        form.addWidget(self.pocket, 1, 1)
        form.addWidget(self.confirm, 2, 0)
        form.addWidget(self.false_reject, 2, 1)
        rl.addLayout(form)
        self.reviewer = QLabel("")
        self.reviewer.setObjectName("dim")
        self.reviewer.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setFont(theme.font(13, bold=True))
        rl.addWidget(self.reviewer)
        rl.addWidget(self.status)
        lay.addWidget(right, 3)

        controller.reject_updated.connect(self._updated)
        controller.review_failed.connect(self._failed)
        controller.session_changed.connect(self._session_changed)
        self._session_changed()
        self.select(None)

    def _session_changed(self) -> None:
        client = self.controller.client
        self.label.clear()
        if client is None:
            return
        info = client.info
        self.label.addItems([c for c in labels(info.product) if c != OK])
        pockets = info.pocket_count
        self.pocket.setRange(0, (pockets - 1) if pockets else 0)
        self.pocket.setVisible(pockets is not None)
        self.pocket_caption.setVisible(pockets is not None)
        self._show_reviewer()

    def _show_reviewer(self) -> None:
        c = self.controller
        folder = c.client.info.review_folder if c.client is not None else None
        who = c.operator or "(log in first: reviews are recorded for the logged-in user)"
        self.reviewer.setText(f"Reviewer: {who} · exports to {folder}/manifest.jsonl (source: review)")

    def select(self, entry: RejectEntry | None) -> None:
        self._show_reviewer()
        self.entry = entry
        enabled = entry is not None and entry.review is None
        self.confirm.setEnabled(enabled)
        self.false_reject.setEnabled(enabled)
        if entry is None:
            self.canvas.clear("Choose a reject on the left")
            self.details.setText("")
            self.status.setText("")
            return
        client = self.controller.client
        rois = client.info.rois if client is not None else None
        limit = client.info.anomaly_threshold if client is not None else None
        registration = client.info.registration if client is not None else None
        self.canvas.show_frame(
            entry.image, entry.decision, rois=rois, heat=entry.heatmap, anomaly_limit=limit, registration=registration
        )
        d = entry.decision
        if d.label and d.label != OK and self.label.findText(d.label) >= 0:
            self.label.setCurrentText(d.label)
        if d.pocket_index is not None:
            self.pocket.setValue(d.pocket_index)
        top = sorted((d.scores or {}).items(), key=lambda kv: -kv[1])[:5]
        scores = " · ".join(f"{k} <b>{v:.2f}</b>" for k, v in top) or "–"
        self.details.setText(
            f"Batch <b>{entry.batch_id}</b> · item <b>{d.item_id}</b> · station reason <b>{d.reason}</b>"
            + (f" · pocket <b>{d.pocket_index}</b>" if d.pocket_index is not None else "")
            + (f" · <b>{anomaly_words(d.anomaly, limit)}</b>" if d.anomaly is not None else "")
            + f"<br>Scores: {scores}"
        )
        self._show_review_state()
        self.controller.request_heatmap(entry, urgent=True)

    def submit(self, label: str) -> None:
        entry = self.entry
        if entry is None:
            return
        if not self.controller.can(Action.REVIEW_REJECT):
            self.status.setStyleSheet(f"color: {theme.REJECT};")
            self.status.setText("Log in as a user who may review rejects (it is recorded as reviewer).")
            return
        client = self.controller.client
        pocket = self.pocket.value() if client is not None and client.info.pocket_count is not None else None
        self.confirm.setEnabled(False)
        self.false_reject.setEnabled(False)
        self.status.setStyleSheet(f"color: {theme.TEXT_DIM};")
        self.status.setText("Exporting…")
        self.controller.review(entry, label, pocket)

    def _show_review_state(self) -> None:
        e = self.entry
        if e is None or e.review is None:
            self.status.setText("Not reviewed yet." if e is not None else "")
            self.status.setStyleSheet(f"color: {theme.TEXT_DIM};")
            return
        r = e.review
        what = "false reject (ok)" if r.false_reject else f"confirmed {r.label}"
        self.status.setStyleSheet(f"color: {theme.ACCEPT};")
        self.status.setText(f"Reviewed: {what} by {r.reviewer} (not authenticated) at {r.at_utc[:19]} UTC → {r.file}")

    def _updated(self, entry: RejectEntry) -> None:
        if entry is self.entry:
            self.select(entry)

    def _failed(self, entry: RejectEntry, why: str) -> None:
        if entry is self.entry:
            self.confirm.setEnabled(entry.review is None)
            self.false_reject.setEnabled(entry.review is None)
            self.status.setStyleSheet(f"color: {theme.REJECT};")
            self.status.setText(f"Not exported: {why}")
