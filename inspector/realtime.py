"""Process settings for the latency-critical parts (station, PLC link, line simulator).

CPython's cyclic garbage collector stops every thread while it walks the objects of the
generation it collects; a full collection over everything a station loads (ONNX Runtime,
numpy, pydantic models, asyncua's address space) is a pause of milliseconds in the middle
of a batch. :func:`prepare_for_latency` collects once, then moves every object alive at that
point into the permanent generation (``gc.freeze()``), so later collections walk only what
the batch itself allocates. It also shortens the GIL switch interval so a thread that wakes
for a frame or a PLC answer gets the interpreter soon. Both are process-wide and idempotent.
"""

from __future__ import annotations

import gc
import sys

GIL_SWITCH_INTERVAL_S = 0.0005


def prepare_for_latency() -> None:
    """Shorter GIL switch interval; a collection now, then freeze what survived it."""
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
    gc.collect()
    gc.freeze()
