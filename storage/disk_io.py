"""The disk tier's own I/O: files the store reads with ``O_DIRECT`` into aligned buffers, a pool
of threads keeping several requests in flight, and counters of what was really read.

Why ``O_DIRECT`` (and not ``posix_fadvise(DONTNEED)`` after buffered reads): a direct read
moves exactly the requested, page-aligned bytes from the device into the store's own buffer,
so (1) the store, not the page cache, decides what stays in memory, and the bytes it counts are
the bytes the device delivered; (2) the kernel's readahead (8 MiB on this machine's disk,
``/sys/block/vda/queue/read_ahead_kb``) never inflates a 3 KiB row read into megabytes;
(3) there is no second copy through the page cache. Buffered reads followed by ``DONTNEED``
still pay the readahead and the copy, and leave the pages resident until the advice runs.

``io="auto"`` opens with ``O_DIRECT`` and, on a file system that refuses it (tmpfs, some
FUSE/network mounts: ``EINVAL`` at open), uses buffered reads with ``POSIX_FADV_RANDOM`` (no
readahead) and ``POSIX_FADV_DONTNEED`` on every range read; ``DiskFile.direct`` and the store's
``stats()`` say which one runs. ``io="direct"`` refuses to fall back.

Everything is aligned to ``PAGE`` (4 KiB): offsets, lengths and buffer addresses.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from gnnsys.storage import direct_read
from gnnsys.storage.direct_read import union_seconds

from gnnsys.errors import ConfigError, DataFormatError

PAGE = 4096
IO_MODES = ("auto", "direct", "buffered")


def align_down(x: int, a: int = PAGE) -> int:
    """``x`` rounded down to a multiple of ``a``."""
    return x - x % a


def align_up(x: int, a: int = PAGE) -> int:
    """``x`` rounded up to a multiple of ``a``."""
    return -(-x // a) * a


def aligned_empty(nbytes: int, align: int = PAGE) -> np.ndarray:
    """An uninitialized ``uint8`` buffer of ``nbytes`` (rounded up to ``align``) whose address is
    a multiple of ``align`` (what ``O_DIRECT`` needs)."""
    n = align_up(max(int(nbytes), 1), align)
    raw = np.empty(n + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + n]


# Indirections the fault tests replace (a full disk, a read-only folder) without touching ``os``.
def _open(path: str, flags: int, mode: int = 0o644) -> int:
    return os.open(path, flags, mode)


def _pwrite(fd: int, data: Any, offset: int) -> int:
    return os.pwrite(fd, data, offset)


def _fallocate(fd: int, offset: int, length: int) -> None:
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, offset, length)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it: write lazily
                raise


class DiskFile:
    """A file opened for the store's reads (``O_DIRECT`` where the file system allows it).

    Args:
        path: the file (only ever opened read-only: it may sit in a read-only folder).
        io: ``"auto"`` (direct, else buffered + fadvise), ``"direct"`` or ``"buffered"``.
    """

    def __init__(self, path: str | os.PathLike, io: str = "auto") -> None:
        if io not in IO_MODES:
            raise ConfigError(f"unknown disk I/O mode {io!r}; choose one of {', '.join(IO_MODES)}")
        self.path = Path(path)
        self.direct = False
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        fd = -1
        if io in ("auto", "direct") and hasattr(os, "O_DIRECT"):
            try:
                fd = _open(str(self.path), flags | os.O_DIRECT)
                self.direct = True
            except OSError as e:
                if e.errno != errno.EINVAL or io == "direct":
                    if e.errno == errno.EINVAL:
                        raise ConfigError(f"{self.path}: this file system refuses O_DIRECT reads; use "
                                          "io='buffered' (posix_fadvise) or move the file") from None
                    raise _os_error(e, self.path, "open") from None
        elif io == "direct":
            raise ConfigError("O_DIRECT is not available on this platform; use io='buffered'")
        if fd < 0:
            try:
                fd = _open(str(self.path), flags)
            except OSError as e:
                raise _os_error(e, self.path, "open") from None
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # the store plans its reads: no readahead
        self.fd = fd
        self.size = os.fstat(fd).st_size

    @property
    def mode(self) -> str:
        """``"direct"`` or ``"buffered"``."""
        return "direct" if self.direct else "buffered"

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def _os_error(e: OSError, path: Path, what: str) -> Exception:
    """A ``GnnsysError`` for an ``OSError`` on a feature or packed file."""
    if e.errno == errno.ENOENT:
        return DataFormatError(f"{path}: no such file ({what})")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ConfigError(f"{path}: permission denied or read-only file system ({what}: {e.strerror}); "
                           "point GNNSYS_CACHE (or cache_folder=) at a writable folder")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return ConfigError(f"{path}: no space left on the device ({what}); free space there or point "
                           "GNNSYS_CACHE (or cache_folder=) at a folder with room")
    return DataFormatError(f"{path}: {what} failed: {e}")


class IOCounters:
    """Bytes and requests read, and the seconds during which at least one read was in flight
    (``busy_s``: per ``IOPool`` call, the union of its requests' intervals, each from the
    request's issue to its completion; throughput = bytes / busy_s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.requests = 0
        self.busy_s = 0.0

    def add(self, nbytes: int, requests: int, busy_s: float) -> None:
        """Count one call's reads."""
        with self._lock:
            self.bytes += int(nbytes)
            self.requests += int(requests)
            self.busy_s += float(busy_s)

    def snapshot(self) -> dict[str, float]:
        """``{"bytes", "requests", "busy_s"}`` so far."""
        with self._lock:
            return {"bytes": self.bytes, "requests": self.requests, "busy_s": self.busy_s}


class ReadHandle:
    """Reads in flight (``IOPool.submit``); ``wait()`` blocks until all are done, counts them
    and re-raises a failed read's error."""

    def __init__(self, futures: list[Future], counters: IOCounters | None = None) -> None:
        self._futures = futures
        self._counters = counters

    def done(self) -> bool:
        return all(f.done() for f in self._futures)

    def wait(self) -> None:
        parts = []
        error: BaseException | None = None
        for f in self._futures:
            try:
                parts.append(f.result())
            except BaseException as e:  # noqa: BLE001 - the first error is re-raised once all are done
                error = error or e
        if self._counters is not None and parts:
            self._counters.add(sum(p[0] for p in parts), sum(p[1] for p in parts),
                               union_seconds(np.concatenate([p[2] for p in parts]),
                                             np.concatenate([p[3] for p in parts])))
            self._counters = None
        if error is not None:
            raise error


class IOPool:
    """Threads that run the store's reads, ``queue_depth`` requests in flight at most.

    A call hands lists of ``(file offset, length, buffer offset)`` spans to the pool; each
    worker takes a contiguous share and reads it: with ``O_DIRECT`` in one GIL-free numba call
    (``direct_read``: a finished request never waits for the interpreter), else with
    ``os.preadv`` per span (buffered reads, and ``POSIX_FADV_DONTNEED`` after each).
    ``counters`` adds up what was read."""

    def __init__(self, queue_depth: int = 8, name: str = "gnnsys-io") -> None:
        if queue_depth < 1:
            raise ConfigError(f"I/O queue depth must be >= 1, got {queue_depth}")
        self.queue_depth = int(queue_depth)
        self._pool = ThreadPoolExecutor(self.queue_depth, thread_name_prefix=name)
        self.counters = IOCounters()

    def submit(self, f: DiskFile, offsets: np.ndarray, lengths: np.ndarray, buf: np.ndarray,
               buf_offsets: np.ndarray, need: np.ndarray | None = None) -> ReadHandle:
        """Start reading span ``i`` (``lengths[i]`` bytes at file offset ``offsets[i]``) into
        ``buf[buf_offsets[i]:]``. ``need[i]`` (default ``lengths[i]``) is how many of those bytes
        must exist: a span may run past the end of the file by its page rounding, never further
        (a shorter read is a truncated file). The reads are counted when ``wait()`` returns."""
        n = len(offsets)
        if n == 0:
            return ReadHandle([])
        offsets, lengths, buf_offsets = (np.ascontiguousarray(a, np.int64) for a in (offsets, lengths, buf_offsets))
        need = lengths if need is None else np.ascontiguousarray(need, np.int64)
        parts = min(self.queue_depth, n)
        bounds = np.linspace(0, n, parts + 1).astype(np.int64)
        args = (f, offsets, lengths, buf, buf_offsets, need)
        futs = [self._pool.submit(self._run, *args, int(bounds[i]), int(bounds[i + 1])) for i in range(parts)
                if bounds[i + 1] > bounds[i]]
        return ReadHandle(futs, self.counters)

    def read(self, f: DiskFile, offsets: np.ndarray, lengths: np.ndarray, buf: np.ndarray,
             buf_offsets: np.ndarray, need: np.ndarray | None = None) -> None:
        """``submit`` and wait."""
        self.submit(f, offsets, lengths, buf, buf_offsets, need).wait()

    def _run(self, f: DiskFile, offsets: np.ndarray, lengths: np.ndarray, buf: np.ndarray, buf_offsets: np.ndarray,
             need: np.ndarray, lo: int, hi: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        """Read spans ``lo..hi-1``; returns (bytes, requests, start ns, end ns of each request)."""
        if f.direct and direct_read.available():
            got, t0, t1, stop = direct_read.read_spans(f.fd, buf, offsets, lengths, buf_offsets, lo, hi)
            if stop < hi:  # the failed request again through os, for its error
                self._preadv(f, memoryview(buf), int(offsets[stop]), int(lengths[stop]), int(buf_offsets[stop]))
                raise DataFormatError(f"{f.path}: a read at offset {int(offsets[stop])} failed")  # pragma: no cover
        else:
            n = hi - lo
            got, t0, t1 = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
            mv = memoryview(buf)
            for i in range(lo, hi):
                t0[i - lo] = time.monotonic_ns()
                got[i - lo] = self._preadv(f, mv, int(offsets[i]), int(lengths[i]), int(buf_offsets[i]))
                t1[i - lo] = time.monotonic_ns()
                if not f.direct and hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(f.fd, int(offsets[i]), int(lengths[i]), os.POSIX_FADV_DONTNEED)  # keep nothing
        short = np.flatnonzero(got < need[lo:hi])
        if short.size:
            i = lo + int(short[0])
            raise DataFormatError(f"{f.path}: the file ends at byte {int(offsets[i] + got[i - lo])}, but rows reach "
                                  f"byte {int(offsets[i] + need[i])} (truncated?); rewrite it with write_feature_file")
        return int(got.sum()), hi - lo, t0, t1

    @staticmethod
    def _preadv(f: DiskFile, mv: memoryview, off: int, ln: int, bo: int) -> int:
        """Bytes read into ``mv[bo:bo + ln]`` from ``off`` (direct: looping over short reads)."""
        done = 0
        while done < ln:
            try:
                k = os.preadv(f.fd, [mv[bo + done:bo + ln]], off + done)
            except OSError as e:
                raise _os_error(e, f.path, f"read of {ln} bytes at offset {off}") from None
            if k <= 0:
                break
            done += k
            if not f.direct:
                break  # buffered: one call reads what exists
        return done

    def close(self) -> None:
        """Stop the threads (after the reads in flight)."""
        self._pool.shutdown(wait=True)


def write_at(fd: int, path: Path, data: np.ndarray, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (loops over short writes); a full disk or a read-only
    folder becomes a ``ConfigError`` that names the fix."""
    mv = memoryview(data).cast("B")
    done = 0
    while done < len(mv):
        try:
            k = _pwrite(fd, mv[done:], offset + done)
        except OSError as e:
            raise _os_error(e, path, "write") from None
        if k <= 0:
            raise _os_error(OSError(errno.ENOSPC, "short write"), path, "write")
        done += k


def create_file(path: Path, size: int) -> int:
    """Create ``path`` (a temporary name) for writing and reserve ``size`` bytes (a full disk fails
    here, before anything is written); returns the descriptor."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _os_error(e, path, "create") from None
    try:
        if size:
            _fallocate(fd, 0, size)
        os.ftruncate(fd, size)
    except OSError as e:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise _os_error(e, path, f"reserving {size / 1e9:.2f} GB") from None
    return fd


def drop_file_pages(path: str | os.PathLike) -> None:
    """Evict ``path``'s pages from the page cache (clean pages: a read-only file's or mapping's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def commit_file(fd: int, tmp: Path, final: Path) -> None:
    """``fsync`` the file, rename ``tmp`` to ``final`` and ``fsync`` the folder: after this a
    reader sees either the complete file or none, never a part."""
    try:
        os.fsync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # written pages leave the page cache
    except OSError as e:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise _os_error(e, tmp, "fsync") from None
    os.close(fd)
    try:
        os.replace(tmp, final)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _os_error(e, final, "rename into place") from None
    try:
        dfd = os.open(str(final.parent), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - folders that cannot be fsynced (some network file systems)
        pass
