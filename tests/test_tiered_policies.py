"""Cache policies of the tiered store against straightforward pure-Python simulations.

Each reference below is written from the policy's definition with Python containers
(``OrderedDict``, ``deque``, sets, brute-force next-use scans), independently of the numba
kernels; the store's per-batch hit counters must equal the reference's on small traces that
include batches larger than the cache, duplicates and empty batches. Then the orderings that
must hold for any trace: Belady >= every policy, best static set >= every static policy,
planned with a window of the whole trace == Belady."""

from collections import OrderedDict, deque

import networkx as nx
import numpy as np
import pytest
import torch
from gnnsys.storage import CACHE_POLICIES, ORACLE_POLICIES, TieredFeatureStore
from gnnsys.storage.scores import ranking, reverse_pagerank

from gnnsys.graph import Graph

N = 300


def skewed_trace(seed, num_batches=30, n=N, sizes=(5, 80), dup_every=7):
    """Batches of distinct ids drawn with Zipf-like weights; some repeat ids inside a batch, one
    is empty, one is larger than the small caches."""
    rng = np.random.default_rng(seed)
    w = (np.arange(n) + 1.0) ** -0.9
    w = w[rng.permutation(n)]
    w /= w.sum()
    trace = []
    for t in range(num_batches):
        size = int(rng.integers(*sizes))
        b = rng.choice(n, size, replace=False, p=w)
        if dup_every and t % dup_every == 3:
            b = np.concatenate([b, b[: size // 3]])
            rng.shuffle(b)
        trace.append(torch.from_numpy(b))
    trace.insert(num_batches // 2, torch.zeros(0, dtype=torch.long))
    trace.insert(num_batches // 3, torch.from_numpy(rng.permutation(n)[:200]))
    return trace


def distinct(b):
    return list(dict.fromkeys(torch.as_tensor(b).tolist()))


def run_store(policy, batches, cap, x=None, **inputs):
    """Per-batch hits of the store, plan() before every gather (as the loading pipeline does)."""
    x = torch.randn(N, 4, generator=torch.Generator().manual_seed(1)) if x is None else x
    store = TieredFeatureStore(x, cap, policy, **inputs)
    hits, prev = [], 0
    for t, b in enumerate(batches):
        store.plan(batches[t:t + store.lookahead])
        out = store.gather(b)
        assert torch.equal(out, x[b])
        h = store.stats()["cache"]["hits"]
        hits.append(h - prev)
        prev = h
    assert store.stats()["cache"]["unplanned_batches"] == 0
    return hits, store


# ---------------------------------------------------------------- reference simulations


def ref_static(trace, cap, score):
    keep = set(ranking(score)[:cap].tolist())
    return [sum(x in keep for x in distinct(b)) for b in trace]


def ref_lru(trace, cap, warm):
    cache = OrderedDict()  # oldest first
    for x in reversed(ranking(warm)[:cap].tolist()):
        cache[x] = True
    hits = []
    for b in trace:
        b = distinct(b)
        hits.append(sum(x in cache for x in b))
        for x in b:
            if x in cache:
                cache.move_to_end(x)
            elif cap > 0:
                cache[x] = True
                if len(cache) > cap:
                    cache.popitem(last=False)
    return hits, set(cache)


class RefS3FIFO:
    """S3-FIFO as in GraphBolt: small queue (target C // 10), main queue, ghost of the last
    C - C // 10 rows evicted from the small queue; 2-bit counts."""

    def __init__(self, cap, warm_ids):
        self.cap, self.target, self.ghost_cap = cap, cap // 10, cap - cap // 10
        self.S, self.M = deque(), deque(list(reversed(warm_ids)))  # popleft = evicted first
        self.freq = dict.fromkeys(warm_ids, 0)
        self.ghost_log, self.ghost_last = [], {}

    def in_ghost(self, x):
        return x in self.ghost_last and len(self.ghost_log) - self.ghost_last[x] <= self.ghost_cap

    def evict(self):
        while len(self.S) > self.target:
            x = self.S.popleft()
            if self.freq[x] > 0:
                self.freq[x] = 0
                self.M.append(x)
            else:
                del self.freq[x]
                self.ghost_last[x] = len(self.ghost_log)
                self.ghost_log.append(x)
                return
        while True:
            x = self.M.popleft()
            if self.freq[x] > 0:
                self.freq[x] -= 1
                self.M.append(x)
            else:
                del self.freq[x]
                return

    def access(self, x):
        if x in self.freq:
            self.freq[x] = min(3, self.freq[x] + 1)
            return
        if self.cap == 0:
            return
        if len(self.freq) >= self.cap:
            self.evict()
        if self.in_ghost(x):
            del self.ghost_last[x]
            self.M.append(x)
        else:
            self.S.append(x)
        self.freq[x] = 0


def ref_s3fifo(trace, cap, warm, warm_ids=None):
    c = RefS3FIFO(cap, ranking(warm)[:cap].tolist() if warm_ids is None else warm_ids)
    hits = []
    for b in trace:
        b = distinct(b)
        hits.append(sum(x in c.freq for x in b))
        for x in b:
            c.access(x)
    return hits, set(c.freq)


def ref_window_belady(trace, cap, window=None, rank=None):
    """Keep the ``cap`` rows used soonest in the window (rows with no use in it by ``rank``);
    ``window=None``: the whole trace (Belady). Brute-force next-use scans."""
    sets = [set(distinct(b)) for b in trace]
    T = len(trace)
    rank = np.arange(N) if rank is None else rank

    def key(x, lo, hi):
        for u in range(lo, min(hi, T)):
            if x in sets[u]:
                return (0, u)
        return (1, int(rank[x]))

    w = T + 1 if window is None else window
    cache = set(sorted(range(N), key=lambda x: key(x, 0, w))[:cap])
    hits = []
    for t in range(T):
        hits.append(len(sets[t] & cache))
        cand = cache | sets[t]
        cache = set(sorted(cand, key=lambda x: key(x, t + 1, t + w))[:cap])
    return hits


# ------------------------------------------------------------------------------- tests

CAPS = (0, 1, 3, 10, 37, N)


@pytest.fixture(scope="module")
def trace():
    return skewed_trace(0)


@pytest.fixture(scope="module")
def warm():
    return np.random.default_rng(5).random(N)


@pytest.mark.parametrize("cap", CAPS)
def test_lru_matches_reference(trace, warm, cap):
    hits, store = run_store("lru", trace, cap, counts=torch.from_numpy(warm))
    ref_hits, ref_set = ref_lru(trace, cap, warm)
    assert hits == ref_hits
    assert set(store.cached_ids()[store.cached_ids() >= 0].tolist()) == ref_set


@pytest.mark.parametrize("cap", CAPS)
def test_s3fifo_matches_reference(trace, warm, cap):
    hits, store = run_store("s3fifo", trace, cap, counts=torch.from_numpy(warm))
    ref_hits, ref_set = ref_s3fifo(trace, cap, warm)
    assert hits == ref_hits
    assert set(store.cached_ids()[store.cached_ids() >= 0].tolist()) == ref_set


@pytest.mark.parametrize("cap", (10, 37, 120))
def test_s3fifo_ghost_and_main_queue_are_exercised(cap):
    """A long trace over few rows, so rows come back from the ghost into the main queue."""
    trace = skewed_trace(3, num_batches=80, sizes=(5, 30), dup_every=0)
    warm = np.zeros(N)
    hits, store = run_store("s3fifo", trace, cap, counts=torch.from_numpy(warm))
    assert hits == ref_s3fifo(trace, cap, warm)[0]
    pol = store.policy
    assert pol.state[6] > 0  # rows went to the ghost
    assert pol.state[5] > 0  # the main queue holds rows


@pytest.mark.parametrize("cap", CAPS)
def test_hybrid_matches_static_plus_reference_s3fifo(trace, warm, cap):
    hits, _ = run_store("hybrid", trace, cap, counts=torch.from_numpy(warm), static_fraction=0.5)
    order = ranking(warm)
    ns = int(round(0.5 * cap))
    static = set(order[:ns].tolist())
    dyn = RefS3FIFO(cap - ns, order[ns:cap].tolist())
    ref = []
    for b in trace:
        b = distinct(b)
        ref.append(sum(x in static or x in dyn.freq for x in b))
        for x in b:
            if x not in static:
                dyn.access(x)
    assert hits == ref


@pytest.mark.parametrize("cap", (1, 3, 37, 120))
@pytest.mark.parametrize("name", ["s3fifo", "hybrid"])
def test_policies_that_update_the_maps_decide_the_same_without_them(trace, warm, name, cap):
    """S3-FIFO (and the hybrid's S3-FIFO part) update a CPU store's slot maps in their own pass;
    a CUDA store applies their admissions itself (``step`` without maps). Both ways, the same
    admissions and the same maps, batch by batch."""
    from gnnsys.storage import kernels
    from gnnsys.storage.policies import make_policy

    pols = [make_policy(name, N, counts=torch.from_numpy(warm), static_fraction=0.5) for _ in range(2)]
    maps = []
    for p in pols:
        ids = p.bind(N, cap)
        slot_of, node_of_slot = np.full(N, -1, np.int32), np.full(max(cap, 1), -1, np.int64)
        kernels.apply_admissions(slot_of, node_of_slot, ids, np.arange(ids.size))
        maps.append((slot_of, node_of_slot))
    assert pols[0].updates_maps
    for b in trace:
        u = np.array(distinct(b), np.int64)
        fused = pols[0].step(u, maps[0][0][u].astype(np.int64), maps[0])
        apart = pols[1].step(u, maps[1][0][u].astype(np.int64))
        kernels.apply_admissions(*maps[1], u[apart[0]], apart[1])
        assert all(np.array_equal(a, b) for a, b in zip(fused, apart))
        assert np.array_equal(maps[0][0], maps[1][0]) and np.array_equal(maps[0][1], maps[1][1])


@pytest.mark.parametrize("cap", CAPS)
def test_belady_matches_reference(trace, cap):
    hits, _ = run_store("belady", trace, cap, trace=trace)
    assert hits == ref_window_belady(trace, cap)


@pytest.mark.parametrize("window", (1, 2, 5, 13))
@pytest.mark.parametrize("cap", (0, 1, 10, 37, 120))
def test_planned_matches_reference(trace, warm, cap, window):
    hits, _ = run_store("planned", trace, cap, counts=torch.from_numpy(warm), window=window)
    rank = np.empty(N, np.int64)
    rank[ranking(warm)] = np.arange(N)
    assert hits == ref_window_belady(trace, cap, window, rank)


@pytest.mark.parametrize("cap", (1, 10, 37, 120))
def test_planned_with_the_whole_trace_as_window_is_belady(trace, warm, cap):
    planned, _ = run_store("planned", trace, cap, counts=torch.from_numpy(warm), window=len(trace))
    belady, _ = run_store("belady", trace, cap, trace=trace)
    assert planned == belady


def test_planned_window_grows_its_entry_ring():
    """A window holding more entries than the initial ring (65,536) is re-laid out correctly.
    The ring is sized for the window from the first batch, so that one is small here: the
    larger batches after it make the ring grow while the window fills."""
    trace = [torch.from_numpy(np.random.default_rng(t).permutation(N)[:290 if t else 20]) for t in range(260)]
    hits, store = run_store("planned", trace, 150, window=240)
    assert store.policy.ent_next.shape[0] > 1 << 16
    belady, _ = run_store("belady", trace, 150, trace=trace)
    # a window of 240 of 260 batches: only the last 20 batches' uses are unseen at the start
    assert sum(hits) == sum(ref_window_belady(trace, 150, 240))
    assert sum(hits) <= sum(belady)


@pytest.mark.parametrize("name", ("static-degree", "static-saint", "best-static"))
def test_static_policies_match_reference(trace, warm, name):
    g = _graph()
    counts = torch.from_numpy(warm)
    fut = np.zeros(N)
    for b in trace:
        fut[distinct(b)] += 1
    score = {"static-degree": g.degree().numpy().astype(float), "static-saint": warm, "best-static": fut}[name]
    for cap in CAPS:
        hits, _ = run_store(name, trace, cap, graph=g, counts=counts, trace=trace)
        assert hits == ref_static(trace, cap, score)


def _graph(seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, N, (2, 1500), generator=g)
    ei = ei[:, ei[0] < (ei[1] + 50)]  # some direction bias: in- and out-degrees differ
    return Graph.from_edge_index(ei, N, remove_self_loops=True, dedupe=True)


def test_reverse_pagerank_matches_networkx():
    g = _graph()
    train = torch.arange(0, N, 3)
    ours = reverse_pagerank(g, train, alpha=0.85, tol=1e-13)
    G = nx.DiGraph()
    G.add_nodes_from(range(N))
    ei = g.to_edge_index().t().tolist()
    G.add_edges_from((v, u) for u, v in ei)  # the reversed graph
    pers = {v: (1.0 if v % 3 == 0 else 0.0) for v in range(N)}
    ref = nx.pagerank(G, alpha=0.85, personalization=pers, tol=1e-14, max_iter=1000)
    assert np.allclose(ours, [ref[v] for v in range(N)], atol=1e-10)
    assert abs(ours.sum() - 1.0) < 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_belady_bounds_every_policy_and_best_static_every_static(seed):
    trace = skewed_trace(100 + seed, num_batches=25)
    g = _graph(seed)
    counts = torch.from_numpy(np.random.default_rng(seed).random(N))
    x = torch.randn(N, 2)
    for cap in (1, 10, 37, 120):
        total = {}
        for name in CACHE_POLICIES + ORACLE_POLICIES:
            hits, _ = run_store(name, trace, cap, x=x, graph=g, counts=counts, trace=trace,
                                train_nodes=torch.arange(0, N, 2), window=4)
            total[name] = sum(hits)
        assert all(total["belady"] >= v for v in total.values()), (cap, total)
        for name in ("static-degree", "static-pagerank", "static-saint"):
            assert total["best-static"] >= total[name], (cap, name, total)


@pytest.mark.parametrize("cap", (3, 37, 120))
def test_int32_counters_renumber_exactly(trace, warm, cap, monkeypatch):
    """LRU stamps and S3-FIFO ghost times are int32 and renumbered before they overflow; force
    that every few batches and the hits still equal the references."""
    import gnnsys.storage.policies as policies

    monkeypatch.setattr(policies, "_STAMP_LIMIT", 7)
    long_trace = trace + skewed_trace(9, num_batches=20)
    hits, _ = run_store("lru", long_trace, cap, counts=torch.from_numpy(warm))
    assert hits == ref_lru(long_trace, cap, warm)[0]
    hits, store = run_store("s3fifo", long_trace, cap, counts=torch.from_numpy(warm))
    assert hits == ref_s3fifo(long_trace, cap, warm)[0]
    st = store.policy.state
    assert cap == 3 or st[6] - st[8] < 7 + 200  # the ghost clock was shifted back
