"""Keep freed memory for reuse while a loop churns through large tensors (glibc only).

An optimisation step on CPU allocates and frees dozens of tensors of 5-20 MB (a batch of
windows, their spectra, their gradients). glibc's ``malloc`` serves blocks that large with
``mmap`` and gives them back to the system on ``free``, so every step faults in and zeroes
the same pages again: on the benchmark song that was a third of the step's time
(``benchmarks/optimize_speed.py``; PyTorch's CPU tuning guide recommends jemalloc or
tcmalloc for the same reason). :func:`reuse_freed_memory` raises the ``mmap`` and trim
thresholds with ``mallopt`` for the duration of a ``with`` block, so freed blocks stay in
the heap and are reused, and gives free memory back (``malloc_trim``) on exit.

Process-wide and idempotent; a no-op where the C library has no ``mallopt`` (macOS,
Windows, musl) or ``DIFFMST_MALLOC=default`` is set.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_MAX = 32 << 20       # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit systems
TRIM_KEEP = (1 << 31) - 1  # never trim the heap's top while inside the block
DEFAULT = 128 << 10       # glibc's initial trim threshold

_depth = 0  # blocks open in any thread: the malloc settings are process-wide
_lock = threading.Lock()


def _libc():
    name = ctypes.util.find_library("c")
    if not name or os.environ.get("DIFFMST_MALLOC", "").lower() == "default":
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.mallopt, lib.malloc_trim  # noqa: B018  (both must exist)
    except (OSError, AttributeError):
        return None
    return lib


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Within the block, blocks up to 32 MB come from (and return to) the heap and the heap
    is never trimmed; yields whether the setting took effect. Nested blocks keep it until
    the outermost exits, which restores the trim threshold (128 KB: free memory at the top
    of the heap goes back to the system again) and returns what is free now
    (``malloc_trim``). The mmap threshold stays at 32 MB, where glibc's own adaptive
    threshold ends up once a block that large has been freed (setting it at all switches
    the adaptation off, so going back to 128 KB would be slower than never touching it)."""
    global _depth
    lib = _libc()
    if lib is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            lib.mallopt(M_MMAP_THRESHOLD, MMAP_MAX)
            lib.mallopt(M_TRIM_THRESHOLD, TRIM_KEEP)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                lib.mallopt(M_TRIM_THRESHOLD, DEFAULT)
                lib.malloc_trim(0)
