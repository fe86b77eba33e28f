"""Test-wide settings: Qt runs offscreen, and no test may leave a thread running."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

# Must be set before any Qt module is imported anywhere in the test session.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    leaked: list[threading.Thread] = []
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.02)
    pytest.fail(f"test left threads running: {[t.name for t in leaked]}")
