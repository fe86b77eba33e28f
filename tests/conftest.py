"""Test-wide settings: Qt runs offscreen, no test may leave a thread running, torch tests need the extra.

The station's tests run without the training extra (no torch, no CUDA wheels). A test that
needs torch carries the ``torch`` marker and is skipped, with the reason, where torch is not
installed; a module that imports torch at the top skips itself with the same reason
(``pytest.importorskip("torch", reason=NEEDS_TRAINING_EXTRA)``). ``test_torch_tests_are_marked``
keeps every such module marked.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.site import postgres, site  # a real PostgreSQL server the tests start, one per session

__all__ = ["postgres", "site"]

# Must be set before any Qt module is imported anywhere in the test session.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

NEEDS_TRAINING_EXTRA = "needs torch, which the training extra installs: uv run --frozen --extra training pytest"
HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_TORCH:
        return
    skip = pytest.mark.skip(reason=NEEDS_TRAINING_EXTRA)
    for item in items:
        if "torch" in item.keywords:
            item.add_marker(skip)


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
