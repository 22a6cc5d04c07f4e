"""Numba kernels of the GraphSAINT samplers (CPU only; the CUDA path is pure torch).

The cost of inducing a subgraph on a power-law graph is the hubs' adjacency lists. The
kernels therefore work on a *degree-oriented* copy of the graph: every edge is stored once,
in the list of its lower-degree endpoint (the *owner*; ties broken by id), as a row
``(partner, fwd, rev)`` of one ``[entries, 3]`` array: ``fwd`` is the global id of the edge
owner -> partner, ``rev`` that of partner -> owner (``-1`` where that direction does not
exist). An undirected graph (both directions stored, sorted rows) keeps each pair once. Inducing a node set ``S``
scans only the oriented lists of ``S``, testing membership in a per-thread bitmap (which
stays in cache) and reading the local id of members from a dense map: a hub's list holds
only its edges to higher-degree nodes, so a subgraph never pays for a hub's full
neighbourhood.

A kernel call induces a *group* of subgraphs and releases the GIL: the caller runs one
group per core from Python threads, each with its own bitmap and map. (Python threads
rather than ``prange``: OpenMP worker threads spin and degrade badly on a busy machine, and
GNU OpenMP is not fork-safe for DataLoader workers.) The random draws are made by the
caller from per-subgraph seeds, so the result does not depend on the threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gnnsys.numba_intrinsics import prefetch

#: Nodes ahead whose adjacency list the induction scan prefetches.
PREFETCH_AHEAD = 8


@njit(cache=True)
def _rows_strictly_sorted(indptr, indices):  # pragma: no cover - compiled
    n = indptr.shape[0] - 1
    for u in range(n):
        for p in range(indptr[u] + 1, indptr[u + 1]):
            if indices[p] <= indices[p - 1]:
                return False
    return True


@njit(cache=True)
def _find(indices, lo, hi, x):  # pragma: no cover - compiled
    """First position in the sorted ``indices[lo:hi]`` holding a value >= ``x`` (or ``hi``)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def build_oriented(indptr, indices, rank_key, gids, id_dtype_witness):  # pragma: no cover - compiled
    """Degree-oriented adjacency of a CSR graph. ``rank_key`` orders the nodes (owner = the
    endpoint with the smaller key); ``gids[p]`` is the global id of CSR position ``p``.
    Entries ``u -> v`` whose reverse exists are paired when the rows are strictly sorted.

    Returns ``optr`` (int64, n+1), ``ent`` (``[entries, 3]`` rows ``(partner, fwd, rev)`` in
    the dtype of ``id_dtype_witness``, -1 = no such edge: one array of rows, so a list is
    read from consecutive memory) and whether the graph is symmetric (every entry paired with
    its reverse; rows strictly sorted)."""
    n = indptr.shape[0] - 1
    m = indices.shape[0]
    paired = _rows_strictly_sorted(indptr, indices)
    revp = np.full(m, -1, dtype=np.int64)
    symmetric = paired
    if paired:
        for u in range(n):
            for p in range(indptr[u], indptr[u + 1]):
                v = indices[p]
                if v != u:
                    lo, hi = indptr[v], indptr[v + 1]
                    q = _find(indices, lo, hi, u)
                    if q < hi and indices[q] == u:
                        revp[p] = q
                    else:
                        symmetric = False
    counts = np.zeros(n + 1, dtype=np.int64)
    for u in range(n):
        for p in range(indptr[u], indptr[u + 1]):
            v = indices[p]
            if rank_key[u] <= rank_key[v]:
                counts[u + 1] += 1
            elif revp[p] < 0:
                counts[v + 1] += 1
    for i in range(n):
        counts[i + 1] += counts[i]
    total = counts[n]
    optr = counts.copy()
    fill = counts[:-1].copy()
    ent = np.empty((total, 3), dtype=id_dtype_witness.dtype)
    for u in range(n):
        for p in range(indptr[u], indptr[u + 1]):
            v = indices[p]
            if rank_key[u] <= rank_key[v]:
                q = fill[u]
                fill[u] = q + 1
                ent[q, 0] = v
                ent[q, 1] = gids[p]
                ent[q, 2] = gids[revp[p]] if revp[p] >= 0 else -1
            elif revp[p] < 0:
                q = fill[v]
                fill[v] = q + 1
                ent[q, 0] = u
                ent[q, 1] = -1
                ent[q, 2] = gids[p]
    return optr, ent, symmetric


def _dedupe_one(draws, lo, hi, bits, out, out_lo):  # pragma: no cover - compiled
    """Unique sorted ids of ``draws[lo:hi]`` written to ``out[out_lo:]``, their bits set in
    ``bits``; returns the count."""
    cnt = 0
    for i in range(lo, hi):
        v = draws[i]
        w = v >> 6
        b = np.uint64(1) << np.uint64(v & 63)
        if bits[w] & b == 0:
            bits[w] |= b
            out[out_lo + cnt] = v
            cnt += 1
    seg = out[out_lo:out_lo + cnt]
    seg.sort()
    return cnt


