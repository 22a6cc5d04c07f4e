"""``TieredFeatureStore``: hot rows in a cache tier, every row in a host or disk tier.

Layout:

- *cache tier*: ``cache_rows`` (``capacity x dim``, on the cache device) and the slot map
  (``slot_of[node]``: the row's slot, -1 when not cached; int32). The host keeps the slot map
  the policy reads and changes (``slot_of``, with ``node_of_slot``); on CUDA the store mirrors
  it on the device (``slot_of_device``), where the zero-copy kernel looks rows up.
- *host tier*: the full matrix in memory, pinned when CUDA is available (``tiers.HostTier``),
  or *disk tier*: a ``DiskFeatureStore`` (``tiers.DiskTier``). One backing tier per store.

A gather dedupes the batch (first-occurrence order), looks the distinct ids up, copies hits from
the cache tier and misses from the backing tier into the output, then lets the policy admit
rows of this batch into the cache (copied from the output: no second read). Hits, requests and
rows are counted per distinct id of a batch. ``gather`` and ``plan`` hold a lock: one thread at
a time (the pipeline's prefetch thread). Bookkeeping times are CPU seconds of the calling
thread (``time.thread_time``): the policy's own work, whatever else runs on the machine.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gnnsys.storage import kernels
from gnnsys.storage.feature_store import DiskFeatureStore, FeatureStore
from gnnsys.storage.policies import CACHE_POLICIES, ORACLE_POLICIES, CachePolicy, make_policy
from gnnsys.storage.scores import check_graph_rows
from gnnsys.storage.tiers import BackingTier, backing_tier, bit_view, check_base
from gnnsys.storage.uva import triton_available, zero_copy_gather

from gnnsys.errors import ConfigError, GraphError


def resolve_capacity(capacity: Any, num_rows: int) -> int:
    """Rows of the cache tier: an int (rows) in ``[0, num_rows]`` or a float fraction in ``[0, 1]``."""
    if isinstance(capacity, bool) or not isinstance(capacity, (int, float, np.integer, np.floating)):
        raise ConfigError(f"cache capacity must be a number of rows (int) or a fraction of rows (float in [0, 1]), "
                          f"got {capacity!r}")
    if isinstance(capacity, (float, np.floating)):
        if not 0.0 <= float(capacity) <= 1.0:
            raise ConfigError(f"cache capacity fraction {capacity} is outside [0, 1]; pass a fraction of the "
                              f"{num_rows} rows (e.g. 0.1) or a row count as an int")
        return int(float(capacity) * num_rows)
    c = int(capacity)
    if c < 0:
        raise ConfigError(f"cache capacity {c} is negative; pass 0 (no cache) up to {num_rows} rows")
    if c > num_rows:
        raise ConfigError(f"cache capacity {c} rows exceeds the {num_rows} rows of the feature matrix; pass at "
                          f"most {num_rows} (or a fraction <= 1.0)")
    return c


def resolve_cache_device(device: Any) -> torch.device:
    """``cpu`` or an available ``cuda[:i]``; ``ConfigError`` naming the fix otherwise."""
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"cache device {device!r} is not a device name ({e}); use 'cpu' or 'cuda[:i]'") from None
    if d.type == "cpu":
        return d
    if d.type != "cuda":
        raise ConfigError(f"cache device {device!r} is not supported; use 'cpu' or 'cuda[:i]'")
    if not torch.cuda.is_available():
        raise ConfigError(f"cache device {device!r} is not available: this torch sees no CUDA device "
                          f"(torch {torch.__version__}); use cache_device='cpu'")
    if d.index is not None and d.index >= torch.cuda.device_count():
        raise ConfigError(f"cache device {device!r} is not available: there are {torch.cuda.device_count()} CUDA "
                          f"device(s); use cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return d if d.index is not None else torch.device("cuda", torch.cuda.current_device())


class TieredFeatureStore(FeatureStore):
    """Feature rows behind a cache tier and a host or disk tier (see the module docstring).

    Args:
        base: the full matrix: a tensor or ``InMemoryFeatureStore`` (host tier) or a
            ``DiskFeatureStore`` (disk tier).
        capacity: cache rows (int) or a fraction of the rows (float in ``[0, 1]``).
        policy: a name from ``CACHE_POLICIES`` / ``ORACLE_POLICIES`` or a ``CachePolicy``.
        cache_device: ``"cpu"`` or ``"cuda[:i]"``.
        zero_copy: on CUDA, gather with the zero-copy kernel (``storage.uva``: the GPU reads the
            pinned host rows itself). Opt-in: it has not run on a GPU yet (no device was lent
            while it was written); the default gathers misses with CPU ``index_select`` into
            pinned memory + an async copy.
        **policy_inputs: what the policy is built from: ``graph``, ``train_nodes``, ``counts``
            (GraphSAINT's ``C_v``), ``trace``, ``window``, ``static_fraction``, ...
    """

    tier = "tiered"

    def __init__(self, base: Any, capacity: Any, policy: str | CachePolicy = "s3fifo", cache_device: Any = "cpu",
                 *, zero_copy: bool = False, **policy_inputs: Any) -> None:
        super().__init__()
        # --- check everything before anything is copied, pinned or bound
        device = resolve_cache_device(cache_device)
        if isinstance(policy, CachePolicy):
            if policy.bound:
                raise ConfigError(f"this {type(policy).__name__} already serves a store; make a new policy "
                                  "object for each store")
            if policy_inputs:
                raise ConfigError(f"policy inputs {sorted(policy_inputs)} are for a policy given by name; a policy "
                                  "object is already built from its own")
        elif not isinstance(policy, str) or policy not in CACHE_POLICIES + ORACLE_POLICIES:
            raise ConfigError(f"unknown cache policy {policy!r}; choose one of "
                              f"{', '.join(CACHE_POLICIES + ORACLE_POLICIES)}")
        if zero_copy and (device.type != "cuda" or not triton_available()):
            raise ConfigError("zero_copy=True needs a CUDA cache device and Triton (shipped with CUDA builds of "
                              "torch); leave zero_copy=False for the CPU gather + copy path")
        if zero_copy and isinstance(base, DiskFeatureStore):
            raise ConfigError("zero_copy=True reads pinned host rows from the GPU; a disk tier has none: load the "
                              "features into memory or leave zero_copy=False")
        num_rows = check_base(base)
        if policy_inputs.get("graph") is not None:
            check_graph_rows(policy_inputs["graph"], num_rows)
        cap = resolve_capacity(capacity, num_rows)
        if isinstance(policy, str):
            policy = make_policy(policy, num_rows, **policy_inputs)
        backing = backing_tier(base, pin=torch.cuda.is_available())
        # --- build
        self.backing: BackingTier = backing
        self.policy = policy
        self.capacity = cap
        self.cache_device = device
        self.zero_copy = bool(zero_copy)
        n, dim = backing.num_nodes, backing.dim
        self._row_bytes = backing.row_bytes
        self.cache_rows = torch.empty((max(cap, 1), dim), dtype=backing.dtype, device=device)
        self.slot_of = np.full(n, -1, np.int32)
        self.node_of_slot = np.full(max(cap, 1), -1, np.int64)
        self.slot_of_device = (torch.full((n,), -1, dtype=torch.int32, device=device)
                               if device.type == "cuda" else None)
        self._mark = np.zeros(n, np.int64)
        self._batch = 0
        self._lock = threading.Lock()
        self._planned_raw: deque[Any] = deque()  # the tensors plan() was given for the known batches
        self._cache_bits = bit_view(self.cache_rows) if device.type == "cpu" else None
        self._host_bits = bit_view(backing.rows) if backing.rows is not None else None
        self.reset_stats()
        self._preload_rows = 0
        self._load(policy.bind(n, cap), None)
        # a policy that can update the host maps in its own pass does (the CUDA mirror needs each
        # admission's old row, which only the separate update collects)
        self._maps = (self.slot_of, self.node_of_slot) if policy.updates_maps and device.type == "cpu" else None

    # ------------------------------------------------------------------ FeatureStore basics
    @property
    def num_nodes(self) -> int:
        return self.backing.num_nodes

    @property
    def dim(self) -> int:
        return self.backing.dim

    @property
    def dtype(self) -> torch.dtype:
        return self.backing.dtype

    @property
    def lookahead(self) -> int:
        """Batches of future node ids the policy wants to see through ``plan`` (0: none)."""
        return int(self.policy.lookahead)

    @property
    def resident_rows(self) -> int:
        """Rows the cache tier holds now."""
        return int((self.node_of_slot[:self.capacity] >= 0).sum())

    def cached_ids(self) -> np.ndarray:
        """Node ids the cache tier holds, by slot (-1: a free slot)."""
        return self.node_of_slot[:self.capacity].copy()

    def all(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The whole matrix from the backing tier (not through the cache or its policy)."""
        with self._lock:
            x = self.backing.all()
            self._all_rows += self.num_nodes
        return x if device is None else x.to(device)

    # ------------------------------------------------------------------------- checks
    def _check_ids(self, ids: Any) -> torch.Tensor:
        ids = torch.as_tensor(ids)
        if ids.dim() != 1:
            raise GraphError(f"TieredFeatureStore.gather: ids must be a 1-D tensor of node ids, got shape "
                             f"{tuple(ids.shape)}; flatten them (ids.flatten()) and reshape the rows after")
        return super()._check_ids(ids)

    # ------------------------------------------------------------------------- gather
    def gather(self, ids: Any, device: torch.device | str | None = None) -> torch.Tensor:
        """Rows ``ids`` (any integer ids in range: duplicates, any order, empty), bit-identical to
        the backing matrix, on ``device`` (default: the cache device)."""
        ids = self._check_ids(ids)
        ids_np = ids.cpu().numpy()
        with self._lock:
            self._batch += 1
            uniq, inverse, dup = kernels.dedupe_first_occurrence(ids_np, self._mark, self._batch)
            slots = self.slot_of[uniq].astype(np.int64)
            rows, hits = self._assemble(uniq, slots)
            if self.capacity > 0:
                t0 = time.thread_time()
                if self.policy.expects(uniq):
                    if self._planned_raw:
                        self._planned_raw.popleft()
                    pos, sl = self.policy.step(uniq, slots, self._maps)
                    t1 = time.thread_time()
                    self._policy_s += t1 - t0
                    self._admit(uniq, pos, sl, rows)
                else:
                    self._unplanned += 1
                    self._policy_s += time.thread_time() - t0
            m = uniq.size
            self._requests += m
            self._hits += hits
            self._miss_rows += m - hits
            self._served += ids_np.size
            self._batches += 1
        out = rows.index_select(0, torch.from_numpy(inverse).to(rows.device)) if dup else rows
        self._rows += ids_np.size
        self._bytes += ids_np.size * self._row_bytes
        return out if device is None else out.to(device, non_blocking=True)

    def _assemble(self, uniq: np.ndarray, slots: np.ndarray) -> tuple[torch.Tensor, int]:
        """Rows of the distinct ids ``uniq`` on the cache device, and how many came from the cache."""
        n, dim = uniq.size, self.dim
        if self.cache_device.type == "cpu":
            out = torch.empty((n, dim), dtype=self.dtype)
            ob = bit_view(out)
            if self._host_bits is not None:
                hits = kernels.gather_two_tiers(ob, self._cache_bits, self._host_bits, uniq, slots)
                return out, int(hits)
            hit = np.flatnonzero(slots >= 0)
            miss = np.flatnonzero(slots < 0)
            kernels.copy_rows(ob, self._cache_bits, slots[hit], hit)
            if miss.size:
                kernels.copy_rows(ob, bit_view(self.backing.read(torch.from_numpy(uniq[miss])).contiguous()),
                                  np.arange(miss.size), miss)
            return out, int(hit.size)
        dev = self.cache_device
        ids_dev = torch.from_numpy(uniq).to(dev, non_blocking=True)
        hits = int((slots >= 0).sum())
        if self.zero_copy:
            return zero_copy_gather(self.cache_rows, self.backing.rows, ids_dev, self.slot_of_device), hits
        out = torch.empty((n, dim), dtype=self.dtype, device=dev)
        hit = np.flatnonzero(slots >= 0)
        miss = np.flatnonzero(slots < 0)
        if hit.size:
            hit_dev = torch.from_numpy(hit).to(dev, non_blocking=True)
            out[hit_dev] = self.cache_rows[self.slot_of_device[ids_dev[hit_dev]].long()]
        if miss.size:
            idx = torch.from_numpy(uniq[miss])
            if self.backing.rows is not None:  # gather straight into pinned memory, then one async copy
                rows = torch.empty((miss.size, dim), dtype=self.dtype, pin_memory=True)
                torch.index_select(self.backing.rows, 0, idx, out=rows)
            else:
                rows = self.backing.read(idx).pin_memory()
            out[torch.from_numpy(miss).to(dev, non_blocking=True)] = rows.to(dev, non_blocking=True)
        return out, hits

    def _admit(self, uniq: np.ndarray, pos: np.ndarray, slots: np.ndarray, rows: torch.Tensor) -> None:
        """Put batch rows ``pos`` (already gathered in ``rows``) into cache ``slots`` (and into the
        slot maps, unless the policy's step did that itself)."""
        if pos.size == 0:
            return
        t0 = time.thread_time()
        if self._maps is None:
            self._set_slots(uniq[pos], slots)
        t1 = time.thread_time()
        if self.cache_device.type == "cpu":
            kernels.copy_rows(self._cache_bits, bit_view(rows), pos, slots)
        else:
            dev = self.cache_device
            self.cache_rows[torch.from_numpy(slots).to(dev)] = rows[torch.from_numpy(pos).to(dev)]
        self._maps_s += t1 - t0
        self._admit_copy_s += time.thread_time() - t1
        self._admitted += pos.size

    def _set_slots(self, ids: np.ndarray, slots: np.ndarray) -> None:
        """Maps: ``ids`` now live in ``slots``; whatever those slots held is out."""
        old = self.node_of_slot[slots] if self.slot_of_device is not None else None
        kernels.apply_admissions(self.slot_of, self.node_of_slot, ids, slots)
        if self.slot_of_device is not None:  # the device mirror takes the host map's new entries
            touched = np.concatenate([old[old >= 0], ids])
            self.slot_of_device[torch.from_numpy(touched).to(self.cache_device)] = torch.from_numpy(
                self.slot_of[touched]).to(self.cache_device)

    def _load(self, ids: np.ndarray, slots: np.ndarray | None) -> None:
        """Preload rows ``ids`` (read from the backing tier) into ``slots`` (default ``0..k-1``)."""
        if ids.size == 0:
            return
        slots = np.arange(ids.size, dtype=np.int64) if slots is None else np.asarray(slots, np.int64)
        self._set_slots(ids, slots)
        order = np.argsort(ids, kind="stable")  # in id order (a disk tier reads the file front to back) and
        ids, slots = ids[order], slots[order]  # in pieces: no second copy of the cache tier in memory
        step = max(1, (64 << 20) // max(self._row_bytes, 1))
        for a in range(0, ids.size, step):
            rows = self.backing.read(torch.from_numpy(np.ascontiguousarray(ids[a:a + step])))
            self.cache_rows[torch.from_numpy(slots[a:a + step]).to(self.cache_device)] = rows.to(self.cache_device)
        self._preload_rows += ids.size

    # --------------------------------------------------------------------------- plan
    def plan(self, upcoming: Sequence[Any]) -> None:
        """Node ids of the next batches, in order (``upcoming[0]``: the next gather's). Batches the
        policy already knows are skipped; a policy without look-ahead ignores the call.

        ``upcoming`` may also start a few batches later than the next gather (a pipeline whose
        prefetch thread has not gathered yet): the store finds where ``upcoming[0]`` sits among
        the batches it knows (the same tensor object, else the same ids) and takes only what
        follows them. A list that starts with none of them counts as ``plan_mismatches``."""
        if self.policy.lookahead == 0:
            return
        with self._lock:
            t0 = time.thread_time()
            upcoming = list(upcoming)
            known = self.policy.known_ahead()
            skip = known
            if known and upcoming:
                at = self._find_known(upcoming[0], known)
                if at is None:
                    self._plan_mismatches += 1
                else:
                    skip = known - at
            new, raw = [], []
            for b in upcoming[skip:skip + self.policy.lookahead - known]:
                new.append(self._distinct(b))
                raw.append(b)
            self._planned_raw.extend(raw)
            loads = self.policy.plan(new, self.slot_of) if new else None
            self._plan_s += time.thread_time() - t0
            if loads is not None:
                self._load(*loads)

    def _distinct(self, b: Any) -> np.ndarray:
        """Distinct ids of a batch seen ahead, first-occurrence order; checked as ``gather``
        checks them, the range in the same pass as the dedupe."""
        ids = torch.as_tensor(b)
        if ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            self._check_ids(ids)  # raises the error that names the problem
        ids = ids.long().cpu().numpy()
        self._batch += 1
        u, ok = kernels.distinct_in_range(ids, self._mark, self._batch)
        if not ok:
            self._check_ids(torch.from_numpy(ids))  # raises: ids out of range
        return u

    def _find_known(self, b: Any, known: int) -> int | None:
        """Index of batch ``b`` among the policy's known, unserved batches, or None."""
        for i, r in enumerate(self._planned_raw):
            if r is b:
                return i
        ids = self._check_ids(b).cpu().numpy()
        self._batch += 1
        u = kernels.dedupe_first_occurrence(ids, self._mark, self._batch)[0]
        for i in range(known):
            if np.array_equal(self.policy.known_batch(i), u):
                return i
        return None

    # --------------------------------------------------------------------------- stats
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per tier: ``cache`` (rows and bytes served from it, hits, requests, hit rate, capacity,
        resident rows and bytes, rows admitted, preloaded, batches, unplanned batches, and the
        policy's bookkeeping seconds: ``policy_s`` its decisions per gather, ``plan_s`` its work on
        ``plan()`` calls, ``maps_s`` the slot-map updates (in ``policy_s`` instead for a policy
        that updates the maps in its own pass, ``updates_maps``), ``bookkeeping_s`` their sum;
        ``admit_copy_s`` is the copying of admitted rows into the cache tier, data movement not
        counted as bookkeeping) and the backing tier ``host`` or ``disk`` (rows and bytes read for
        batches, rows preloaded from it, rows read by ``all()``). Requests count distinct ids per
        batch; ``served_rows`` counts every id asked for."""
        rb = self._row_bytes
        with self._lock:
            resident = self.resident_rows
            cache = {
                "rows": self._hits, "bytes": self._hits * rb, "hits": self._hits, "requests": self._requests,
                "hit_rate": self._hits / self._requests if self._requests else 0.0,
                "served_rows": self._served, "capacity_rows": self.capacity, "resident_rows": resident,
                "resident_bytes": resident * rb, "admitted_rows": self._admitted, "preloaded_rows": self._preload_rows,
                "bookkeeping_s": self._policy_s + self._plan_s + self._maps_s, "policy_s": self._policy_s,
                "plan_s": self._plan_s, "maps_s": self._maps_s, "admit_copy_s": self._admit_copy_s,
                "batches": self._batches, "unplanned_batches": self._unplanned,
                "plan_mismatches": self._plan_mismatches,
                "device": str(self.cache_device), **self.policy.describe(),
            }
            back = {"rows": self._miss_rows, "bytes": self._miss_rows * rb, "preloaded_rows": self._preload_rows,
                    "preloaded_bytes": self._preload_rows * rb, "all_rows": self._all_rows,
                    "all_bytes": self._all_rows * rb}
            if self.backing.name == "host":
                back["pinned"] = bool(getattr(self.backing, "pinned", False))
        return {"cache": cache, self.backing.name: back}

    def reset_stats(self) -> None:
        """Zero the counters (the cache keeps its rows; preloaded rows stay counted)."""
        super().reset_stats()
        self._hits = self._requests = self._miss_rows = self._served = self._batches = 0
        self._admitted = self._unplanned = self._all_rows = self._plan_mismatches = 0
        self._policy_s = self._plan_s = self._maps_s = self._admit_copy_s = 0.0

    def __repr__(self) -> str:
        return (f"TieredFeatureStore(num_nodes={self.num_nodes}, dim={self.dim}, dtype={self.dtype}, "
                f"capacity={self.capacity}, policy={self.policy.name!r}, cache_device={self.cache_device}, "
                f"backing={self.backing.name})")
