"""``OutOfCoreStore``: features in a file larger than memory, under a memory budget.

A ``TieredFeatureStore`` whose backing tier is the ``DirectDiskTier`` (the store's own
``O_DIRECT`` reads) and whose cache tier gets what the budget leaves after the read staging
buffer and the batch buffers (``budget.plan_budget``). With ``layout="packed"`` (DiskGNN) the
store, at the start of every epoch (``begin_epoch``, called by the loading pipeline), takes the
epoch's plan from the sampler (its batches are deterministic per index), and reuses or writes
the epoch's packed file in the cache folder (``packed.pack_epoch``); the hot rows are placed by
a static tiering-I policy (the packed cold sets depend on it).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gnnsys.storage.allocator import allocator_state, limit_arenas, trim_heap
from gnnsys.storage.budget import MemoryBudget, batch_work_bytes, plan_budget
from gnnsys.storage.disk_io import PAGE, DiskFile, IOPool, align_up, aligned_empty
from gnnsys.storage.disk_tier import DEFAULT_QUEUE_DEPTH, LAYOUTS, DirectDiskTier
from gnnsys.storage.feature_file import FeatureFile
from gnnsys.storage.packed import (
    default_cache_dir,
    open_packed,
    pack_epoch,
    pack_index_bytes,
    packed_path,
    plan_hash,
)
from gnnsys.storage.tiered import TieredFeatureStore

from gnnsys.errors import ConfigError
from gnnsys.threads import lower_priority

#: Nice steps of the thread that packs the next epoch during the current one.
PACK_NICE = 19

#: Static policies the packed layout can use (its cold sets are fixed when the file is written).
STATIC_POLICIES = ("static-saint", "static-degree", "static-pagerank")


def batch_row_bound(sampler: Any) -> int | None:
    """The most node rows one batch of ``sampler`` can have, where its parameters fix it (random
    walks: roots x (length + 1); node sampler: its budget; edge sampler: 2 x its budget)."""
    from gnnsys.samplers.saint_samplers import SaintEdgeSampler, SaintNodeSampler, SaintRandomWalkSampler

    if isinstance(sampler, SaintRandomWalkSampler):
        return sampler.num_roots * (sampler.walk_length + 1)
    if isinstance(sampler, SaintNodeSampler):
        return sampler.budget
    if isinstance(sampler, SaintEdgeSampler):
        return 2 * sampler.budget
    return None


def stream_epoch(sampler: Any) -> int:
    """The epoch the sampler's stream points at."""
    return sampler._pos // len(sampler)


def epoch_plan(sampler: Any, epoch: int | None = None) -> tuple[int, list[np.ndarray]]:
    """``(epoch, node ids of every batch)`` of the sampler's epoch ``epoch`` (default: the one its
    stream points at), sampled by index (the sampler's stream does not move)."""
    n = len(sampler)
    if epoch is None:
        epoch = stream_epoch(sampler)
    start = epoch * n
    ks = list(range(start, start + n))
    g = max(1, int(getattr(sampler, "group_size", 8)))
    out: list[np.ndarray] = []
    sets = getattr(sampler, "node_sets_at", None)
    for i in range(0, n, g):
        if sets is not None:  # node ids only, pre-sampled subgraphs left for the epoch
            out += [v.cpu().numpy().astype(np.int64) for v in sets(ks[i:i + g])]
        else:
            out += [b.node_ids.cpu().numpy().astype(np.int64) for b in sampler.sample_at(ks[i:i + g])]
    return int(epoch), out


