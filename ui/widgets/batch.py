"""Batch control (recipe, batch/lot id, start/stop, recipe and model identity) and the end-of-batch summary."""

from __future__ import annotations

from typing import Any

from PyQt6 import sip
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from inspector.roles import Action
from inspector.station.client import valid_batch_id
from inspector.station.reconcile import Reconciliation
from ui import theme
from ui.controller import Phase, StationController
from ui.widgets.common import Badge, ElidedLabel, captioned, panel, short_sha

SAMPLE_BATCH_ID = "blister-20261206T163943Z-24805a"  # controller.suggest_batch_id()'s form
SITE_REFRESH_MS = 500
SITE_LAG_WARN_S = 2.0  # the site more than this behind: shown amber (forwarding normally keeps it well under)


class BatchControl(QWidget):
    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        box = panel(self)
        outer.addWidget(box)
        lay = QHBoxLayout(box)
        lay.setContentsMargins(14, 8, 14, 8)
        lay.setSpacing(8)

        self.recipe = QComboBox()
        self.recipe.setMinimumWidth(110)
        self.recipe.setFont(theme.font(15))
        self.recipe.addItems(controller.recipes)
        self.recipe.activated.connect(self._recipe_chosen)
        self.batch = QLineEdit()
        self.batch.setFont(theme.font(14))
        # Wide enough for a whole suggested id of the longest product name.
        self.batch.setMinimumWidth(self.batch.fontMetrics().horizontalAdvance(SAMPLE_BATCH_ID) + 28)
        self.batch.setPlaceholderText("batch / lot id")
        self.batch.textChanged.connect(self._validate)
        self.start = QPushButton("START")
        self.start.setObjectName("start")
        self.stop = QPushButton("STOP")
        self.stop.setObjectName("stop")
        for b in (self.start, self.stop):
            b.setFont(theme.font(17, bold=True))
            b.setMinimumHeight(48)  # the width follows the text (and the style sheet's padding)
        self.challenge = QPushButton("CHALLENGE")
        self.challenge.setObjectName("challenge")
        self.challenge.setFont(theme.font(14, bold=True))
        self.challenge.setMinimumHeight(48)
        self.challenge.setToolTip("Present the recipe's start-up challenge set: every item must be judged right")
        self.challenge.clicked.connect(lambda: controller.run_challenge())
        self.start.clicked.connect(self._start)
        self.stop.clicked.connect(lambda: controller.stop_batch())
        lay.addLayout(captioned("RECIPE", self.recipe))
        lay.addLayout(captioned("BATCH / LOT", self.batch))
        lay.addWidget(self.challenge, alignment=Qt.AlignmentFlag.AlignBottom)
        lay.addWidget(self.start, alignment=Qt.AlignmentFlag.AlignBottom)
        lay.addWidget(self.stop, alignment=Qt.AlignmentFlag.AlignBottom)
        lay.addSpacing(6)
        # Where the records are forwarded to a site database: how far behind the site is.
        self.site = Badge("", point_size=13)
        site_column = captioned("SITE", self.site)
        caption = site_column.itemAt(0).widget()  # type: ignore[union-attr]
        assert isinstance(caption, QLabel)
        self.site_caption = caption
        lay.addLayout(site_column)

        # Identities of any length: cut short ("…") on a narrow panel, whole in the tooltip.
        ident = QGridLayout()
        ident.setHorizontalSpacing(8)
        ident.setVerticalSpacing(2)
        self.recipe_info = ElidedLabel("–", min_chars=7)
        self.model_info = ElidedLabel("–", min_chars=7)
        self.recipe_sha = ElidedLabel("", min_chars=8)
        self.model_sha = ElidedLabel("", min_chars=8)
        for row, (cap, info, sha) in enumerate(
            (("Recipe", self.recipe_info, self.recipe_sha), ("Model", self.model_info, self.model_sha))
        ):
            c = QLabel(cap.upper())
            c.setObjectName("dim")
            c.setFont(theme.font(11, bold=True))
            info.setFont(theme.font(14, bold=True))
            sha.setFont(theme.font(12))
            sha.setObjectName("dim")
            ident.addWidget(c, row, 0)
            ident.addWidget(info, row, 1)
            ident.addWidget(sha, row, 2)
        ident.setColumnStretch(1, 1)  # the ids take the room; the short sha256 beside them stays short
        lay.addLayout(ident, 1)
        self.status = QLabel("")
        self.status.setFont(theme.font(13))
        self.status.setWordWrap(True)
        self.status.setMaximumWidth(360)
        lay.addWidget(self.status)

        controller.phase_changed.connect(lambda _p: self.refresh())
        controller.session_changed.connect(self.refresh)
        controller.user_changed.connect(self.refresh)
        controller.message.connect(self._message)
        controller.error.connect(self._error)
        controller.challenge_finished.connect(self._challenge_finished)
        controller.batch_started.connect(self.batch.setText)
        # A batch id is used once: offer a fresh one for the next batch.
        controller.batch_finished.connect(lambda _r: self.batch.setText(controller.suggest_batch_id()))
        self.site_timer = QTimer(self)
        self.site_timer.setInterval(SITE_REFRESH_MS)
        self.site_timer.timeout.connect(self._refresh_site)
        self.site_timer.start()
        self.refresh()
        self._refresh_site()

    def _refresh_site(self) -> None:
        """Store-and-forward to the site database: how far behind the site is (the rows in the tooltip)."""
        client = self.controller.client
        lag = client.status().site if client is not None else None
        self.site.setVisible(lag is not None)
        self.site_caption.setVisible(lag is not None)
        if lag is None:
            return
        detail = f"The site has every record but the last {lag.rows_behind:,} rows ({lag.seconds_behind:.1f} s)."
        if lag.halted:
            self.site.set("HALTED", theme.REJECT)
            self.site.setToolTip(
                f"The site halted forwarding: {lag.halted}\nRecords are kept here; call QA, who resumes it"
                " after looking (inspector site resume)."
            )
        elif lag.error:
            self.site.set(
                f"BEHIND {_age(lag.seconds_behind)}" if lag.rows_behind else "NOT REACHED", theme.NOT_INSPECTED
            )
            self.site.setToolTip(f"{lag.error}\n{detail}\nRecords are kept here and sent when the site answers.")
        elif lag.rows_behind and lag.seconds_behind >= SITE_LAG_WARN_S:
            self.site.set(f"BEHIND {_age(lag.seconds_behind)}", theme.NOT_INSPECTED)
            self.site.setToolTip(detail)
        else:
            self.site.set("UP TO DATE", theme.ACCEPT)
            self.site.setToolTip(detail)

    def _recipe_chosen(self, index: int) -> None:
        name = self.recipe.itemText(index)
        if name and name != self.controller.recipe_name:
            self.controller.open(name)

    def _validate(self, text: str) -> None:
        ok = not text or valid_batch_id(text)
        self.batch.setStyleSheet("" if ok else f"border: 2px solid {theme.REJECT};")
        self.refresh()

    def _start(self) -> None:
        bid = self.batch.text().strip() or self.controller.suggest_batch_id()
        self.batch.setText(bid)
        self.controller.start_batch(bid, self.controller.operator or None)

    def _challenge_finished(self, result: Any) -> None:
        right = sum(1 for it in result.items if it["right"])
        text = f"START-UP CHALLENGE {'PASSED' if result.passed else 'FAILED'}: {right}/{len(result.items)} judged right"
        wrong = [f"{it['label']} → {it['decided'] or 'no decision'}" for it in result.items if not it["right"]]
        if wrong:
            text += " (" + "; ".join(wrong) + ")"
        colour = theme.ACCEPT if result.passed else theme.REJECT
        self.status.setStyleSheet(f"color: {colour}; font-weight: bold;")
        self.status.setText(text)
        self.status.setToolTip(f"{text}\nbatch {result.batch_id}")
        self.refresh()

    def _message(self, text: str) -> None:
        self.status.setStyleSheet(f"color: {theme.TEXT_DIM};")
        self.status.setText(text)

    def _error(self, text: str) -> None:
        self.status.setStyleSheet(f"color: {theme.REJECT}; font-weight: bold;")
        self.status.setText(text)
        self.status.setToolTip(text)

    def refresh(self) -> None:
        c = self.controller
        phase = c.phase
        idle = phase in (Phase.READY, Phase.ERROR, Phase.NO_SESSION)
        self.recipe.setEnabled(idle)
        self.batch.setEnabled(phase == Phase.READY)
        text = self.batch.text().strip()
        may_run = c.can(Action.RUN_BATCH) or (c.client is not None and c.client.info.mode == "demo")
        has_challenge = c.client is not None and c.client.info.has_startup_challenge
        production = c.client is not None and c.client.info.mode == "production"
        self.challenge.setVisible(has_challenge)
        self.challenge.setEnabled(phase == Phase.READY and may_run and has_challenge)
        # Production: START waits for a passing start-up challenge (the station enforces it too).
        unlocked = not production or c.challenge_ok
        self.start.setEnabled(phase == Phase.READY and may_run and unlocked and (not text or valid_batch_id(text)))
        self.start.setToolTip("" if unlocked else "run the start-up challenge first: production starts after it passed")
        self.stop.setEnabled(phase == Phase.RUNNING)
        if c.recipe_name and self.recipe.currentText() != c.recipe_name:
            self.recipe.setCurrentText(c.recipe_name)
        if c.client is None:
            self.recipe_info.setText(c.recipe_name or "–")
            self.model_info.setText("loading…" if phase == Phase.LOADING else "–")
            self.recipe_sha.setText("")
            self.model_sha.setText("")
            return
        info = c.client.info
        self.recipe_info.setText(f"{info.recipe_id}  v{info.recipe_version}")
        if info.looser_thresholds:  # a demo station only: production refuses such a recipe
            self.recipe_info.setText(f"{info.recipe_id}  v{info.recipe_version}  ·  THRESHOLDS NOT VALIDATED")
            self.recipe_info.setStyleSheet(f"color: {theme.REJECT};")
            self.recipe_info.setToolTip(
                f"Looser than the model package was validated with: {info.looser_thresholds}.\n"
                "Every batch record says so; a production station refuses this recipe."
            )
        else:
            self.recipe_info.setStyleSheet("")
            self.recipe_info.setToolTip(self.recipe_info.text())
        self.recipe_sha.setText(f"sha256 {short_sha(info.recipe_sha256)}")
        self.recipe_sha.setToolTip(f"{info.recipe_path}\nsha256 {info.recipe_sha256}")
        self.model_info.setText(f"{info.model_id}  v{info.model_version}")
        self.model_info.setToolTip(self.model_info.text())
        self.model_sha.setText(f"sha256 {short_sha(info.model_sha256)}")
        self.model_sha.setToolTip(f"{info.model_path}\nmodel.onnx sha256 {info.model_sha256} (verified at load)")
        if phase == Phase.READY and not self.batch.text():
            self.batch.setText(c.suggest_batch_id())


