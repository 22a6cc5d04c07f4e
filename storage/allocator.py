"""glibc heap settings: for an in-memory training run, keep freed memory for reuse
(``keep_freed_memory``); for an out-of-core run, keep resident memory within its budget
(``limit_arenas``, ``trim_heap``).

In-memory training: a step allocates and frees tens of activation and gradient blocks of a few
MB each. With glibc's defaults the heap's free top beyond the trim threshold (twice the
dynamic mmap threshold: ~9 MB for 4.4 MB blocks) goes back to the system after the step and
the next step faults it in again: 150-1,900 page faults a step on a GraphSAINT random-walk
batch (GCN/SAGE, hidden 128), about 2 us each on this machine's VM. ``keep_freed_memory``
fixes the mmap threshold at its dynamic maximum (32 MiB) and raises the trim threshold to
1 GiB: the faults go to ~0 and a step takes 10-13% less (GCN) and 4-25% less (SAGE),
measured as alternating processes. Resident memory stays at the heap's high-water mark
instead of dropping back between steps.

Out-of-core training:

Measured on the out-of-core benchmark (per-step RSS, ``mallinfo2``): with glibc's defaults the
process kept 100-150 MB of *freed* batch memory (feature rows, miss rows, operators) resident
above the store's budget. The batches are built in the loading pipeline's worker thread and
freed by the training thread, so their blocks land in several per-thread arenas (up to 8 per
core by default), each keeping its own free space; and glibc's dynamic mmap threshold, raised
by the first freed 27 MB feature block, moves every later one into those arenas. Capping the
arenas at two (``M_ARENA_MAX``) makes the freed blocks be reused instead of new ones being
touched; ``trim_heap`` (``malloc_trim``) hands free heap pages back between epochs, before the
packing pass takes its buffer. A fixed, low mmap threshold would also stop the retention, but
every batch would then fault its buffers in afresh (about 2 us per 4 KiB page on this machine:
10-15 ms per 27 MB block), so it is not used.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from typing import Any

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # <malloc.h>
#: ``keep_freed_memory``: blocks from this size up are mapped on their own (glibc's dynamic maximum on 64 bit) ...
KEEP_MMAP_THRESHOLD = 32 << 20
#: ... and this much free memory at the heap's top stays in the process.
KEEP_TRIM_THRESHOLD = 1 << 30
#: The trim threshold an out-of-core run restores after ``keep_freed_memory`` (glibc's dynamic
#: value for a 32 MiB mmap threshold).
BUDGET_TRIM_THRESHOLD = 2 * KEEP_MMAP_THRESHOLD
#: Arenas the out-of-core store allows (the training thread's and the loading worker's).
ARENA_MAX = 2

_lock = threading.Lock()
_state: dict[str, Any] = {"applied": False, "arena_max": None, "keep": False}


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    """glibc, or ``None`` where the C library has no ``mallopt`` (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL(None)  # the process's own symbols: the C library it runs on
    except OSError:  # pragma: no cover - no loadable C library
        return None
    return lib if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else None


def limit_arenas(arena_max: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas at ``arena_max`` for the rest of the process (once; later
    calls keep the first setting). Returns whether the setting is in force (``False`` on a C
    library without ``mallopt``: the budget's resident-memory bound then is not enforced)."""
    if arena_max < 1:
        raise ValueError(f"arena_max must be >= 1, got {arena_max}")
    with _lock:
        if not _state["applied"]:
            lib = _libc()
            ok = lib is not None and lib.mallopt(M_ARENA_MAX, int(arena_max)) == 1
            if ok and _state["keep"]:  # an in-memory run came first: give freed memory back again
                lib.mallopt(M_TRIM_THRESHOLD, BUDGET_TRIM_THRESHOLD)
                _state["keep"] = False
            _state.update(applied=True, arena_max=int(arena_max) if ok else None)
        return _state["arena_max"] is not None


def keep_freed_memory() -> bool:
    """Keep freed heap memory in the process for the next training step (see the module's
    docstring); once per process, and not after ``limit_arenas`` (an out-of-core run's budget
    needs freed memory returned). ``GNNSYS_KEEP_FREED_MEMORY=0`` turns it off. Returns whether
    the setting is in force."""
    with _lock:
        if _state["keep"] or _state["applied"]:
            return _state["keep"]
        if os.environ.get("GNNSYS_KEEP_FREED_MEMORY", "1") == "0":
            return False
        lib = _libc()
        # the mmap threshold first: setting either value turns glibc's dynamic thresholds off
        ok = (lib is not None and lib.mallopt(M_MMAP_THRESHOLD, KEEP_MMAP_THRESHOLD) == 1
              and lib.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD) == 1)
        _state["keep"] = ok
        return ok


def trim_heap() -> bool:
    """Return the heap's free pages to the system (``malloc_trim(0)``); ``False`` where glibc
    is not there."""
    lib = _libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True


def allocator_state() -> dict[str, Any]:
    """``{"arena_max": N or None, "keep_freed_memory": bool}``: what ``limit_arenas`` and
    ``keep_freed_memory`` put in force."""
    with _lock:
        return {"arena_max": _state["arena_max"], "keep_freed_memory": _state["keep"]}
