"""Top bar: product, station state, camera, PLC link and input drift, the station operator, and the user slot.

There are no user accounts yet. The "station operator" name is typed in and shown plainly
as unauthenticated; it is what alarm acknowledgements and reviews record. The user slot on
the right is reserved for login, roles and e-signatures and says so.
"""

from __future__ import annotations

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from inspector.config.monitor import STATS
from inspector.station.client import StationStatus
from ui import theme
from ui.controller import Phase, StationController
from ui.widgets.common import Badge, captioned, panel

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
        lay.setSpacing(14)
        outer.addWidget(box)

        title = QLabel("INSPECTOR")
        title.setFont(theme.font(20, bold=True))
        self.product = QLabel("")
        self.product.setFont(theme.font(20, bold=True))
        self.product.setStyleSheet(f"color: {theme.INFO};")
        lay.addWidget(title)
        lay.addWidget(self.product)
        lay.addSpacing(12)

        self.state = Badge("", point_size=20)
        self.state.setMinimumWidth(220)
        self.camera = Badge("", point_size=14)
        self.plc = Badge("", point_size=14)
        self.input = Badge("", point_size=14)
        for caption, badge in (
            ("STATION", self.state),
            ("CAMERA", self.camera),
            ("PLC", self.plc),
            ("INPUT", self.input),
        ):
            lay.addLayout(captioned(caption, badge))
        lay.addStretch(1)

        op = QVBoxLayout()
        op.setSpacing(2)
        op_cap = QLabel("STATION OPERATOR · not authenticated")
        op_cap.setObjectName("dim")
        op_cap.setFont(theme.font(11, bold=True))
        self.operator = QLineEdit()
        self.operator.setPlaceholderText("type your name")
        self.operator.setMinimumWidth(240)
        self.operator.setFont(theme.font(15))
        self.operator.setToolTip(
            "Name recorded with alarm acknowledgements and reject reviews.\n"
            "It is typed in, not verified: there are no user accounts yet."
        )
        self.operator.textChanged.connect(controller.set_operator)
        op.addWidget(op_cap)
        op.addWidget(self.operator)
        lay.addLayout(op)

        # Reserved for login / roles / e-signatures (21 CFR 11); deliberately not a fake login.
        self.user_slot = QLabel("No user accounts yet\nlogin · roles · e-signatures: planned")
        self.user_slot.setObjectName("dim")
        self.user_slot.setFont(theme.font(11))
        self.user_slot.setStyleSheet(f"color: {theme.TEXT_DIM}; border: 1px dashed #4a5666; padding: 4px 8px;")
        lay.addWidget(self.user_slot)

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
        elif status is None:
            self.state.set("NO STATION", theme.IDLE)
        else:
            state = status.state.value
            self.state.set(state.upper(), theme.STATE_COLOURS.get(state, theme.IDLE))
        if status is None:
            self.camera.set("–", theme.IDLE)
        else:
            cam = status.camera_state.value
            colour = {"acquiring": theme.ACCEPT, "fault": theme.REJECT}.get(cam, theme.IDLE)
            self.camera.set(f"{status.camera_serial} · {cam.upper()}", colour)
        self._refresh_plc(client.info.plc_endpoint if client else None, status.plc_connected if status else None)
        self._refresh_input(status)

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
