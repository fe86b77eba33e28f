"""The line simulator as a child process: started, waited for, stopped and killed from the parent.

:class:`LineSimProcess` runs ``python -m inspector.plc.sim`` in its own process group, waits
(bounded) for its ``READY <port>`` line, and ends it with SIGTERM (the JSON summary comes
back) or SIGKILL (a crashed PLC). The child's stdin is a pipe held here, so the end of this
process, even by SIGKILL, ends the simulator, while a thread of this process ending does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any


class LineSimProcess:
    """A line simulator child process (tests, benchmark): own process group, bounded start and stop.

    ``LineSimProcess.start("modbus", "--line-rate", "600")`` waits (bounded) for
    ``READY <port>``; ``stop()`` sends SIGTERM to its process group and returns the JSON
    summary; ``kill()`` is a SIGKILL of the group (a crashed PLC). stdin is a pipe, so the
    child also ends when this process goes away.
    """

    def __init__(self, proc: subprocess.Popen[str], port: int, log_file: Any) -> None:
        self.proc = proc
        self.port = port
        self._log = log_file

    @classmethod
    def start(
        cls, protocol: str, *args: str, port: int = 0, timeout_s: float = 30.0, cwd: str | None = None
    ) -> LineSimProcess:
        cmd = [sys.executable, "-m", "inspector.plc.sim", "--protocol", protocol, "--port", str(port), *args]
        log_file = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - closed in stop()/kill()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            start_new_session=True,
            cwd=cwd,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        buf = ""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while "\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or proc.poll() is not None:
                    break
                if sel.select(min(left, 0.1)):
                    chunk = os.read(proc.stdout.fileno(), 4096).decode()
                    if not chunk:
                        break
                    buf += chunk
        line = buf.split("\n", 1)[0]
        if not line.startswith("READY "):
            sim = cls(proc, 0, log_file)
            err = sim.kill()
            raise RuntimeError(f"line simulator did not start ({protocol}): {line!r} {err[-2000:]}")
        return cls(proc, int(line.split()[1]), log_file)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout_s: float = 15.0) -> dict[str, Any]:
        """SIGTERM, then the summary it prints (SIGKILL if it does not end in time)."""
        self._signal(signal.SIGTERM)
        self._close_stdin()
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            out, _ = self.proc.communicate(timeout=5)
        finally:
            self._close_log()
        lines = [ln for ln in (out or "").splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"line simulator ended without a summary (exit {self.proc.returncode})")
        summary: dict[str, Any] = json.loads(lines[-1])
        return summary

    def kill(self) -> str:
        """SIGKILL the process group (a crashed PLC); returns its log."""
        self._signal(signal.SIGKILL)
        self._close_stdin()
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
            self.proc.communicate(timeout=5)
        return self._close_log()

    def _close_stdin(self) -> None:
        # Closed here (not by communicate()) because a caller may have closed it already.
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
            self.proc.stdin = None

    def _close_log(self) -> str:
        text = ""
        if self._log is not None:
            with contextlib.suppress(OSError, ValueError):
                self._log.seek(0)
                text = str(self._log.read())
                self._log.close()
            self._log = None
        return text

    def log_text(self) -> str:
        if self._log is None:
            return ""
        pos = self._log.tell()
        self._log.seek(0)
        text = str(self._log.read())
        self._log.seek(pos)
        return text
