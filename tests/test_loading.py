"""The loading pipeline: sampler -> operators -> features -> device, the same batches with or
without prefetching, bit-identical training, the look-ahead window, errors from the worker."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import torch
from gnnsys.models import build_model
from gnnsys.samplers.full import FullGraphLoader, GraphBatchLoader, LinkBatchLoader
from gnnsys.samplers.saint_samplers import SaintRandomWalkSampler
from gnnsys.storage import InMemoryFeatureStore

from gnnsys.api import train
from gnnsys.batch import MiniBatch
from gnnsys.config import TrainConfig
from gnnsys.datasets.loaders.synthetic import load_sbm, load_synthetic_graphs
from gnnsys.datasets.splits import link_split
from gnnsys.errors import ConfigError
from gnnsys.loading import FetchFeatures, LoadingPipeline, full_batch, operator_norms


@pytest.fixture(scope="module")
def sbm():
    return load_sbm("synthetic-sbm", num_nodes=500, seed=0)


def _same(a: MiniBatch, b: MiniBatch) -> None:
    for name in ("node_ids", "edge_index", "x", "y", "edge_weight", "target", "loss_weight", "pos_edges",
                 "neg_edges", "graph_index"):
        u, v = getattr(a, name), getattr(b, name)
        assert (u is None) == (v is None), name
        if u is not None:
            assert torch.equal(u, v), name


def test_prefetched_batches_equal_inline_batches(sbm):
    s1 = SaintRandomWalkSampler(sbm.graph, 30, 2, sbm.split["train"], seed=3, graph_mode="full")
    s2 = SaintRandomWalkSampler(sbm.graph, 30, 2, sbm.split["train"], seed=3, graph_mode="full")
    s1.compute_normalization(3)
    s2.compute_normalization(3)
    for _ in range(2):  # two epochs: the stream advances the same way
        a = list(LoadingPipeline(s1, sbm, operators=("gcn",), prefetch=2))
        b = list(LoadingPipeline(s2, sbm, operators=("gcn",), prefetch=0))
        assert len(a) == len(b) == len(s1)
        for u, v in zip(a, b):
            _same(u, v)
            assert torch.equal(u.x, sbm.features.gather(u.node_ids))
            assert torch.equal(u.adj("gcn").to_dense(), v.adj("gcn").to_dense())
            assert "gcn" in u._adj  # built in the pipeline, before the step


def test_full_graph_link_and_graph_batches_go_through_the_pipeline(sbm):
    full = list(LoadingPipeline(FullGraphLoader(sbm), sbm))
    assert len(full) == 1 and torch.equal(full[0].x, sbm.features.all()) and torch.equal(full[0].y, sbm.labels)
    ref = MiniBatch.full(sbm)
    assert torch.equal(ref.x, sbm.features.all()) and torch.equal(ref.edge_index, sbm.graph.to_edge_index())
    ldata = link_split(load_sbm("synthetic-sbm", num_nodes=300, seed=1), seed=0)
    a = list(LoadingPipeline(LinkBatchLoader(ldata, batch_size=200, seed=4), ldata, prefetch=1))
    b = list(LoadingPipeline(LinkBatchLoader(ldata, batch_size=200, seed=4), ldata, prefetch=0))
    assert len(a) == len(b) > 1
    for u, v in zip(a, b):
        _same(u, v)
        assert u.x is a[0].x  # the whole graph's rows are fetched once for all batches of pairs
    graphs = load_synthetic_graphs("synthetic-graphs", num_graphs=40)
    gb = list(LoadingPipeline(GraphBatchLoader(graphs, torch.arange(40), batch_size=16, shuffle=True, seed=0), graphs))
    assert [b.num_graphs for b in gb] == [16, 16, 8]
    for b in gb:
        assert torch.equal(b.x, graphs.features.gather(b.node_ids)) and b.y.numel() == b.num_graphs


@pytest.mark.parametrize("sampler", ["full", "saint-rw"])
def test_training_is_bit_identical_with_and_without_prefetch(sampler):
    kw = dict(dataset="synthetic-sbm", epochs=6, sampler=sampler, saint_coverage=3, quiet=True, seed=2, dropout=0.5)
    a = train(TrainConfig(prefetch=0, **kw))
    b = train(TrainConfig(prefetch=2, **kw))
    la = [r["loss"] for r in a["runs"][0]["history"]]
    lb = [r["loss"] for r in b["runs"][0]["history"]]
    assert la == lb and a["test"] == b["test"]


class _PlanningStore(InMemoryFeatureStore):
    """Records what the pipeline shows it ahead of each gather."""

    lookahead = 3

    def __init__(self, x):
        super().__init__(x)
        self.plans: list[list[torch.Tensor]] = []
        self.gathered: list[torch.Tensor] = []

    def plan(self, upcoming):
        self.plans.append([u.clone() for u in upcoming])

    def gather(self, ids, device=None):
        self.gathered.append(ids.clone())
        return super().gather(ids, device)


def test_lookahead_window_shows_the_next_batches_before_each_gather(sbm):
    store = _PlanningStore(sbm.features.all())
    s = SaintRandomWalkSampler(sbm.graph, 20, 2, seed=5, num_subgraphs=7)
    got = list(LoadingPipeline(s, fetch=FetchFeatures(store), prefetch=1))
    ref = SaintRandomWalkSampler(sbm.graph, 20, 2, seed=5, num_subgraphs=7).sample_at(range(7))
    assert len(got) == 7 and len(store.plans) == 7
    for t, plan in enumerate(store.plans):
        assert torch.equal(store.gathered[t], ref[t].node_ids)
        assert len(plan) == min(4, 7 - t)  # this batch and up to 3 ahead
        for j, ids in enumerate(plan):
            assert torch.equal(ids, ref[t + j].node_ids)


class _Boom(Exception):
    pass


def test_worker_errors_reach_the_consumer_and_abandoned_iterators_stop_the_worker(sbm):
    def source():
        yield from FullGraphLoader(sbm)
        raise _Boom("sampler failed")

    with pytest.raises(_Boom, match="sampler failed"):
        list(LoadingPipeline(source(), sbm, prefetch=1))
    s = SaintRandomWalkSampler(sbm.graph, 20, 2, seed=5, num_subgraphs=50)
    before = threading.active_count()
    it = iter(LoadingPipeline(s, sbm, prefetch=2))
    next(it)
    it.close()
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before
    with pytest.raises(ConfigError, match="prefetch"):
        LoadingPipeline(s, sbm, prefetch=-1)
    with pytest.raises(ConfigError, match="prefetch"):
        TrainConfig(prefetch=-2).validate()


def test_operator_norms_and_full_batch_operators(sbm):
    model = build_model("sage", sbm.num_features, 8, sbm.num_classes, num_layers=2)
    assert operator_norms(model) == ("mean",)
    assert operator_norms(build_model("gat", sbm.num_features, 8, sbm.num_classes, num_layers=2)) == ()
    b = full_batch(sbm, operators=("mean", "gcn"))
    assert set(b._adj) == {"mean", "gcn"}
    store = InMemoryFeatureStore(sbm.features.all())
    assert torch.equal(FetchFeatures(store)(FullGraphLoader(sbm).batch).x, store.x)


@pytest.mark.parametrize("policy", ["planned", "s3fifo", "static-saint"])
def test_tiered_features_train_bit_identically_to_memory(policy):
    """``--features tiered`` changes where rows come from, never what they are: the loss curve
    and scores equal ``--features memory`` for the same seed; the epoch records carry each
    tier's traffic and the cache hit rate."""
    kw = dict(dataset="synthetic-sbm", epochs=4, sampler="saint-rw", saint_coverage=3, quiet=True, seed=1)
    a = train(TrainConfig(**kw))
    b = train(TrainConfig(features="tiered", cache_fraction=0.2, cache_policy=policy, **kw))
    ha, hb = a["runs"][0]["history"], b["runs"][0]["history"]
    assert [r["loss"] for r in ha] == [r["loss"] for r in hb] and a["test"] == b["test"]
    for rec in hb:
        moved = rec["features"]
        assert set(moved) == {"cache", "host"} and 0 < moved["cache"]["hit_rate"] < 1
        assert moved["host"]["bytes"] == moved["host"]["rows"] * 64 * 4  # 64-d float32 rows
    assert b["runs"][0]["feature_store"]["cache"]["policy"] == policy


