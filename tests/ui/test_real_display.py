"""The real ``inspector-hmi`` on a real X server (xvfb-run, Qt's xcb platform, not offscreen).

Proves the README's package line: .ci/run installs exactly those packages on a fresh machine,
and this test starts the HMI with them and closes it cleanly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_S = 6.0

pytestmark = [
    pytest.mark.display,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("xvfb-run") is None,
        reason="needs xvfb-run: install the README's package line (.ci/run does, as root)",
    ),
]


def test_the_hmi_starts_on_xvfb_and_closes_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's ui/, whatever the environment has installed
    cmd = [
        "xvfb-run",
        "-a",
        "-s",
        "-screen 0 1366x768x24",
        sys.executable,
        "-m",
        "ui",
        "--product",
        "vial",
        "--db",
        str(tmp_path / "inspector.sqlite"),
        "--quit-after",
        str(RUN_S),
    ]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    took = time.monotonic() - started
    assert "inspector-hmi: error" not in done.stderr, done.stderr
    assert "could not load the Qt platform plugin" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    assert took >= RUN_S, f"closed after {took:.1f} s: the window never ran its event loop"
    assert (tmp_path / "inspector.sqlite").is_file(), "the demo station opened its records"
