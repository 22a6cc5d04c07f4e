"""The read loop of the disk tier's I/O threads in numba, calling ``pread`` without the GIL.

With ``os.preadv`` every request returns through the GIL: while the model's thread or the
loading worker runs Python, a thread whose read has finished waits up to the interpreter's
switch interval (5 ms) before it can issue its next read or report the last one. Measured on
this machine with one thread spinning in Python: 10 MB segment reads fell from about 1.2 to
0.5 GB/s. Here a thread's whole share of requests runs in one GIL-free call, and each request's
start and end are taken inside it (``CLOCK_MONOTONIC``), so the disk tier's busy time is the
time its requests are with the kernel, not the time their threads wait for the interpreter.

Linux only (glibc's ``pread`` and ``clock_gettime`` through ``ctypes``); ``available()`` says
whether it loaded. Pointers travel as ``size_t`` (the same register on the supported ABIs).
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np
from numba import njit

CLOCK_MONOTONIC = 1


def _bind() -> tuple[object, object] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        pread, clock = libc.pread, libc.clock_gettime
    except (OSError, AttributeError):  # pragma: no cover - no C library symbols
        return None
    pread.argtypes = (ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int64)
    pread.restype = ctypes.c_ssize_t
    clock.argtypes = (ctypes.c_int, ctypes.c_size_t)
    clock.restype = ctypes.c_int
    return pread, clock


_FUNCS = _bind()


def available() -> bool:
    """Whether the GIL-free read loop can run here."""
    return _FUNCS is not None


if _FUNCS is not None:
    _pread, _clock = _FUNCS

    @njit(nogil=True)
    def _read_spans(fd, buf_addr, offsets, lengths, buf_offsets, lo, hi, got, t_start, t_end, ts, ts_addr):
        for i in range(lo, hi):
            _clock(CLOCK_MONOTONIC, ts_addr)
            t_start[i - lo] = ts[0] * 1_000_000_000 + ts[1]
            done = 0
            ln = lengths[i]
            while done < ln:
                k = _pread(fd, buf_addr + buf_offsets[i] + done, ln - done, offsets[i] + done)
                if k < 0:
                    done = -1
                    break
                if k == 0:
                    break
                done += k
            _clock(CLOCK_MONOTONIC, ts_addr)
            t_end[i - lo] = ts[0] * 1_000_000_000 + ts[1]
            got[i - lo] = done
            if done < 0:
                return i
        return hi


def read_spans(fd: int, buf: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, buf_offsets: np.ndarray,
               lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Read spans ``lo..hi-1`` (``lengths[i]`` bytes at ``offsets[i]`` into ``buf[buf_offsets[i]:]``,
    looping over short reads) without the GIL. Returns bytes read per span, each span's start
    and end (ns, ``CLOCK_MONOTONIC``) and the index of the first span whose read failed (``hi``:
    none; that span's count is -1 and the caller re-issues it to get its error)."""
    if _FUNCS is None:
        raise RuntimeError("direct_read: not available on this platform")
    if buf.dtype != np.uint8 or not buf.flags.c_contiguous:
        raise ValueError("direct_read: the buffer must be a contiguous uint8 array")
    n = hi - lo
    got = np.zeros(n, np.int64)
    t0 = np.zeros(n, np.int64)
    t1 = np.zeros(n, np.int64)
    ts = np.zeros(2, np.int64)  # struct timespec {time_t tv_sec; long tv_nsec}
    stop = _read_spans(fd, buf.ctypes.data, offsets, lengths, buf_offsets, lo, hi, got, t0, t1, ts, ts.ctypes.data)
    return got, t0, t1, int(stop)


def union_seconds(starts: np.ndarray, ends: np.ndarray) -> float:
    """Seconds covered by the union of the intervals ``[starts[i], ends[i]]`` (ns)."""
    if starts.size == 0:
        return 0.0
    o = np.argsort(starts, kind="stable")
    s, e = starts[o], np.maximum.accumulate(ends[o])
    new = np.concatenate([[True], s[1:] > e[:-1]])  # an interval that starts after all before it end
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:] - 1, [s.size - 1]])
    return float((e[last] - s[first]).sum()) / 1e9
