"""TieredFeatureStore: rows bit-identical to the base for any ids and capacity, counters per
tier, and a clear error for each kind of bad input with nothing half-built left behind."""

import threading

import numpy as np
import pytest
import torch
from gnnsys.storage import (
    CACHE_POLICIES,
    ORACLE_POLICIES,
    DiskFeatureStore,
    InMemoryFeatureStore,
    LRUPolicy,
    TieredFeatureStore,
    build_feature_store,
)

from gnnsys.errors import ConfigError, DataFormatError, GraphError
from gnnsys.graph import Graph

N, D = 200, 6


def features(dtype=torch.float32, seed=0, special=True):
    """Random rows; ``special``: with -0.0, inf and a subnormal (the stores' finite checks refuse inf)."""
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(seed)).to(dtype)
    if special and dtype.is_floating_point:
        x[0, 0], x[1, 1], x[2, 2] = -0.0, float("inf"), 1e-40 if dtype in (torch.float32, torch.float64) else 0.0
    return x


def graph():
    g = torch.Generator().manual_seed(0)
    return Graph.from_edge_index(torch.randint(0, N, (2, 800), generator=g), N, make_undirected=True,
                                 remove_self_loops=True, dedupe=True)


def id_batches():
    """Random batches, then: duplicates, unsorted, empty, the whole range, one id."""
    rng = np.random.default_rng(0)
    out = [torch.from_numpy(rng.choice(N, int(rng.integers(1, 60)), replace=False)) for _ in range(12)]
    out += [torch.tensor([7, 3, 7, 7, 199, 0, 3]), torch.tensor([150, 2, 99, 1]), torch.zeros(0, dtype=torch.long),
            torch.arange(N), torch.tensor([42]), torch.arange(N).flip(0).to(torch.int32)]
    return out


def same_bits(a, b):
    size = a.element_size()
    bits = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[size]
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.view(bits), b.view(bits))


def inputs(batches):
    counts = torch.zeros(N)
    for b in batches[:6]:
        counts[b.long()] += 1
    return dict(graph=graph(), counts=counts, train_nodes=torch.arange(0, N, 2), trace=batches, window=3)


def make(base, cap, name, batches, **kw):
    inp = inputs(batches)
    if name not in ORACLE_POLICIES:
        inp.pop("trace")
    return TieredFeatureStore(base, cap, name, **inp, **kw)


@pytest.mark.parametrize("name", CACHE_POLICIES + ORACLE_POLICIES)
@pytest.mark.parametrize("cap", (0, 1, 23, N))
def test_rows_bit_identical_for_every_policy(name, cap):
    x = features()
    batches = id_batches()
    store = make(x, cap, name, batches)
    for t, b in enumerate(batches):
        store.plan(batches[t:t + store.lookahead])
        out = store.gather(b)
        assert same_bits(out, x[b.long()]), (name, cap, t)
        # the slot map and its inverse agree, and the cached rows are the base's
        held = store.cached_ids()
        live = np.flatnonzero(held >= 0)
        assert (store.slot_of[held[live]] == live).all() and (store.slot_of >= 0).sum() == live.size
        assert same_bits(store.cache_rows[torch.from_numpy(live)], x[torch.from_numpy(held[live])])
    s = store.stats()
    assert s["cache"]["requests"] == sum(len(set(b.tolist())) for b in batches)
    assert s["cache"]["served_rows"] == sum(b.numel() for b in batches)
    if cap == N:
        assert s["cache"]["hit_rate"] == 1.0 and s["host"]["rows"] == 0
    if cap == 0:
        assert s["cache"]["hits"] == 0 and store.resident_rows == 0


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.uint8))
def test_rows_bit_identical_for_other_dtypes(dtype):
    x = features(dtype)
    batches = id_batches()
    for name in ("s3fifo", "planned"):
        store = make(x, 31, name, batches)
        for t, b in enumerate(batches):
            store.plan(batches[t:t + store.lookahead])
            assert same_bits(store.gather(b), x[b.long()])