def test_feature_store_options_are_checked():
    for bad, match in ((dict(features="ssd"), "--features"),
                       (dict(features="tiered", cache_fraction=1.5), "cache-fraction"),
                       (dict(features="tiered", cache_policy="fifo"), "cache-policy"),
                       (dict(cache_policy="lru"), "need --features tiered"),
                       (dict(features="tiered", cache_window=0), "cache-window")):
        with pytest.raises(ConfigError, match=match):
            TrainConfig(**bad).validate()


def test_default_prefetch_needs_a_core_of_its_own_or_features_off_device(sbm, tmp_path, monkeypatch):
    """Sampling runs ahead in the worker only where torch's threads leave it a core; features
    off the compute device (a disk tier) are always prefetched; full-graph batches never."""
    from gnnsys.storage import DiskFeatureStore

    import gnnsys.loading as loading

    s = SaintRandomWalkSampler(sbm.graph, 30, 2, sbm.split["train"], seed=3)
    prev = torch.get_num_threads()
    try:
        monkeypatch.setattr(loading, "usable_cores", lambda: 4)
        torch.set_num_threads(4)
        assert LoadingPipeline(s, sbm).prefetch == 0  # every core computes: inline
        torch.set_num_threads(2)
        assert LoadingPipeline(s, sbm).prefetch == 1  # a core to spare
        assert LoadingPipeline(FullGraphLoader(sbm), sbm).prefetch == 0
        torch.set_num_threads(4)
        path = tmp_path / "x.npy"
        import numpy as np

        np.save(path, sbm.features.all().numpy())
        disk = FetchFeatures(DiskFeatureStore(path), sbm.labels)
        assert LoadingPipeline(s, fetch=disk).prefetch == 1  # the fetch waits on the disk
    finally:
        torch.set_num_threads(prev)


