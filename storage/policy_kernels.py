"""numba kernels of the dynamic, planned and Belady cache policies.

A policy sees one batch at a time: the batch's distinct ids in first-occurrence order
(``uniq``) and the cache slot of each at the start of the batch (``slots``, -1: a miss). It
returns its *admissions*: which batch positions go into which slots (the rows are the batch's
own, already gathered, so admitting costs no extra read). Each kernel is a sequential scan over
the batch; every structure it touches is an array (no hash maps, no Python objects).

Admission records of one call are unique per slot: when a slot admitted earlier in the same
batch is evicted again (a batch larger than the cache), its earlier record is dropped.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

from gnnsys.numba_intrinsics import prefetch

PREFETCH_AHEAD = 16  # entries ahead a scan asks for the cache lines it will touch


# ----------------------------------------------------------------------------- shared helpers


@njit(cache=True, nogil=True)
def _compact(pos: np.ndarray, slot: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The records ``[0, n)`` whose position is not -1."""
    k = 0
    for i in range(n):
        if pos[i] >= 0:
            pos[k] = pos[i]
            slot[k] = slot[i]
            k += 1
    return pos[:k].copy(), slot[:k].copy()


@njit(cache=True, nogil=True)
def _record(s: int, i: int, pos: np.ndarray, slot: np.ndarray, na: int, rec_of: np.ndarray,
            rec_batch: np.ndarray, batch: int) -> int:
    """Append admission ``(i, s)``; remember it per slot so a later eviction can drop it."""
    pos[na] = i
    slot[na] = s
    rec_of[s] = na
    rec_batch[s] = batch
    return na + 1


@njit(cache=True, nogil=True)
def _drop_record(s: int, pos: np.ndarray, rec_of: np.ndarray, rec_batch: np.ndarray, batch: int) -> None:
    """Slot ``s`` is evicted: forget an admission into it made earlier in this batch."""
    if rec_batch[s] == batch:
        pos[rec_of[s]] = -1
        rec_batch[s] = -1


# ------------------------------------------------------------------------------------- LRU


@njit(cache=True, nogil=True)
def lru_compact_log(log_slot: np.ndarray, log_stamp: np.ndarray, head: int, tail: int,
                    stamp: np.ndarray) -> int:
    """Move the live entries of the recency log ``[head, tail)`` to its front; returns the new tail.
    Branch-free: the liveness loads are independent, so they overlap instead of each costing a
    mispredicted branch behind a cache miss."""
    k = 0
    for a in range(head, tail):
        if a + PREFETCH_AHEAD < tail:
            prefetch(stamp, log_slot[a + PREFETCH_AHEAD])
        s = log_slot[a]
        t = log_stamp[a]
        log_slot[k] = s
        log_stamp[k] = t
        k += stamp[s] == t
    return k


