"""Log in and sign: the two places the HMI asks for a password.

The login dialog authenticates through the station (Argon2 in a pool thread); a wrong password,
a locked or deactivated account is said in one line and counts toward the lockout. The
signature dialog shows exactly what is signed (object, content hash, meaning) and asks for
the password again even when the signer is logged in (21 CFR 11.200(a)(1)).
"""

from __future__ import annotations

from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from ui import theme
from ui.controller import StationController


class LoginDialog(QDialog):
    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("loginDialog")
        self.setWindowTitle("Log in")
        self.setStyleSheet(theme.STYLE_SHEET)
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.username = QLineEdit()
        self.username.setFont(theme.font(15))
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setFont(theme.font(15))
        form.addRow("User name", self.username)
        form.addRow("Password", self.password)
        lay.addLayout(form)
        self.status = QLabel("")
        self.status.setObjectName("loginStatus")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.submit)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        controller.user_changed.connect(self._done)
        controller.login_failed.connect(self._failed)

    def submit(self) -> None:
        name = self.username.text().strip()
        if not name or not self.password.text():
            self.status.setText("Enter your user name and password.")
            return
        self.status.setStyleSheet(f"color: {theme.TEXT_DIM};")
        self.status.setText("Checking…")
        self.controller.login(name, self.password.text())
        self.password.clear()

    def _done(self) -> None:
        if self.controller.actor is not None and self.isVisible():
            self.accept()

    def _failed(self, why: str) -> None:
        self.status.setStyleSheet(f"color: {theme.REJECT};")
        self.status.setText(why)


class SignatureDialog(QDialog):
    """Sign one lifecycle step: what is signed, the meaning, a reason, and the password again."""

    def __init__(self, what: str, sha256: str, meaning: str, signer: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("signatureDialog")
        self.setWindowTitle(f"Electronic signature: {meaning}")
        self.setStyleSheet(theme.STYLE_SHEET)
        lay = QVBoxLayout(self)
        intro = QLabel(
            f"You sign <b>{meaning}</b> for <b>{what}</b><br>content SHA-256 <tt>{sha256}</tt><br>"
            f"as <b>{signer}</b>. Your signature is bound to this content: any later change makes it invalid."
        )
        intro.setWordWrap(True)
        lay.addWidget(intro)
        form = QFormLayout()
        self.reason = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("Reason", self.reason)
        form.addRow("Password", self.password)
        lay.addLayout(form)
        self.status = QLabel("")
        lay.addWidget(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._check)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def _check(self) -> None:
        if not self.reason.text().strip() or not self.password.text():
            self.status.setText("A signature needs a reason and your password.")
            return
        self.accept()