_FAULTS_SCRIPT = """
import resource, sys, torch
from gnnsys.loading import LoadingPipeline
from gnnsys.storage.allocator import allocator_state
LoadingPipeline([])  # a training run's pipeline sets the allocator up
worst = 0
for blocks in ([1 << 20] * 6, [(1 << 20) + 4096 * j for j in range(6)], [2 << 20] * 3):  # 24 MB a step
    for i in range(12):  # a step's pattern: a few blocks of MBs alive together, then freed
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        alive = [torch.ones(n) for n in blocks]
        del alive
        if i >= 4:  # after the first steps of each pattern
            worst = max(worst, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
print(allocator_state()["keep_freed_memory"], worst)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("keep", [True, False])
def test_training_steps_reuse_freed_memory_instead_of_faulting_it_in(keep):
    """With the pipeline's allocator setting, blocks freed by one step are reused by the next:
    after the first steps of three step-like patterns (24 MB alive, then freed) no step faults
    pages in. glibc's defaults hand the heap's free top back after a step in most processes
    (6,112 faults a step for 6 x 4 MB), but not in all (an allocation that lands above the
    blocks pins the top), so the switch's off state (``GNNSYS_KEEP_FREED_MEMORY=0``) is checked
    by what is in force, not by a fault count."""
    env = {**os.environ, "GNNSYS_KEEP_FREED_MEMORY": "1" if keep else "0", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    kept, worst = out[0] == "True", int(out[1])
    assert kept is keep
    if keep:
        assert worst < 200
