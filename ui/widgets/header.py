"""Top bar: product, station state, camera, PLC link and input drift, the logged-in user, and a demo marker.

Alarm acknowledgements, reject reviews and batch starts are recorded for the logged-in user
(and refused with nobody logged in, or for a role that may not). A demo station says NOT
RELEASED - DEMO all the time.
"""

from __future__ import annotations

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from inspector.config.monitor import STATS
from inspector.station.client import StationStatus
from ui import theme
from ui.controller import Phase, StationController
from ui.widgets.common import Badge, ElidedLabel, captioned, panel

REFRESH_MS = 250


class StationHeader(QWidget):
    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        box = panel(self)
        lay = QHBoxLayout(box)
        lay.setContentsMargins(14, 8, 14, 8)
        lay.setSpacing(12)
        outer.addWidget(box)

        # Compact enough for a 1366 x 768 panel: the name is the product's caption, the camera's
        # serial is its badge's caption, and the user's name is cut short ("…") when it must be.
        self.product = QLabel("")
        self.product.setFont(theme.font(20, bold=True))
        self.product.setStyleSheet(f"color: {theme.INFO};")
        lay.addLayout(captioned("INSPECTOR", self.product))

        self.state = Badge("", point_size=20)
        self.state.setMinimumWidth(200)
        self.camera = Badge("", point_size=13)
        self.plc = Badge("", point_size=13)
        self.input = Badge("", point_size=13)
        for caption, badge in (
            ("STATION", self.state),
            ("CAMERA", self.camera),
            ("PLC", self.plc),
            ("INPUT", self.input),
        ):
            column = captioned(caption, badge)
            if badge is self.camera:
                caption_label = column.itemAt(0).widget()  # type: ignore[union-attr]
                assert isinstance(caption_label, QLabel)
                self.camera_caption = caption_label
            lay.addLayout(column)
        lay.addStretch(1)

        # The logged-in user (21 CFR 11.10(d)): every action and record names this person.
        who = QVBoxLayout()
        who.setSpacing(2)
        self.user_caption = QLabel("USER")
        self.user_caption.setObjectName("dim")
        self.user_caption.setFont(theme.font(11, bold=True))
        row = QHBoxLayout()
        self.user = ElidedLabel("", min_chars=7)
        self.user.setObjectName("user")
        self.user.setFont(theme.font(15, bold=True))
        self.login_button = QPushButton("LOG IN")
        self.login_button.setObjectName("loginButton")
        self.login_button.setFont(theme.font(13, bold=True))
        self.login_button.clicked.connect(self._login_or_out)
        row.addWidget(self.user)
        row.addWidget(self.login_button)
        who.addWidget(self.user_caption)
        who.addLayout(row)
        lay.addLayout(who)

        # A demo station runs drafts: said on screen all the time, as in every record it writes.
        self.release = QLabel("")
        self.release.setObjectName("releaseMarker")
        self.release.setFont(theme.font(12, bold=True))
        lay.addWidget(self.release)
        controller.user_changed.connect(self.refresh)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        controller.session_changed.connect(self.refresh)
        controller.phase_changed.connect(lambda _p: self.refresh())
        controller.alarms_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        c = self.controller
        client = c.client
        status = client.status() if client is not None else None
        self.product.setText((client.info.product.value if client else (c.recipe_name or "")).upper())
        if c.phase == Phase.LOADING:
            self.state.set("LOADING", theme.INFO)
        elif c.phase == Phase.ERROR:
            self.state.set("REFUSED", theme.REJECT)
        elif c.phase == Phase.QUALIFYING:
            self.state.set("QUALIFYING", theme.INFO)
        elif status is None:
            self.state.set("NO STATION", theme.IDLE)
        elif c.phase == Phase.CHALLENGE:
            self.state.set("CHALLENGE", theme.INFO)
        else:
            state = status.state.value
            self.state.set(state.upper(), theme.STATE_COLOURS.get(state, theme.IDLE))
        if status is None:
            self.camera.set("–", theme.IDLE)
            self.camera_caption.setText("CAMERA")
        else:
            cam = status.camera_state.value
            colour = {"acquiring": theme.ACCEPT, "fault": theme.REJECT}.get(cam, theme.IDLE)
            self.camera.set(cam.upper(), colour)
            caption = f"CAMERA {status.camera_serial}"
            if self.camera_caption.text() != caption:
                self.camera_caption.setText(caption)
                self.camera.setToolTip(f"camera {status.camera_serial}")
        self._refresh_plc(client.info.plc_endpoint if client else None, status.plc_connected if status else None)
        self._refresh_user(client.info.mode if client else None)
        self._refresh_input(status)

    def _refresh_user(self, mode: str | None) -> None:
        actor = self.controller.actor
        if actor is None:
            self.user.setText("NOT LOGGED IN")
            self.user.setStyleSheet(f"color: {theme.TEXT_DIM};")
            self.login_button.setText("LOG IN")
        else:
            self.user.setText(f"{actor.full_name or actor.username} · {actor.role.upper()}")
            self.user.setToolTip(self.user.text())
            self.user.setStyleSheet("")
            self.login_button.setText("LOG OUT")
        if mode == "demo":
            self.release.setText("NOT RELEASED - DEMO")
            self.release.setStyleSheet(f"color: white; background: {theme.NOT_INSPECTED}; padding: 4px 8px;")
            self.release.show()
        else:
            self.release.hide()

    def _login_or_out(self) -> None:
        if self.controller.actor is not None:
            self.controller.logout()
            return
        from ui.widgets.login import LoginDialog

        dialog = LoginDialog(self.controller, self)
        dialog.setModal(True)
        dialog.show()
        self.login_dialog = dialog

    def _refresh_input(self, status: StationStatus | None) -> None:
        """The input drift monitor: are the frames still like the ones the model was validated on?"""
        client = self.controller.client
        monitor = status.input if status is not None else None
        limits = client.info.input_limits if client is not None else None
        if monitor is None or limits is None:
            self.input.set("–" if status is None else "NOT MONITORED", theme.IDLE)
            self.input.setToolTip("" if status is None else "The recipe has no input_monitor block.")
            return
        means = monitor.means
        if means is None:
            self.input.set(f"FILLING {min(monitor.frames, limits.window)}/{limits.window}", theme.IDLE)
        elif monitor.drifting:
            self.input.set("OUTSIDE RANGE", theme.NOT_INSPECTED)
        else:
            self.input.set("IN RANGE", theme.ACCEPT)
        rows = [f"Rolling means over the last {limits.window} inspected frames, against the recipe's limits:"]
        for name in STATS:
            lo, hi = getattr(limits, name)
            value = "–" if means is None else f"{means[name]:.2f}"
            rows.append(f"{name}: {value}  (limits {lo:g} – {hi:g})")
        self.input.setToolTip("\n".join(rows))

    def _refresh_plc(self, endpoint: str | None, connected: bool | None) -> None:
        c = self.controller
        if endpoint is None:
            self.plc.set("NONE (demo)" if c.options.demo else "NOT CONNECTED", theme.IDLE)
            self.plc.setToolTip("No PLC link: decisions are recorded but reach no reject gate.")
            return
        # The station reports PLC faults as alarms from source "plc"; the newest one tells the state.
        last = next((e.alarm for e in reversed(c.alarms.entries) if e.alarm.source == "plc"), None)
        lost = connected is False or (last is not None and last.code.endswith("_FAULT"))
        self.plc.set("LINK LOST" if lost else "CONNECTED", theme.REJECT if lost else theme.ACCEPT)
        self.plc.setToolTip(endpoint)