def _input_state(monitor: dict[str, Any]) -> str:
    """The drift monitor's state at the end of a batch, for the summary."""
    means = monitor.get("means")
    if not means:
        return f"not judged ({monitor.get('frames', 0)} frames, fewer than the window)"
    values = ", ".join(f"{name} {value:.2f}" for name, value in means.items())
    where = "OUTSIDE the validated range" if monitor.get("drifting") else "inside the validated range"
    return f"{where} ({values})"


class BatchSummaryDialog(QDialog):
    """End of batch: counts and the reconciliation checks, with an unmistakable verdict."""

    def __init__(
        self, report: Reconciliation, parent: QWidget | None = None, controller: StationController | None = None
    ) -> None:
        super().__init__(parent)
        self.report = report
        self.controller = controller
        self.report_view: Any = None  # the batch report (BatchReportView) once it is loaded
        self.setObjectName("batchSummary")
        self.setWindowTitle(f"Batch {report.batch_id} ended")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setMinimumWidth(720)
        lay = QVBoxLayout(self)
        lay.setSpacing(10)
        s = report.summary
        verdict = QLabel("RECONCILED" if report.reconciled else "NOT RECONCILED")
        verdict.setObjectName("verdict")
        verdict.setFont(theme.font(26, bold=True))
        verdict.setAlignment(Qt.AlignmentFlag.AlignCenter)
        colour = theme.ACCEPT if report.reconciled else theme.REJECT
        verdict.setStyleSheet(f"background: {colour}; color: white; border-radius: 8px; padding: 10px;")
        lay.addWidget(QLabel(f"Batch / lot: <b>{report.batch_id}</b>"))
        lay.addWidget(verdict)

        grid = QGridLayout()
        grid.setHorizontalSpacing(24)
        items = int(s.get("items", 0))
        yield_pct = f"{100 * s.get('accepted', 0) / items:.2f} %" if items else "–"
        rows = [
            ("Inspected", f"{items:,}"),
            ("Accepted", f"{s.get('accepted', 0):,}"),
            ("Rejected", f"{s.get('rejected', 0):,}"),
            ("  of which not inspected", f"{s.get('not_inspected', 0):,}"),
            ("Yield", yield_pct),
            ("Latency p50 / p99 / max", f"{s.get('latency_ms_p50')} / {s.get('latency_ms_p99')} / "
             f"{s.get('latency_ms_max')} ms"),
        ]  # fmt: skip
        monitor = s.get("input_monitor")
        if monitor:
            rows.append((f"Input, last {monitor['window']} frames", _input_state(monitor)))
        for reason, n in (s.get("rejected_by_reason") or {}).items():
            rows.append((f"  reject: {reason.replace('_', ' ')}", f"{n:,}"))
        for r, (k, v) in enumerate(rows):
            key, val = QLabel(k), QLabel(v)
            key.setFont(theme.font(14))
            val.setFont(theme.font(14, bold=True))
            if v.startswith("OUTSIDE"):  # the warning colour the alarm banner uses
                val.setStyleSheet(f"color: {theme.NOT_INSPECTED};")
            grid.addWidget(key, r, 0)
            grid.addWidget(val, r, 1)
        lay.addLayout(grid)

        checks = QLabel(
            "<br>".join(
                f"<span style='color:{theme.ACCEPT if ok else theme.REJECT}'>{'✔' if ok else '✘'}</span> "
                f"{name}: {detail}"
                for name, ok, detail in ((c.name, c.ok, c.detail) for c in report.checks)
            )
            + (f"<br><span style='color:{theme.REJECT}'>✘ {report.error}</span>" if report.error else "")
        )
        checks.setObjectName("checks")
        checks.setFont(theme.font(13))
        checks.setWordWrap(True)
        lay.addWidget(checks)

        # The batch report (JSON + PDF from the records), signed by the operator, then reviewed by QA.
        report_row = QHBoxLayout()
        self.report_label = QLabel("Batch report: –")
        self.report_label.setObjectName("batchReport")
        self.report_label.setWordWrap(True)
        self.report_label.setFont(theme.font(12))
        self.sign_button = QPushButton("SIGN BATCH REPORT…")
        self.sign_button.setEnabled(False)
        self.sign_button.clicked.connect(lambda: self.sign())
        report_row.addWidget(self.report_label, 1)
        report_row.addWidget(self.sign_button)
        lay.addLayout(report_row)
        self.load_report()

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        buttons.accepted.connect(self.close)
        lay.addWidget(buttons)

    def _meaning(self) -> str | None:
        """What the logged-in user signs: QA reviews once the operator signed; whoever ran batches authors."""
        c = self.controller
        view = self.report_view
        if c is None or c.actor is None or view is None:
            return None
        signed = {s.meaning for s in view.signatures if s.status == "valid"}
        if "authored" not in signed and c.can(Action.RUN_BATCH):
            return "authored"
        if "authored" in signed and "reviewed" not in signed and c.can(Action.SIGN_REPORT):
            return "reviewed"
        return None

    def load_report(self) -> None:
        c = self.controller
        client = c.client if c is not None else None
        if c is None or client is None or not self.report.batch_id:
            return
        bid = self.report.batch_id
        c.jobs.submit(lambda: client.batch_report(bid), self._show_report, self._report_failed)

    def _show_report(self, view: Any) -> None:
        if sip.isdeleted(self):  # closed before the report came
            return
        self.report_view = view
        if view is None:
            self.report_label.setText("Batch report: none (this station keeps no records)")
            return
        sigs = "; ".join(f"{s.manifestation} ({s.status})" for s in view.signatures) or "not signed yet"
        self.report_label.setText(f"Batch report: {view.pdf}<br>Signatures: {sigs}")
        meaning = self._meaning()
        self.sign_button.setEnabled(meaning is not None)
        self.sign_button.setText(f"SIGN BATCH REPORT ({meaning})…" if meaning else "SIGN BATCH REPORT…")

    def _report_failed(self, exc: BaseException) -> None:
        if sip.isdeleted(self):
            return
        self.report_label.setStyleSheet(f"color: {theme.REJECT};")
        self.report_label.setText(f"Batch report not available: {exc}")

    def sign(self, *, password: str | None = None, reason: str | None = None) -> None:
        """Open the signature dialog (or, for tests, sign with the given password and reason)."""
        c = self.controller
        meaning = self._meaning()
        client = c.client if c is not None else None
        if c is None or client is None or c.actor is None or meaning is None or self.report_view is None:
            return
        view, actor = self.report_view, c.actor
        if password is None or reason is None:
            from ui.widgets.login import SignatureDialog

            dialog = SignatureDialog(f"batch report {view.batch_id}", view.content_sha256, meaning, actor.full_name,
                                     self)  # fmt: skip
            if not dialog.exec():
                return
            password, reason = dialog.password.text(), dialog.reason.text()
        bid, user, pw, why = view.batch_id, actor.username, password or "", reason or ""
        c.jobs.submit(lambda: client.sign_batch_report(bid, meaning, user, pw, why), self._show_report,
                      self._report_failed)  # fmt: skip


def _age(seconds: float) -> str:
    """A short age for a badge: 42 s, 12 min, 3 h."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
