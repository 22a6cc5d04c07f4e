"""The out-of-core disk tier (feature tiering II): the store's own O_DIRECT reads, the packed
layout and its staleness checks, read amplification, the memory budget, the chunked writer, and
the faults (bad files, a too-small budget, a read-only or full cache folder)."""

from __future__ import annotations

import errno
import json
import time

import numpy as np
import pytest
import torch
from gnnsys.experiments.bench_samplers import bench_graph
from gnnsys.samplers.saint_samplers import SaintRandomWalkSampler
from gnnsys.storage import allocator, direct_read, disk_io
from gnnsys.storage.budget import ACTIVATION_COPIES, EDGE_BYTES, batch_work_bytes, parse_bytes, plan_budget
from gnnsys.storage.disk_io import PAGE
from gnnsys.storage.disk_tier import DirectDiskTier
from gnnsys.storage.feature_file import FeatureFile, FeatureFileWriter, write_feature_file
from gnnsys.storage.out_of_core import OutOfCoreStore
from gnnsys.storage.packed import packed_path

from gnnsys.errors import ConfigError, DataFormatError


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 4000-node power-law graph, 96-d float32 features (384-byte rows) in a feature file, a
    random-walk sampler with its pre-sampling counts."""
    root = tmp_path_factory.mktemp("disk")
    import os

    old = os.environ.get("GNNSYS_CACHE")
    os.environ["GNNSYS_CACHE"] = str(root)
    g = bench_graph(4000, 8.0)
    if old is None:
        del os.environ["GNNSYS_CACHE"]
    else:
        os.environ["GNNSYS_CACHE"] = old
    x = torch.randn(g.num_nodes, 96, generator=torch.Generator().manual_seed(0))
    path = root / "x.npy"
    write_feature_file(path, x, chunk_rows=1000)
    s = SaintRandomWalkSampler(g, 60, 2, seed=3)
    s.compute_normalization(2)  # unseen edges are counted once by default (issue 17): no clip warning
    return g, x, path, s, root


def _store(setup, layout, budget="1365KB", **kw):
    g, x, path, s, root = setup
    return OutOfCoreStore(path, budget, graph=g, layout=layout, sampler=s, counts=s.stats.node_count,
                          cache_dir=kw.pop("cache_dir", root / "cache"), **kw)


def _epoch(store, s, epoch):
    s.set_epoch(epoch)
    store.begin_epoch(s)
    store.reset_stats()
    ids = [b.node_ids for b in s]
    return [store.gather(i) for i in ids], ids


@pytest.mark.parametrize("layout", ["rows", "packed", "memmap"])
def test_rows_are_bit_identical_for_any_ids(setup, layout):
    """Every layout returns exactly the file's rows: duplicates, unsorted, empty, all ids, and
    the epoch's batches (packed: from the packed file)."""
    g, x, path, s, root = setup
    st = _store(setup, layout)
    gen = torch.Generator().manual_seed(1)
    for ids in (torch.randint(0, g.num_nodes, (500,), generator=gen), torch.zeros(0, dtype=torch.long),
                torch.arange(g.num_nodes).flip(0), torch.tensor([5, 5, 5, 0, g.num_nodes - 1])):
        assert torch.equal(st.gather(ids), x[ids])
    rows, ids = _epoch(st, s, 1)
    assert all(torch.equal(r, x[i]) for r, i in zip(rows, ids))
    d = st.stats()["disk"]
    if layout == "packed":
        assert d["packed_rows"] == d["needed_bytes"] // (96 * 4) and d["unplanned_rows"] == 0
    st.close()