def test_nan_payloads_survive_the_cache():
    x = features()
    x.view(torch.int32)[5, 0] = 0x7FC00123  # a NaN with a payload
    store = TieredFeatureStore(x, 50, "lru")
    for _ in range(2):
        assert same_bits(store.gather(torch.tensor([5, 6])), x[[5, 6]])


@pytest.mark.parametrize("name", ("static-degree", "s3fifo", "planned"))
def test_disk_tier_bit_identical(tmp_path, name):
    x = features(special=False)
    disk = DiskFeatureStore.create(tmp_path / "x.npy", x.numpy())
    batches = id_batches()
    store = make(disk, 40, name, batches)
    for t, b in enumerate(batches):
        store.plan(batches[t:t + store.lookahead])
        assert same_bits(store.gather(b), x[b.long()])
    s = store.stats()
    assert set(s) == {"cache", "disk"}
    assert s["disk"]["rows"] == s["cache"]["requests"] - s["cache"]["hits"]


def test_stats_bytes_per_tier_and_reduction():
    x = features(special=False)
    batches = id_batches()[:12]
    store = make(InMemoryFeatureStore(x), 60, "static-saint", batches)
    for b in batches:
        store.gather(b)
    s = store.stats()
    row = D * 4
    c, h = s["cache"], s["host"]
    assert c["requests"] == sum(b.numel() for b in batches)  # these batches have no duplicates
    assert c["bytes"] == c["hits"] * row and h["bytes"] == (c["requests"] - c["hits"]) * row
    assert c["hit_rate"] == pytest.approx(c["hits"] / c["requests"])
    no_cache = c["requests"] * row
    assert (no_cache - h["bytes"]) / no_cache >= c["hit_rate"] - 1e-12
    assert c["resident_rows"] == 60 and c["resident_bytes"] == 60 * row and h["preloaded_rows"] == 60
    assert c["policy"] == "static-saint" and c["device"] == "cpu" and c["batches"] == len(batches)
    store.reset_stats()
    z = store.stats()
    assert z["cache"]["requests"] == z["cache"]["hits"] == z["host"]["rows"] == 0
    assert z["cache"]["resident_rows"] == 60  # the rows stay


def test_all_does_not_go_through_the_policy():
    x = features()
    store = TieredFeatureStore(x, 20, "lru")
    before = store.cached_ids()
    assert torch.equal(store.all(), x)
    s = store.stats()
    assert s["cache"]["requests"] == 0 and s["host"]["all_rows"] == N
    assert (store.cached_ids() == before).all()
    assert store.num_nodes == N and store.dim == D and store.dtype == torch.float32 and len(store) == N


def test_output_device_and_default():
    x = features()
    store = TieredFeatureStore(x, 20, "s3fifo")
    out = store.gather(torch.tensor([1, 2]), device="cpu")
    assert out.device.type == "cpu" and store.gather(torch.tensor([3])).device.type == "cpu"


def test_unplanned_gathers_leave_a_planned_cache_alone():
    x = features()
    batches = id_batches()[:6]
    store = TieredFeatureStore(x, 30, "planned", window=3)
    store.plan(batches[:3])
    held = store.cached_ids()
    other = torch.tensor([199, 198, 197])
    assert same_bits(store.gather(other), x[other])  # not the planned batch 0
    assert (store.cached_ids() == held).all() and store.stats()["cache"]["unplanned_batches"] == 1
    store.gather(batches[0])  # the planned one is still next
    assert store.stats()["cache"]["unplanned_batches"] == 1 and store.policy.known_ahead() == 2


def test_plan_may_run_ahead_of_the_gathers():
    """A pipeline whose prefetch thread lags shows the window starting one or two batches past the
    next gather; the store aligns it (by tensor, or by ids for copies) and the hits are those of
    the in-order protocol."""
    x = features()
    batches = [torch.from_numpy(np.random.default_rng(s).choice(N, 40, replace=False)) for s in range(40)]

    def hits(lag: int, copies: bool) -> list[int]:
        store = TieredFeatureStore(x, 30, "planned", window=5)
        out, prev = [], 0
        for t, b in enumerate(batches):
            start = min(t + lag, len(batches) - 1) if t else 0
            window = batches[start:start + 6]
            store.plan([w.clone() for w in window] if copies else window)
            assert same_bits(store.gather(b), x[b])
            h = store.stats()["cache"]["hits"]
            out.append(h - prev)
            prev = h
        s = store.stats()["cache"]
        assert s["unplanned_batches"] == 0 and s["plan_mismatches"] == 0
        return out

    in_order = hits(0, False)
    assert hits(1, False) == in_order and hits(2, False) == in_order and hits(1, True) == in_order


