"""The audit trail and the release screen: what QA reads and signs at the station.

- **Audit trail**: every entry (who, role, when, action, object, old and new value, reason),
  filtered by user, action or object, and a button that recomputes the hash chain and says
  whether it verifies or which entry does not.
- **Release**: the open station's model and recipe as they will be signed: object, content
  hash, state, metrics and intended use, and every signature with its manifestation (name,
  time, meaning) and whether it still holds. Review / approve / reject buttons are enabled by
  role; each opens the signature dialog (reason and password again).
"""

from __future__ import annotations

import json
from typing import Any

from PyQt6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from inspector.roles import Action
from inspector.station.client import ReleaseCandidate
from ui import theme
from ui.controller import StationController

AUDIT_COLUMNS = ("Seq", "UTC", "User", "Role", "Action", "Object", "Old", "New", "Reason")


def _short(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "…"


class AuditView(QWidget):
    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        lay = QVBoxLayout(self)
        filters = QHBoxLayout()
        self.user = QLineEdit()
        self.user.setPlaceholderText("user")
        self.action = QLineEdit()
        self.action.setPlaceholderText("action, e.g. batch.start")
        self.object_id = QLineEdit()
        self.object_id.setPlaceholderText("object id")
        self.load = QPushButton("SHOW")
        self.load.clicked.connect(self.refresh)
        self.verify = QPushButton("VERIFY CHAIN")
        self.verify.clicked.connect(self.run_verify)
        for w in (self.user, self.action, self.object_id, self.load, self.verify):
            filters.addWidget(w)
        lay.addLayout(filters)
        self.result = QLabel("")
        self.result.setObjectName("auditResult")
        self.result.setFont(theme.font(14, bold=True))
        lay.addWidget(self.result)
        self.table = QTableWidget(0, len(AUDIT_COLUMNS))
        self.table.setHorizontalHeaderLabels(AUDIT_COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)  # type: ignore[union-attr]
        header = self.table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        lay.addWidget(self.table, 1)
        controller.user_changed.connect(self._permissions)
        self._permissions()

    def _permissions(self) -> None:
        ok = self.controller.can(Action.READ_AUDIT)
        for w in (self.load, self.verify):
            w.setEnabled(ok)
        if not ok:
            self.table.setRowCount(0)
            self.result.setText("The audit trail is read by QA and admin users: log in as one.")

    def refresh(self) -> None:
        client = self.controller.client
        if client is None or not self.controller.can(Action.READ_AUDIT):
            return
        filters = {"username": self.user.text().strip(), "action": self.action.text().strip(),
                   "object_id": self.object_id.text().strip()}  # fmt: skip
        entries = client.audit_entries(**{k: v for k, v in filters.items() if v})
        self.table.setRowCount(len(entries))
        for r, e in enumerate(reversed(entries)):
            values = (str(e.seq), e.at_utc[:23].replace("T", " "), e.username, e.role, e.action,
                      f"{e.object_type} {e.object_id}", _short(e.old_value), _short(e.new_value), e.reason)  # fmt: skip
            for c, v in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(v))
        self.result.setText(f"{len(entries)} entries")

    def run_verify(self) -> None:
        client = self.controller.client
        if client is None or not self.controller.can(Action.READ_AUDIT):
            return
        v = client.verify_audit()
        if v.ok:
            self.result.setStyleSheet(f"color: {theme.ACCEPT};")
            self.result.setText(f"VERIFIED: {v.entries} entries, head {v.head_seq} {v.head_hash[:16]}…")
        else:
            self.result.setStyleSheet(f"color: {theme.REJECT};")
            self.result.setText(f"NOT VERIFIED at entry {v.first_bad_seq}: {v.problem}")


class ReleaseView(QWidget):
    STEPS = (("review", "reviewed", Action.REVIEW_RELEASE), ("approve", "approved", Action.APPROVE_RELEASE),
             ("reject", "rejected", Action.APPROVE_RELEASE))  # fmt: skip

    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.candidates: list[ReleaseCandidate] = []
        lay = QVBoxLayout(self)
        self.text = QTextEdit()
        self.text.setObjectName("releaseText")
        self.text.setReadOnly(True)
        lay.addWidget(self.text, 1)
        self.buttons: dict[tuple[str, str], QPushButton] = {}
        for kind in ("model", "recipe"):
            row = QHBoxLayout()
            row.addWidget(QLabel(kind.upper()))
            for label, meaning, _action in self.STEPS:
                b = QPushButton(f"{label.upper()} {kind.upper()}…")
                b.clicked.connect(lambda _=False, k=kind, m=meaning: self.sign(k, m))
                self.buttons[(kind, meaning)] = b
                row.addWidget(b)
            row.addStretch(1)
            lay.addLayout(row)
        self.status = QLabel("")
        self.status.setObjectName("releaseStatus")
        lay.addWidget(self.status)
        controller.user_changed.connect(self.refresh)
        controller.session_changed.connect(self.refresh)

    def refresh(self) -> None:
        client = self.controller.client
        if client is None:
            self.text.setPlainText("No station open.")
            return
        try:
            self.candidates = client.releases()
        except Exception as exc:  # a station without records has no releases
            self.text.setPlainText(str(exc))
            return
        parts = []
        for c in self.candidates:
            sigs = "".join(f"<li>{s.manifestation} — <b>{s.status}</b> — {s.reason}</li>" for s in c.signatures)
            detail = "".join(f"<li>{k}: <tt>{_short(v)}</tt></li>" for k, v in c.detail.items())
            parts.append(
                f"<h3>{c.object_type.upper()} {c.object_id}: {c.state.upper()}</h3>"
                f"<p>content SHA-256 <tt>{c.sha256}</tt></p><ul>{detail}</ul>"
                f"<p>Signatures:</p><ul>{sigs or '<li>none</li>'}</ul>"
            )
        self.text.setHtml("".join(parts))
        for (_kind, meaning), button in self.buttons.items():
            action = next(a for _, m, a in self.STEPS if m == meaning)
            button.setEnabled(self.controller.can(action))

    def sign(self, kind: str, meaning: str, *, password: str | None = None, reason: str | None = None) -> None:
        """Open the signature dialog (or, for tests, sign with the given password and reason)."""
        client, actor = self.controller.client, self.controller.actor
        target = next((c for c in self.candidates if c.object_type == kind), None)
        if client is None or actor is None or target is None:
            return
        if password is None or reason is None:
            from ui.widgets.login import SignatureDialog

            dialog = SignatureDialog(f"{kind} {target.object_id}", target.sha256, meaning, actor.full_name, self)
            if not dialog.exec():
                return
            password, reason = dialog.password.text(), dialog.reason.text()
        username = actor.username

        def done(_r: object) -> None:
            self.status.setStyleSheet(f"color: {theme.ACCEPT};")
            self.status.setText(f"{kind} {target.object_id}: signed {meaning}")
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.status.setStyleSheet(f"color: {theme.REJECT};")
            self.status.setText(f"Not signed: {exc}")

        self.controller.jobs.submit(
            lambda: client.sign_release(kind, meaning, username, password or "", reason or ""), done, failed
        )