def test_read_counters_and_amplification(setup):
    """Bytes read are the pages the rows touch: the row layout pays whole 4 KiB pages for
    384-byte rows, the packed layout reads within 1.3x of the rows it needs; reads in flight
    never exceed the staging buffer."""
    g, x, path, s, root = setup
    tier = DirectDiskTier(FeatureFile.open(path), "rows", staging_bytes=64 << 10, max_request=16 << 10)
    tier.read(torch.tensor([0, 1, 2, 3]))  # rows 0..3 at bytes 4096..5632: one page
    assert tier.io_stats()["read_bytes"] == PAGE and tier.io_stats()["requests"] == 1
    tier.reset_counters()
    ids = torch.arange(0, 4000, 40)  # one row every 15360 bytes: one (or two) pages each
    assert torch.equal(tier.read(ids), x[ids])
    st = tier.io_stats()
    assert st["needed_bytes"] == 100 * 384 and PAGE * 100 <= st["read_bytes"] <= 2 * PAGE * 100
    tier.reset_counters()
    exact = 4000 * 384  # the data pages (the header page is not read): 375 pages
    assert torch.equal(tier.read(torch.arange(4000)), x)  # everything: 16 KiB requests, rounds of 64 KiB
    st = tier.io_stats()  # a request ends at a row, the next re-reads the page that row shares (<= 1 in 4)
    assert st["in_flight_peak"] <= 64 << 10 and exact < st["read_bytes"] <= exact * 4 // 3
    tier.close()
    tier = DirectDiskTier(FeatureFile.open(path), "rows", staging_bytes=4 << 20)
    assert torch.equal(tier.read(torch.arange(4000).flip(0)), x.flip(0))
    assert exact <= tier.io_stats()["read_bytes"] <= exact + PAGE and tier.io_stats()["io"] == "direct"
    tier.close()
    amps = {}
    for layout in ("rows", "packed"):
        store = _store(setup, layout)
        _epoch(store, s, 1)
        amps[layout] = store.stats()["disk"]["amplification"]
        store.close()
    assert amps["packed"] <= 1.3 < 3 < amps["rows"]


def test_budget_split_holds_and_too_small_budget_names_the_minimum(setup):
    g, x, path, s, root = setup
    st = _store(setup, "packed")
    b = st.stats()["budget"]
    assert b["peak"] <= b["total"] == 1_365_000 and st.capacity == b["cache_rows"] > 0
    _epoch(st, s, 1)
    b = st.stats()["budget"]
    assert b["peak"] <= b["total"] and st.stats()["disk"]["in_flight_peak"] <= b["staging"]
    minimum = b["minimum"]
    st.close()
    with pytest.raises(ConfigError, match=f"smallest budget that works is {minimum} bytes"):
        _store(setup, "packed", budget=minimum - 1)
    ok = _store(setup, "rows", budget=minimum)  # the smallest budget works (no cache tier)
    assert ok.capacity == 0
    rows, ids = _epoch(ok, s, 2)
    assert all(torch.equal(r, x[i]) for r, i in zip(rows, ids))
    ok.close()
    assert parse_bytes("2GB") == 2 * 10**9 and parse_bytes("512MiB") == 512 << 20 and parse_bytes("8.11MB") == 8_110_000
    for bad in ("2 parsecs", "-1GB", 0):
        with pytest.raises(ConfigError, match="memory budget"):
            parse_bytes(bad)
    with pytest.raises(ConfigError, match="smallest budget"):
        plan_budget("1MB", row_bytes=3072, num_rows=10**6, max_batch_rows=9000)


def test_packed_file_is_reused_when_valid_and_rebuilt_when_stale(setup, tmp_path):
    """The same plan reuses the file; another seed, another epoch plan or a damaged header is
    detected and the file rebuilt, never read as valid."""
    g, x, path, s, root = setup
    st = _store(setup, "packed", cache_dir=tmp_path)
    s.set_epoch(1)
    first = st.begin_epoch(s)
    assert first["built"] and not first["stale"]
    again = st.begin_epoch(s)
    assert not again["built"]
    s.set_epoch(3)  # the same file name (epoch parity), another plan: stale
    third = st.begin_epoch(s)
    assert third["built"] and third["stale"] and third["path"] == first["path"]
    other = SaintRandomWalkSampler(g, 60, 2, seed=4)  # another seed, same epoch
    other.set_statistics(s.stats)
    other.set_epoch(3)
    rec = st.begin_epoch(other)
    assert rec["built"] and rec["stale"]
    rows = [st.gather(b.node_ids) for b in other]
    assert all(torch.equal(r, x[b.node_ids]) for r, b in zip(rows, other.sample_at(range(3 * len(other),
                                                                                       4 * len(other)))))
    p = rec["path"]
    with open(p, "r+b") as f:  # damage the header's JSON (same length): never read as valid
        head = bytearray(f.read(PAGE))
        n = int.from_bytes(head[8:12], "little")
        h = json.loads(head[12:12 + n])
        h["signature"]["epoch"] = 99
        body = json.dumps(h).encode()
        f.seek(12)
        f.write(body[:n].ljust(n))
    assert st.begin_epoch(other)["built"]
    st.close()


