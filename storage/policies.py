"""Cache placement and replacement policies of the ``TieredFeatureStore``.

A policy owns the decisions, the store owns the rows. The store binds a policy to
``(num_nodes, capacity)`` and gets the rows to preload; then, per gather, it passes the batch's
distinct ids (first-occurrence order) with their slots at the start of the batch (-1: a miss)
and applies the admissions the policy returns: ``(positions in the batch, slots)``. Hits are
counted at the start of the batch, for every policy alike.

Every policy starts warm (a static set is loaded before training; so, on equal terms, is
everything else): static ones with their top rows, LRU / S3-FIFO / hybrid with the top rows of
their warm-start score, planned and Belady with the rows used soonest.

=================  ==========================================================================
``static-degree``  top rows by out-degree (Quiver; Data Tiering's first score)
``static-pagerank`` top rows by reverse PageRank from the training nodes (Data Tiering)
``static-saint``   top rows by GraphSAINT's pre-sampling counts ``C_v`` (GNNLab's pre-sampling)
``lru``            least recently used (batch granularity)
``s3fifo``         S3-FIFO as DGL GraphBolt implements it
``hybrid``         a static part (top rows by score) plus an S3-FIFO part (LSM-GNN's idea)
``planned``        Belady inside a window of batches seen ahead (Ginex's inspector-executor)
``belady``         Belady over the whole recorded trace: the optimum (needs ``trace``)
``best-static``    the top rows by future access count: the optimum of static sets (needs ``trace``)
=================  ==========================================================================
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from gnnsys.storage import policy_kernels as K
from gnnsys.storage.scores import (
    check_graph_rows,
    count_score,
    degree_score,
    ranking,
    reverse_pagerank,
    trace_counts,
)

from gnnsys.config import CACHE_POLICIES
from gnnsys.errors import ConfigError

ORACLE_POLICIES = ("belady", "best-static")
DEFAULT_WINDOW = 256

_EMPTY = np.zeros(0, np.int64)
_NO_SLOT_OF = np.zeros(0, np.int32)  # "no maps to update" for the kernels that can update the store's
_STAMP_LIMIT = (1 << 31) - (1 << 24)  # int32 counters are renumbered before they get here


class CachePolicy:
    """Base class: decides which rows the cache tier holds.

    Subclasses implement ``_bind`` (allocate state, return the rows to preload, slot ``i``
    holding ``ids[i]``) and, when they change the cache, ``step``."""

    name = "policy"
    dynamic = False  # changes the cache while training
    lookahead = 0  # batches ahead the policy wants to see through plan()
    updates_maps = False  # step(..., maps) applies its admissions to the store's slot maps itself

    def __init__(self) -> None:
        self.num_nodes = -1
        self.capacity = -1

    @property
    def bound(self) -> bool:
        """True once a store has bound this policy."""
        return self.capacity >= 0

    def bind(self, num_nodes: int, capacity: int) -> np.ndarray:
        """Attach to a cache of ``capacity`` rows over ``num_nodes`` rows; returns the ids to preload."""
        if self.bound:
            raise ConfigError(f"this {type(self).__name__} already serves a store; a policy keeps one "
                              "cache's state, so make a new policy object for each store")
        self.num_nodes, self.capacity = int(num_nodes), int(capacity)
        try:
            ids = np.asarray(self._bind(), np.int64)
        except BaseException:
            self.num_nodes, self.capacity = -1, -1  # not bound: the object stays usable
            raise
        if ids.size > self.capacity:
            raise AssertionError("policy preloaded more rows than the cache holds")
        return ids

    def _bind(self) -> np.ndarray:
        return _EMPTY

    def step(self, uniq: np.ndarray, slots: np.ndarray,
             maps: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Admissions for a batch: ``(positions in uniq, slots)``. Static policies admit nothing.

        ``maps``: the store's ``(slot_of, node_of_slot)``, passed only to a policy with
        ``updates_maps``; such a policy applies its admissions to them in its own pass (one
        random access fewer per admitted row) and the store leaves them alone."""
        return _EMPTY, _EMPTY

    def known_ahead(self) -> int:
        """Batches of the window already seen and not yet served."""
        return 0

    def known_batch(self, i: int) -> np.ndarray:
        """Distinct ids of the ``i``-th known batch not yet served (``i < known_ahead()``)."""
        raise IndexError(i)

    def plan(self, batches: Sequence[np.ndarray], slot_of: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Take batches that follow the ones already known (distinct ids each); ``slot_of`` is the
        store's id -> slot map as it is now (read only). Returns rows to load into free slots
        ``(ids, slots)`` (a planned cache's warm start), or ``None``."""
        return None

    def expects(self, uniq: np.ndarray) -> bool:
        """False when the policy knows the next batch and ``uniq`` is not it (a gather outside
        the plan: the store serves it without changing the cache)."""
        return True

    def describe(self) -> dict[str, Any]:
        """Name and parameters, for results files."""
        return {"policy": self.name}


class StaticPolicy(CachePolicy):
    """The top-``capacity`` rows by a fixed score, loaded once, never changed."""

    def __init__(self, score: np.ndarray, name: str = "static") -> None:
        super().__init__()
        self.score = np.asarray(score, np.float64)
        self.name = name

    def _bind(self) -> np.ndarray:
        if self.score.shape != (self.num_nodes,):
            raise ConfigError(f"{self.name}: the score has {self.score.size} entries for {self.num_nodes} rows")
        return ranking(self.score)[:self.capacity]


class LRUPolicy(CachePolicy):
    """Least recently used, at batch granularity (``policy_kernels.lru_step``): after each batch
    the cache holds the ``capacity`` most recently read rows. Warm start: the top rows of
    ``warm`` (a score), the hottest as the most recent."""

    name = "lru"
    dynamic = True

    def __init__(self, warm: np.ndarray | None = None) -> None:
        super().__init__()
        self.warm = None if warm is None else np.asarray(warm, np.float64)

    def _bind(self) -> np.ndarray:
        c = self.capacity
        if max(c, self.num_nodes) >= 1 << 31:
            raise ConfigError(f"lru keeps int32 state: fewer than 2**31 rows and slots, got {self.num_nodes} rows; "
                              "use a static or planned policy")
        self.slot_node = np.full(c, -1, np.int32)  # int32 state: half the cache footprint
        self.stamp = np.full(c, -2, np.int32)
        size = 4 * c + 1024  # live entries are at most c: compaction scans 4c entries every 3c appended
        self.log_slot = np.zeros(size, np.int32)
        self.log_stamp = np.zeros(size, np.int32)
        ids = _EMPTY if self.warm is None else ranking(self.warm)[:c]
        k = ids.size
        self.slot_node[:k] = ids
        self.stamp[:k] = -1
        self.log_slot[:k] = np.arange(k)[::-1]  # oldest first: the coldest warm row
        self.log_stamp[:k] = -1
        self.state = np.array([c, k, 0, k, 0], np.int64)  # capacity, used, head, tail, batch
        return ids

    def step(self, uniq: np.ndarray, slots: np.ndarray, maps: tuple[np.ndarray, np.ndarray] | None = None,
             off: int = 0) -> tuple[np.ndarray, np.ndarray]:
        if self.capacity == 0:
            return _EMPTY, _EMPTY
        st = self.state
        n = uniq.shape[0]
        if st[4] >= _STAMP_LIMIT:  # int32 stamps: renumber (only equality between a slot and its entry matters)
            st[3] = K.lru_compact_log(self.log_slot, self.log_stamp, st[2], st[3], self.stamp)
            st[2] = 0
            self.log_stamp[:st[3]] = -1
            self.stamp[self.log_slot[:st[3]]] = -1
            st[4] = 0
        if st[3] + n > self.log_slot.shape[0]:
            st[3] = K.lru_compact_log(self.log_slot, self.log_stamp, st[2], st[3], self.stamp)
            st[2] = 0
            if st[3] + n > self.log_slot.shape[0]:
                grow = st[3] + n + self.capacity
                self.log_slot = np.concatenate([self.log_slot, np.zeros(grow, np.int32)])
                self.log_stamp = np.concatenate([self.log_stamp, np.zeros(grow, np.int32)])
        return K.lru_step(uniq, slots, self.slot_node, self.stamp, self.log_slot, self.log_stamp, st)


class S3FIFOPolicy(CachePolicy):
    """S3-FIFO (GraphBolt's implementation, ``policy_kernels.s3fifo_step``). Warm start: the
    top rows of ``warm`` in the main queue with count 0, the coldest first out."""

    name = "s3fifo"
    dynamic = True
    updates_maps = True

    def __init__(self, warm: np.ndarray | None = None) -> None:
        super().__init__()
        self.warm = None if warm is None else np.asarray(warm, np.float64)

    def _bind(self) -> np.ndarray:
        c = self.capacity
        if max(c, self.num_nodes) >= 1 << 30:
            raise ConfigError(f"s3fifo keeps int32 state: at most 2**30 rows and slots, got {self.num_nodes} rows "
                              f"and {c} slots; use a static or planned policy")
        c1 = max(c, 1)
        self.slot_node = np.full(c1, -1, np.int32)  # int32 state: half the cache footprint
        self.freq = np.zeros(c1, np.int8)
        self.sq = np.zeros(c1, np.int32)
        self.mq = np.zeros(c1, np.int32)
        self.ghost_time = np.full(self.num_nodes, -1, np.int32)
        self.rec_of = np.zeros(c1, np.int32)
        ids = _EMPTY if self.warm is None else ranking(self.warm)[:c]
        k = ids.size
        self.slot_node[:k] = ids
        self.mq[:k] = np.arange(k)[::-1]  # queue head (evicted first) = coldest
        # capacity, used, s_head, s_len, m_head, m_len, ghost_clock, s_target, ghost_capacity, batch
        self.state = np.array([c, k, 0, 0, 0, k, 0, c // 10, c - c // 10, 0], np.int64)
        return ids

    def step(self, uniq: np.ndarray, slots: np.ndarray,
             maps: tuple[np.ndarray, np.ndarray] | None = None, off: int = 0) -> tuple[np.ndarray, np.ndarray]:
        if self.capacity == 0:
            return _EMPTY, _EMPTY
        st = self.state
        base = st[6] - st[8]  # ghost entries older than this are forgotten anyway
        if st[6] + uniq.shape[0] >= _STAMP_LIMIT and base > 0:  # int32 ghost times: shift them (ages stay exact)
            g = self.ghost_time
            np.copyto(g, np.where(g >= base, g - base, -1).astype(np.int32))
            st[6] -= base
        slot_of, node_of_slot = (_NO_SLOT_OF, _EMPTY) if maps is None else maps
        return K.s3fifo_step(uniq, slots, self.slot_node, self.freq, self.sq, self.mq, self.ghost_time,
                             self.state, self.rec_of, slot_of, node_of_slot, off)


class HybridPolicy(CachePolicy):
    """LSM-GNN's hybrid: slots ``[0, static)`` hold the top rows by ``score`` for good; the rest
    run a dynamic policy (S3-FIFO or LRU) over the rows the static part misses, warm-started with
    the next rows by ``score``. Default static share 0.8: GraphSAINT's batches are close to
    independent draws, where frequency beats recency (``bench cache --quick``: 0.5 / 0.8 / 0.95
    static gave 0.291 / 0.304 / 0.310 hit rate at a 10% cache, plain S3-FIFO 0.271)."""

    name = "hybrid"
    dynamic = True

    def __init__(self, score: np.ndarray, static_fraction: float = 0.8, dynamic: str = "s3fifo") -> None:
        super().__init__()
        if not 0.0 <= static_fraction <= 1.0:
            raise ConfigError(f"hybrid: static_fraction must be in [0, 1], got {static_fraction}")
        if dynamic not in ("s3fifo", "lru"):
            raise ConfigError(f"hybrid: the dynamic part is 's3fifo' or 'lru', not {dynamic!r}")
        self.score = np.asarray(score, np.float64)
        self.static_fraction, self.dynamic_kind = float(static_fraction), dynamic

    def _bind(self) -> np.ndarray:
        order = ranking(self.score)
        self.num_static = int(round(self.static_fraction * self.capacity))
        static = order[:self.num_static]
        rest = np.zeros(self.num_nodes, np.float64)
        nxt = order[self.num_static:self.capacity]
        rest[nxt] = np.arange(nxt.size, 0, -1, dtype=np.float64)  # the dynamic part's warm order
        cls = S3FIFOPolicy if self.dynamic_kind == "s3fifo" else LRUPolicy
        self.part = cls(warm=rest if nxt.size else None)
        dyn = self.part.bind(self.num_nodes, self.capacity - self.num_static)
        self.updates_maps = self.part.updates_maps
        return np.concatenate([static, dyn])

    def step(self, uniq: np.ndarray, slots: np.ndarray,
             maps: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self.capacity == self.num_static:
            return _EMPTY, _EMPTY
        rest, sub_ids, sub_slots = K.hybrid_split(uniq, slots, self.num_static)
        sub_maps = None if maps is None else (maps[0], maps[1][self.num_static:])
        pos, sl = self.part.step(sub_ids, sub_slots, sub_maps, self.num_static)
        return rest[pos], sl + self.num_static

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "static_fraction": self.static_fraction, "dynamic": self.dynamic_kind}


class PlannedPolicy(CachePolicy):
    """Belady inside a window of ``window`` batches known ahead (``plan``), Ginex's
    inspector-executor with a sliding window: after each batch the cache keeps the rows whose
    next use in the window comes soonest; rows with no use in the window rank after every row
    with one, by the static ``score`` (hottest first). Warm start at the first ``plan``: the
    rows used soonest. A gather that is not the next planned batch is served without changing
    the cache (the store counts it as unplanned).

    Per batch, each id costs a few array updates (``policy_kernels.planned_enter`` when its
    batch enters the window, ``planned_consume`` when it is served): residents with a next use
    sit on one stack per batch of the window (in the entry ring beside the batch's own entries,
    no stale entries), the others in a bitmap tree over ranks."""

    name = "planned"
    dynamic = True

    def __init__(self, window: int = DEFAULT_WINDOW, score: np.ndarray | None = None) -> None:
        super().__init__()
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ConfigError(f"planned: window must be a positive number of batches, got {window!r}")
        self.lookahead = int(window)
        self.score = None if score is None else np.asarray(score, np.float64)

    def _bind(self) -> np.ndarray:
        n, c = self.num_nodes, self.capacity
        c1 = max(c, 1)
        order = ranking(self.score) if self.score is not None else np.arange(n, dtype=np.int64)
        self.order = order
        self.node = np.full((n, 4), -1, np.int64)
        self.node[order, K.P_RANK] = np.arange(n)
        self.rank_slot = np.full(n, -1, np.int32)  # slot of each rank-set member
        # one stack of slots per batch of the window (a ring of > window buckets, a power of two):
        # (its first entry in the entry ring, fill)
        self.bk = np.zeros((1 << self.lookahead.bit_length(), 2), np.int64)
        self.bits, self.offs = K.rankset_layout(n)
        self.rec = np.full(c1, -1, np.int64)
        self.ent_next = np.zeros(1 << 16, np.int64)
        self.ent_rank = np.zeros(1 << 16, np.int32 if n < 1 << 31 else np.int64)
        self.ent_stack = np.zeros(1 << 16, np.int32)
        self.window: deque[tuple[int, int]] = deque()  # (batch index, entries) known ahead
        self._window_ids: deque[np.ndarray] = deque()
        self.batches_known = 0  # index of the next batch plan() will add
        # capacity, used, ent_head, ent_tail, hi (bound of non-empty buckets), next batch
        self.state = np.array([c, 0, 0, 0, -1, 0], np.int64)
        self.started = False
        return _EMPTY

    def known_ahead(self) -> int:
        return len(self.window)

    def known_batch(self, i: int) -> np.ndarray:
        return self._window_ids[i]

    def _reserve(self, entries: int) -> None:
        """Room in the entry ring (entries addressed by absolute index modulo a power-of-two size)
        for ``entries`` more; the first batch sizes it for a window of batches like itself (up to
        2M entries), so that filling the window does not re-lay out the ring again and again."""
        st = self.state
        head, tail = int(st[K.S_ENT_HEAD]), int(st[K.S_ENT_TAIL])
        size = self.ent_next.shape[0]
        need = tail + entries - head
        if tail == 0:
            need = max(need, min(entries * self.lookahead, 1 << 21))
        if need <= size:
            return
        new = size
        while new < need:
            new *= 2
        a = np.arange(head, tail)
        rings = []
        for arr in (self.ent_next, self.ent_rank, self.ent_stack):
            grown = np.zeros(new, arr.dtype)
            grown[a & (new - 1)] = arr[a & (size - 1)]
            rings.append(grown)
        self.ent_next, self.ent_rank, self.ent_stack = rings

    def plan(self, batches: Sequence[np.ndarray], slot_of: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        room = self.lookahead - len(self.window)
        for ids in list(batches)[:max(room, 0)]:
            b = self.batches_known
            self._reserve(ids.size)
            K.planned_enter(b, ids, self.node, slot_of, self.ent_next, self.ent_rank, self.ent_stack, self.state,
                            self.bk, self.bits, self.offs)
            self.window.append((b, ids.size))
            self._window_ids.append(ids)
            self.batches_known += 1
        if self.started or not self.window or self.capacity == 0:
            self.started = self.started or bool(self.window)
            return None
        self.started = True
        # warm start: the rows used soonest in the window, then the best-ranked others
        nxt = self.node[:, K.P_NEXT]
        seen = np.flatnonzero(nxt >= 0)
        keys = nxt[seen]
        if keys.size and keys.max() < 1 << 15:  # batch indices of the first window: numpy's stable
            keys = keys.astype(np.int16)  # sort of 16-bit keys is a radix sort (same order, ~2x faster)
        soon = seen[np.argsort(keys, kind="stable")][:self.capacity]
        if soon.size < self.capacity:
            is_soon = np.zeros(self.num_nodes, np.bool_)
            is_soon[soon] = True
            rest = self.order[~is_soon[self.order]][:self.capacity - soon.size]
            soon = np.concatenate([soon, rest])
        slots = K.planned_preload(soon, self.node, self.state, self.bk, self.ent_stack, self.bits, self.offs,
                                  self.rank_slot)
        return soon, slots

    def expects(self, uniq: np.ndarray) -> bool:
        return bool(self.window) and np.array_equal(self._window_ids[0], uniq)

    def step(self, uniq: np.ndarray, slots: np.ndarray,
             maps: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        b, n = self.window.popleft()
        self._window_ids.popleft()
        return K.planned_consume(b, slots, self.ent_next, self.ent_rank, self.ent_stack, self.state, self.bk,
                                 self.bits, self.offs, self.rank_slot, self.rec)

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "window": self.lookahead}


def _unique_batches(trace: Sequence[Any], num_nodes: int) -> list[np.ndarray]:
    """Each batch's distinct ids in first-occurrence order (the store's order), checked."""
    import torch

    out = []
    for t, b in enumerate(trace):
        a = torch.as_tensor(b).cpu()
        if a.dtype.is_floating_point or a.dtype == torch.bool or a.dim() != 1:
            raise ConfigError(f"trace batch {t}: node ids must be a 1-D integer tensor, got {a.dtype} "
                              f"{tuple(a.shape)}")
        a = a.long().numpy()
        if a.size and (a.min() < 0 or a.max() >= num_nodes):
            raise ConfigError(f"trace batch {t}: ids {a.min()}..{a.max()} outside [0, {num_nodes})")
        _, first = np.unique(a, return_index=True)
        out.append(a[np.sort(first)])
    return out


class BeladyPolicy(CachePolicy):
    """Belady's MIN with bypass over a recorded trace (``policy_kernels.belady_simulate``): the
    most hits any cache of this capacity can get on that trace, with the same warm start (the
    rows used soonest). The simulation runs once, at bind; each gather then replays its batch's
    changeset. Gathers must follow the trace (``ConfigError`` otherwise)."""

    name = "belady"
    dynamic = True

    def __init__(self, trace: Sequence[Any]) -> None:
        super().__init__()
        if len(trace) == 0:
            raise ConfigError("belady needs the recorded trace (trace=[ids of batch 0, 1, ...]); got an empty one")
        self.trace = trace

    def _bind(self) -> np.ndarray:
        batches = _unique_batches(self.trace, self.num_nodes)
        self.batches = batches
        nb = len(batches)
        sizes = np.array([b.size for b in batches], np.int64)
        offsets = np.zeros(nb + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        flat = np.concatenate(batches) if nb else _EMPTY
        bidx = np.repeat(np.arange(nb, dtype=np.int64), sizes)
        order = np.argsort(flat, kind="stable")  # entries of each id, in time order
        next_use = np.full(flat.size, nb, np.int64)
        same = flat[order[1:]] == flat[order[:-1]]
        next_use[order[:-1][same]] = bidx[order[1:][same]]
        first = np.full(self.num_nodes, nb, np.int64)
        is_first = np.ones(flat.size, np.bool_)
        is_first[1:] = ~same
        first[flat[order[is_first]]] = bidx[order[is_first]]
        used = np.flatnonzero(first < nb)
        preload = used[np.argsort(first[used], kind="stable")][:self.capacity]
        self.hits, self.adm_off, self.adm_pos, self.adm_slot = K.belady_simulate(
            flat, offsets, next_use, preload, first[preload], self.capacity, self.num_nodes)
        self.t = 0
        return preload

    def step(self, uniq: np.ndarray, slots: np.ndarray,
             maps: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        t = self.t
        if t >= len(self.batches) or not np.array_equal(self.batches[t], uniq):
            where = "past the end of" if t >= len(self.batches) else f"different from batch {t} of"
            raise ConfigError(f"belady: gather {t} is {where} the recorded trace; Belady replays the trace it "
                              "was given, so gather exactly its batches, in order")
        self.t += 1
        a, b = self.adm_off[t], self.adm_off[t + 1]
        return self.adm_pos[a:b], self.adm_slot[a:b]


# ------------------------------------------------------------------------------- factory


def _warm_score(counts: np.ndarray | None, graph: Any) -> np.ndarray | None:
    """The score a dynamic or planned policy starts from: ``C_v`` if given, else the degree."""
    if counts is not None:
        return counts
    if graph is not None:
        return degree_score(graph)
    return None


def make_policy(name: str, num_nodes: int, *, graph: Any = None, train_nodes: Any = None, counts: Any = None,
                trace: Sequence[Any] | None = None, window: int = DEFAULT_WINDOW, static_fraction: float = 0.8,
                hybrid_dynamic: str = "s3fifo", pagerank_alpha: float = 0.85) -> CachePolicy:
    """The policy called ``name`` (``CACHE_POLICIES`` + ``ORACLE_POLICIES``), from its inputs:
    ``graph`` (degree, reverse PageRank; rows must equal its nodes), ``train_nodes`` (PageRank's
    teleport), ``counts`` (GraphSAINT's ``C_v``), ``trace`` (the oracles)."""
    if name not in CACHE_POLICIES + ORACLE_POLICIES:
        raise ConfigError(f"unknown cache policy {name!r}; choose one of {', '.join(CACHE_POLICIES + ORACLE_POLICIES)}")
    if graph is not None:
        check_graph_rows(graph, num_nodes)
    score = None if counts is None else count_score(counts, num_nodes, "counts (C_v)")

    def need(what: str, value: Any, fix: str) -> None:
        if value is None:
            raise ConfigError(f"cache policy {name!r} needs {what}: {fix}")

    if name == "static-degree":
        need("the graph", graph, "pass graph=...")
        return StaticPolicy(degree_score(graph), name)
    if name == "static-pagerank":
        need("the graph", graph, "pass graph=... (and train_nodes=... for the teleport)")
        return StaticPolicy(reverse_pagerank(graph, train_nodes, pagerank_alpha), name)
    if name == "static-saint":
        need("GraphSAINT's pre-sampling counts", score,
             "pass counts=sampler.stats.node_count after compute_normalization() (GraphSAINT samplers only)")
        return StaticPolicy(score, name)
    if name == "lru":
        return LRUPolicy(_warm_score(score, graph))
    if name == "s3fifo":
        return S3FIFOPolicy(_warm_score(score, graph))
    if name == "hybrid":
        base = _warm_score(score, graph)
        need("a static score", base, "pass counts=... (GraphSAINT's C_v) or graph=... (degree)")
        return HybridPolicy(base, static_fraction, hybrid_dynamic)
    if name == "planned":
        return PlannedPolicy(window, _warm_score(score, graph))
    need("the recorded trace", trace, "pass trace=[node ids of every batch, in order]")
    if name == "belady":
        return BeladyPolicy(trace)
    return StaticPolicy(trace_counts(_unique_batches(trace, num_nodes), num_nodes), name)
