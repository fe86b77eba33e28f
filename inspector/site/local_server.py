"""A throwaway PostgreSQL server on 127.0.0.1: for the tests, the site benchmark and a site's trial.

:class:`LocalPostgres` makes a cluster with ``initdb`` in a temporary folder, starts it with
``pg_ctl`` on a free port (listening on 127.0.0.1 only, its socket in the same folder), and removes
everything on :meth:`close`. It can be killed hard (:meth:`kill`, SIGKILL of the postmaster, as a
crash or a pulled cable would) and started again on the same port and data (:meth:`start`).

PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` account that the
distribution's server package creates (Debian: ``apt-get install postgresql``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from inspector.processes import process_alive

INSTALL_LINE = "sudo apt-get install postgresql"  # the README's line; .ci/run installs it where it is missing
SERVER_PACKAGE_HINT = f"install PostgreSQL's server (Debian / Ubuntu: {INSTALL_LINE})"


class LocalPostgresError(RuntimeError):
    """The throwaway server could not be made or started."""


def server_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: the newest /usr/lib/postgresql/N/bin, or the PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LocalPostgres:
    """One throwaway cluster (see the module). Use as a context manager, or call :meth:`close`."""

    def __init__(self, *, database: str = "site", port: int | None = None, fsync: bool = True) -> None:
        bindir = server_bindir()
        if bindir is None:
            raise LocalPostgresError(f"no PostgreSQL server binaries (initdb, pg_ctl) found: {SERVER_PACKAGE_HINT}")
        self._bin = bindir
        self._as: list[str] = []
        owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise LocalPostgresError(
                    f"running as root and there is no postgres account: {SERVER_PACKAGE_HINT}"
                ) from None
            runuser = shutil.which("runuser")
            if runuser is None:
                raise LocalPostgresError("running as root needs runuser (util-linux) to start the server as postgres")
            self._as = [runuser, "-u", "postgres", "--"]
            owner = (pw.pw_uid, pw.pw_gid)
        self.folder = Path(tempfile.mkdtemp(prefix="inspector-pg-"))
        if owner is not None:
            os.chown(self.folder, *owner)
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = port or _free_port()
        self.database = database
        self.user = "postgres"
        self._fsync = fsync
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                      "--locale=C.UTF-8", "--no-instructions")  # fmt: skip
            self.start()
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database)
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self._as, str(self._bin / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise LocalPostgresError(f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def start(self, timeout_s: float = 30.0) -> None:
        """Start (or start again after :meth:`kill` or :meth:`stop`) on the same port and data."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder}"
            f" -c fsync={'on' if self._fsync else 'off'} -c max_connections=100"
        )
        deadline = time.monotonic() + timeout_s
        while True:  # after a SIGKILL the old backends may hold the shared memory a moment longer
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start")
                return
            except LocalPostgresError:
                if time.monotonic() > deadline:
                    raise LocalPostgresError(f"the server did not start; its log: {self.log_tail()}") from None
                time.sleep(0.2)

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends (a crash): nothing is flushed or said goodbye."""
        pid = self.pid()
        if pid is None:
            return
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()
        for p in [pid, *map(int, children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.05)

    def stop(self) -> None:
        """A clean, fast shutdown (``pg_ctl stop -m fast``); a no-op when it is not running."""
        if self.pid() is not None and process_alive(self.pid() or 0):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        try:
            if self.data.exists():
                self.stop()
        except LocalPostgresError:
            self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
