"""The qualification tab: choose a suite, run it through the production station, read the result, sign it.

A run needs the station's record database to itself (one record writer per station), so the
tab asks the controller to close the station first; the suite then runs in its own process,
through the same command a validation team scripts (``inspector qualify``), and the station
opens again when the run ends. Progress comes from the command's progress bar on standard
error, the outcome from its ``--json`` line. Runs are listed and signed (reviewed, then approved
by another QA person) with ``inspector qualify list`` and ``inspector qualify sign``; passwords
go to the command on standard input, never as an argument. The HMI keeps its runs' reports in
``var/qualification/<suite>-<UTC time>/``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import yaml
from PyQt6.QtCore import QObject, QProcess, QProcessEnvironment, pyqtSignal
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from inspector.roles import Action
from ui import theme
from ui.controller import Phase, StationController

SUITES_DIR = "qualification"
RUNS_DIR = Path("var") / "qualification"
RUN_COLUMNS = ("Run", "State", "Verdict", "Kind", "Suite", "Model", "Run by")
_PROGRESS = re.compile(r"\[(?P<name>[^\]]+)\] \[[#.]*\] (?P<done>\d+)/(?P<total>\d+)")


@dataclass(frozen=True)
class CommandResult:
    """What an ``inspector`` command left: exit status, standard output and standard error."""

    rc: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The command's ``--json`` output: the whole of stdout, or its last line."""
        text = self.stdout.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return json.loads(text.splitlines()[-1])

    def why(self) -> str:
        """The command's one-line error (the last line it wrote on standard error)."""
        lines = [ln.strip() for ln in self.stderr.replace("\r", "\n").splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit status {self.rc}"


class InspectorCommand(QObject):
    """One ``python -m inspector ...`` child process, run by Qt's event loop (no thread blocks on it)."""

    progress = pyqtSignal(str, int, int)  # challenge set, presentations done, of
    finished = pyqtSignal(object)  # CommandResult

    def __init__(self, root: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.root = root
        self.process: QProcess | None = None
        self._out = bytearray()
        self._err = bytearray()

    @property
    def running(self) -> bool:
        return self.process is not None

    def start(self, args: Sequence[str], stdin: str = "") -> None:
        if self.process is not None:
            raise RuntimeError("a command is already running")
        self._out.clear()
        self._err.clear()
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("INSPECTOR_HOME", str(self.root))  # the child finds this project, whatever its cwd
        proc.setProcessEnvironment(env)
        proc.setWorkingDirectory(str(self.root))
        proc.readyReadStandardOutput.connect(lambda: self._out.extend(bytes(proc.readAllStandardOutput().data())))
        proc.readyReadStandardError.connect(self._read_err)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._failed_to_start)
        self.process = proc
        proc.start(sys.executable, ["-m", "inspector", *args])
        if stdin:
            proc.write(stdin.encode("utf-8"))
        proc.closeWriteChannel()

    def _read_err(self) -> None:
        proc = self.process
        if proc is None:
            return
        chunk = bytes(proc.readAllStandardError().data())
        self._err.extend(chunk)
        matches = list(_PROGRESS.finditer(chunk.decode("utf-8", "replace")))
        if matches:
            m = matches[-1]
            self.progress.emit(m["name"], int(m["done"]), int(m["total"]))

    def _failed_to_start(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._err.extend(f"could not start {sys.executable}: {error.name}\n".encode())
            self._finished(127)

    def _finished(self, rc: int, _status: Any = None) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        self._out.extend(bytes(proc.readAllStandardOutput().data()))
        self._err.extend(bytes(proc.readAllStandardError().data()))
        proc.deleteLater()
        out, err = self._out.decode("utf-8", "replace"), self._err.decode("utf-8", "replace")
        self.finished.emit(CommandResult(rc, out, err))

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.waitForFinished(5_000)


def _verdict(passed: bool | None) -> str:
    return "–" if passed is None else "PASSED" if passed else "FAILED"


class QualificationView(QWidget):
    """Suite, run with progress, runs with their state, the selected run's result, signatures."""

    run_finished = pyqtSignal(object)  # the command's JSON line (dict), or None when it failed

    def __init__(self, controller: StationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.root = controller.options.root
        self.command = InspectorCommand(self.root, self)
        self.runs: list[dict[str, Any]] = []
        self._after: Callable[[CommandResult], None] | None = None
        self.command.finished.connect(self._command_done)
        self.command.progress.connect(self._progress)

        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("SUITE"))
        self.suite = QComboBox()
        self.suite.setMinimumWidth(260)
        top.addWidget(self.suite)
        self.run_button = QPushButton("RUN QUALIFICATION…")
        self.run_button.clicked.connect(lambda: self.run())
        top.addWidget(self.run_button)
        self.bar = QProgressBar()
        self.bar.setFormat("%v / %m presentations")
        self.bar.setValue(0)
        top.addWidget(self.bar, 1)
        lay.addLayout(top)
        self.status = QLabel("")
        self.status.setObjectName("qualificationStatus")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

        body = QHBoxLayout()
        self.table = QTableWidget(0, len(RUN_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(RUN_COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        assert header is not None
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._show_selected)
        body.addWidget(self.table, 3)
        self.result = QTextEdit()
        self.result.setObjectName("qualificationResult")
        self.result.setReadOnly(True)
        body.addWidget(self.result, 2)
        lay.addLayout(body, 1)

        signs = QHBoxLayout()
        self.sign_buttons: dict[str, QPushButton] = {}
        for meaning in ("reviewed", "approved"):
            b = QPushButton(f"SIGN {meaning.upper()}…")
            b.clicked.connect(lambda _=False, m=meaning: self.sign(m))
            self.sign_buttons[meaning] = b
            signs.addWidget(b)
        self.refresh_button = QPushButton("REFRESH")
        self.refresh_button.clicked.connect(self.refresh)
        signs.addWidget(self.refresh_button)
        signs.addStretch(1)
        self.report_path = QLineEdit()
        self.report_path.setReadOnly(True)
        self.report_path.setPlaceholderText("report.pdf of the selected run")
        signs.addWidget(self.report_path, 2)
        lay.addLayout(signs)

        for name in self.suites():
            self.suite.addItem(name)
        controller.user_changed.connect(self._enable)
        controller.phase_changed.connect(lambda _p: self._enable())
        self._enable()

    # -- what there is ------------------------------------------------------------------------
    def suites(self) -> list[str]:
        folder = self.root / SUITES_DIR
        return sorted(p.name for p in folder.glob("*.yaml")) if folder.is_dir() else []

    def selected_run(self) -> dict[str, Any] | None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        return self.runs[min(rows)] if rows else None

    def report_folder(self, run_id: str) -> Path | None:
        """The folder under var/qualification whose report.json is this run's."""
        for candidate in sorted((self.root / RUNS_DIR).glob("*/report.json")):
            try:
                if json.loads(candidate.read_text(encoding="utf-8")).get("run_id") == run_id:
                    return candidate.parent
            except (OSError, ValueError):
                continue
        return None

    def _enable(self) -> None:
        c = self.controller
        idle = c.phase in (Phase.READY, Phase.ERROR, Phase.NO_SESSION) and not self.command.running
        self.run_button.setEnabled(idle and c.can(Action.RUN_QUALIFICATION) and self.suite.count() > 0)
        self.run_button.setToolTip("" if c.can(Action.RUN_QUALIFICATION) else "log in as an engineer or QA")
        run = self.selected_run()
        may_sign = c.can(Action.SIGN_REPORT) and not self.command.running and run is not None
        self.sign_buttons["reviewed"].setEnabled(may_sign and run is not None and run["state"] == "completed")
        self.sign_buttons["approved"].setEnabled(may_sign and run is not None and run["state"] == "reviewed")
        self.refresh_button.setEnabled(not self.command.running)

    def _say(self, text: str, colour: str | None = None) -> None:
        self.status.setStyleSheet(f"color: {colour};" if colour else "")
        self.status.setText(text)

    # -- commands -------------------------------------------------------------------------------
    def _run_command(self, args: list[str], after: Callable[[CommandResult], None], stdin: str = "") -> None:
        self._after = after
        self.command.start(args, stdin)
        self._enable()

    def _command_done(self, result: CommandResult) -> None:
        after, self._after = self._after, None
        self._enable()
        if after is not None:
            after(result)

    def _database_args(self) -> list[str]:
        db = self.controller.record_database
        return ["--db", str(db)] if db is not None else []

    def refresh(self) -> None:
        """List the station's qualification runs (``inspector qualify list``)."""
        if self.command.running or self.controller.record_database is None:
            return
        self._run_command(["qualify", "list", "--json", *self._database_args()], self._listed)

    def _listed(self, result: CommandResult) -> None:
        if result.rc != 0:
            self._say(f"Runs not listed: {result.why()}", theme.REJECT)
            return
        chosen = self.selected_run()
        self.runs = list(reversed(result.json() or []))  # newest first
        self.table.setRowCount(len(self.runs))
        for r, run in enumerate(self.runs):
            values = (run["run_id"], run["state"], _verdict(run.get("passed")), "formal" if run.get("formal")
                      else "informal", run["suite_id"], run["model_id"], run.get("created_by", ""))  # fmt: skip
            for col, v in enumerate(values):
                self.table.setItem(r, col, QTableWidgetItem(str(v)))
        keep = next((i for i, run in enumerate(self.runs) if chosen and run["run_id"] == chosen["run_id"]), 0)
        if self.runs:
            self.table.selectRow(keep)
        self._show_selected()

    def run(self, *, password: str | None = None) -> bool:
        """Run the chosen suite as the logged-in user (asks the password unless given, for tests)."""
        c, actor = self.controller, self.controller.actor
        suite = self.suite.currentText()
        if actor is None or not c.can(Action.RUN_QUALIFICATION) or not suite:
            self._say("Log in as an engineer or QA to run a qualification.", theme.REJECT)
            return False
        if password is None:
            text, ok = QInputDialog.getText(
                self, "Run qualification", f"Password of {actor.full_name} to run suite {suite}:",
                QLineEdit.EchoMode.Password,
            )  # fmt: skip
            if not ok:
                return False
            password = text
        out = self.root / RUNS_DIR / f"{Path(suite).stem}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        username = actor.username

        def closed(error: BaseException | None) -> None:
            if error is not None:
                self._say(f"The station did not close for the run: {error}", theme.REJECT)
                c.release_qualification()
                return
            out.mkdir(parents=True, exist_ok=True)
            station = out / "station.yaml"  # the station as the HMI runs it, flags applied
            station.write_text(yaml.safe_dump(c.options.station.model_dump(mode="json"), sort_keys=False))
            self.bar.setRange(0, 0)  # busy until the first progress line
            self._say(f"Running {suite}: rendering its challenge sets, then presenting them…", theme.INFO)
            args = ["qualify", "--suite", str(Path(SUITES_DIR) / suite), "--out", str(out), "--station",
                    str(station), "--json", "--as", username, "--password-stdin"]  # fmt: skip
            self._run_command(args, self._ran, stdin=password + "\n")

        if not c.hold_for_qualification(closed):
            return False
        self._enable()
        return True

    def _progress(self, name: str, done: int, total: int) -> None:
        self.bar.setFormat("%v / %m presentations")
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        self._say(f"Presenting challenge set {name}: {done}/{total}", theme.INFO)

    def _ran(self, result: CommandResult) -> None:
        self.controller.release_qualification()
        outcome: dict[str, Any] | None = None
        if result.rc in (0, 1):
            try:
                outcome = result.json()
            except ValueError:
                outcome = None
        if outcome is None:
            self._say(f"The qualification did not run: {result.why()}", theme.REJECT)
        else:
            passed = bool(outcome["passed"])
            self._say(
                f"{outcome['run_id']}: {'PASSED' if passed else 'FAILED'} · {outcome['items_per_s']} items/s · "
                f"pipeline p99 {outcome['latency_ms_p99']} ms · {'formal' if outcome['formal'] else 'informal'}",
                theme.ACCEPT if passed else theme.REJECT,
            )
        # Full when the run completed, empty when it did not; the text says which, not "1 / 1".
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if outcome else 0)
        self.bar.setFormat("run complete" if outcome else "not run")
        self.run_finished.emit(outcome)
        self.refresh()

    def sign(self, meaning: str, *, password: str | None = None, reason: str | None = None) -> bool:
        """Sign the selected run's report (opens the signature dialog unless password and reason are given)."""
        run, actor = self.selected_run(), self.controller.actor
        if run is None or actor is None or not self.controller.can(Action.SIGN_REPORT):
            return False
        folder = self.report_folder(run["run_id"])
        if folder is None:
            self._say(f"The report of {run['run_id']} is not under {RUNS_DIR}: sign it with the command", theme.REJECT)
            return False
        if password is None or reason is None:
            from ui.widgets.login import SignatureDialog

            dialog = SignatureDialog(f"qualification {run['run_id']}", run.get("report_sha256") or "", meaning,
                                     actor.full_name, self)  # fmt: skip
            if not dialog.exec():
                return False
            password, reason = dialog.password.text(), dialog.reason.text()
        args = ["qualify", "sign", "--run", run["run_id"], "--report", str(folder), "--meaning", meaning,
                "--reason", reason, *self._database_args(), "--as", actor.username, "--password-stdin"]  # fmt: skip

        def signed(result: CommandResult) -> None:
            if result.rc == 0:
                self._say(f"{run['run_id']}: signed {meaning} by {actor.full_name}", theme.ACCEPT)
            else:
                self._say(f"Not signed: {result.why()}", theme.REJECT)
            self.refresh()

        self._run_command(args, signed, stdin=password + "\n")
        return True

    # -- the selected run -----------------------------------------------------------------------
    def _show_selected(self) -> None:
        self._enable()
        run = self.selected_run()
        if run is None:
            self.result.setPlainText("No qualification run yet." if not self.runs else "")
            self.report_path.setText("")
            return
        folder = self.report_folder(run["run_id"])
        self.report_path.setText(str(folder / "report.pdf") if folder else "")
        head = (f"<h3>{escape(run['run_id'])}: {_verdict(run.get('passed'))} · {escape(run['state'].upper())}</h3>"
                f"<p>suite {escape(run['suite_id'])} · model {escape(run['model_id'])} · "
                f"{'formal' if run.get('formal') else 'informal (suite not approved)'}</p>")  # fmt: skip
        if folder is None:
            self.result.setHtml(head + "<p>Report not kept by this HMI.</p>")
            return
        try:
            report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.result.setHtml(head + f"<p>report.json unreadable: {escape(str(exc))}</p>")
            return
        r = report["result"]
        rows = "".join(
            f"<tr><td>{'pass' if c['passed'] else '<b>FAIL</b>'}</td><td>{escape(str(c['criterion']))}</td>"
            f"<td>{escape(str(c['value']))}</td><td>{escape(str(c['limit']))}</td></tr>"
            for c in r["checks"]
        )
        perf = report.get("performance", {})
        misjudged = r.get("misjudged", [])
        self.result.setHtml(
            head + f"<p>{r['items']} items × {r['presentations'] // max(r['items'], 1)} presentations · "
            f"not inspected {r['not_inspected']} · critical escapes {r['critical_escapes']} · "
            f"{perf.get('items_per_s', '–')} items/s · p99 {perf.get('latency_ms_p99_worst_batch', '–')} ms</p>"
            f"<table cellpadding=3><tr><th></th><th>criterion</th><th>value</th><th>limit</th></tr>{rows}</table>"
            f"<p>{len(misjudged)} misjudged item(s)</p>"
        )

    def shutdown(self) -> None:
        """The window closes: end a running command (a run cut short stays ``running`` in the records)."""
        self.command.kill()