def test_gathers_from_two_threads_stay_consistent():
    x = features()
    store = TieredFeatureStore(x, 40, "s3fifo")
    batches = [torch.from_numpy(np.random.default_rng(s).choice(N, 50, replace=False)) for s in range(60)]
    bad = []

    def work(part):
        for b in part:
            if not same_bits(store.gather(b), x[b]):
                bad.append(b)

    ts = [threading.Thread(target=work, args=(batches[i::2],)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad and store.stats()["cache"]["batches"] == 60


# ------------------------------------------------------------------------------ factory


def test_build_feature_store_kinds():
    x = features(special=False)
    g = graph()
    mem = build_feature_store(x, kind="memory", graph=g)
    assert isinstance(mem, InMemoryFeatureStore) and torch.equal(mem.gather(torch.tensor([3])), x[[3]])
    tiered = build_feature_store(InMemoryFeatureStore(x), kind="tiered", cache_fraction=0.25, cache_policy="hybrid",
                                 cache_device="cpu", graph=g, train_nodes=torch.arange(50))
    assert isinstance(tiered, TieredFeatureStore) and tiered.capacity == 50
    assert tiered.stats()["cache"]["policy"] == "hybrid"
    with pytest.raises(ConfigError, match="unknown feature store kind 'gpu'"):
        build_feature_store(x, kind="gpu")
    with pytest.raises(ConfigError, match="whole trace"):
        build_feature_store(x, kind="tiered", cache_policy="belady", graph=g)
    with pytest.raises(ConfigError, match="static-saint.*counts"):
        build_feature_store(x, kind="tiered", cache_policy="static-saint", graph=g)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("capacity, match", [
    (-1, "negative"), (N + 1, "exceeds the 200 rows"), (1.5, "outside \\[0, 1\\]"), (-0.1, "outside"),
    (True, "number of rows"), ("10%", "number of rows")])
def test_bad_capacity(capacity, match):
    with pytest.raises(ConfigError, match=match):
        TieredFeatureStore(features(), capacity, "lru")


def test_capacity_fraction_and_bounds():
    assert TieredFeatureStore(features(), 0.1, "lru").capacity == 20
    assert TieredFeatureStore(features(), 1.0, "lru").capacity == N
    assert TieredFeatureStore(features(), N, "lru").capacity == N


def test_unknown_policy():
    with pytest.raises(ConfigError, match="unknown cache policy 'fifo'.*s3fifo"):
        TieredFeatureStore(features(), 10, "fifo")


def test_unavailable_cache_device_leaves_the_policy_unbound():
    policy = LRUPolicy()
    bad = "cuda:99" if torch.cuda.is_available() else "cuda"
    with pytest.raises(ConfigError, match="not available.*cpu"):
        TieredFeatureStore(features(), 10, policy, cache_device=bad)
    with pytest.raises(ConfigError, match="not supported"):
        TieredFeatureStore(features(), 10, "lru", cache_device="meta")
    with pytest.raises(ConfigError, match="not a device name"):
        TieredFeatureStore(features(), 10, "lru", cache_device="gpu0")
    assert not policy.bound  # nothing half-built: the same policy object still works
    store = TieredFeatureStore(features(), 10, policy)
    assert policy.bound and store.resident_rows == 0
    with pytest.raises(ConfigError, match="already serves a store"):
        TieredFeatureStore(features(), 10, policy)


def test_bad_ids():
    store = TieredFeatureStore(features(), 10, "lru")
    with pytest.raises(GraphError, match="out of range \\[0, 200\\).*global node ids"):
        store.gather(torch.tensor([0, 200]))
    with pytest.raises(GraphError, match="out of range"):
        store.gather(torch.tensor([-1]))
    with pytest.raises(GraphError, match="integers, got torch.float32.*torch.long"):
        store.gather(torch.tensor([1.0, 2.0]))
    with pytest.raises(GraphError, match="integers"):
        store.gather(torch.tensor([True]))
    with pytest.raises(GraphError, match="1-D"):
        store.gather(torch.tensor([[1, 2]]))
    assert store.stats()["cache"]["batches"] == 0  # rejected before anything was counted or cached
    planned = TieredFeatureStore(features(), 10, "planned", window=2)
    with pytest.raises(GraphError, match="out of range"):
        planned.plan([torch.tensor([0, 500])])  # a planned cache checks what it is told
    # the range is checked in the dedupe pass: a bad id after good ones, in a later batch of the call
    with pytest.raises(GraphError, match="ids -3..7 out of range"):
        planned.plan([torch.tensor([1, 2]), torch.tensor([5, 7, -3, 5])])
    with pytest.raises(GraphError, match="integers, got torch.float32"):
        planned.plan([torch.tensor([1.0])])
    with pytest.raises(GraphError, match="1-D"):
        planned.plan([torch.tensor([[1, 2]])])
    assert planned.policy.known_ahead() == 0  # nothing half-planned
    planned.plan([torch.tensor([3, 1, 3]), torch.tensor([1])])
    assert [planned.policy.known_batch(i).tolist() for i in range(2)] == [[3, 1], [1]]


def test_feature_rows_must_match_graph_nodes():
    small = Graph.from_edge_index(torch.tensor([[0, 1], [1, 2]]), 150)
    with pytest.raises(GraphError, match="200 rows but the graph has 150 nodes"):
        TieredFeatureStore(features(), 10, "static-degree", graph=small)
    with pytest.raises(GraphError, match="200 rows but the graph has 150 nodes"):
        build_feature_store(features(special=False), kind="memory", graph=small)
    with pytest.raises(GraphError, match="200 rows but the graph has 150 nodes"):
        build_feature_store(features(), kind="tiered", cache_policy="lru", graph=small)


def test_bad_base_and_policy_inputs():
    with pytest.raises(DataFormatError, match="\\[num_nodes, dim\\] matrix"):
        TieredFeatureStore(torch.randn(N), 10, "lru")
    with pytest.raises(ConfigError, match="base must be"):
        TieredFeatureStore([[1.0]], 1, "lru")
    with pytest.raises(DataFormatError, match="one count per node"):
        TieredFeatureStore(features(), 10, "static-saint", counts=torch.ones(N - 1))
    with pytest.raises(ConfigError, match="needs the graph"):
        TieredFeatureStore(features(), 10, "static-degree")
    with pytest.raises(ConfigError, match="needs the recorded trace"):
        TieredFeatureStore(features(), 10, "belady")
    with pytest.raises(ConfigError, match="window must be a positive"):
        TieredFeatureStore(features(), 10, "planned", window=0)
    with pytest.raises(ConfigError, match="static_fraction"):
        TieredFeatureStore(features(), 10, "hybrid", graph=graph(), static_fraction=1.5)
    with pytest.raises(ConfigError, match="policy object"):
        TieredFeatureStore(features(), 10, LRUPolicy(), window=3)
    with pytest.raises(ConfigError, match="zero_copy=True"):
        TieredFeatureStore(features(), 10, "lru", zero_copy=True)


def test_a_policy_that_fails_to_bind_stays_unbound():
    from gnnsys.storage import StaticPolicy

    policy = StaticPolicy(np.ones(N - 5), "static-mine")  # a score of the wrong length
    with pytest.raises(ConfigError, match="195 entries for 200 rows"):
        TieredFeatureStore(features(), 10, policy)
    assert not policy.bound


def test_belady_refuses_gathers_off_its_trace():
    batches = id_batches()[:3]
    store = TieredFeatureStore(features(), 10, "belady", trace=batches)
    store.gather(batches[0])
    with pytest.raises(ConfigError, match="different from batch 1 of the recorded trace"):
        store.gather(batches[2])
