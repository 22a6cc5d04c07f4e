"""Process-wide thread pools for kernels that release the GIL (numba, numpy, torch), and the
background mode of the loading pipeline's worker thread."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

_POOLS: dict[str, tuple[int, int, ThreadPoolExecutor]] = {}
_LOCAL = threading.local()

#: How much lower the scheduling priority of background work is (``nice`` steps): the loading
#: pipeline samples and gathers the next batch while the model computes the current one, and on
#: a machine with few cores the model's threads must win that race, or the model's OpenMP team
#: waits for a descheduled member at every parallel region.
BACKGROUND_NICE = 10


def lower_priority(steps: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's scheduling priority by ``steps`` (Linux: per thread; a no-op
    where the platform has no per-thread priority)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except (AttributeError, OSError):  # pragma: no cover - platform without setpriority
        pass


def thread_pool(n: int, name: str = "gnnsys", nice: int = 0) -> ThreadPoolExecutor:
    """A pool of at least ``n`` threads named ``name``, shared by the process (re-created
    after a fork or when a larger one is asked for), its threads ``nice`` steps below normal
    priority. Separate names keep one user's tasks from queueing behind another's: the
    sampler's pool and the sparse kernels' pool run side by side when the loading pipeline
    samples while the model computes."""
    pool = _POOLS.get(name)
    if pool is None or pool[0] != os.getpid() or pool[1] < n:
        init = (lambda: lower_priority(nice)) if nice else None
        pool = (os.getpid(), n, ThreadPoolExecutor(n, thread_name_prefix=name, initializer=init))
        _POOLS[name] = pool
    return pool[2]


@contextlib.contextmanager
def background() -> Iterator[None]:
    """Mark the calling thread as background work for its lifetime in the block (the loading
    pipeline's worker): its priority is lowered and the pools it uses run at low priority too
    (``in_background``)."""
    lower_priority()
    _LOCAL.background = True
    try:
        yield
    finally:
        _LOCAL.background = False


def in_background() -> bool:
    """Whether the calling thread runs background work (``background``)."""
    return bool(getattr(_LOCAL, "background", False))


def usable_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