class OutOfCoreStore(TieredFeatureStore):
    """Features of a ``.npy`` feature file (see the module docstring).

    Args:
        path: the feature file (any folder: it is only read).
        memory_budget: bytes or a size string (``"2GB"``): cache tier + staging + batch buffers.
        graph: the graph (its node count is checked against the file; degree scores).
        layout: ``"packed"`` (default), ``"rows"`` or ``"memmap"`` (``disk_tier.LAYOUTS``).
        policy: the cache tier's policy (packed: one of ``STATIC_POLICIES``).
        max_batch_rows: most rows of one batch (``batch_row_bound(sampler)`` when a sampler is
            given; required otherwise).
        batches_held: batch buffers the budget reserves (the batch being gathered, the ones
            prefetched, the one computing, the one the trainer drops as it takes the next: 4
            with one batch of prefetch).
        model_widths: the model's layer output widths (hidden sizes, classes): the budget
            reserves the activations of one step (``budget.batch_work_bytes``) besides the
            batches' miss rows, edges and operators (those of the sampler's whole group of
            subgraphs, ``group_size``, when it induces several at once).
        cache_dir: where packed files go (default ``$GNNSYS_CACHE`` or ``~/.cache/gnnsys``).
        dtype: the dtype the file must hold (``None``: any supported).
        counts, train_nodes: the policy's inputs (GraphSAINT's ``C_v``, PageRank's teleport).
        pack_ahead: with the packed layout, write the next epoch's packed file in a background
            thread while the current epoch trains (its buffers are set aside from the cache
            tier: ``split.pack_ahead``; off when the budget has no room for them). The next
            epoch's plan is drawn at the start of the current one. ``expect_epochs`` stops it
            after the last epoch.
    """

    def __init__(self, path: str | os.PathLike, memory_budget: Any, *, graph: Any, layout: str = "packed",
                 policy: str = "static-saint", sampler: Any = None, max_batch_rows: int | None = None,
                 batches_held: int = 4, cache_dir: str | os.PathLike | None = None, io: str = "auto",
                 queue_depth: int = DEFAULT_QUEUE_DEPTH, staging_bytes: int | None = None, dtype: Any = None,
                 counts: Any = None, train_nodes: Any = None, max_cache_rows: int | None = None,
                 model_widths: Any = (), pack_ahead: bool = True) -> None:
        if layout not in LAYOUTS:
            raise ConfigError(f"unknown disk layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
        if layout == "packed" and policy not in STATIC_POLICIES:
            raise ConfigError(f"the packed layout stores each batch's cold rows ahead, so the cache tier must be "
                              f"static: use a policy of {', '.join(STATIC_POLICIES)} (not {policy!r}), or "
                              "layout='rows'")
        ff = FeatureFile.open(path, num_rows=graph.num_nodes if graph is not None else None, dtype=dtype)
        if max_batch_rows is None and sampler is not None:
            max_batch_rows = batch_row_bound(sampler)
        if max_batch_rows is None:
            raise ConfigError("OutOfCoreStore needs max_batch_rows (the most rows one batch gathers) to split the "
                              "memory budget; pass it, or a GraphSAINT sampler")
        rows = min(int(max_batch_rows), ff.num_rows)
        degree = graph.num_edges / max(graph.num_nodes, 1) if graph is not None else 0.0
        work = batch_work_bytes(rows, ff.row_bytes, model_widths, avg_degree=degree, batches_held=batches_held,
                                max_edges=graph.num_edges if graph is not None else None,
                                sampler_group=max(1, int(getattr(sampler, "group_size", 1) or 1)))
        split = plan_budget(memory_budget, row_bytes=ff.row_bytes, num_rows=ff.num_rows, max_batch_rows=rows,
                            batches_held=batches_held, staging=staging_bytes, max_cache_rows=max_cache_rows,
                            work_bytes=work)
        self._ahead_index = 0
        if layout == "packed" and pack_ahead and sampler is not None and hasattr(sampler, "__len__"):
            # the pass's read + write halves and its own staging; its index arrays for a plan of
            # len(sampler) full batches, every row of which may be packed (none in the cache tier)
            planned = len(sampler) * rows
            self._ahead_index = pack_index_bytes(planned, planned, ff.num_rows, split.cache_rows)
            split = split.with_pack_ahead(2 * align_up(rows * ff.row_bytes) + 2 * PAGE + split.staging
                                          + self._ahead_index)
        self.split = split
        self.budget = MemoryBudget(split.total)
        limit_arenas()  # freed batch memory is reused, not kept resident per thread (storage/allocator.py)
        self.feature_file = ff
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.layout = layout
        self.max_batch_rows = int(max_batch_rows)
        tier = DirectDiskTier(ff, layout, io=io, queue_depth=queue_depth, staging_bytes=split.staging)
        self.budget.charge("staging", tier.staging.size)
        self.budget.charge("batch_buffers", split.batch_buffers)
        self.budget.charge("work", split.work)
        self.budget.charge("cache", split.cache_bytes)
        self.budget.charge("pack_ahead", split.pack_ahead)
        tier._reader.merge_gap = 256 << 10  # the preload is a bulk read: read through short gaps
        try:
            super().__init__(tier, split.cache_rows, policy, "cpu", graph=graph, counts=counts,
                             train_nodes=train_nodes)
        except BaseException:
            tier.close()
            raise
        tier._reader.merge_gap = 0  # epochs: exactly the pages the rows touch
        tier.reset_counters()  # the preload is not an epoch's traffic
        self.disk: DirectDiskTier = tier
        self.pack_log: list[dict[str, Any]] = []
        self._ahead: _PackAhead | None = None
        self._epochs_left: int | None = None
        self._pack_io: tuple[IOPool, DiskFile, ThreadPoolExecutor] | None = None
        self._io_mode, self._queue_depth = io, queue_depth

    def expect_epochs(self, epochs: int | None) -> None:
        """The number of epochs still to begin (``None``: unknown): no packed file is written
        ahead for an epoch after the last."""
        self._epochs_left = None if epochs is None else int(epochs)

    # ---------------------------------------------------------------- epochs
    def begin_epoch(self, source: Any) -> dict[str, Any] | None:
        """Before an epoch of ``source`` (a GraphSAINT sampler or loader): with the packed layout,
        open the epoch's packed file, or write it when it is missing or stale; then, with
        ``pack_ahead``, draw the next epoch's plan and start writing its file in the background.
        The heap's free pages go back to the system first: no batch is alive between epochs,
        and the packing pass's buffer must not come on top of the last epoch's freed batch
        memory."""
        trim_heap()
        if self.layout != "packed":
            return None
        sampler = getattr(source, "sampler", source)
        if not hasattr(sampler, "sample_at"):
            raise ConfigError("the packed layout plans each epoch from a sampler that is deterministic per batch "
                              f"index (GraphSAINT); {type(source).__name__} is not one: use layout='rows'")
        epoch = stream_epoch(sampler)
        ahead, self._ahead = self._ahead, None
        rec: dict[str, Any] | None = None
        packed = None
        skipped = None
        if ahead is not None:
            if ahead.skipped is not None:
                skipped = ahead.skipped
            elif ahead.epoch == epoch and ahead.sampler_key == _sampler_key(sampler):
                packed, rec = ahead.result()  # waits for the pass; its error (a full disk) is raised here
            else:  # the stream moved elsewhere, or the sampler changed: that plan is not this epoch's
                ahead.cancel()
        if packed is None:
            t0 = time.perf_counter()
            epoch, batches = epoch_plan(sampler, epoch)
            sig, path = self._signature(sampler, epoch, batches)
            rec = {"epoch": epoch, "path": str(path), "plan_s": time.perf_counter() - t0, "batches": len(batches),
                   "ahead": False}
            if skipped is not None:
                rec["ahead_skipped"] = skipped
        with self._lock:
            self.disk.detach()
            if packed is None:
                packed = open_packed(path, sig)
                if packed is None:
                    rec["stale"] = path.exists()
                    buf = self.split.batch_buffers  # unused between epochs: the pack buffer
                    self.budget.release("batch_buffers", buf)
                    self.budget.charge("pack_buffer", buf)
                    try:
                        packed, st = pack_epoch(self.feature_file, self.disk.source, self._pack_resources()[0],
                                                batches, self._hot(), path, sig, buf, self.disk.staging)
                    finally:
                        self.budget.release("pack_buffer", buf)
                        self.budget.charge("batch_buffers", buf)
                    rec.update(_built_record(st))
                else:
                    rec.update(_reused_record(packed, path), stale=False)
            self.disk.attach(packed)
        assert rec is not None
        if self._epochs_left is not None:
            self._epochs_left -= 1
        if self.split.pack_ahead and (self._epochs_left is None or self._epochs_left > 0):
            t0 = time.perf_counter()
            nxt, batches = epoch_plan(sampler, epoch + 1)
            rec["next_plan_s"] = time.perf_counter() - t0  # drawn now: the background pass cannot sample
            self._ahead = self._start_ahead(sampler, nxt, batches, rec["next_plan_s"])
        self.pack_log.append(rec)
        return rec

    def _hot(self) -> np.ndarray:
        return self.slot_of >= 0

    def _signature(self, sampler: Any, epoch: int, batches: list[np.ndarray]) -> tuple[dict[str, Any], Path]:
        """The packed file's signature for this plan, and its path."""
        big = max((b.size for b in batches), default=0)
        if big > self.max_batch_rows:
            raise ConfigError(f"a batch of epoch {epoch} has {big} rows, more than the {self.max_batch_rows} the "
                              "memory budget was split for; pass a larger max_batch_rows")
        sig = {"source": self.feature_file.identity(), "plan": plan_hash(batches, np.flatnonzero(self._hot())),
               "epoch": epoch, "seed": getattr(sampler, "seed", None),
               "sampler": _jsonable(sampler.signature()) if hasattr(sampler, "signature") else None}
        return sig, packed_path(self.cache_dir, self.feature_file, epoch)

    def _pack_resources(self) -> tuple[IOPool, DiskFile, ThreadPoolExecutor]:
        """The packing passes' I/O threads (their own counters: the disk tier's count the
        epochs' traffic, packing is reported apart), the feature file opened for them, and the
        thread a pass runs in ahead of its epoch."""
        if self._pack_io is None:
            # the pass ahead runs at the lowest priority: on a machine whose every core runs the
            # model's threads it takes only the time they leave (an OpenMP region waits for its
            # slowest thread, so a preempted model thread costs both cores)
            self._pack_io = (IOPool(self._queue_depth, "gnnsys-pack-io"), DiskFile(self.feature_file.path,
                             self._io_mode), ThreadPoolExecutor(1, thread_name_prefix="gnnsys-pack",
                                                                initializer=lower_priority, initargs=(PACK_NICE,)))
        return self._pack_io

    def _start_ahead(self, sampler: Any, epoch: int, batches: list[np.ndarray], plan_s: float) -> _PackAhead:
        """Write epoch ``epoch``'s packed file in a background thread (its own I/O threads,
        buffers and staging, within ``split.pack_ahead``)."""
        sig, path = self._signature(sampler, epoch, batches)
        ahead = _PackAhead(epoch, _sampler_key(sampler), sig, path, plan_s, len(batches))
        hot = self._hot()
        need = pack_index_bytes(sum(b.size for b in batches), sum(int(np.count_nonzero(~hot[b])) for b in batches),
                                self.num_nodes, int(np.count_nonzero(hot)))
        if need > self._ahead_index:  # the pass would not fit its share of the budget: pack before the epoch
            ahead.skip(f"its index arrays need {need} bytes, {self._ahead_index} are set aside")
            return ahead
        packed = open_packed(path, sig)
        if packed is not None:  # written by an earlier run with the same plan
            ahead.reused(packed)
            return ahead
        pool, src, worker = self._pack_resources()
        staging_bytes = self.split.staging
        buffer_bytes = self.split.pack_ahead - staging_bytes - self._ahead_index

        def run() -> tuple[Any, dict[str, Any]]:
            staging = aligned_empty(staging_bytes)
            return pack_epoch(self.feature_file, src, pool, batches, hot, path, sig, buffer_bytes, staging,
                              cancel=ahead.cancelled)

        ahead.future = worker.submit(run)
        return ahead

    def all(self, device: Any = None) -> torch.Tensor:
        """The whole matrix (``--eval full``), read from the file when it fits the memory budget;
        ``ConfigError`` otherwise (evaluate layer-wise)."""
        from gnnsys.storage.budget import format_bytes

        need = self.feature_file.data_bytes
        if need > self.split.total:
            raise ConfigError(f"--eval full needs every feature row in memory ({format_bytes(need)}), more than the "
                              f"--memory-budget {format_bytes(self.split.total)}: evaluate layer-wise (--eval "
                              "layerwise, the default with --features disk)")
        with self._lock:
            self.disk._reader.merge_gap = 256 << 10
            try:
                x = self.disk.read(torch.arange(self.num_nodes))
            finally:
                self.disk._reader.merge_gap = 0
            self._all_rows += self.num_nodes
        return x if device is None else x.to(device)

    def end_epoch(self) -> None:
        """After an epoch: reads go back to the row layout (evaluation's reads are not the plan's)."""
        if self.layout == "packed":
            self.disk.detach()

    # ---------------------------------------------------------------- stats
    def stats(self) -> dict[str, dict[str, Any]]:
        """``TieredFeatureStore.stats()`` plus the disk tier's I/O (``disk``: read bytes,
        amplification, throughput, layout) and the budget (``budget``: its split and peak)."""
        st = super().stats()
        st["disk"].update(self.disk.io_stats())
        st["budget"] = {**self.split.as_dict(), **self.budget.snapshot(), **allocator_state()}
        if self.pack_log:
            st["disk"]["packing"] = self.pack_log[-1]
        return st

    def reset_stats(self) -> None:
        super().reset_stats()
        if hasattr(self, "disk"):
            self.disk.reset_counters()

    def close(self) -> None:
        """Stop a packing pass running ahead (its temporary file removed), the I/O threads,
        close the files."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.cancel()
        if self._pack_io is not None:
            pool, src, worker = self._pack_io
            worker.shutdown(wait=True)
            pool.close()
            src.close()
            self._pack_io = None
        self.disk.close()


def _built_record(st: dict[str, Any]) -> dict[str, Any]:
    """A pack-log entry's fields for a file a pass wrote (``st``: ``pack_epoch``'s statistics)."""
    return {"built": True, "pack_s": st["seconds"], "pack_read_bytes": st["read_bytes"],
            "file_bytes": st["file_bytes"], "packed_rows": st["rows"]}


def _reused_record(packed: Any, path: Path) -> dict[str, Any]:
    """A pack-log entry's fields for a valid file found on disk."""
    return {"built": False, "file_bytes": path.stat().st_size, "packed_rows": int(packed.counts.sum())}


