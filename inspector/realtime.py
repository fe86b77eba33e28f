"""Process settings for the latency-critical parts (station, PLC link, line simulator).

CPython's cyclic garbage collector stops every thread while it walks the objects of the
generation it collects; a full collection over everything a station loads (ONNX Runtime,
numpy, pydantic models, asyncua's address space) is a pause of milliseconds in the middle
of a batch. :func:`prepare_for_latency` collects once, then moves every object alive at that
point into the permanent generation (``gc.freeze()``), so later collections walk only what
the batch itself allocates. It also shortens the GIL switch interval so a thread that wakes
for a frame or a PLC answer gets the interpreter soon. Both are process-wide and idempotent.

:func:`raise_thread_priority` gives a thread (acquisition, inference, PLC link, record writer) a higher
scheduling priority than the rest of the station PC, the operator display included, so a
busy HMI or a neighbour process costs the inspection path CPU time last: the real-time policy
``SCHED_FIFO`` where the station may use it (``CAP_SYS_NICE`` or ``RLIMIT_RTPRIO``), so a waking
inspection thread takes a core at once instead of after the scheduler's wake-up granularity;
otherwise nice -10; otherwise the default, with a warning. The threads block on queues, sockets
and locks, never spin, and the kernel keeps 5 % of each second for other tasks whatever runs at
real-time priority (``sched_rt_runtime_us``). ``INSPECTOR_REALTIME=nice`` keeps to nice values.

Measured (``python -m ui.bench --product tablet --rate 100 --items 1500 --repeats 3``, 2 cores, a
full-window grab every second): pipeline p99 with the HMI open over headless 1.18 with nice -10,
0.77 with SCHED_FIFO (HMI runs 3.60-3.64 ms, headless 3.47-4.78 ms).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL_S = 0.0005
# Scheduling priority of the inspection threads (Linux nice, per thread): above the display
# and anything else on the station PC. The station's record writer has it too: an accept
# reaches the PLC only once its record is committed. Raising priority needs CAP_SYS_NICE
# (or RLIMIT_NICE); without it the threads keep the default and a warning says so once.
INSPECTION_NICE = -10
INSPECTION_RT_PRIORITY = 10  # SCHED_FIFO priority (1-99): above every normal task, below the kernel's own
REALTIME_ENV = "INSPECTOR_REALTIME"
# Threads that serve a screen (a station's client connections, its event senders): below the
# inspection path and below the defaults, so a screen's requests (a heat map, a report) wait.
DISPLAY_NICE = 5
_warned = False


def prepare_for_latency() -> None:
    """Shorter GIL switch interval; a collection now, then freeze what survived it."""
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
    gc.collect()
    gc.freeze()


def raise_thread_priority(nice: int = INSPECTION_NICE) -> bool:
    """Give the calling thread SCHED_FIFO where permitted, and the priority ``nice`` (Linux); ``False``
    if neither is permitted."""
    global _warned
    if not hasattr(os, "setpriority"):
        return False
    tid = threading.get_native_id()
    if os.environ.get(REALTIME_ENV, "fifo") != "nice" and hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):  # not permitted here: nice alone
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(INSPECTION_RT_PRIORITY))
    try:
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:
        if not _warned:
            _warned = True
            log.warning("inspection threads keep normal priority (nice %d not permitted: %s)", nice, exc)
        return False
    return True


def lower_thread_priority(nice: int = DISPLAY_NICE) -> None:
    """Give the calling thread the lower scheduling priority ``nice`` (always permitted)."""
    if hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:  # a sandbox without setpriority: the thread keeps the default
            log.debug("display thread keeps normal priority")