def test_full_or_read_only_cache_folder_leaves_no_packed_file(setup, tmp_path, monkeypatch):
    g, x, path, s, root = setup
    st = _store(setup, "packed", cache_dir=tmp_path)
    s.set_epoch(1)

    def enospc(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk_io, "_fallocate", enospc)
    with pytest.raises(ConfigError, match="no space left"):
        st.begin_epoch(s)
    monkeypatch.undo()
    calls = []

    def short_write(fd, data, offset):  # the disk fills up half way through the data
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return disk_io.os.pwrite(fd, data, offset)

    monkeypatch.setattr(disk_io, "_pwrite", short_write)
    with pytest.raises(ConfigError, match="no space left"):
        st.begin_epoch(s)
    monkeypatch.undo()
    assert not list((tmp_path / "packed").iterdir())  # no file, not even a temporary one

    def read_only(p, flags, mode=0o644):
        if flags & disk_io.os.O_WRONLY:
            raise OSError(errno.EROFS, "Read-only file system")
        return disk_io.os.open(p, flags, mode)

    monkeypatch.setattr(disk_io, "_open", read_only)
    with pytest.raises(ConfigError, match="read-only"):
        st.begin_epoch(s)
    monkeypatch.undo()
    rec = st.begin_epoch(s)  # and once there is room, it builds and reads right
    assert rec["built"] and not rec["stale"]
    st.close()


def test_feature_file_faults(setup, tmp_path):
    g, x, path, s, root = setup
    for arr, match in ((np.zeros((g.num_nodes + 1, 96), np.float32), "rows but the graph has"),
                       (np.zeros((g.num_nodes, 96, 1), np.float32), "matrix"),
                       (np.zeros((g.num_nodes, 96), np.complex64), "not supported")):
        p = tmp_path / "bad.npy"
        np.save(p, arr)
        with pytest.raises(DataFormatError, match=match):
            OutOfCoreStore(p, "1MB", graph=g, layout="rows", sampler=s)
    p = tmp_path / "f64.npy"
    np.save(p, np.zeros((g.num_nodes, 96)))
    with pytest.raises(DataFormatError, match="expected float32"):
        OutOfCoreStore(p, "1MB", graph=g, layout="rows", sampler=s, dtype=torch.float32)
    cut = tmp_path / "cut.npy"
    cut.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(DataFormatError, match="truncated"):
        OutOfCoreStore(cut, "1MB", graph=g, layout="rows", sampler=s)
    with pytest.raises(DataFormatError, match="does not exist"):
        OutOfCoreStore(tmp_path / "none.npy", "1MB", graph=g, layout="rows", sampler=s)
    with pytest.raises(ConfigError, match="static"):
        OutOfCoreStore(path, "1MB", graph=g, layout="packed", policy="lru", sampler=s)