def _induce_one(nodes, lo, cnt, bits, lmap, optr, ent, src, dst, eid, e_lo):  # pragma: no cover
    """Edges among ``nodes[lo:lo+cnt]`` (bits set), in local ids, written from ``e_lo``;
    clears the bits; returns the edge count.

    Each node's list sits at a random place of ``ent``: the list bounds are read first in one
    pass (independent loads), then the scan prefetches the list ``PREFETCH_AHEAD`` nodes on,
    so the misses overlap instead of coming one list at a time."""
    start = np.empty(cnt + 1, np.int64)
    end = np.empty(cnt + 1, np.int64)
    for i in range(cnt):
        o = nodes[lo + i]
        lmap[o] = i
        start[i] = optr[o]
        end[i] = optr[o + 1]
    k = e_lo
    for i in range(cnt):
        if i + PREFETCH_AHEAD < cnt:
            prefetch(ent, start[i + PREFETCH_AHEAD])
        for q in range(start[i], end[i]):
            w = ent[q, 0]
            if bits[w >> 6] & (np.uint64(1) << np.uint64(w & 63)):
                j = lmap[w]
                f = ent[q, 1]
                if f >= 0:
                    src[k] = i
                    dst[k] = j
                    eid[k] = f
                    k += 1
                r = ent[q, 2]
                if r >= 0:
                    src[k] = j
                    dst[k] = i
                    eid[k] = r
                    k += 1
    for i in range(cnt):
        v = nodes[lo + i]
        bits[v >> 6] &= ~(np.uint64(1) << np.uint64(v & 63))
    return k - e_lo


def _sort_by_target(src, dst, eid, e_lo, m, cnt, t_src, t_dst, t_eid, crow, c_lo):  # pragma: no cover
    """Put the ``m`` edges at ``e_lo`` in ``(dst, src)`` order (CSR rows = targets, sources
    ascending) by two stable counting sorts over the ``cnt`` local ids, ``O(m + cnt)``; write
    the row pointer (``cnt + 1`` entries) to ``crow[c_lo:]``. The operator of the batch is then
    built without a sort."""
    # pass 1: by source, into the scratch
    for i in range(cnt + 1):
        crow[c_lo + i] = 0
    for p in range(e_lo, e_lo + m):
        crow[c_lo + src[p] + 1] += 1
    for i in range(cnt):
        crow[c_lo + i + 1] += crow[c_lo + i]
    for p in range(e_lo, e_lo + m):
        s = src[p]
        q = crow[c_lo + s]
        crow[c_lo + s] = q + 1
        t_src[q] = s
        t_dst[q] = dst[p]
        t_eid[q] = eid[p]
    # pass 2: by target, stable, back into place
    for i in range(cnt + 1):
        crow[c_lo + i] = 0
    for q in range(m):
        crow[c_lo + t_dst[q] + 1] += 1
    for i in range(cnt):
        crow[c_lo + i + 1] += crow[c_lo + i]
    for q in range(m):
        t = t_dst[q]
        r = crow[c_lo + t]
        crow[c_lo + t] = r + 1
        src[e_lo + r] = t_src[q]
        dst[e_lo + r] = t
        eid[e_lo + r] = t_eid[q]
    for i in range(cnt, 0, -1):  # row ends -> row starts
        crow[c_lo + i] = crow[c_lo + i - 1]
    crow[c_lo] = 0


_dedupe_jit = njit(cache=True, nogil=True)(_dedupe_one)
_induce_jit = njit(cache=True, nogil=True)(_induce_one)
_sort_jit = njit(cache=True, nogil=True)(_sort_by_target)


@njit(cache=True, nogil=True)
def induce_group(draws, doff, eoff, bits, lmap, optr, ent, src, dst, eid, t_src, t_dst, t_eid):  # pragma: no cover
    """Induced subgraphs of a group: subgraph ``s`` has raw draws ``draws[doff[s]:doff[s+1]]``
    and writes its unique sorted nodes from ``doff[s]`` and its edges from ``eoff[s]`` into
    the caller's buffers ``src``, ``dst``, ``eid`` (``eoff`` from an upper bound: twice the
    oriented list lengths of the draws), in CSR order of the targets (``_sort_by_target``;
    ``t_*`` are scratch of the same size as the edge buffers). ``bits`` (all zero, one bit per
    node) is left so; ``lmap`` (one int32 per node) is scratch. Returns ``(nodes, node counts,
    edge counts, row pointers)``; subgraph ``s``'s row pointer starts at ``doff[s] + s``."""
    s_count = doff.shape[0] - 1
    nodes = np.empty(draws.shape[0], dtype=np.int64)
    crow = np.empty(draws.shape[0] + s_count, dtype=np.int64)
    ncnt = np.zeros(s_count, dtype=np.int64)
    ecnt = np.zeros(s_count, dtype=np.int64)
    for s in range(s_count):
        c = _dedupe_jit(draws, doff[s], doff[s + 1], bits, nodes, doff[s])
        ncnt[s] = c
        m = _induce_jit(nodes, doff[s], c, bits, lmap, optr, ent, src, dst, eid, eoff[s])
        ecnt[s] = m
        _sort_jit(src, dst, eid, eoff[s], m, c, t_src, t_dst, t_eid, crow, doff[s] + s)
    return nodes, ncnt, ecnt, crow


@njit(cache=True, nogil=True)
def searchsorted_right_sorted(table, keys):  # pragma: no cover - compiled
    """``np.searchsorted(table, keys, side="right")`` for ascending ``keys``: each search
    gallops forward from the previous answer (a gap of ``table.size / keys.size`` entries on
    average), so it touches a few cache lines near the last one instead of a fresh binary
    search from the top of a table much larger than the cache."""
    n = table.shape[0]
    out = np.empty(keys.shape[0], np.int64)
    lo = 0
    for i in range(keys.shape[0]):
        k = keys[i]
        # gallop: the first hi with table[hi] > k, between lo and lo + step
        step = 1
        hi = lo
        while hi < n and table[hi] <= k:
            lo = hi + 1
            hi = lo + step
            step <<= 1
        if hi > n:
            hi = n
        while lo < hi:  # binary search in [lo, hi): table[lo - 1] <= k < table[hi] (hi < n)
            mid = (lo + hi) >> 1
            if table[mid] <= k:
                lo = mid + 1
            else:
                hi = mid
        out[i] = lo
    return out
