"""Keep big freed buffers going back to the operating system while models load and run."""

from __future__ import annotations

import ctypes
import sys
import threading

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
THRESHOLD_BYTES = 4 << 20  # buffers from 4 MB up get pages of their own, returned on free

_done = threading.Event()


def pin_mmap_threshold() -> None:
    """Fix glibc's mmap threshold (once per process; Linux with glibc only).

    glibc raises the threshold, up to 32 MB, each time a mapped buffer is freed: after the
    runtime choice has loaded and dropped a few models, Pillow's 16 MB image blocks come
    from the heap instead, and a decoded 81 MP PNG's 324 MB stayed in the process after
    its photo was done (tests/daemon/service/test_memory.py). A fixed threshold keeps
    every big buffer mapped on its own, so freeing it gives the memory back.
    """
    if _done.is_set() or not sys.platform.startswith("linux"):
        return
    _done.set()
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc (musl): its allocator does not do this
        return
