"""The feature memory budget of an out-of-core store (``--memory-budget``): what the cache tier,
the host buffers and the reads in flight may hold together, checked before training and tracked
while it runs.

The budget is split up front (``plan_budget``): the I/O staging buffer (where every read in
flight lands: reads never hold more than it), the batch buffers (the rows of the batches the
loading pipeline holds at once: the one being gathered, the ones queued by prefetching and the
one the model computes on), the batches' working memory (``batch_work_bytes``: the miss rows
of the batch being gathered, the batches' edges and operators, the model's activations and
their gradients), and the cache tier, which gets what is left. ``MemoryBudget`` records what
is allocated and in flight and its peak, so a run can show that the split held.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from typing import Any

from gnnsys.errors import ConfigError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}

#: Staging buffer of the disk tier's reads when none is named (every read in flight lands here).
DEFAULT_STAGING = 64 << 20


def parse_bytes(value: Any) -> int:
    """Bytes of ``value``: an int, or a string such as ``"2GB"``, ``"512MiB"``, ``"1.5g"``
    (decimal units: GB = 1e9; binary: GiB = 2**30)."""
    if isinstance(value, bool):
        raise ConfigError(f"memory budget {value!r} is not a size; write e.g. 2GB or 512MiB")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ConfigError(f"memory budget must be > 0 bytes, got {value}")
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    if m is None or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"memory budget {value!r} is not a size; write e.g. 2GB, 1500MB or 512MiB")
    n = round(float(m.group(1)) * _UNITS[m.group(2).lower()])  # "8.11MB" is 8,110,000 bytes, not 8,109,999
    if n <= 0:
        raise ConfigError(f"memory budget must be > 0 bytes, got {value!r}")
    return n


def format_bytes(n: float) -> str:
    """``n`` bytes for a message (``"1.23 GB"``)."""
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= f:
            return f"{n / f:.2f} {unit}"
    return f"{int(n)} B"


#: Tensors of ``rows x width`` one layer keeps per training step: its transform's and its
#: aggregation's outputs and the nonlinearity's (saved for backward), and as many gradients.
ACTIVATION_COPIES = 6
#: Bytes per edge of a batch as the loading pipeline holds it: ``edge_index`` (2 x int64),
#: ``edge_ids`` (int64), ``edge_weight`` (float32), the operator's CSR columns (int64) and values
#: (float32) (measured: 4.7 MB for a 8.4k-node random-walk batch of the benchmark's graph).
EDGE_BYTES = 44


def batch_work_bytes(max_batch_rows: int, row_bytes: int, widths: Any = (), *, avg_degree: float = 0.0,
                     max_edges: int | None = None, batches_held: int = 4, dtype_bytes: int = 4,
                     sampler_group: int = 1) -> int:
    """Memory a training step needs besides the batches' feature rows: the miss rows of the batch
    being gathered (read before they are placed among its cached rows), the edges and operators
    of the batches alive at once (at most ``avg_degree`` edges per row: a sampled subgraph's
    nodes have at most their full degree on average; never more than the graph's ``max_edges``),
    and ``ACTIVATION_COPIES`` tensors of
    ``rows x width`` per layer output width in ``widths`` (the model's hidden and output sizes).

    The batches alive are the ``batches_held`` ones, or, when the sampler induces
    ``sampler_group`` subgraphs in one call (GraphSAINT's ``group_size``), the whole fresh group
    besides the ``batches_held - 1`` earlier batches still held (prefetched, computing, dropped)."""
    if max_batch_rows < 0 or row_bytes <= 0 or avg_degree < 0 or batches_held < 1 or sampler_group < 1:
        raise ConfigError(f"batch_work_bytes: bad sizes (rows {max_batch_rows}, row bytes {row_bytes}, average "
                          f"degree {avg_degree}, batches held {batches_held}, sampler group {sampler_group})")
    miss = max_batch_rows * row_bytes
    per_batch = max_batch_rows * avg_degree if max_edges is None else min(max_batch_rows * avg_degree, max_edges)
    alive = max(batches_held, sampler_group + batches_held - 1)
    edges = alive * int(per_batch * EDGE_BYTES)
    acts = ACTIVATION_COPIES * max_batch_rows * int(sum(int(w) for w in widths)) * dtype_bytes
    return int(miss + edges + acts)


@dataclass(frozen=True)
class BudgetSplit:
    """How a budget is divided: bytes of the staging buffer, of the batch buffers, of the
    batches' working memory, and rows of the cache tier (the rest)."""

    total: int
    staging: int
    batch_buffers: int
    cache_rows: int
    row_bytes: int
    work: int = 0
    pack_ahead: int = 0  # buffers of the next epoch's packing pass, run during this epoch (0: none)

    @property
    def cache_bytes(self) -> int:
        return self.cache_rows * self.row_bytes

    @property
    def minimum(self) -> int:
        """The smallest budget this run works with (no cache tier)."""
        return self.staging + self.batch_buffers + self.work

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "staging": self.staging, "batch_buffers": self.batch_buffers,
                "work": self.work, "pack_ahead": self.pack_ahead, "cache_rows": self.cache_rows,
                "cache_bytes": self.cache_bytes, "minimum": self.minimum}

    def with_pack_ahead(self, nbytes: int) -> BudgetSplit:
        """This split with ``nbytes`` set aside for packing the next epoch during the current one:
        from what the cache tier leaves unused, then from the cache tier. Unchanged (no pack
        buffers) when even an empty cache tier would not leave ``nbytes``."""
        nbytes = int(nbytes)
        if nbytes <= 0 or self.total - self.minimum < nbytes:
            return self
        free = self.total - self.minimum - self.cache_bytes
        take = max(0, -(-(nbytes - free) // self.row_bytes))
        return replace(self, cache_rows=self.cache_rows - take, pack_ahead=nbytes)


def plan_budget(budget: Any, *, row_bytes: int, num_rows: int, max_batch_rows: int, batches_held: int = 3,
                staging: int | None = None, max_cache_rows: int | None = None, work_bytes: int = 0) -> BudgetSplit:
    """Split ``budget`` (bytes or a size string) between staging (``staging`` bytes, default
    ``DEFAULT_STAGING`` or less when one batch's rows need less), ``batches_held`` batch buffers
    of ``max_batch_rows`` rows, the batches' working memory (``work_bytes``, see
    ``batch_work_bytes``) and the cache tier (at most ``max_cache_rows``, default all rows).
    ``ConfigError`` with the smallest budget that works when the budget cannot hold one
    batch's buffers."""
    total = parse_bytes(budget)
    if max_batch_rows < 0 or row_bytes <= 0:
        raise ConfigError(f"plan_budget: bad sizes (rows per batch {max_batch_rows}, row bytes {row_bytes})")
    batch = batches_held * max_batch_rows * row_bytes
    if staging is None:  # a batch's rows in one or two rounds of reads, at most the default, at least 256 KiB
        staging = min(DEFAULT_STAGING, max(256 << 10, max_batch_rows * row_bytes))
    staging = -(-int(staging) // 4096) * 4096  # whole pages (O_DIRECT)
    if work_bytes < 0:
        raise ConfigError(f"plan_budget: working memory must be >= 0 bytes, got {work_bytes}")
    need = staging + batch + int(work_bytes)
    if total < need:
        raise ConfigError(
            f"memory budget {format_bytes(total)} is smaller than what one batch needs: {batches_held} batch "
            f"buffers of up to {max_batch_rows} rows x {row_bytes} bytes ({format_bytes(batch)}), the "
            f"{format_bytes(staging)} read staging buffer and {format_bytes(work_bytes)} of working memory; the "
            f"smallest budget that works is {need} bytes (--memory-budget {(need + 999_999) // 1_000_000}MB), "
            "with no cache tier")
    rows = (total - need) // row_bytes
    cap = num_rows if max_cache_rows is None else min(num_rows, max_cache_rows)
    return BudgetSplit(total, staging, batch, int(min(rows, cap)), row_bytes, int(work_bytes))


class MemoryBudget:
    """Bytes charged against a budget, by kind (``cache``, ``staging``, ``batch``, ``in_flight``),
    and the peak of their sum. ``charge``/``release`` are thread-safe; exceeding the budget
    raises (it is a bug in the split, not a user error, and must not pass silently)."""

    def __init__(self, total: int) -> None:
        self.total = int(total)
        self._lock = threading.Lock()
        self.used: dict[str, int] = {}
        self.peak = 0
        self.peak_by_kind: dict[str, int] = {}

    def charge(self, kind: str, nbytes: int) -> None:
        with self._lock:
            self.used[kind] = self.used.get(kind, 0) + int(nbytes)
            now = sum(self.used.values())
            if now > self.total:
                self.used[kind] -= int(nbytes)
                raise RuntimeError(f"feature memory budget exceeded: {kind} +{nbytes} bytes -> {now} > {self.total}")
            if now > self.peak:
                self.peak = now
                self.peak_by_kind = dict(self.used)

    def release(self, kind: str, nbytes: int) -> None:
        with self._lock:
            self.used[kind] = self.used.get(kind, 0) - int(nbytes)

    def snapshot(self) -> dict[str, Any]:
        """``{"total", "used", "peak", "peak_by_kind", <kind>: bytes}``."""
        with self._lock:
            return {"total": self.total, "used": sum(self.used.values()), "peak": self.peak,
                    "peak_by_kind": dict(self.peak_by_kind), **self.used}