def test_chunked_writer(tmp_path):
    """A matrix written a chunk at a time (from a memmap, a tensor, or an iterable of chunks)
    reads back as the same .npy; a failed write leaves no file."""
    a = np.random.default_rng(0).standard_normal((1001, 7)).astype(np.float32)
    src = tmp_path / "src.npy"
    np.save(src, a)
    for source in (np.load(src, mmap_mode="r"), torch.from_numpy(a), (a[i:i + 100] for i in range(0, 1001, 100))):
        out = tmp_path / "out.npy"
        ff = write_feature_file(out, source, num_rows=1001, chunk_rows=64)
        assert ff.offset == PAGE and np.array_equal(np.load(out), a)
        out.unlink()
    bad = a.copy()
    bad[500, 3] = np.nan
    with pytest.raises(DataFormatError, match="NaN"):
        write_feature_file(tmp_path / "nan.npy", bad, chunk_rows=100)
    with pytest.raises(DataFormatError, match="declared"):
        with FeatureFileWriter(tmp_path / "short.npy", num_rows=10, dim=7) as w:
            w.write(a[:5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.npy"]


def test_stream_and_row_packing_write_the_same_file(setup, tmp_path):
    """One sequential pass over the feature file and windows of row reads pack the same bytes."""
    from gnnsys.storage.out_of_core import epoch_plan
    from gnnsys.storage.packed import pack_epoch

    g, x, path, s, root = setup
    st = _store(setup, "rows")
    _, batches = epoch_plan(s, 2)
    hot = st.slot_of >= 0
    files = {}
    for method in ("rows", "stream"):
        p = tmp_path / f"{method}.packed"
        pk, stats = pack_epoch(st.feature_file, st.disk.source, st.disk.pool, batches, hot, p, {"m": 1},
                               64 * 1024, st.disk.staging, method=method)
        assert stats["method"] == method and stats["rows"] == sum(int((~hot[b]).sum()) for b in batches)
        for k in (0, len(batches) - 1):
            seg = pk.segment_ids(k)
            assert np.array_equal(seg, np.unique(batches[k][~hot[batches[k]]]))
        pk.close()
        data = p.read_bytes()
        files[method] = data[int(pk.header["data_offset"]):]
        rows = np.frombuffer(files[method], np.float32)
        first = pk.segment_ids(0)
        assert np.array_equal(rows[:first.size * 96].reshape(-1, 96), x[torch.from_numpy(first)].numpy())
    assert files["rows"] == files["stream"] or _same_rows(files, pk, batches, hot)
    st.close()


def test_a_failed_write_in_the_stream_pass_leaves_no_read_in_flight(setup, tmp_path, monkeypatch):
    """The stream pass reads its next piece while it writes the current one: a write that fails
    (a full disk) raises the clear error only after that read is done (nothing may still write
    into the pass's buffer), and no temporary file is left. Without the failure, the overlapped
    pass writes the rows of every segment."""
    from gnnsys.storage.out_of_core import epoch_plan
    from gnnsys.storage.packed import pack_epoch

    g, x, path, s, root = setup
    st = _store(setup, "rows")
    _, batches = epoch_plan(s, 2)
    hot = st.slot_of >= 0
    pool = st.disk.pool
    handles = []
    submit = pool.submit

    def recording_submit(*a, **k):
        h = submit(*a, **k)
        handles.append(h)
        return h

    monkeypatch.setattr(pool, "submit", recording_submit)
    pk, stats = pack_epoch(st.feature_file, st.disk.source, pool, batches, hot, tmp_path / "ok.packed", {"m": 1},
                           64 * 1024, st.disk.staging, method="stream")
    assert len(handles) > 2  # many pieces: the overlap was exercised
    for k in range(pk.num_segments):
        ids = pk.segment_ids(k)
        got = np.fromfile(pk.path, np.float32, count=ids.size * 96, offset=pk.segment_offset(k)).reshape(-1, 96)
        assert np.array_equal(got, x[torch.from_numpy(ids)].numpy())
    pk.close()

    handles.clear()
    writes = [0]
    real = disk_io._pwrite

    def enospc_on_the_third_data_write(fd, data, offset):
        writes[0] += 1
        if writes[0] == 3 + 3:  # after the index's three writes (the header is written last)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(disk_io, "_pwrite", enospc_on_the_third_data_write)
    run = pool._run

    def slow_run(*a, **k):  # the read in flight when the write fails is still going
        time.sleep(0.2)
        return run(*a, **k)

    monkeypatch.setattr(pool, "_run", slow_run)
    with pytest.raises(ConfigError, match="no space left"):
        pack_epoch(st.feature_file, st.disk.source, pool, batches, hot, tmp_path / "full.packed", {"m": 1},
                   64 * 1024, st.disk.staging, method="stream")
    assert handles and all(h.done() for h in handles)
    assert not list(tmp_path.glob(".full.packed*")) and not (tmp_path / "full.packed").exists()
    st.close()


@pytest.mark.parametrize("row_bytes,shift", [(384, 0), (3072, 0), (12, 0), (16, 4), (24, 1)])
def test_copy_bytes_equals_a_numpy_copy_aligned_or_not(row_bytes, shift):
    """Rows copied between flat byte buffers: the word path (8-byte aligned rows, offsets and
    buffers) and the byte path (anything else) both equal numpy's copy, rows in any order."""
    from gnnsys.storage.disk_tier import copy_bytes

    rng = np.random.default_rng(row_bytes + shift)
    n = 50
    buf = np.frombuffer(rng.bytes(n * row_bytes + 64), np.uint8).copy()
    src = shift + rng.permutation(n).astype(np.int64) * row_bytes
    dst = shift + np.arange(n, dtype=np.int64)[::-1].copy() * row_bytes
    out = np.zeros(n * row_bytes + 64, np.uint8)
    copy_bytes(out, dst, buf, src, row_bytes)
    want = np.zeros_like(out)
    for d, s_ in zip(dst, src):
        want[d:d + row_bytes] = buf[s_:s_ + row_bytes]
    assert np.array_equal(out, want)


def _same_rows(files, pk, batches, hot):
    """Equal except the padding between segments (never read)."""
    a, b = (np.frombuffer(files[m], np.uint8) for m in ("rows", "stream"))
    for k in range(pk.num_segments):
        o, n = int(pk.offsets[k]), int(pk.counts[k]) * 384
        if not np.array_equal(a[o:o + n], b[o:o + n]):
            return False
    return True


def test_build_feature_store_disk(setup):
    from gnnsys.storage import build_feature_store

    g, x, path, s, root = setup
    st = build_feature_store(path, kind="disk", graph=g, saint_counts=s.stats.node_count, memory_budget="1365KB",
                             sampler=s, layout="rows")
    assert isinstance(st, OutOfCoreStore) and st.policy.name == "static-saint"
    assert torch.equal(st.gather(torch.arange(10)), x[:10])
    with pytest.raises(ConfigError, match="evaluate layer-wise"):  # 1.5 MB of rows, a 1.37 MB budget
        st.all()
    st.close()
    st = build_feature_store(path, kind="disk", graph=g, saint_counts=s.stats.node_count, memory_budget="2465KB",
                             sampler=s, layout="rows")
    assert torch.equal(st.all(), x)  # --eval full: the whole file when it fits the budget
    st.close()
    with pytest.raises(ConfigError, match="memory_budget"):
        build_feature_store(path, kind="disk", graph=g)
    with pytest.raises(ConfigError, match="path"):
        build_feature_store(x, kind="disk", graph=g, memory_budget="1MB")


def test_budget_reserves_the_batches_working_memory(setup):
    """The split sets the working memory of a step aside (miss rows, edges and operators of the
    held batches, activations from the model widths) before the cache tier gets the rest; a
    budget without room for it names the minimum including it."""
    rows, rb = 9000, 3072
    work = batch_work_bytes(rows, rb, (128, 10), avg_degree=20.0, batches_held=4)
    assert work == rows * rb + 4 * int(rows * 20.0 * EDGE_BYTES) + ACTIVATION_COPIES * rows * 138 * 4
    assert batch_work_bytes(rows, rb, (), avg_degree=20.0, max_edges=1000, batches_held=2) == rows * rb + 2 * 1000 * 44
    # a sampler inducing 8 subgraphs at once: the fresh group and the 3 earlier batches still held
    assert (batch_work_bytes(rows, rb, (), avg_degree=20.0, batches_held=4, sampler_group=8)
            == rows * rb + 11 * int(rows * 20.0 * EDGE_BYTES))
    assert batch_work_bytes(rows, rb, (), avg_degree=20.0, batches_held=4, sampler_group=1) == rows * rb + 4 * int(
        rows * 20.0 * EDGE_BYTES)
    plain = plan_budget("2GB", row_bytes=rb, num_rows=10**7, max_batch_rows=rows)
    held = plan_budget("2GB", row_bytes=rb, num_rows=10**7, max_batch_rows=rows, work_bytes=work)
    assert held.minimum == plain.minimum + work and held.work == work
    assert held.cache_rows == (2 * 10**9 - held.minimum) // rb < plain.cache_rows
    with pytest.raises(ConfigError, match=f"working memory; the smallest budget that works is {held.minimum} bytes"):
        plan_budget(held.minimum - 1, row_bytes=rb, num_rows=10**7, max_batch_rows=rows, work_bytes=work)
    g, x, path, s, root = setup
    st = _store(setup, "rows", budget="1965KB", model_widths=(64, 7))
    b = st.stats()["budget"]
    rows = s.num_roots * (s.walk_length + 1)
    assert b["work"] == batch_work_bytes(rows, 384, (64, 7), avg_degree=g.num_edges / g.num_nodes,
                                         max_edges=g.num_edges, batches_held=4, sampler_group=s.group_size)
    assert b["work"] == b["peak_by_kind"]["work"] and b["peak"] <= b["total"]
    assert st.capacity == (1_965_000 - b["minimum"]) // 384 > 0
    st.close()


def test_store_caps_the_allocator_arenas(setup):
    """An out-of-core store caps glibc's malloc arenas (freed batch memory is reused, not kept
    resident per thread) and says so in its stats; trimming the heap works."""
    st = _store(setup, "rows")
    assert allocator.allocator_state()["arena_max"] == allocator.ARENA_MAX
    assert st.stats()["budget"]["arena_max"] == allocator.ARENA_MAX
    st.close()
    assert allocator.limit_arenas(5) and allocator.allocator_state()["arena_max"] == allocator.ARENA_MAX  # first wins
    assert allocator.trim_heap()
    with pytest.raises(ValueError, match="arena_max"):
        allocator.limit_arenas(0)


def test_gil_free_reads_and_busy_time(setup):
    """The numba read loop returns the file's bytes, times every request, and reports a failed
    read (O_DIRECT at an unaligned offset) as a clear error through the pool; busy time is the
    union of the requests' intervals."""
    g, x, path, s, root = setup
    assert direct_read.available()
    f = disk_io.DiskFile(path, "direct")
    buf = disk_io.aligned_empty(6 * PAGE)
    offs = np.array([PAGE, 3 * PAGE, 8 * PAGE], np.int64)
    lens = np.array([2 * PAGE, PAGE, 3 * PAGE], np.int64)
    bo = np.array([0, 2 * PAGE, 3 * PAGE], np.int64)
    got, t0, t1, stop = direct_read.read_spans(f.fd, buf, offs, lens, bo, 0, 3)
    raw = np.fromfile(path, np.uint8)
    assert stop == 3 and got.tolist() == lens.tolist() and (t1 >= t0).all()
    want = np.concatenate([raw[PAGE:3 * PAGE], raw[3 * PAGE:4 * PAGE], raw[8 * PAGE:11 * PAGE]])
    assert np.array_equal(buf, want)
    pool = disk_io.IOPool(2)
    pool.read(f, offs, lens, buf, bo)
    c = pool.counters.snapshot()
    assert c["bytes"] == 6 * PAGE and c["requests"] == 3 and c["busy_s"] > 0
    with pytest.raises(DataFormatError, match="read of 4096 bytes at offset 100"):
        pool.read(f, np.array([100], np.int64), np.array([PAGE], np.int64), buf, np.zeros(1, np.int64))
    pool.close()
    f.close()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1000, 200)
    e = a + rng.integers(1, 50, 200)
    cover = np.zeros(1100, bool)
    for lo, hi in zip(a, e):
        cover[lo:hi] = True
    assert direct_read.union_seconds(a, e) * 1e9 == pytest.approx(cover.sum())


def test_packed_segment_is_one_request_per_io_thread(setup):
    """A batch's packed segment is cut into at most one request per I/O thread (all in flight
    at once), and the rows still come back exact."""
    g, x, path, s, root = setup
    st = _store(setup, "packed", queue_depth=4)
    rows, ids = _epoch(st, s, 1)
    assert all(torch.equal(r, x[i]) for r, i in zip(rows, ids))
    d = st.stats()["disk"]
    assert d["unplanned_rows"] == 0 and len(ids) <= d["requests"] <= 4 * len(ids)
    st.close()


def test_next_epoch_is_packed_ahead_in_the_background(setup, tmp_path):
    """Beginning epoch e draws epoch e+1's plan and writes its packed file in a background thread
    (buffers set aside in the budget); epoch e+1 opens that file (no pass before it) and reads
    exactly the file's rows, its own reads the epoch's only traffic. A stream moved to another
    epoch, or another sampler, is not served by it; expect_epochs stops it after the last
    epoch; close() in the middle of a pass leaves no temporary file."""
    g, x, path, s, root = setup
    cache = tmp_path / "cache"
    st = _store(setup, "packed", budget="3MB", cache_dir=cache)
    b = st.stats()["budget"]
    assert b["pack_ahead"] > 0 and b["peak"] <= b["total"] == 3_000_000
    rows, ids = _epoch(st, s, 1)
    r1 = st.pack_log[-1]
    assert r1["epoch"] == 1 and not r1["ahead"] and r1["built"] and r1["next_plan_s"] >= 0
    rows2, ids2 = _epoch(st, s, 2)
    r2 = st.pack_log[-1]
    assert r2["epoch"] == 2 and r2["ahead"] and r2["built"] and r2["packed_rows"] > 0
    assert all(torch.equal(r, x[i]) for r, i in zip(rows + rows2, ids + ids2))
    d = st.stats()["disk"]
    # the packed segments only (each rounded to pages), not the pass's read of the whole file
    assert d["packed_rows"] > 0 and d["read_bytes"] <= d["needed_bytes"] + 2 * PAGE * len(s) < x.numel() * 4
    assert st.stats()["budget"]["peak"] <= 3_000_000
    rows5, ids5 = _epoch(st, s, 5)  # not the epoch packed ahead (3): packed before it, as without pack_ahead
    r5 = st.pack_log[-1]
    assert r5["epoch"] == 5 and not r5["ahead"] and r5["built"]
    assert all(torch.equal(r, x[i]) for r, i in zip(rows5, ids5))
    other = SaintRandomWalkSampler(g, 60, 2, seed=4)  # epoch 6 of another seed: its own plan
    other.set_epoch(6)
    st.begin_epoch(other)
    assert st.pack_log[-1]["epoch"] == 6 and not st.pack_log[-1]["ahead"]
    assert all(torch.equal(st.gather(bb.node_ids), x[bb.node_ids]) for bb in other)
    st.expect_epochs(1)
    _epoch(st, s, 8)
    assert "next_plan_s" not in st.pack_log[-1] and st._ahead is None
    st.expect_epochs(None)
    s.set_epoch(9)
    st.begin_epoch(s)  # starts packing epoch 10 ...
    st.close()  # ... and stops it
    assert not list((cache / "packed").glob(".*tmp*"))
    small = _store(setup, "packed", budget="1400KB", cache_dir=cache)  # no room beside one batch's buffers
    assert small.split.pack_ahead == 0 and small.stats()["budget"]["pack_ahead"] == 0
    _epoch(small, s, 1)
    assert "next_plan_s" not in small.pack_log[-1]
    small.close()


def test_node_sets_are_the_batches_nodes_and_leave_the_cache(setup):
    """``node_sets_at`` gives each batch's ``node_ids`` (the packed layout's plan) without taking
    pre-sampled subgraphs out of the sampler's cache."""
    g, x, path, s, root = setup
    s2 = SaintRandomWalkSampler(g, 60, 2, seed=5)
    s2.compute_normalization(2)
    cached = sorted(s2._cache)[:3]
    ks = cached + [10_000, 10_001]
    sets = s2.node_sets_at(ks)
    assert sorted(s2._cache)[:3] == cached
    assert all(torch.equal(v, b.node_ids) for v, b in zip(sets, s2.sample_at(ks)))


def test_a_full_disk_in_the_background_pass_is_reported_at_its_epoch(setup, tmp_path, monkeypatch):
    """The packing pass running ahead fills the disk: the next epoch's start raises the clear
    error, no temporary or partial file is left, and a retry packs that epoch before it."""
    import threading

    g, x, path, s, root = setup
    st = _store(setup, "packed", budget="3MB", cache_dir=tmp_path)

    def background_enospc(fd, data, offset):
        if threading.current_thread().name.startswith("gnnsys-pack"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return disk_io.os.pwrite(fd, data, offset)

    monkeypatch.setattr(disk_io, "_pwrite", background_enospc)
    _epoch(st, s, 1)  # epoch 1 packed before it; epoch 2's pass fails in the background
    s.set_epoch(2)
    with pytest.raises(ConfigError, match="no space left"):
        st.begin_epoch(s)
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "packed").iterdir()] == [packed_path(tmp_path, st.feature_file, 1).name]
    rows, ids = _epoch(st, s, 2)
    assert not st.pack_log[-1]["ahead"] and st.pack_log[-1]["built"]
    assert all(torch.equal(r, x[i]) for r, i in zip(rows, ids))
    st.close()


def test_a_plan_larger_than_its_reserve_is_packed_before_its_epoch(setup, tmp_path):
    """When the next epoch's plan needs more index memory than the budget set aside for a pass
    running ahead, no pass starts; that epoch is packed before it begins, and says why."""
    g, x, path, s, root = setup
    st = _store(setup, "packed", budget="3MB", cache_dir=tmp_path)
    st._ahead_index = 1
    _epoch(st, s, 1)
    assert st._ahead.skipped and st._ahead.future is None
    rows, ids = _epoch(st, s, 2)
    rec = st.pack_log[-1]
    assert not rec["ahead"] and rec["built"] and "set aside" in rec["ahead_skipped"]
    assert all(torch.equal(r, x[i]) for r, i in zip(rows, ids))
    st.close()
