"""numba kernels of the tiered store's gather: dedupe a batch of ids, copy rows from two tiers.

Both are one pass over the batch (no Python loop over ids). They release the GIL, so the
pipeline's prefetch thread can gather while the training thread computes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gnnsys.numba_intrinsics import prefetch

_LOW32 = (1 << 32) - 1
_AHEAD = 16  # admissions ahead whose map lines are asked for (gnnsys.numba_intrinsics.prefetch)


@njit(cache=True, nogil=True)
def dedupe_first_occurrence(ids: np.ndarray, mark: np.ndarray, stamp: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Distinct ``ids`` in the order of their first occurrence, and ``inverse`` (the index of each
    id in that list). ``mark`` (int64, one entry per node) remembers ``stamp << 32 | index`` of the
    ids seen in this call; ``stamp`` must differ between calls (it is the store's batch counter).
    Returns ``(unique, inverse, has_duplicates)``."""
    n = ids.shape[0]
    uniq = np.empty(n, np.int64)
    inverse = np.empty(n, np.int64)
    k = 0
    tag = np.int64(stamp) << 32
    for i in range(n):
        if i + _AHEAD < n:
            prefetch(mark, ids[i + _AHEAD])
        x = ids[i]
        m = mark[x]
        if (m >> 32) == stamp:
            inverse[i] = m & _LOW32
        else:
            mark[x] = tag | k
            uniq[k] = x
            inverse[i] = k
            k += 1
    return uniq[:k], inverse, k < n


@njit(cache=True, nogil=True)
def distinct_in_range(ids: np.ndarray, mark: np.ndarray, stamp: int) -> tuple[np.ndarray, bool]:
    """``dedupe_first_occurrence`` without the inverse, for batches seen ahead (``plan``), with the
    range check folded into the same pass: returns ``(unique, all ids in [0, len(mark)))``; on
    ``False`` the unique list is incomplete and the caller raises."""
    n = ids.shape[0]
    num = mark.shape[0]
    uniq = np.empty(n, np.int64)
    k = 0
    tag = np.int64(stamp) << 32
    for i in range(n):
        if i + _AHEAD < n:
            y = ids[i + _AHEAD]
            if 0 <= y < num:
                prefetch(mark, y)
        x = ids[i]
        if x < 0 or x >= num:
            return uniq[:k], False
        if (mark[x] >> 32) != stamp:
            mark[x] = tag | k
            uniq[k] = x
            k += 1
    return uniq[:k], True


@njit(cache=True, nogil=True, boundscheck=False)
def gather_two_tiers(out: np.ndarray, cache: np.ndarray, host: np.ndarray, ids: np.ndarray,
                     slots: np.ndarray) -> int:
    """``out[i] = cache[slots[i]]`` where ``slots[i] >= 0``, else ``host[ids[i]]``; returns the
    number of rows taken from ``cache``. Arrays are bit views (integer dtypes of the rows' item
    size), so the copy is exact for every float, NaN payloads included."""
    d = out.shape[1]
    hits = 0
    for i in range(ids.shape[0]):
        s = slots[i]
        if s >= 0:
            src = cache[s]
            hits += 1
        else:
            src = host[ids[i]]
        o = out[i]
        for j in range(d):
            o[j] = src[j]
    return hits


@njit(cache=True, nogil=True, boundscheck=False)
def copy_rows(out: np.ndarray, src: np.ndarray, rows: np.ndarray, positions: np.ndarray) -> None:
    """``out[positions[i]] = src[rows[i]]`` (bit views, as ``gather_two_tiers``)."""
    d = out.shape[1]
    for i in range(rows.shape[0]):
        a = src[rows[i]]
        o = out[positions[i]]
        for j in range(d):
            o[j] = a[j]


@njit(cache=True, nogil=True)
def apply_admissions(slot_of: np.ndarray, node_of_slot: np.ndarray, ids: np.ndarray, slots: np.ndarray) -> None:
    """Rows ``ids`` now live in ``slots``: update the slot map and its inverse in one pass. A
    slot's old row leaves the map only if it still points there (an admission earlier in the
    list may have moved it to another slot)."""
    n = ids.shape[0]
    d = _AHEAD
    for k in range(n):
        if k + 2 * d < n:
            prefetch(node_of_slot, slots[k + 2 * d])
        if k + d < n:
            prefetch(slot_of, node_of_slot[slots[k + d]])
            prefetch(slot_of, ids[k + d])
        s = slots[k]
        old = node_of_slot[s]
        if old >= 0 and slot_of[old] == s:
            slot_of[old] = -1
        slot_of[ids[k]] = s
        node_of_slot[s] = ids[k]
