"""Process and thread settings for the inspection path."""

from __future__ import annotations

import gc
import os
import sys
import threading

import pytest

from inspector.realtime import GIL_SWITCH_INTERVAL_S, prepare_for_latency, raise_thread_priority

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread nice is Linux-only")


def test_raised_priority_applies_to_the_calling_thread_only() -> None:
    seen: dict[str, object] = {}

    def worker() -> None:
        seen["ok"] = raise_thread_priority(-3)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=worker)
    t.start()
    t.join(5)
    if seen["ok"]:
        assert seen["nice"] == -3
    else:  # not permitted here (no CAP_SYS_NICE): the thread keeps its priority
        assert seen["nice"] == before
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_prepare_for_latency_freezes_and_shortens_the_switch_interval() -> None:
    old = sys.getswitchinterval()
    try:
        prepare_for_latency()
        assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL_S
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        sys.setswitchinterval(old)
