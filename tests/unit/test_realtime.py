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


@pytest.mark.parametrize("mode", ["fifo", "nice"])
def test_inspection_threads_run_at_real_time_priority_where_permitted(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSPECTOR_REALTIME", mode)
    seen: dict[str, object] = {}

    def worker() -> None:
        seen["ok"] = raise_thread_priority()
        seen["policy"] = os.sched_getscheduler(threading.get_native_id())

    t = threading.Thread(target=worker)
    t.start()
    t.join(5)
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(1))
        permitted = True
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        permitted = False
    expected = os.SCHED_FIFO if permitted and mode == "fifo" else os.SCHED_OTHER
    assert seen["policy"] == expected
    assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER  # only the calling thread


def test_prepare_for_latency_freezes_and_shortens_the_switch_interval() -> None:
    old = sys.getswitchinterval()
    try:
        prepare_for_latency()
        assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL_S
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        sys.setswitchinterval(old)
