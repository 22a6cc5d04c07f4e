"""Process-wide thread pools for kernels that release the GIL (numba, numpy, torch)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

_POOLS: dict[str, tuple[int, int, ThreadPoolExecutor]] = {}


def thread_pool(n: int, name: str = "gnnsys") -> ThreadPoolExecutor:
    """A pool of at least ``n`` threads named ``name``, shared by the process (re-created
    after a fork or when a larger one is asked for). Separate names keep one user's tasks
    from queueing behind another's: the sampler's pool and the sparse kernels' pool run side
    by side when the loading pipeline samples while the model computes."""
    pool = _POOLS.get(name)
    if pool is None or pool[0] != os.getpid() or pool[1] < n:
        pool = (os.getpid(), n, ThreadPoolExecutor(n, thread_name_prefix=name))
        _POOLS[name] = pool
    return pool[2]


def usable_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