def _sampler_key(sampler: Any) -> Any:
    """What a sampler's plan depends on besides its stream position (a plan drawn ahead is
    used only while this stays the same)."""
    sig = sampler.signature() if hasattr(sampler, "signature") else None
    return (id(sampler), len(sampler), getattr(sampler, "seed", None), repr(_jsonable(sig)))


class _PackAhead:
    """The next epoch's packed file, being written in the background."""

    def __init__(self, epoch: int, sampler_key: Any, sig: dict[str, Any], path: Path, plan_s: float,
                 batches: int) -> None:
        self.epoch, self.sampler_key, self.sig, self.path = epoch, sampler_key, sig, path
        self.rec: dict[str, Any] = {"epoch": epoch, "path": str(path), "plan_s": plan_s, "batches": batches,
                                    "ahead": True, "stale": False}
        self.cancelled = threading.Event()
        self.future: Future | None = None
        self._packed: Any = None
        self.skipped: str | None = None

    def skip(self, reason: str) -> None:
        """Not written ahead (the epoch packs before it starts)."""
        self.skipped = reason

    def reused(self, packed: Any) -> None:
        """A valid file of this plan was there already."""
        self._packed = packed
        self.rec.update(_reused_record(packed, self.path))

    def result(self) -> tuple[Any, dict[str, Any]]:
        """The open packed file and its record, once written (``wait_s``: how long the epoch
        start waited for it)."""
        if self.future is not None:
            t0 = time.perf_counter()
            packed, st = self.future.result()
            self.future = None
            self.rec.update(_built_record(st), wait_s=time.perf_counter() - t0)
            self._packed = packed
        return self._packed, self.rec

    def cancel(self) -> None:
        """Stop the pass and close its file (a pass that finished leaves a valid file)."""
        self.cancelled.set()
        if self.future is not None:
            try:
                packed, _ = self.future.result()
            except Exception:  # noqa: BLE001 - PackCancelled, or an unused pass's failure (a full disk)
                packed = None
            self.future = None
            if packed is not None:
                packed.close()
        elif self._packed is not None:
            self._packed.close()


def _jsonable(x: Any) -> Any:
    """``x`` with tensors and numpy scalars as plain numbers (a packed header is JSON)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x
