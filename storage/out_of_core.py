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
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gnnsys.storage.allocator import allocator_state, limit_arenas, trim_heap
from gnnsys.storage.budget import MemoryBudget, batch_work_bytes, plan_budget
from gnnsys.storage.disk_tier import DEFAULT_QUEUE_DEPTH, LAYOUTS, DirectDiskTier
from gnnsys.storage.feature_file import FeatureFile
from gnnsys.storage.packed import default_cache_dir, open_packed, pack_epoch, packed_path, plan_hash
from gnnsys.storage.tiered import TieredFeatureStore

from gnnsys.errors import ConfigError

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


def epoch_plan(sampler: Any, epoch: int | None = None) -> tuple[int, list[np.ndarray]]:
    """``(epoch, node ids of every batch)`` of the sampler's epoch ``epoch`` (default: the one its
    stream points at), sampled by index (the sampler's stream does not move)."""
    n = len(sampler)
    if epoch is None:
        epoch = sampler._pos // n
    start = epoch * n
    ks = list(range(start, start + n))
    g = max(1, int(getattr(sampler, "group_size", 8)))
    out: list[np.ndarray] = []
    for i in range(0, n, g):
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
    """

    def __init__(self, path: str | os.PathLike, memory_budget: Any, *, graph: Any, layout: str = "packed",
                 policy: str = "static-saint", sampler: Any = None, max_batch_rows: int | None = None,
                 batches_held: int = 4, cache_dir: str | os.PathLike | None = None, io: str = "auto",
                 queue_depth: int = DEFAULT_QUEUE_DEPTH, staging_bytes: int | None = None, dtype: Any = None,
                 counts: Any = None, train_nodes: Any = None, max_cache_rows: int | None = None,
                 model_widths: Any = ()) -> None:
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

    # ---------------------------------------------------------------- epochs
    def begin_epoch(self, source: Any) -> dict[str, Any] | None:
        """Before an epoch of ``source`` (a GraphSAINT sampler or loader): with the packed layout,
        open the epoch's packed file, or write it when it is missing or stale. The heap's free
        pages go back to the system first: no batch is alive between epochs, and the packing
        pass's buffer must not come on top of the last epoch's freed batch memory."""
        trim_heap()
        if self.layout != "packed":
            return None
        sampler = getattr(source, "sampler", source)
        if not hasattr(sampler, "sample_at"):
            raise ConfigError("the packed layout plans each epoch from a sampler that is deterministic per batch "
                              f"index (GraphSAINT); {type(source).__name__} is not one: use layout='rows'")
        t0 = time.perf_counter()
        epoch, batches = epoch_plan(sampler)
        plan_s = time.perf_counter() - t0
        big = max((b.size for b in batches), default=0)
        if big > self.max_batch_rows:
            raise ConfigError(f"a batch of epoch {epoch} has {big} rows, more than the {self.max_batch_rows} the "
                              "memory budget was split for; pass a larger max_batch_rows")
        hot = self.slot_of >= 0
        sig = {"source": self.feature_file.identity(), "plan": plan_hash(batches, np.flatnonzero(hot)),
               "epoch": epoch, "seed": getattr(sampler, "seed", None),
               "sampler": _jsonable(sampler.signature()) if hasattr(sampler, "signature") else None}
        path = packed_path(self.cache_dir, self.feature_file, epoch)
        with self._lock:
            self.disk.detach()
            packed = open_packed(path, sig)
            rec: dict[str, Any] = {"epoch": epoch, "path": str(path), "plan_s": plan_s, "batches": len(batches)}
            if packed is None:
                rec["stale"] = path.exists()
                buf = self.split.batch_buffers  # unused between epochs: the pack buffer
                self.budget.release("batch_buffers", buf)
                self.budget.charge("pack_buffer", buf)
                c = self.disk.pool.counters
                before = (c.bytes, c.requests, c.busy_s)
                try:
                    packed, st = pack_epoch(self.feature_file, self.disk.source, self.disk.pool, batches, hot, path,
                                            sig, buf, self.disk.staging)
                finally:
                    self.budget.release("pack_buffer", buf)
                    self.budget.charge("batch_buffers", buf)
                rec.update(built=True, pack_s=st["seconds"], pack_read_bytes=st["read_bytes"],
                           file_bytes=st["file_bytes"], packed_rows=st["rows"])
                with c._lock:  # the pool's counters are the epoch's traffic: packing is reported apart
                    c.bytes, c.requests, c.busy_s = before
            else:
                rec.update(built=False, stale=False, file_bytes=path.stat().st_size,
                           packed_rows=int(packed.counts.sum()))
            self.disk.attach(packed)
        self.pack_log.append(rec)
        return rec

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
        """Stop the I/O threads, close the files."""
        self.disk.close()


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