@njit(cache=True, nogil=True)
def lru_step(uniq: np.ndarray, slots: np.ndarray, slot_node: np.ndarray, stamp: np.ndarray,
             log_slot: np.ndarray, log_stamp: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least recently used, at batch granularity: after the batch the cache holds the
    ``capacity`` most recently used distinct rows, the batch's own in batch order counting as
    the most recent (exactly what a sequential LRU over the batch leaves).

    Recency lives in a log of ``(slot, stamp)`` entries, oldest first; an entry is live while
    the slot's stamp equals it (re-using a slot or touching it again re-stamps it, which makes
    its older entries dead). Victims are the first live entries at the head. ``state`` holds
    ``[capacity, used, head, tail, batch]``; the caller keeps ``tail + len(uniq)`` within the log.
    With fewer batch rows than slots the head never reaches this batch's entries (the victims
    needed never outnumber the residents outside the batch), so no admission is undone. The scan
    asks for the slot lines of the log entries ``PREFETCH_AHEAD`` ahead of the head.
    """
    cap, used, head, tail, batch = state[0], state[1], state[2], state[3], state[4]
    n = uniq.shape[0]
    if n >= cap:
        # only the batch's last `cap` rows stay; everything else goes
        first = n - cap
        keep = np.zeros(cap, np.bool_)
        na = 0
        for i in range(first, n):
            if slots[i] >= 0:
                keep[slots[i]] = True
            else:
                na += 1
        pos = np.empty(na, np.int64)
        slot = np.empty(na, np.int64)
        na = 0
        free = 0
        tail = 0
        head = 0
        for i in range(first, n):
            s = slots[i]
            if s < 0:
                while keep[free]:
                    free += 1
                s = free
                free += 1
                slot_node[s] = uniq[i]
                pos[na] = i
                slot[na] = s
                na += 1
            stamp[s] = batch
            log_slot[tail] = s
            log_stamp[tail] = batch
            tail += 1
        used = cap
    else:
        miss = 0
        for i in range(n):  # touch the hits first: they are the batch's, never victims
            s = slots[i]
            if i + PREFETCH_AHEAD < n and slots[i + PREFETCH_AHEAD] >= 0:
                prefetch(stamp, slots[i + PREFETCH_AHEAD])
            if s >= 0:
                stamp[s] = batch
            else:
                miss += 1
        pos = np.empty(miss, np.int64)
        slot = np.empty(miss, np.int64)
        j = 0
        for i in range(n):
            s = slots[i]
            if s < 0:
                if used < cap:
                    s = used
                    used += 1
                else:
                    while True:  # the oldest live entry
                        a = head + PREFETCH_AHEAD
                        if a < tail:
                            w = log_slot[a]
                            prefetch(stamp, w)
                            prefetch(slot_node, w)
                        v = log_slot[head]
                        live = stamp[v] == log_stamp[head]
                        head += 1
                        if live:
                            s = v
                            break
                slot_node[s] = uniq[i]
                stamp[s] = batch
                pos[j] = i
                slot[j] = s
                j += 1
            log_slot[tail] = s
            log_stamp[tail] = batch
            tail += 1
    state[1], state[2], state[3], state[4] = used, head, tail, batch + 1
    return pos, slot


# --------------------------------------------------------------------------------- S3-FIFO


_ADMITTED = np.int8(4)  # a bit of an S3-FIFO count: the slot was admitted earlier in this batch


@njit(cache=True, nogil=True)
def s3fifo_step(uniq: np.ndarray, slots: np.ndarray, slot_node: np.ndarray, freq: np.ndarray, sq: np.ndarray,
                mq: np.ndarray, ghost_time: np.ndarray, st: np.ndarray, rec_of: np.ndarray, slot_of: np.ndarray,
                node_of_slot: np.ndarray, off: int) -> tuple[np.ndarray, np.ndarray]:
    """S3-FIFO (Yang et al., SOSP 2023) as DGL GraphBolt implements it, one row at a time in
    batch order: a hit adds one to the row's 2-bit count (at most 3); a miss takes a free slot
    or evicts one and enters the main queue if the ghost queue remembers it, else the small
    queue, with count 0. Eviction (GraphBolt's ``Evict``): while the small queue is above its
    target (``capacity // 10``) its oldest row either moves to the main queue with its count
    reset (it was hit while there) or goes to the ghost and frees its slot; otherwise the main
    queue's oldest row is put back with one hit fewer, until one without hits frees its slot.
    The ghost remembers the last ``capacity - capacity // 10`` rows evicted from the small
    queue (a row's ghost entry is its eviction time; a re-admitted row leaves the ghost).

    ``st`` holds ``[capacity, used, s_head, s_len, m_head, m_len, ghost_clock, s_target,
    ghost_capacity, batch]``; the queues are rings of ``capacity`` slots. A slot admitted in this
    batch carries ``_ADMITTED`` in its count until the batch ends, so that evicting it again
    drops its admission record (``rec_of``) without a per-slot batch stamp to look up. A
    non-empty ``slot_of`` is the store's id -> slot map (see ``lru_step``), updated here.
    """
    cap, used, sh, sl, mh, ml, clock, s_target, g_cap = (st[0], st[1], st[2], st[3], st[4], st[5], st[6],
                                                         st[7], st[8])
    n = uniq.shape[0]
    maps = slot_of.shape[0] > 0
    pos = np.empty(n, np.int64)
    slot = np.empty(n, np.int64)
    na = 0
    dropped = 0
    ahead = cap > 2 * PREFETCH_AHEAD  # the rings' next entries are worth asking for
    for i in range(n):
        x = uniq[i]
        s = slots[i]
        if ahead:
            if i + PREFETCH_AHEAD < n:
                s2 = slots[i + PREFETCH_AHEAD]
                if s2 >= 0:
                    prefetch(slot_node, s2)
                    prefetch(freq, s2)
                else:
                    prefetch(ghost_time, uniq[i + PREFETCH_AHEAD])
                if maps:
                    prefetch(slot_of, uniq[i + PREFETCH_AHEAD])
            t = sh + PREFETCH_AHEAD
            v2 = sq[t - cap if t >= cap else t]
            prefetch(freq, v2)
            prefetch(slot_node, v2)
            t = sh + PREFETCH_AHEAD // 2
            prefetch(ghost_time, slot_node[sq[t - cap if t >= cap else t]])
            if maps:
                prefetch(slot_of, slot_node[sq[t - cap if t >= cap else t]])
            t = mh + PREFETCH_AHEAD
            prefetch(freq, mq[t - cap if t >= cap else t])
        if s >= 0 and slot_node[s] == x:  # a hit (never a slot admitted in this batch)
            if freq[s] < 3:
                freq[s] += 1
            continue
        if used < cap:
            s = used
            used += 1
        else:
            s = -1
            while sl > s_target:  # the small queue
                v = sq[sh]
                sh += 1
                if sh == cap:
                    sh = 0
                sl -= 1
                f = freq[v]
                if f & 3:
                    freq[v] = f & _ADMITTED
                    t = mh + ml
                    mq[t - cap if t >= cap else t] = v
                    ml += 1
                else:
                    ghost_time[slot_node[v]] = clock
                    clock += 1
                    s = v
                    break
            while s < 0:  # the main queue
                v = mq[mh]
                mh += 1
                if mh == cap:
                    mh = 0
                if freq[v] & 3:
                    freq[v] -= 1
                    t = mh + ml - 1
                    mq[t - cap if t >= cap else t] = v
                else:
                    ml -= 1
                    s = v
            if freq[s] & _ADMITTED:  # admitted earlier in this batch: that admission is undone
                pos[rec_of[s]] = -1
                dropped += 1
            if maps:  # the row leaves the store's map too (it lives in s, so the map points there)
                slot_of[slot_node[s]] = -1
        gt = ghost_time[x]
        if gt >= 0 and clock - gt <= g_cap:
            ghost_time[x] = -1
            t = mh + ml
            mq[t - cap if t >= cap else t] = s
            ml += 1
        else:
            t = sh + sl
            sq[t - cap if t >= cap else t] = s
            sl += 1
        slot_node[s] = x
        freq[s] = _ADMITTED
        rec_of[s] = na
        pos[na] = i
        slot[na] = s
        na += 1
        if maps:
            slot_of[x] = s + off
            node_of_slot[s] = x
    for k in range(na):
        freq[slot[k]] &= 3
    st[1], st[2], st[3], st[4], st[5], st[6], st[9] = used, sh, sl, mh, ml, clock, st[9] + 1
    if dropped:
        return _compact(pos, slot, na)
    return pos[:na], slot[:na]


# ---------------------------------------------------------------------------------- hybrid


@njit(cache=True, nogil=True)
def hybrid_split(uniq: np.ndarray, slots: np.ndarray, num_static: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batch rows the dynamic part of a hybrid cache sees (all but the static part's hits):
    ``(positions in the batch, their ids, their slots in the dynamic part or -1)``, in one pass."""
    n = uniq.shape[0]
    rest = np.empty(n, np.int64)
    ids = np.empty(n, np.int64)
    sub = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        s = slots[i]
        if s < num_static and s >= 0:
            continue
        rest[k] = i
        ids[k] = uniq[i]
        sub[k] = s - num_static if s >= 0 else -1
        k += 1
    return rest[:k], ids[:k], sub[:k]


# -------------------------------------------------------------------- rank set (bitmap tree)


@njit(cache=True, nogil=True, inline="always")
def _msb(w: np.uint64) -> int:
    """Index of the highest set bit of a non-zero word (one instruction: no data-dependent branches)."""
    return 63 - leading_zeros(w)


@njit(cache=True, nogil=True, inline="always")
def rankset_add(bits: np.ndarray, offs: np.ndarray, r: int) -> None:
    """Insert ``r`` into the set (a tree of 64-bit words, level 0 the leaves)."""
    for lvl in range(offs.shape[0] - 1):
        w = offs[lvl] + (r >> 6)
        b = np.uint64(1) << np.uint64(r & 63)
        had = bits[w] != 0
        bits[w] |= b
        if had:
            return
        r >>= 6


@njit(cache=True, nogil=True, inline="always")
def rankset_remove(bits: np.ndarray, offs: np.ndarray, r: int) -> None:
    """Remove ``r`` (present) from the set."""
    for lvl in range(offs.shape[0] - 1):
        w = offs[lvl] + (r >> 6)
        bits[w] &= ~(np.uint64(1) << np.uint64(r & 63))
        if bits[w] != 0:
            return
        r >>= 6


@njit(cache=True, nogil=True, inline="always")
def rankset_max(bits: np.ndarray, offs: np.ndarray) -> int:
    """The largest member, -1 if the set is empty."""
    top = offs.shape[0] - 2
    if bits[offs[top]] == 0:
        return -1
    idx = 0
    for lvl in range(top, -1, -1):
        idx = (idx << 6) | _msb(bits[offs[lvl] + idx])
    return idx


def rankset_layout(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed words and level offsets of a rank set over ``[0, n)`` (the last level one word)."""
    sizes = []
    m = max(n, 1)
    while True:
        m = (m + 63) // 64
        sizes.append(m)
        if m == 1:
            break
    offs = np.zeros(len(sizes) + 1, np.int64)
    offs[1:] = np.cumsum(sizes)
    return np.zeros(int(offs[-1]), np.uint64), offs


# ------------------------------------------------------------------- planned (window Belady)

# columns of the planned policy's per-node table (one cache line per node touched): its next use
# (kept until the warm start only), its latest entry in the window, its static rank; one spare
P_NEXT, P_LAST, P_RANK = 0, 1, 2
# entries of the planned policy's state vector
S_CAP, S_USED, S_ENT_HEAD, S_ENT_TAIL, S_HI, S_NEXT = 0, 1, 2, 3, 4, 5


@njit(cache=True, nogil=True, inline="always")
def _bucket_push(b: int, s: int, bk: np.ndarray, ent_stack: np.ndarray, st: np.ndarray) -> None:
    """Slot ``s`` now has next use ``b`` (a batch in the window): push it on bucket ``b``'s stack.

    Bucket ``b``'s stack lives in the entry ring beside batch ``b``'s own entries (``bk[b]`` =
    (its first entry, fill)): each of ``b``'s distinct ids is pushed there at most once (between
    the use before ``b`` and ``b`` the row is not used, so it is not re-admitted), so the stack
    never outgrows the batch; and no entry goes stale (a resident keyed ``b`` leaves the bucket
    only by being popped, or when ``b`` is served and the whole bucket is dropped)."""
    h = b & (bk.shape[0] - 1)
    ent_stack[(bk[h, 0] + bk[h, 1]) & (ent_stack.shape[0] - 1)] = s
    bk[h, 1] += 1
    if b > st[S_HI]:
        st[S_HI] = b


@njit(cache=True, nogil=True, inline="always")
def _bucket_top(t: int, bk: np.ndarray, ent_stack: np.ndarray, st: np.ndarray) -> int:
    """A slot whose next use is the furthest in the window (after batch ``t``), the top of its
    bucket's stack (``st[S_HI]`` is left at its bucket); -1 if no resident has a next use."""
    bm = bk.shape[0] - 1
    hi = st[S_HI]
    while hi > t and bk[hi & bm, 1] == 0:
        hi -= 1
    st[S_HI] = hi
    if hi <= t:
        return -1
    h = hi & bm
    return ent_stack[(bk[h, 0] + bk[h, 1] - 1) & (ent_stack.shape[0] - 1)]


@njit(cache=True, nogil=True)
def planned_enter(b: int, ids: np.ndarray, node: np.ndarray, slot_of: np.ndarray, ent_next: np.ndarray,
                  ent_rank: np.ndarray, ent_stack: np.ndarray, st: np.ndarray, bk: np.ndarray, bits: np.ndarray,
                  offs: np.ndarray) -> None:
    """Batch ``b`` (distinct ids) enters the window: link each id's previous occurrence in the
    window to it; an id without one (or whose last occurrence is already served) gets ``b`` as
    its next use (a resident, by the store's ``slot_of``, moves from the rank set to bucket ``b``).
    Each entry keeps the id's static rank (``ent_rank``), read in order when the batch is served."""
    mask = ent_next.shape[0] - 1  # a power of two
    start = st[S_ENT_TAIL]
    served = st[S_ENT_HEAD]  # entries before this one are served
    h = b & (bk.shape[0] - 1)
    bk[h, 0] = start  # bucket b's stack: beside b's entries
    bk[h, 1] = 0
    n = ids.shape[0]
    last = np.empty(n, np.int64)
    node_flat = node.reshape(node.size)  # a view: prefetch takes 1-D arrays
    rank = np.empty(n, np.int64)
    for j in range(n):  # independent loads first (they overlap)
        if j + PREFETCH_AHEAD < n:
            prefetch(node_flat, ids[j + PREFETCH_AHEAD] * 4)
        last[j] = node[ids[j], P_LAST]
        rank[j] = node[ids[j], P_RANK]
    for j in range(n):
        if j + PREFETCH_AHEAD < n:
            prefetch(slot_of, ids[j + PREFETCH_AHEAD])
            p2 = last[j + PREFETCH_AHEAD]
            if p2 < served:  # may leave the rank set
                prefetch(bits, offs[0] + (rank[j + PREFETCH_AHEAD] >> 6))
            else:  # the previous occurrence to link
                prefetch(ent_next, p2 & mask)
        x = ids[j]
        a = start + j
        ent_next[a & mask] = -1
        ent_rank[a & mask] = rank[j]
        p = last[j]
        if p >= served:
            ent_next[p & mask] = b
        else:
            node[x, P_NEXT] = b
            s = slot_of[x]
            if s >= 0:
                rankset_remove(bits, offs, rank[j])
                _bucket_push(b, s, bk, ent_stack, st)
        node[x, P_LAST] = a
    st[S_ENT_TAIL] = start + n
    if b > st[S_HI]:
        st[S_HI] = b


@njit(cache=True, nogil=True, inline="always")
def _planned_place(s: int, nx: int, rank: int, st: np.ndarray, bk: np.ndarray, ent_stack: np.ndarray,
                   bits: np.ndarray, offs: np.ndarray, rank_slot: np.ndarray) -> None:
    """Key slot ``s`` by its next use ``nx`` (bucket), or by ``rank`` when none is known (rank set,
    which remembers the slot of each member)."""
    if nx >= 0:
        _bucket_push(nx, s, bk, ent_stack, st)
    else:
        rankset_add(bits, offs, rank)
        rank_slot[rank] = s


@njit(cache=True, nogil=True)
def planned_consume(t: int, slots: np.ndarray, ent_next: np.ndarray, ent_rank: np.ndarray, ent_stack: np.ndarray,
                    st: np.ndarray, bk: np.ndarray, bits: np.ndarray, offs: np.ndarray, rank_slot: np.ndarray,
                    rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Serve batch ``t`` (the window's first; ``slots``: its rows' slots at the start, from the
    store): Belady inside the window. Rows are ranked by next use (a batch index in the window),
    rows with no use in the window after them by their static rank; after the batch the cache
    holds the best ``capacity`` rows of (residents + batch). Hits are re-keyed first, then each
    miss replaces the worst resident if it ranks strictly better, else bypasses the cache.

    Nothing here touches the per-node table: next uses and ranks come in order from the entry
    ring, filled when the batches entered; a victim's slot
    comes from its bucket's stack or from ``rank_slot``. ``rec[s]`` = ``t << 32 | record`` of an
    admission into slot ``s`` made in this batch (undone if ``s`` is evicted again in it). The
    store keeps the id -> slot map."""
    cap = st[S_CAP]
    mask = ent_next.shape[0] - 1  # a power of two
    start = st[S_ENT_HEAD]
    n = slots.shape[0]
    pos = np.empty(n, np.int64)
    slot = np.empty(n, np.int64)
    miss_j = np.empty(n, np.int64)
    miss_next = np.empty(n, np.int64)
    rank = np.empty(n, np.int64)
    d = PREFETCH_AHEAD
    for j in range(n):
        rank[j] = ent_rank[(start + j) & mask]
    nm = 0
    for j in range(n):
        if j + d < n and slots[j + d] >= 0 and ent_next[(start + j + d) & mask] < 0:
            prefetch(rank_slot, rank[j + d])
            prefetch(bits, offs[0] + (rank[j + d] >> 6))
        nx = ent_next[(start + j) & mask]
        s = slots[j]
        if s >= 0:  # a hit: re-key (it leaves bucket t, which is dropped below)
            _planned_place(s, nx, rank[j], st, bk, ent_stack, bits, offs, rank_slot)
        else:
            miss_j[nm] = j
            miss_next[nm] = nx
            nm += 1
    bk[t & (bk.shape[0] - 1), 1] = 0  # bucket t is served: every entry in it was re-keyed
    na = 0
    dropped = 0
    tag = np.int64(t) << 32
    r = rankset_max(bits, offs)  # the worst resident without a next use; kept current below
    top = -2  # the slot of the worst resident with one (-2: to look up); only a pop changes it, as
    # admissions here are keyed below it
    for k in range(nm):
        if cap == 0:
            break
        j = miss_j[k]
        nx = miss_next[k]
        if st[S_USED] < cap:
            s = st[S_USED]
            st[S_USED] += 1
        else:
            if r >= 0:  # worst resident: no known use, lowest rank
                if nx < 0 and rank[j] >= r:
                    continue
                s = rank_slot[r]
                rankset_remove(bits, offs, r)
                r = rankset_max(bits, offs)
            else:  # worst resident: the furthest next use in the window
                if nx < 0:
                    continue
                if top == -2:
                    top = _bucket_top(t, bk, ent_stack, st)
                if nx >= st[S_HI]:
                    continue
                s = top
                h = st[S_HI] & (bk.shape[0] - 1)
                bk[h, 1] -= 1  # pop it
                top = -2
                if bk[h, 1] > d:  # the victims after it: their admission records
                    prefetch(rec, ent_stack[(bk[h, 0] + bk[h, 1] - d) & (ent_stack.shape[0] - 1)])
            if (rec[s] >> 32) == t:  # admitted earlier in this batch: that admission is undone
                pos[rec[s] & 0xFFFFFFFF] = -1
                dropped += 1
        _planned_place(s, nx, rank[j], st, bk, ent_stack, bits, offs, rank_slot)
        if nx < 0 and rank[j] > r:
            r = rank[j]
        rec[s] = tag | na
        pos[na] = j
        slot[na] = s
        na += 1
    st[S_ENT_HEAD] = start + n
    st[S_NEXT] = t + 1
    if dropped:
        return _compact(pos, slot, na)
    return pos[:na], slot[:na]


@njit(cache=True, nogil=True)
def planned_preload(ids: np.ndarray, node: np.ndarray, st: np.ndarray, bk: np.ndarray, ent_stack: np.ndarray,
                    bits: np.ndarray, offs: np.ndarray, rank_slot: np.ndarray) -> np.ndarray:
    """Key ``ids`` (not resident, at most the free slots) into the next free slots; returns the slots."""
    out = np.empty(ids.shape[0], np.int64)
    for k in range(ids.shape[0]):
        x = ids[k]
        s = st[S_USED]
        st[S_USED] += 1
        _planned_place(s, node[x, P_NEXT], node[x, P_RANK], st, bk, ent_stack, bits, offs, rank_slot)
        out[k] = s
    return out


# --------------------------------------------------------------------- Belady (offline, heap)


@njit(cache=True, nogil=True)
def _heap_up(h: np.ndarray, hpos: np.ndarray, key: np.ndarray, i: int) -> None:
    s = h[i]
    k = key[s]
    while i > 0:
        p = (i - 1) >> 1
        if key[h[p]] >= k:
            break
        h[i] = h[p]
        hpos[h[i]] = i
        i = p
    h[i] = s
    hpos[s] = i


@njit(cache=True, nogil=True)
def _heap_down(h: np.ndarray, hpos: np.ndarray, key: np.ndarray, i: int, size: int) -> None:
    s = h[i]
    k = key[s]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and key[h[c + 1]] > key[h[c]]:
            c += 1
        if key[h[c]] <= k:
            break
        h[i] = h[c]
        hpos[h[i]] = i
        i = c
    h[i] = s
    hpos[s] = i


@njit(cache=True, nogil=True)
def belady_simulate(flat: np.ndarray, offsets: np.ndarray, next_use: np.ndarray, preload: np.ndarray,
                    preload_key: np.ndarray, cap: int, num_nodes: int) -> tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray, np.ndarray]:
    """Belady's MIN with bypass over a whole recorded trace, at batch granularity.

    ``flat[offsets[t]:offsets[t+1]]`` are batch ``t``'s distinct ids, ``next_use`` the batch of
    each entry's next occurrence (the number of batches: never again). The cache starts with
    ``preload`` (keys: their first use). Residents sit in a max-heap on next use; after each batch
    the cache holds the ``cap`` rows of (residents + batch) used soonest (a miss replaces the
    heap's top only if used strictly sooner). Returns the hits of every batch and its admissions
    as ``(adm_offsets, adm_pos, adm_slot)``: the changeset the store replays, as Ginex's
    executor does."""
    nb = offsets.shape[0] - 1
    c1 = max(cap, 1)
    pslot = np.full(num_nodes, -1, np.int64)
    heap = np.empty(c1, np.int64)
    hpos = np.empty(c1, np.int64)
    key = np.empty(c1, np.int64)
    slot_node = np.full(c1, -1, np.int64)
    rec_of = np.zeros(c1, np.int64)
    rec_batch = np.full(c1, -1, np.int64)
    size = 0
    for k in range(preload.shape[0]):
        s = size
        slot_node[s] = preload[k]
        pslot[preload[k]] = s
        key[s] = preload_key[k]
        heap[size] = s
        size += 1
        _heap_up(heap, hpos, key, size - 1)
    hits = np.zeros(nb, np.int64)
    adm_off = np.zeros(nb + 1, np.int64)
    adm_pos = np.empty(flat.shape[0], np.int64)
    adm_slot = np.empty(flat.shape[0], np.int64)
    was_hit = np.zeros(0, np.bool_)
    na = 0
    for t in range(nb):
        a0, a1 = offsets[t], offsets[t + 1]
        if was_hit.shape[0] < a1 - a0:
            was_hit = np.zeros(a1 - a0, np.bool_)
        h = 0
        for a in range(a0, a1):
            s = pslot[flat[a]]
            was_hit[a - a0] = s >= 0
            if s >= 0:
                h += 1
                key[s] = next_use[a]
                _heap_up(heap, hpos, key, hpos[s])
                _heap_down(heap, hpos, key, hpos[s], size)
        hits[t] = h
        first = na
        if cap > 0:
            for a in range(a0, a1):
                if was_hit[a - a0]:
                    continue
                x = flat[a]
                nx = next_use[a]
                if size < cap:
                    s = size
                    heap[size] = s
                    size += 1
                    key[s] = nx
                    _heap_up(heap, hpos, key, size - 1)
                else:
                    s = heap[0]
                    if key[s] <= nx:
                        continue
                    pslot[slot_node[s]] = -1
                    _drop_record(s, adm_pos, rec_of, rec_batch, t)
                    key[s] = nx
                    _heap_down(heap, hpos, key, 0, size)
                slot_node[s] = x
                pslot[x] = s
                na = _record(s, a - a0, adm_pos, adm_slot, na, rec_of, rec_batch, t)
        k = first
        for r in range(first, na):  # drop the undone admissions of this batch
            if adm_pos[r] >= 0:
                adm_pos[k] = adm_pos[r]
                adm_slot[k] = adm_slot[r]
                k += 1
        na = k
        adm_off[t + 1] = na
    return hits, adm_off, adm_pos[:na].copy(), adm_slot[:na].copy()
