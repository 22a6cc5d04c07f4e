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


def _induce_one(nodes, lo, cnt, bits, lmap, optr, ent, src, dst, eid, e_lo, e_hi, t_src, t_dst, t_eid,
                crow, c_lo):  # pragma: no cover
    """Edges among ``nodes[lo:lo+cnt]`` (bits set), in local ids, written to ``src``, ``dst``,
    ``eid`` from ``e_lo`` in CSR order of the targets (rows = targets, sources ascending), with
    the row pointer (``cnt + 1`` entries) at ``crow[c_lo:]``; clears the bits; returns the edge
    count. ``[e_lo, e_hi)`` bounds the subgraph's edges; ``t_*`` are scratch of that span.

    Each node's list sits at a random place of ``ent``: the list bounds are read first in one
    pass (independent loads), then the scan prefetches the list ``PREFETCH_AHEAD`` nodes on,
    so the misses overlap instead of coming one list at a time.

    No general sort: an owner ``i``'s entry gives a *forward* edge ``i -> j`` and a *reverse*
    edge ``j -> i``. The owners come in ascending order, so the forward edges of a target come
    out with ascending sources and one stable counting pass by target places them; the reverse
    edges of target ``i`` come out together while ``i``'s own list is scanned (ascending
    partners on an undirected graph, sorted here otherwise). Each row is then the merge of its
    two ascending runs, done in place from the row's end."""
    start = np.empty(cnt + 1, np.int64)
    end = np.empty(cnt + 1, np.int64)
    for i in range(cnt):
        o = nodes[lo + i]
        lmap[o] = i
        start[i] = optr[o]
        end[i] = optr[o + 1]
    rev_lo = np.empty(cnt + 1, np.int64)  # reverse edges of target i: emission indices [rev_lo[i], rev_lo[i+1])
    nf = 0  # forward edges, at t_*[e_lo + k]
    nr = 0  # reverse edges, at t_*[e_hi - 1 - k]
    for i in range(cnt):
        rev_lo[i] = nr
        if i + PREFETCH_AHEAD < cnt:
            prefetch(ent, start[i + PREFETCH_AHEAD])
        for q in range(start[i], end[i]):
            w = ent[q, 0]
            if bits[w >> 6] & (np.uint64(1) << np.uint64(w & 63)):
                j = lmap[w]
                f = ent[q, 1]
                if f >= 0:
                    t_src[e_lo + nf] = i
                    t_dst[e_lo + nf] = j
                    t_eid[e_lo + nf] = f
                    nf += 1
                r = ent[q, 2]
                if r >= 0:
                    t_src[e_hi - 1 - nr] = j
                    t_eid[e_hi - 1 - nr] = r
                    nr += 1
    rev_lo[cnt] = nr
    for i in range(cnt):
        v = nodes[lo + i]
        bits[v >> 6] &= ~(np.uint64(1) << np.uint64(v & 63))
    # row sizes and pointer: forward edges counted by target, reverse edges by their run
    for t in range(cnt + 1):
        crow[c_lo + t] = 0
    for k in range(nf):
        crow[c_lo + t_dst[e_lo + k] + 1] += 1
    for t in range(cnt):
        crow[c_lo + t + 1] += crow[c_lo + t] + rev_lo[t + 1] - rev_lo[t]
    # forward edges into the front of their rows, stable (sources stay ascending)
    fill = np.empty(cnt + 1, np.int64)
    for t in range(cnt):
        fill[t] = crow[c_lo + t]
    for k in range(nf):
        t = t_dst[e_lo + k]
        p = e_lo + fill[t]
        fill[t] += 1
        src[p] = t_src[e_lo + k]
        dst[p] = t
        eid[p] = t_eid[e_lo + k]
    # each row: merge its reverse run into it from the back
    for t in range(cnt):
        r0 = rev_lo[t]
        nb = rev_lo[t + 1] - r0
        if nb == 0:
            continue
        run = e_hi - r0 - nb  # the run's first position in memory
        _sort_run_jit(t_src, t_eid, run, nb)
        row = e_lo + crow[c_lo + t]
        ia = fill[t] - crow[c_lo + t] - 1
        ib = nb - 1
        out = e_lo + crow[c_lo + t + 1] - 1
        while ib >= 0:
            b = run + ib
            if ia >= 0 and src[row + ia] > t_src[b]:
                src[out] = src[row + ia]
                eid[out] = eid[row + ia]
                ia -= 1
            else:
                src[out] = t_src[b]
                eid[out] = t_eid[b]
                ib -= 1
            dst[out] = t
            out -= 1
    return nf + nr


