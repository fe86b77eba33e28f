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
busy HMI or a neighbour process costs the inspection path CPU time last.
"""

from __future__ import annotations

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
    """Give the calling thread the scheduling priority ``nice`` (Linux); ``False`` if not permitted."""
    global _warned
    if not hasattr(os, "setpriority"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
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
