"""glibc heap settings that keep an out-of-core run's resident memory within its budget.

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
import sys
import threading
from typing import Any

M_ARENA_MAX = -8  # <malloc.h>
#: Arenas the out-of-core store allows (the training thread's and the loading worker's).
ARENA_MAX = 2

_lock = threading.Lock()
_state: dict[str, Any] = {"applied": False, "arena_max": None}


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
            _state.update(applied=True, arena_max=int(arena_max) if ok else None)
        return _state["arena_max"] is not None


def trim_heap() -> bool:
    """Return the heap's free pages to the system (``malloc_trim(0)``); ``False`` where glibc
    is not there."""
    lib = _libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True


def allocator_state() -> dict[str, Any]:
    """``{"arena_max": N or None}``: what ``limit_arenas`` put in force."""
    with _lock:
        return {"arena_max": _state["arena_max"]}