def _induce_unordered(nodes, lo, cnt, bits, lmap, optr, ent, src, dst, eid, e_lo):  # pragma: no cover
    """The edges of ``_induce_one`` in the order the scan finds them (no row pointer): for
    pre-sampling, which only counts nodes and edges. Clears the bits; returns the edge count."""
    for i in range(cnt):
        lmap[nodes[lo + i]] = i
    k = e_lo
    for i in range(cnt):
        o = nodes[lo + i]
        for q in range(optr[o], optr[o + 1]):
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


def _sort_run(keys, vals, lo, n):  # pragma: no cover - compiled
    """Sort ``keys[lo:lo+n]`` ascending, ``vals`` along, in place. A target's reverse run is
    written backwards, so on an undirected graph it is descending: reversed in one pass;
    anything else (a directed graph's mixed lists) is sorted."""
    descending = True
    for k in range(lo + 1, lo + n):
        if keys[k] > keys[k - 1]:
            descending = False
            break
    if descending:
        a, b = lo, lo + n - 1
        while a < b:
            ka, va = keys[a], vals[a]
            keys[a], vals[a] = keys[b], vals[b]
            keys[b], vals[b] = ka, va
            a += 1
            b -= 1
        return
    order = np.argsort(keys[lo:lo + n], kind="mergesort")
    ks = keys[lo:lo + n][order]
    vs = vals[lo:lo + n][order]
    keys[lo:lo + n] = ks
    vals[lo:lo + n] = vs


_dedupe_jit = njit(cache=True, nogil=True)(_dedupe_one)
_sort_run_jit = njit(cache=True, nogil=True)(_sort_run)
_induce_jit = njit(cache=True, nogil=True)(_induce_one)
_induce_unordered_jit = njit(cache=True, nogil=True)(_induce_unordered)


@njit(cache=True, nogil=True)
def induce_group(draws, doff, eoff, bits, lmap, optr, ent, src, dst, eid, t_src, t_dst, t_eid,
                 csr=True):  # pragma: no cover
    """Induced subgraphs of a group: subgraph ``s`` has raw draws ``draws[doff[s]:doff[s+1]]``
    and writes its unique sorted nodes from ``doff[s]`` and its edges from ``eoff[s]`` into
    the caller's buffers ``src``, ``dst``, ``eid`` (``eoff`` from an upper bound: twice the
    oriented list lengths of the draws), in CSR order of the targets (``_induce_one``;
    ``t_*`` are scratch of the same size as the edge buffers). ``bits`` (all zero, one bit per
    node) is left so; ``lmap`` (one int32 per node) is scratch. Returns ``(nodes, node counts,
    edge counts, row pointers)``; subgraph ``s``'s row pointer starts at ``doff[s] + s``.
    ``csr=False``: the same edges in scan order and no row pointers (left unset), for subgraphs
    that are only counted."""
    s_count = doff.shape[0] - 1
    nodes = np.empty(draws.shape[0], dtype=np.int64)
    crow = np.empty(draws.shape[0] + s_count, dtype=np.int64)
    ncnt = np.zeros(s_count, dtype=np.int64)
    ecnt = np.zeros(s_count, dtype=np.int64)
    for s in range(s_count):
        c = _dedupe_jit(draws, doff[s], doff[s + 1], bits, nodes, doff[s])
        ncnt[s] = c
        if csr:
            ecnt[s] = _induce_jit(nodes, doff[s], c, bits, lmap, optr, ent, src, dst, eid, eoff[s], eoff[s + 1],
                                  t_src, t_dst, t_eid, crow, doff[s] + s)
        else:
            ecnt[s] = _induce_unordered_jit(nodes, doff[s], c, bits, lmap, optr, ent, src, dst, eid, eoff[s])
    return nodes, ncnt, ecnt, crow


@njit(cache=True, nogil=True)
def count_into(counts, ids):  # pragma: no cover - compiled
    """``counts[ids] += 1`` (repeats counted), in one pass."""
    for i in range(ids.shape[0]):
        counts[ids[i]] += 1


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
