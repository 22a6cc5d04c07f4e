"""DiskGNN's packed layout: the cold rows of each batch of an epoch, stored together.

``pack_epoch`` takes the epoch's plan (the distinct node ids of every batch, in order: the
samplers are deterministic per subgraph index, so it is known before the epoch runs) and the
rows the cache tier holds (hot rows, placed by a static tiering-I policy), and writes, per
batch, the batch's other rows, sorted by node id, into one page-aligned segment of a packed
file in the cache folder. A batch's misses are then one or a few sequential reads.

File layout (all offsets page-aligned)::

    [4 KiB header: magic, JSON (signature, segment count, offsets)]
    [index: segment row counts (int64), segment byte offsets (int64), every segment's ids]
    [data: segment 0 rows | pad | segment 1 rows | pad | ...]

The header's ``signature`` holds what the packed rows depend on: the feature file's identity
(path, inode, size, mtime, layout), a hash of the plan (every batch's ids) and of the hot set,
the sampler's signature and seed, and the epoch. ``open_packed`` returns the file only when
its signature equals the expected one; anything else (an older plan, another seed, a changed
feature file, a half-written or foreign file) is rebuilt, never read. The file is written
under a temporary name, ``fsync``-ed and renamed (``disk_io.commit_file``): a full disk or a
crash leaves no file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gnnsys.storage.disk_io import PAGE, DiskFile, IOPool, align_up, aligned_empty, commit_file, create_file, write_at
from gnnsys.storage.feature_file import FeatureFile

from gnnsys.errors import ConfigError

MAGIC = b"GNNSYSPK"
VERSION = 1


class PackCancelled(Exception):
    """``pack_epoch`` stopped by its ``cancel`` event (its temporary file removed)."""


def _check(cancel: Any) -> None:
    if cancel is not None and cancel.is_set():
        raise PackCancelled("packing cancelled")


def default_cache_dir() -> Path:
    """The cache folder: ``$GNNSYS_CACHE`` or ``~/.cache/gnnsys``."""
    return Path(os.environ.get("GNNSYS_CACHE") or Path.home() / ".cache" / "gnnsys")


def plan_hash(batches: Sequence[np.ndarray], hot: np.ndarray) -> str:
    """A hash of an epoch plan (each batch's distinct ids, in order) and the hot set."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.int64(len(batches)).tobytes())
    for b in batches:
        b = np.ascontiguousarray(b, np.int64)
        h.update(np.int64(b.size).tobytes())
        h.update(b.tobytes())
    h.update(b"hot")
    h.update(np.ascontiguousarray(np.sort(hot), np.int64).tobytes())
    return h.hexdigest()


def packed_path(cache_dir: Path, ff: FeatureFile, epoch: int) -> Path:
    """Where the packed file of ``ff`` for ``epoch`` lives (one name per source file and epoch
    parity: the previous epoch's file is replaced two epochs later)."""
    src = hashlib.blake2b(str(ff.path.resolve()).encode(), digest_size=6).hexdigest()
    return Path(cache_dir) / "packed" / f"{ff.path.stem}-{src}-e{epoch % 2}.packed"


class PackedFile:
    """An open packed file (``O_DIRECT`` reads through ``file``): segment ids and offsets."""

    def __init__(self, path: Path, header: dict[str, Any], counts: np.ndarray, offsets: np.ndarray,
                 ids: np.ndarray, io: str = "auto") -> None:
        self.path, self.header = path, header
        self.counts, self.offsets = counts, offsets
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self.ids = ids
        self.data_offset = int(header["data_offset"])
        self.file = DiskFile(path, io)

    @property
    def num_segments(self) -> int:
        return int(self.counts.size)

    @property
    def signature(self) -> dict[str, Any]:
        return self.header["signature"]

    def segment_ids(self, k: int) -> np.ndarray:
        """Node ids of segment ``k`` (sorted)."""
        return self.ids[self._starts[k]:self._starts[k + 1]]

    def segment_offset(self, k: int) -> int:
        """File offset of segment ``k``'s first row."""
        return self.data_offset + int(self.offsets[k])

    def close(self) -> None:
        self.file.close()


def _read_header(path: Path) -> dict[str, Any] | None:
    """The header of ``path``, or ``None`` when it is not a complete packed file."""
    try:
        with open(path, "rb") as f:
            head = f.read(PAGE)
            if len(head) < PAGE or head[:8] != MAGIC:
                return None
            n = int.from_bytes(head[8:12], "little")
            header = json.loads(head[12:12 + n].decode())
            if os.fstat(f.fileno()).st_size != header.get("file_size"):
                return None
            return header
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def open_packed(path: Path, signature: dict[str, Any], io: str = "auto") -> PackedFile | None:
    """The packed file at ``path`` if its header's signature is ``signature``, else ``None``."""
    signature = json.loads(json.dumps(signature))  # as a header holds it (tuples as lists, ...)
    header = _read_header(path)
    if header is None or header.get("version") != VERSION or header.get("signature") != signature:
        return None
    with open(path, "rb") as f:
        f.seek(int(header["index_offset"]))
        m = int(header["num_segments"])
        idx = np.frombuffer(f.read(int(header["index_bytes"])), np.int64)
    counts, offsets = idx[:m].copy(), idx[m:2 * m].copy()
    ids = idx[2 * m:2 * m + int(counts.sum())].copy()
    return PackedFile(path, header, counts, offsets, ids, io)


#: Copies of the packed ids (int64) a packing pass holds at its peak (``pack_epoch`` and
#: ``_pack_stream``: the ids, their sort order, the sorted ids, each row's segment, its
#: destination, one temporary).
PASS_ID_COPIES = 6


def pack_index_bytes(planned_rows: int, packed_rows: int, num_rows: int, hot_rows: int) -> int:
    """Memory of a packing pass besides its buffers: the plan (``planned_rows`` int64 ids), the
    pass's copies of the ``packed_rows`` ids, a bitmap of the file's rows and the sorted hot
    ids of the plan's hash."""
    return 8 * int(planned_rows) + PASS_ID_COPIES * 8 * int(packed_rows) + int(num_rows) + 16 * int(hot_rows)


def pack_epoch(ff: FeatureFile, source: DiskFile, pool: IOPool, batches: Sequence[np.ndarray], hot_mask: np.ndarray,
               path: Path, signature: dict[str, Any], buffer_bytes: int, staging: np.ndarray,
               io: str = "auto", method: str = "auto", cancel: Any = None) -> tuple[PackedFile, dict[str, Any]]:
    """Write the packed file of one epoch (see the module docstring) and open it.

    ``batches``: each batch's distinct node ids, in order; ``hot_mask[v]``: row ``v`` is in the
    cache tier (not packed). ``method``: ``"rows"`` reads the rows in the row layout (sorted,
    merged page reads through ``pool`` and ``staging``) a window of segments at a time into a
    buffer of ``buffer_bytes`` and writes each window sequentially; ``"stream"`` reads the rows'
    span of the feature file sequentially, a buffer at a time, and writes each piece's rows to
    their segments (runs of consecutive rows of a segment); ``"auto"`` streams when the rows are
    dense enough in the file that sequential reads of their span cost less than random row
    reads. ``cancel`` (a ``threading.Event``) stops the pass between two pieces with
    ``PackCancelled``. Returns the file and its build statistics (seconds, bytes read and
    written, rows)."""
    from gnnsys.storage.disk_tier import RowReader

    if method not in ("auto", "rows", "stream"):
        raise ConfigError(f"unknown packing method {method!r}; choose auto, rows or stream")

    t0 = time.perf_counter()
    rb = ff.row_bytes
    segs = []
    for b in batches:
        b = np.asarray(b, np.int64)
        segs.append(np.unique(b[~hot_mask[b]]))  # sorted cold ids of the batch
    counts = np.array([s.size for s in segs], np.int64)
    seg_bytes = np.array([align_up(int(c) * rb) for c in counts], np.int64)
    offsets = np.concatenate([[0], np.cumsum(seg_bytes)[:-1]]).astype(np.int64) if segs else np.zeros(0, np.int64)
    ids = np.concatenate(segs) if segs else np.zeros(0, np.int64)
    del segs  # the pass's memory is a few copies of the ids (PASS_ID_COPIES), nothing per batch
    index_offset = PAGE
    index_bytes = 8 * (2 * counts.size + ids.size)
    data_offset = align_up(index_offset + index_bytes)
    data_bytes = int(seg_bytes.sum())
    file_size = data_offset + data_bytes
    if buffer_bytes < (int(seg_bytes.max()) if seg_bytes.size else 0):
        raise ConfigError(f"packing: the largest batch segment ({int(seg_bytes.max())} bytes) does not fit the "
                          f"{buffer_bytes}-byte pack buffer; raise --memory-budget")
    header = {"version": VERSION, "signature": signature, "num_segments": int(counts.size), "row_bytes": rb,
              "index_offset": index_offset, "index_bytes": index_bytes, "data_offset": data_offset,
              "file_size": file_size}
    body = json.dumps(header).encode()
    if 12 + len(body) > PAGE:
        raise ConfigError("packed file header does not fit one page (signature too large)")
    head = np.zeros(PAGE, np.uint8)
    head[:8] = np.frombuffer(MAGIC, np.uint8)
    head[8:12] = np.frombuffer(len(body).to_bytes(4, "little"), np.uint8)
    head[12:12 + len(body)] = np.frombuffer(body, np.uint8)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = create_file(tmp, file_size)  # reserves the space: a full disk fails here
    read0 = pool.counters.snapshot()["bytes"]
    try:
        for part, at in ((counts, 0), (offsets, counts.size), (ids, 2 * counts.size)):
            if part.size:
                write_at(fd, tmp, part.view(np.uint8), index_offset + 8 * at)
        buf = aligned_empty(buffer_bytes)
        if method == "auto":  # sequential reads of the rows' span vs random row reads (~8x slower per byte)
            mark = np.zeros(ff.num_rows, np.bool_)
            mark[ids] = True
            distinct = int(np.count_nonzero(mark))
            del mark
            span = (int(ids.max()) - int(ids.min()) + 1) * rb if ids.size else 0
            method = "stream" if distinct * 2 * PAGE * 8 >= span else "rows"
        if method == "stream":
            _pack_stream(fd, tmp, ff, source, pool, ids, counts, offsets, data_offset, buf, rb, cancel=cancel)
        else:
            _pack_windows(fd, tmp, ff, RowReader(source, pool, staging, rb), ids, counts, offsets, seg_bytes,
                          data_offset, buf, rb, cancel)
        write_at(fd, tmp, head, 0)  # the header last: a file without it never validates
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    commit_file(fd, tmp, path)
    stats = {"seconds": time.perf_counter() - t0, "rows": int(ids.size), "segments": int(counts.size), "method": method,
             "file_bytes": int(file_size), "read_bytes": int(pool.counters.snapshot()["bytes"] - read0)}
    packed = open_packed(path, signature, io)
    if packed is None:  # pragma: no cover - we just wrote it
        raise ConfigError(f"{path}: the packed file just written does not read back; check the cache folder")
    return packed, stats


def _pack_windows(fd: int, tmp: Path, ff: FeatureFile, reader: Any, ids: np.ndarray, counts: np.ndarray,
                  offsets: np.ndarray, seg_bytes: np.ndarray, data_offset: int, buf: np.ndarray, rb: int,
                  cancel: Any = None) -> None:
    """Packing by row reads: windows of whole segments assembled in ``buf``, written in order."""
    starts = np.concatenate([[0], np.cumsum(counts)])
    k = 0
    m = counts.size
    buffer_bytes = buf.size
    while k < m:  # a window of whole segments that fits the buffer
        _check(cancel)
        end = np.searchsorted(offsets, offsets[k] + buffer_bytes, side="right")
        end = max(int(end), k + 1)
        while end > k + 1 and offsets[end - 1] + seg_bytes[end - 1] - offsets[k] > buffer_bytes:
            end -= 1
        w_ids = ids[starts[k]:starts[end]]
        if w_ids.size:
            # destination byte of each packed row inside the window buffer (segments page-aligned)
            seg_of = np.repeat(np.arange(k, end), counts[k:end])
            local = np.arange(w_ids.size) - (starts[seg_of] - starts[k])
            dest = (offsets[seg_of] - offsets[k]) + local * rb
            u, first = np.unique(w_ids, return_index=True)  # each row read once per window
            out = buf[: int(offsets[end - 1] + seg_bytes[end - 1] - offsets[k])]
            reader.read(ff.offset + u * rb, out, dest[first])
            dup = np.setdiff1d(np.arange(w_ids.size), first, assume_unique=True)
            if dup.size:  # rows two batches of the window share: copy from the first copy
                src_pos = dest[first][np.searchsorted(u, w_ids[dup])]
                _copy_within(out, src_pos, dest[dup], rb)
            write_at(fd, tmp, out, data_offset + int(offsets[k]))
        k = end


def _pack_stream(fd: int, tmp: Path, ff: FeatureFile, source: DiskFile, pool: IOPool, ids: np.ndarray,
                 counts: np.ndarray, offsets: np.ndarray, data_offset: int, buf: np.ndarray, rb: int,
                 request: int = 1 << 20, sync_every: int = 256 << 20, cancel: Any = None) -> None:
    """Packing by one sequential pass: the packed rows sorted by node id; a piece of the feature
    file read into the first half of ``buf``, its rows copied, grouped by segment, into the second
    half, and each segment's run written at its place. Written pages are synced and dropped
    every ``sync_every`` bytes (the page cache holds little of the packed file).

    Once a piece's rows are copied out, the read half is free: the next piece's read is started
    before this piece is written and synced, so the disk reads while the pass writes (before,
    each waited for the other, and the next epoch's start waited 2.7-2.8 s for the pass running
    ahead in every ``bench_disk`` run; after, none)."""
    from gnnsys.storage.disk_tier import copy_bytes

    m = counts.size
    starts = np.concatenate([[0], np.cumsum(counts)])
    order = np.argsort(ids, kind="stable")
    sid = ids[order]
    seg_of = np.repeat(np.arange(m), counts)[order]
    dest = starts[seg_of]  # in place: at most PASS_ID_COPIES id-sized arrays at once
    np.subtract(order, dest, out=dest)
    del order
    dest *= rb
    dest += offsets[seg_of]
    dest += data_offset
    half = (buf.size // 2) // PAGE * PAGE
    rbuf, obuf = buf[:half], buf[half:]
    max_rows = max(1, (half - 2 * PAGE) // rb)
    max_entries = max(1, obuf.size // rb)
    n = sid.size

    def start(a: int) -> tuple[int, int, int, Any]:
        """Start reading the piece of rows ``sid[a:b]`` into ``rbuf``: ``(b, f0, p0, handle)``."""
        b = max(a + 1, min(n, a + max_entries, int(np.searchsorted(sid, sid[a] + max_rows))))
        f0 = ff.offset + int(sid[a]) * rb
        f1 = ff.offset + (int(sid[b - 1]) + 1) * rb
        p0, p1 = f0 - f0 % PAGE, align_up(f1)
        offs = np.arange(p0, p1, request, dtype=np.int64)
        lens = np.minimum(request, p1 - offs)
        return b, f0, p0, pool.submit(source, offs, lens, rbuf, offs - p0, np.minimum(lens, f1 - offs))

    a = 0
    written = 0
    pending = start(0) if n else None
    try:
        while pending is not None:
            b, f0, p0, handle = pending
            pending = None
            handle.wait()
            seg = seg_of[a:b]
            o = np.argsort(seg, kind="stable")  # by segment, then by id: each segment's rows are one run
            copy_bytes(obuf, np.arange(b - a, dtype=np.int64) * rb, rbuf, (f0 - p0) + (sid[a:b][o] - sid[a]) * rb, rb)
            _check(cancel)
            if b < n:
                pending = start(b)  # rbuf is free again: the next read overlaps this piece's writes
            cuts = np.concatenate([[0], np.flatnonzero(np.diff(seg[o])) + 1, [b - a]])
            d = dest[a:b][o]
            for s0, s1 in zip(cuts[:-1], cuts[1:]):  # one write per segment with rows in this piece
                write_at(fd, tmp, obuf[s0 * rb:s1 * rb], int(d[s0]))
            written += (b - a) * rb
            if written >= sync_every:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                written = 0
            a = b
    finally:
        if pending is not None:  # an error or a cancel: no read may still write into the buffer
            try:
                pending[3].wait()
            except Exception:  # noqa: BLE001 - the error being raised is the one to report
                pass


def _copy_within(out: np.ndarray, src: np.ndarray, dst: np.ndarray, rb: int) -> None:
    """``out[dst[i]:dst[i] + rb] = out[src[i]:src[i] + rb]`` (sources are first copies, never overwritten)."""
    from gnnsys.storage.disk_tier import copy_bytes

    copy_bytes(out, np.ascontiguousarray(dst, np.int64), out, np.ascontiguousarray(src, np.int64), rb)
